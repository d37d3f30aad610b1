//! `vland-cni` driven by real engines from Debian's packages: Podman with its CNI backend
//! (`podman run`, `podman rm`), and containerd's `ctr run --cni`. The plugin is found as `vland`
//! in a CNI plugin directory, as a packaged install puts it (/usr/lib/cni/vland).
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vland_tests::{Lab, engines, wait_until};

const LAN: &str = "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\nip_range = \"172.16.10.0/25\"\ngateway = \"172.16.10.1\"\n";

/// A CNI plugin directory holding `vland` (the shim under test).
fn plugin_dir(lab: &Lab) -> PathBuf {
    let dir = lab.dir.join("cni-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let shim = vland_tests::vland_bin().with_file_name("vland-cni");
    assert!(shim.exists(), "{} is missing: run the tests with `cargo xtask test`", shim.display());
    let _ = std::os::unix::fs::symlink(shim, dir.join("vland"));
    dir
}

/// A conflist joining the daemon's TOML network `lan`.
fn conflist(dir: &Path, name: &str, socket: &Path) -> PathBuf {
    let net_d = dir.join("net.d");
    std::fs::create_dir_all(&net_d).unwrap();
    let list = json!({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "vland", "socket": socket, "network": "lan"}]});
    let path = net_d.join(format!("10-{name}.conflist"));
    std::fs::write(&path, serde_json::to_string_pretty(&list).unwrap()).unwrap();
    path
}

fn fragments(lab: &Lab) -> Value {
    let text = std::fs::read_to_string(lab.dir.join("h1-state/frontends.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).unwrap()
}

/// Podman with its own storage and the CNI backend, configured through CONTAINERS_CONF (the
/// system's containers.conf is left alone): this sandbox cannot raise rlimits, hence the ulimits;
/// crun cannot run on its hybrid cgroups, hence runc.
struct Podman {
    dir: PathBuf,
    conf: PathBuf,
}

impl Podman {
    fn new(lab: &Lab, plugins: &Path) -> Self {
        engines::ensure_packages("/usr/bin/podman", &["podman", "containernetworking-plugins"]);
        // crun refuses this machine's hybrid cgroup layout; runc takes it with cgroupfs.
        engines::ensure_packages("/usr/sbin/runc", &["runc"]);
        let dir = lab.dir.join("podman");
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("containers.conf");
        let text = format!(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\n[network]\nnetwork_backend = \"cni\"\n\
             cni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\nnetwork_config_dir = \"{}\"\n",
            plugins.display(),
            lab.dir.join("net.d").display()
        );
        std::fs::write(&conf, text).unwrap();
        Podman { dir, conf }
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("cannot run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "podman {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command(&["rm", "-a", "-f", "-t", "0"]);
    }
}

#[test]
fn podman_runs_containers_on_a_vland_network_through_its_cni_backend() {
    let (mut lab, host) = Lab::with_host();
    let socket = lab.dir.join("vland.sock");
    let config = lab.config("h1", &format!("socket = \"{}\"\n\n{LAN}", socket.display()));
    let daemon = lab.spawn_daemon(&host, &config);
    assert!(wait_until(Duration::from_secs(30), || socket.exists()).is_some(), "{}", daemon.log_text());
    let plugins = plugin_dir(&lab);
    conflist(&lab.dir, "vlt-vland", &socket);
    let podman = Podman::new(&lab, &plugins);
    let tar = engines::busybox_rootfs(&lab.dir);
    podman.ok(&["import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV PATH=/bin", &tar.display().to_string(), "vlt-busybox"]);

    // A one-shot container: its address, its default route, the gateway on the switch.
    let out = podman.ok(&[
        "run",
        "--rm",
        "--network",
        "vlt-vland",
        "vlt-busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; ping -c 2 -W 2 172.16.10.1 >/dev/null && echo gateway-ok",
    ]);
    assert!(out.contains("inet 172.16.10.2/24"), "{out}");
    assert!(out.contains("default via 172.16.10.1 dev eth0"), "{out}");
    assert!(out.contains("gateway-ok"), "{out}");
    // --rm: Podman's DEL removed the attachment.
    assert_eq!(fragments(&lab)["endpoints"], json!({}));

    // A long-running one: counted under its container ID, removed by `podman rm`.
    let id = podman.ok(&["run", "-d", "--network", "vlt-vland", "vlt-busybox", "sleep", "600"]);
    let stats = lab.stats(&host, &config);
    let row = stats["endpoints"].as_array().unwrap().iter().find(|e| e["network"] == "lan").cloned().unwrap_or_else(|| panic!("{stats}"));
    assert!(row["owner"].as_str().unwrap().contains(&id[..12]), "{row} for {id}");
    // The freed address is given again: the lowest free one.
    assert_eq!(podman.ok(&["exec", &id, "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"]), "172.16.10.2/24");
    podman.ok(&["exec", &id, "ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.10.1"]);
    let stats = lab.stats(&host, &config);
    let row = &stats["endpoints"][0];
    assert!(row["tx_packets"].as_u64().unwrap() >= 3, "{row}");
    podman.ok(&["rm", "-f", "-t", "0", &id]);
    assert_eq!(fragments(&lab)["endpoints"], json!({}));
    assert!(lab.stats(&host, &config)["endpoints"].as_array().unwrap().is_empty());
}

/// Files a test puts where containerd looks (its CNI dirs are fixed), removed when dropped, and
/// the plugin directory if the test made it.
struct SystemFiles {
    files: Vec<PathBuf>,
    dir: Option<PathBuf>,
}

impl Drop for SystemFiles {
    fn drop(&mut self) {
        for path in &self.files {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// containerd started by the test with its own root, state and socket; killed by PID when dropped.
struct Containerd {
    child: std::process::Child,
    socket: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Self {
        engines::ensure_packages("/usr/bin/containerd", &["containerd"]);
        let dir = dir.join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(&config, "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n").unwrap();
        let socket = dir.join("containerd.sock");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--address")
            .arg(&socket)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .stdout(std::fs::File::create(dir.join("log")).unwrap())
            .stderr(std::fs::File::create(dir.join("log.err")).unwrap())
            .spawn()
            .expect("cannot start containerd");
        let c = Containerd { child, socket };
        let ready = wait_until(Duration::from_secs(30), || c.ctr(&["version"]).status.success());
        assert!(ready.is_some(), "containerd did not come up: {}", std::fs::read_to_string(dir.join("log.err")).unwrap_or_default());
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr").arg("--address").arg(&self.socket).args(args).output().expect("cannot run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_ctr_run_cni_attaches_through_the_first_conflist() {
    let (mut lab, host) = Lab::with_host();
    let socket = lab.dir.join("vland.sock");
    let config = lab.config("h1", &format!("socket = \"{}\"\n\n{LAN}", socket.display()));
    let daemon = lab.spawn_daemon(&host, &config);
    assert!(wait_until(Duration::from_secs(30), || socket.exists()).is_some(), "{}", daemon.log_text());
    engines::ensure_packages("/usr/sbin/runc", &["runc"]);
    let containerd = Containerd::start(&lab.dir);

    // `ctr run --cni` reads the first conflist of /etc/cni/net.d and finds plugins in
    // /opt/cni/bin (and Debian's /usr/lib/cni): the test's files go there, named to sort first.
    let made_bin_dir = !Path::new("/opt/cni/bin").exists();
    std::fs::create_dir_all("/etc/cni/net.d").unwrap();
    std::fs::create_dir_all("/opt/cni/bin").unwrap();
    let plugin = PathBuf::from("/opt/cni/bin/vland");
    let list = PathBuf::from("/etc/cni/net.d/00-vlt-vland.conflist");
    let _files = SystemFiles { files: vec![plugin.clone(), list.clone()], dir: made_bin_dir.then(|| PathBuf::from("/opt/cni/bin")) };
    let _ = std::fs::remove_file(&plugin);
    std::os::unix::fs::symlink(vland_tests::vland_bin().with_file_name("vland-cni"), &plugin).unwrap();
    std::fs::copy(conflist(&lab.dir, "vlt-vland", &socket), &list).unwrap();
    engines::busybox_rootfs(&lab.dir);
    let rootfs = lab.dir.join("rootfs").display().to_string();

    let out = containerd.ctr(&[
        "run",
        "--rm",
        "--cni",
        "--rootfs",
        &rootfs,
        "vlt-ctr-1",
        "/bin/sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; ping -c 2 -W 2 172.16.10.1 >/dev/null && echo gateway-ok",
    ]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ctr run failed: {text}");
    assert!(text.contains("inet 172.16.10.2/24"), "{text}");
    assert!(text.contains("default via 172.16.10.1 dev eth0"), "{text}");
    assert!(text.contains("gateway-ok"), "{text}");
    // containerd's DEL (with an empty CNI_NETNS) removed the attachment.
    assert_eq!(fragments(&lab)["endpoints"], json!({}));
    assert!(lab.stats(&host, &config)["endpoints"].as_array().unwrap().is_empty());
}
