//! Docker with vland as its network and IPAM driver against Docker's built-in `macvlan` driver, on
//! the same parent and subnet, with a private dockerd (Debian's docker.io) started here in the
//! bench's host namespace: the time from `docker run -d --net N` to the container running with its
//! address, for containers started one after another and 10 at a time, and `docker rm -f` of all.
//! `--net none` is timed too: what a container costs without a network, so the rows show what
//! each driver adds. Afterwards every container must have had its own address, and nothing may be
//! left (containers, children, vland's fragments).
use super::lab::{veth_host, vland_in};
use super::report::{Measurement, Target, median};
use crate::netlab::{remove_bpf_dirs, remove_namespaces};
use crate::paths::target_dir;
use crate::process::step;
use anyhow::{Context, ensure};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PREFIX: &str = "vld-";
/// Docker's driver name for vland here: the plugin socket's file name.
const DRIVER: &str = "vld-bench";
const IMAGE: &str = "vld-busybox";
const SUBNET: [&str; 3] = ["--subnet", "10.90.0.0/24", "--gateway=10.90.0.1"];
const RANGE: [&str; 2] = ["--ip-range", "10.90.0.0/25"];

/// How long one docker command may take (`timeout` syntax).
const DOCKER_CALL_LIMIT: &str = "300s";

fn host() -> String {
    format!("{PREFIX}host")
}

fn plugin_socket() -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{DRIVER}.sock"))
}

/// What runs during the benchmark, stopped by PID in `stop` whatever happened.
struct Engines {
    dir: PathBuf,
    vland: Option<Child>,
    dockerd: Option<Child>,
}

impl Engines {
    fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        // Docker 20.10 can wedge (seen once: `rm -f` of 100 containers never returned after a
        // restart of dockerd): the bench then fails, with dockerd's log, rather than hang.
        let out = Command::new("timeout")
            .arg(DOCKER_CALL_LIMIT)
            .arg(docker_client())
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args)
            .output()
            .context("cannot run docker")?;
        ensure!(out.status.code() != Some(124), "docker {} did not return within {DOCKER_CALL_LIMIT}", args.join(" "));
        ensure!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn stop(&mut self, vland_bin: &Path, config: &Path) {
        if let Some(mut d) = self.dockerd.take() {
            if let Ok(ids) = self.docker(&["ps", "-aq"])
                && !ids.is_empty()
            {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.split_whitespace());
                let _ = self.docker(&args);
            }
            terminate(&mut d, Duration::from_secs(20));
        }
        if let Some(mut v) = self.vland.take() {
            terminate(&mut v, Duration::from_secs(20));
        }
        let _ = vland_in(&host(), vland_bin, config, &["down"]);
        let _ = std::fs::remove_file(plugin_socket());
        // Overlay mounts a dockerd that died could not remove.
        let data = self.dir.join("data");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("grep -o ' {}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l", data.display()))
            .status();
    }
}

/// SIGTERM, then SIGKILL after `grace`.
fn terminate(child: &mut Child, grace: Duration) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// docker.io's own client (a newer one first in PATH talks to 20.10 too, but differently).
fn docker_client() -> &'static str {
    if Path::new("/usr/bin/docker").exists() { "/usr/bin/docker" } else { "docker" }
}

fn in_host(program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", host())).arg(program);
    cmd
}

fn start(dir: &Path, vland_bin: &Path, config: &Path) -> anyhow::Result<Engines> {
    let mut engines = Engines { dir: dir.to_path_buf(), vland: None, dockerd: None };
    engines.vland = Some(
        in_host(&vland_bin.display().to_string())
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("vland.log"))?)
            .spawn()
            .context("cannot start the vland daemon")?,
    );
    engines.start_dockerd()?;
    Ok(engines)
}

impl Engines {
    fn start_dockerd(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("dockerd.log"))?;
        self.dockerd = Some(
            vland_tests::docker::private_dockerd(&self.dir, &host())?
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start dockerd")?,
        );
        wait_for("dockerd", Duration::from_secs(30), || self.docker(&["version"]).is_ok())
    }

    /// `docker network rm`, once Docker has deleted the network's endpoints (its DeleteEndpoint
    /// calls run on after `rm -f` returns). Docker 20.10 can keep a stale endpoint count after
    /// many removals at once, with either driver, and then refuses until it restarts
    /// (moby/moby#42119): after 10 s, the bench restarts its dockerd and says so.
    fn remove_network(&mut self, name: &str) -> anyhow::Result<()> {
        let mut refusal = String::new();
        let deleted = wait_for("Docker to delete the network's endpoints", Duration::from_secs(10), || {
            self.docker(&["network", "rm", name]).map_err(|e| refusal = format!("{e:#}")).is_ok()
        });
        if deleted.is_ok() {
            return Ok(());
        }
        step(&format!("dockerd keeps refusing `network rm {name}` ({refusal}): restarting it (moby/moby#42119)"));
        if let Some(mut d) = self.dockerd.take() {
            terminate(&mut d, Duration::from_secs(20));
        }
        self.start_dockerd()?;
        self.docker(&["network", "rm", name]).map(drop)
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !ready() {
        ensure!(Instant::now() < deadline, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

/// The busybox image, from a rootfs of busybox-static with a link per applet.
fn import_busybox(engines: &Engines) -> anyhow::Result<()> {
    let root = engines.dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("busybox-static is not installed")?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    let tar = engines.dir.join("rootfs.tar");
    ensure!(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status()?.success(), "tar failed");
    engines.docker(&["import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV PATH=/bin", &tar.display().to_string(), IMAGE])?;
    Ok(())
}

/// One driver's round: `n` containers one after another, then `n` with `parallel` at a time, then
/// `docker rm -f` of all; each checked for its address (distinct) and running state.
struct Round {
    sequential: Duration,
    parallel: Duration,
    remove: Duration,
}

fn run_one(engines: &Engines, net: &str) -> anyhow::Result<(String, Duration)> {
    let start = Instant::now();
    let id = engines.docker(&["run", "-d", "--net", net, IMAGE, "sleep", "3600"])?;
    Ok((id, start.elapsed()))
}

fn round(engines: &Engines, net: &str, n: usize, parallel: usize) -> anyhow::Result<Round> {
    let mut ids = Vec::new();
    let start = Instant::now();
    for _ in 0..n {
        ids.push(run_one(engines, net)?.0);
    }
    let sequential = start.elapsed();
    step(&format!("{net}: {n} containers one after another, {:.0} ms each", sequential.as_secs_f64() * 1000.0 / n as f64));
    let queue = Mutex::new(0..n);
    let started = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                while queue.lock().unwrap().next().is_some() {
                    let r = run_one(engines, net);
                    started.lock().unwrap().push(r);
                }
            });
        }
    });
    let parallel_time = start.elapsed();
    for r in started.into_inner().unwrap() {
        ids.push(r?.0);
    }
    // Every container runs, with an address of its own (none for --net none).
    let mut addresses = std::collections::BTreeSet::new();
    for chunk in ids.chunks(50) {
        let mut args = vec!["inspect", "-f", "{{.State.Running}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"];
        args.extend(chunk.iter().map(String::as_str));
        for line in engines.docker(&args)?.lines() {
            let (running, address) = line.split_once(' ').unwrap_or((line, ""));
            ensure!(running == "true", "a container on {net} is not running: {line}");
            if net != "none" {
                ensure!(address.starts_with("10.90.0."), "a container on {net} has no address: {line:?}");
                ensure!(addresses.insert(address.to_string()), "address {address} was given twice on {net}");
            }
        }
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    let start = Instant::now();
    engines.docker(&args)?;
    // `rm -f` can return before Docker has released every endpoint (its driver calls run as the
    // containers' exits are processed): removal ends when the network has none left.
    if net != "none" {
        wait_for("Docker to release the network's endpoints", Duration::from_secs(60), || {
            engines.docker(&["network", "inspect", "-f", "{{len .Containers}}", net]).is_ok_and(|n| n == "0")
        })?;
    }
    let remove = start.elapsed();
    Ok(Round { sequential, parallel: parallel_time, remove })
}

/// Nothing left: no container, no child in the host namespace, no fragment in vland's state.
fn check_clean(engines: &Engines, state_dir: &Path) -> anyhow::Result<()> {
    let left = engines.docker(&["ps", "-aq"])?;
    ensure!(left.is_empty(), "containers left: {left}");
    let out = in_host("ip").args(["-o", "link", "show"]).output()?;
    let links: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_string()))
        .filter(|n| !["lo", "eth0", "eth0p"].contains(&n.as_str()))
        .collect();
    ensure!(links.is_empty(), "links left in the host namespace: {links:?}");
    let fragments = vland::frontends::store::read(state_dir)?;
    ensure!(fragments.endpoints.is_empty(), "vland still has Docker endpoints: {:?}", fragments.endpoints.keys().collect::<Vec<_>>());
    Ok(())
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    let (n, parallel, rounds) = if quick { (10, 5, 1) } else { (50, 10, 3) };
    let dir = target_dir().join("bench/docker");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let state_dir = dir.join("state");
    let config = dir.join("vland.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{PREFIX}bench\"\nsocket = \"{}\"\ndocker_api = \"{}\"\n\n[docker]\nsocket = \"{}\"\n",
            state_dir.display(),
            dir.join("vland.sock").display(),
            dir.join("docker.sock").display(),
            plugin_socket().display()
        ),
    )?;
    veth_host(PREFIX, &host())?;
    let mut engines = start(&dir, vland_bin, &config)?;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        wait_for("vland's plugin socket", Duration::from_secs(30), || std::os::unix::net::UnixStream::connect(plugin_socket()).is_ok())?;
        import_busybox(&engines)?;
        let vland_net = ["network", "create", "-d", DRIVER, "--ipam-driver", DRIVER];
        let docker_net = ["network", "create", "-d", "macvlan"];
        let mut times: [Vec<Round>; 3] = Default::default();
        for r in 0..rounds {
            // Taking turns, each driver's network alone on the parent while it is measured. The
            // order alternates: this shared machine drifts slower or faster within a run, which
            // would always count against the driver measured second.
            let mut order = [(1, &docker_net[..]), (0, &vland_net[..])];
            if r % 2 == 1 {
                order.reverse();
            }
            for (i, create) in order {
                let mut args = create.to_vec();
                args.extend_from_slice(&SUBNET);
                args.extend_from_slice(&RANGE);
                args.extend_from_slice(&["-o", "parent=eth0", "bench"]);
                engines.docker(&args)?;
                step(&format!("round {r}: {} driver", create[3]));
                times[i].push(round(&engines, "bench", n, parallel).with_context(|| format!("round {r}, {}", create[3]))?);
                // Docker deletes the endpoints after the containers have left the network (its
                // DeleteEndpoint calls run on): `network rm` is refused until then.
                engines.remove_network("bench")?;
                check_clean(&engines, &state_dir)?;
            }
            times[2].push(round(&engines, "none", n, parallel)?);
        }
        let [vland, docker, none] = times;
        let per = |rounds: &[Round], f: fn(&Round) -> Duration| median(rounds.iter().map(f).collect::<Vec<_>>()).as_secs_f64();
        let ms = |rounds: &[Round], f: fn(&Round) -> Duration, count: usize| per(rounds, f) * 1000.0 / count as f64;
        let seq = |r: &Round| r.sequential;
        let par = |r: &Round| r.parallel;
        let rm = |r: &Round| r.remove;
        step(&format!(
            "docker run, ms per container one after another: --net none {:.0}, Docker's macvlan {:.0}, vland {:.0}; {} at a time: {:.0} / {:.0} / {:.0}",
            ms(&none, seq, n),
            ms(&docker, seq, n),
            ms(&vland, seq, n),
            parallel,
            ms(&none, par, n),
            ms(&docker, par, n),
            ms(&vland, par, n)
        ));
        let baseline = "Docker's built-in macvlan driver, same parent and subnet";
        Ok(vec![
            Measurement::new(
                &format!("docker run -d: {n} one after another (per container)"),
                ms(&vland, seq, n),
                "ms",
                baseline,
                ms(&docker, seq, n),
                Target::AtMost(1.05),
            ),
            Measurement::new(
                &format!("docker run -d: {n}, {parallel} at a time (per container, wall)"),
                ms(&vland, par, n),
                "ms",
                baseline,
                ms(&docker, par, n),
                Target::AtMost(1.05),
            ),
            Measurement::new(
                &format!("docker rm -f: {} containers", 2 * n),
                per(&vland, rm),
                "s",
                baseline,
                per(&docker, rm),
                Target::AtMost(1.05),
            ),
        ])
    })();
    engines.stop(vland_bin, &config);
    remove_namespaces(PREFIX);
    remove_bpf_dirs(PREFIX);
    result.with_context(|| format!("logs in {}", dir.display()))
}
