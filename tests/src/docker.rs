//! A private dockerd for the Docker front-end tests and benchmarks: Debian's docker.io, started
//! by the test with its own data root, exec root, pidfile, config file and API socket (the
//! system's /var/run/docker.sock and /etc/docker/daemon.json are left alone), without iptables
//! or its bridge. It still finds plugins in /run/docker/plugins, which is why a test names its
//! vland plugin socket uniquely. Stopped by PID when dropped, its containers first.
use crate::engines;
use crate::lab::{Lab, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

/// The image every test imports: busybox-static with its applet links.
pub const BUSYBOX: &str = "vlt-busybox";
/// docker.io's client.
const PACKAGED_CLIENT: &str = "/usr/bin/docker";

/// `dockerd` in network namespace `netns` with everything of its own under `dir`: an empty config
/// file (the system's daemon.json must not leak in), data and exec roots, pidfile and the API
/// socket `dir/docker.sock`; no iptables, no bridge. Not yet started.
pub fn private_dockerd(dir: &Path, netns: &str) -> std::io::Result<Command> {
    let config = dir.join("daemon.json");
    std::fs::write(&config, "{}\n")?;
    let mut cmd = Lab::command_in(netns, "dockerd");
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .args(["--iptables=false", "--bridge=none", "--shutdown-timeout=2"]);
    Ok(cmd)
}

pub struct Dockerd {
    child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Dockerd {
    /// Starts dockerd in network namespace `netns` (where vland's parents are, since Docker
    /// takes the plugin's child from its own namespace), with its files under `dir/docker`.
    pub fn start(dir: &Path, netns: &str) -> Self {
        engines::ensure_packages("/usr/sbin/dockerd", &["docker.io"]);
        let dir = dir.join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let child = private_dockerd(&dir, netns)
            .unwrap()
            .stdout(std::fs::File::create(dir.join("log")).unwrap())
            .stderr(std::fs::File::create(dir.join("log.err")).unwrap())
            .spawn()
            .expect("cannot start dockerd");
        let d = Dockerd { child, dir, socket };
        let ready = wait_until(Duration::from_secs(30), || d.run(&["version"]).status.success());
        assert!(ready.is_some(), "dockerd did not come up: {}", d.log());
        d
    }

    /// dockerd's log, for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log.err")).unwrap_or_default()
    }

    /// `docker -H unix://SOCKET ARGS`, not yet run. The client of the same package as the daemon:
    /// a newer one first in PATH sends some flags (`--mac-address`) in a form 20.10 refuses.
    pub fn command(&self, args: &[&str]) -> Command {
        let client = if Path::new(PACKAGED_CLIENT).exists() { PACKAGED_CLIENT } else { "docker" };
        let mut cmd = Command::new(client);
        cmd.arg("-H").arg(format!("unix://{}", self.socket.display())).args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cannot run docker")
    }

    /// Runs `docker ARGS` and panics with its output unless it succeeds; its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `docker ARGS`, which must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "docker {} succeeded: {}", args.join(" "), String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `docker inspect` of one object, parsed.
    pub fn inspect(&self, what: &[&str]) -> serde_json::Value {
        let mut args = vec!["inspect"];
        args.extend_from_slice(what);
        let text = self.ok(&args);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("docker inspect printed non-JSON ({e}): {text}"));
        v[0].clone()
    }

    /// Imports the busybox image ([`BUSYBOX`]) from a rootfs tarball made in `dir`.
    pub fn import_busybox(&self, dir: &Path) {
        let tar = engines::busybox_rootfs(dir);
        self.ok(&["import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV PATH=/bin", &tar.display().to_string(), BUSYBOX]);
    }

    /// The PID of dockerd's own containerd, if it runs (it is dockerd's child, stopped with it;
    /// after a dockerd that died uncleanly it is stopped here).
    fn containerd_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("exec/containerd/containerd.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        // The file outlives the process: only a live containerd with that PID is ours.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "containerd").then_some(pid)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first, killed at once (a shell as PID 1 ignores SIGTERM: stopping would wait).
        let ids = self.run(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(str::to_string).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.run(&args);
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        if wait_until(Duration::from_secs(20), || matches!(self.child.try_wait(), Ok(Some(_)))).is_none() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.child.wait();
        }
        if let Some(c) = self.containerd_pid() {
            let _ = kill(Pid::from_raw(c), Signal::SIGKILL);
        }
        // Overlay mounts of containers dockerd could not clean up would keep the lab dir.
        let data = self.dir.join("data");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("grep -o ' {}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l", data.display()))
            .status();
    }
}
