//! `podman run --rm` of many containers at once: Podman's CNI backend with `vland` against
//! Podman's default, netavark, with its `macvlan` driver, on the same parent (a veth in a bench
//! namespace, where Podman runs) and subnet. Each engine has its own storage and a
//! containers.conf the bench writes (the system's is left alone). Every container writes the
//! address its kernel shows into a shared directory and stays until all have: the addresses of
//! containers that run together must differ. After each run nothing may be left: containers,
//! links in the host namespace, Podman's namespaces, vland's endpoints and fragments.
use super::cni::{Daemon, build_host, link_names};
use super::report::{Measurement, Target, median};
use crate::paths::target_dir;
use anyhow::{Context, bail, ensure};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "vlbp-";
const IMAGE: &str = "vlbench-busybox";
const SUBNET: &str = "10.67.0.0/24";

/// One engine setup: its storage, its containers.conf and the network its containers join.
struct Podman {
    dir: PathBuf,
    /// Podman wants a short runroot (at most 50 characters).
    runroot: PathBuf,
    conf: PathBuf,
    network: String,
}

impl Podman {
    /// `backend` is "cni" or "netavark"; networks live in the engine's own config dir. `name`
    /// tells setups apart.
    fn new(dir: &Path, backend: &str, name: &str, plugins: &Path) -> anyhow::Result<Podman> {
        std::fs::create_dir_all(dir.join("net.d"))?;
        let conf = dir.join("containers.conf");
        // This sandbox cannot raise rlimits (default_ulimits), crun refuses its hybrid cgroups
        // (runc with cgroupfs).
        let text = format!(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\n[network]\nnetwork_backend = \"{backend}\"\n\
             cni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\nnetwork_config_dir = \"{}\"\n",
            plugins.display(),
            dir.join("net.d").display()
        );
        std::fs::write(&conf, text)?;
        Ok(Podman {
            dir: dir.to_path_buf(),
            runroot: PathBuf::from(format!("/run/{PREFIX}{name}")),
            conf,
            network: format!("vlbench-{name}"),
        })
    }

    /// Podman in the bench's host namespace (where the parent is), with this setup's storage.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{PREFIX}host"))
            .arg("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs"])
            .args(args);
        cmd
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args).output().context("cannot run podman")?;
        ensure!(out.status.success(), "podman {} failed: {}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
        Ok(text(&out.stdout))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Podman's network namespaces (`netns-…` in /run/netns).
fn podman_namespaces() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("netns-"))
        .collect()
}

/// `n` containers started at once; each writes its address into `report` and waits for the
/// bench's `stop` file. The time from the first start to the last exit, and the addresses.
fn run_round(p: &Podman, n: usize, report: &Path) -> anyhow::Result<(Duration, Vec<String>)> {
    let _ = std::fs::remove_dir_all(report);
    std::fs::create_dir_all(report)?;
    let volume = format!("{}:/report", report.display());
    let script = "ip -4 -o addr show eth0 | awk '{print $4}' > /report/$(hostname).tmp && mv /report/$(hostname).tmp /report/$(hostname).addr; \
                  i=0; while [ ! -e /report/stop ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done";
    let start = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    for i in 0..n {
        let name = format!("vlbench{i}");
        let args = ["run", "--rm", "--network", &p.network, "--hostname", &name, "-v", &volume, IMAGE, "sh", "-c", script];
        children.push(p.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("cannot run podman")?);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let reported = || std::fs::read_dir(report).map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "addr")).count());
    while reported()? < n
        && Instant::now() < deadline
        && children.iter_mut().all(|c| c.try_wait().ok().flatten().is_none_or(|s| s.success()))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(report.join("stop"), "")?;
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output()).collect::<Result<_, _>>()?;
    let took = start.elapsed();
    for (i, out) in outputs.iter().enumerate() {
        ensure!(out.status.success(), "podman run of container {i} on {} failed: {}{}", p.network, text(&out.stdout), text(&out.stderr));
    }
    let mut addrs = Vec::new();
    for i in 0..n {
        let file = report.join(format!("vlbench{i}.addr"));
        addrs.push(
            std::fs::read_to_string(&file).map(|s| s.trim().to_string()).with_context(|| format!("container {i} reported no address"))?,
        );
    }
    Ok((took, addrs))
}

/// Every container had an address in the subnet, no two the same.
fn check_addresses(who: &str, addrs: &[String]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for a in addrs {
        ensure!(a.starts_with("10.67.0.") && a.ends_with("/24"), "{who}: a container showed address `{a}`, not one of {SUBNET}");
        ensure!(seen.insert(a), "{who}: address {a} given to two containers running at once");
    }
    Ok(())
}

/// Nothing of the run is left: containers, links in the host namespace, Podman's namespaces.
fn check_clean(who: &str, p: &Podman, namespaces_before: &BTreeSet<String>) -> anyhow::Result<()> {
    let containers = p.ok(&["ps", "-a", "-q"])?;
    ensure!(containers.is_empty(), "{who}: containers left: {containers}");
    let links: Vec<String> =
        link_names(&format!("{PREFIX}host"))?.into_iter().filter(|l| !["lo", "eth0", "eth0p"].contains(&l.as_str())).collect();
    ensure!(links.is_empty(), "{who}: links left in the host namespace: {links:?}");
    let new: Vec<String> = podman_namespaces().difference(namespaces_before).cloned().collect();
    ensure!(new.is_empty(), "{who}: network namespaces left: {new:?}");
    Ok(())
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    vland_tests::engines::ensure_packages("/usr/bin/podman", &["podman", "containernetworking-plugins"]);
    vland_tests::engines::ensure_packages("/usr/sbin/runc", &["runc"]);
    vland_tests::engines::ensure_packages("/usr/lib/podman/netavark", &["netavark"]);
    let (n, rounds) = if quick { (8, 1) } else { (20, 3) };
    let dir = target_dir().join("bench/podman");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    build_host(PREFIX)?;
    // The shim found as `vland` in a CNI plugin directory, as a packaged install puts it.
    let plugins = dir.join("cni-bin");
    std::fs::create_dir_all(&plugins)?;
    std::os::unix::fs::symlink(vland_bin.with_file_name("vland-cni"), plugins.join("vland"))?;
    let tar = vland_tests::engines::busybox_rootfs(&dir);
    let mut daemon = None;
    let engines = [
        Podman::new(&dir.join("cni"), "cni", "cni", &plugins)?,
        Podman::new(&dir.join("cni-ref"), "cni", "ref", &plugins)?,
        Podman::new(&dir.join("netavark"), "netavark", "netavark", &plugins)?,
    ];
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        let d = daemon.insert(Daemon::start(vland_bin, &dir.join("vland"), PREFIX, "")?);
        let [cni, reference, netavark] = &engines;
        // vland through a conflist written for the reference macvlan plugin, `type` changed; the
        // reference plugins themselves under the same CNI backend show what the backend costs.
        let conflist = |p: &Podman, plugin: &str| {
            let ipam = json!({"type": "host-local", "subnet": SUBNET, "gateway": "10.67.0.1", "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": p.dir.join("host-local")});
            let conf = json!({"cniVersion": "1.0.0", "name": p.network, "plugins": [{
                "type": plugin, "master": "eth0", "mode": "bridge", "socket": d.socket, "ipam": ipam
            }]});
            std::fs::write(p.dir.join("net.d/10-vlbench.conflist"), serde_json::to_string_pretty(&conf)?)
        };
        conflist(cni, "vland")?;
        conflist(reference, "macvlan")?;
        netavark.ok(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "-o",
            "parent=eth0",
            "--subnet",
            SUBNET,
            "--gateway",
            "10.67.0.1",
            &netavark.network,
        ])?;
        for p in &engines {
            p.ok(&["import", "-q", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV PATH=/bin", &tar.display().to_string(), IMAGE])?;
        }
        let (mut ours, mut backend, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (p, times) in [(netavark, &mut theirs), (reference, &mut backend), (cni, &mut ours)] {
                let before = podman_namespaces();
                let (took, addrs) = run_round(p, n, &dir.join("report"))?;
                check_addresses(&p.network, &addrs)?;
                check_clean(&p.network, p, &before)?;
                times.push(took);
            }
            let left = d.leftovers()?;
            if !left.is_empty() {
                bail!("vland left behind: {}", left.join(", "));
            }
        }
        let rate = |t: &[Duration]| n as f64 / median(t.to_vec()).as_secs_f64();
        Ok(vec![
            Measurement::new(
                &format!("podman run --rm: {n} containers at once"),
                rate(&ours),
                "ctr/s",
                "netavark macvlan (Podman's default)",
                rate(&theirs),
                Target::AtLeast(1.0),
            ),
            Measurement::new(
                &format!("podman run --rm: {n} at once, both through Podman's CNI backend"),
                rate(&ours),
                "ctr/s",
                "reference macvlan + host-local plugins",
                rate(&backend),
                Target::AtLeast(1.0),
            ),
        ])
    })();
    for p in &engines {
        let _ = p.command(&["rm", "-a", "-f", "-t", "0"]).output();
        let _ = p.command(&["network", "rm", "-f", &p.network]).output();
        let _ = std::fs::remove_dir_all(&p.runroot);
    }
    Daemon::finish(daemon, PREFIX, result)
}
