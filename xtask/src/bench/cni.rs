//! CNI ADD and DEL of many attachments: `vland-cni` (through a running daemon) against CNI's
//! reference `macvlan` plugin with `host-local` IPAM, on the same parent (a veth in a bench
//! namespace) and the same range, one call after another and several at a time. The same
//! network config serves both, with only `type` changed. After each run the bench checks what
//! the kernel shows: every attachment had its own address, and nothing was left behind.
use super::report::{Measurement, Target, median};
use crate::netlab::{add_ns, remove_bpf_dirs, remove_namespaces};
use crate::paths::target_dir;
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PREFIX: &str = "vlbc-";
/// Calls in flight in the parallel runs.
const PARALLEL: usize = 20;
const REFERENCE: &str = "macvlan + host-local (CNI reference plugins)";

fn host() -> String {
    format!("{PREFIX}host")
}

fn container(i: usize) -> String {
    format!("{PREFIX}c{i}")
}

/// The bench's host: a namespace whose veth `eth0` is the parent of every attachment.
pub(super) fn build_host(prefix: &str) -> anyhow::Result<()> {
    super::lab::veth_host(prefix, &format!("{prefix}host"))
}

/// A vland daemon in the bench's host namespace, on its own state dir, bpffs dir and socket.
pub(super) struct Daemon {
    child: Child,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    host: String,
    bin: PathBuf,
}

impl Daemon {
    pub fn start(bin: &Path, dir: &Path, prefix: &str, networks: &str) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(dir)?;
        let state_dir = dir.join("state");
        let socket = dir.join("vland.sock");
        let config = dir.join("vland.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{prefix}bench\"\nsocket = \"{}\"\n\n{networks}",
                state_dir.display(),
                socket.display()
            ),
        )?;
        let log = dir.join("vland.log");
        let host = format!("{prefix}host");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{host}"))
            .arg(bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start the vland daemon")?;
        let mut daemon = Daemon { child, config, socket, state_dir, log, host, bin: bin.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
            if Instant::now() > deadline || daemon.child.try_wait()?.is_some() {
                bail!("the vland daemon did not listen on {}: see {}", daemon.socket.display(), daemon.log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    /// The endpoints vland records (state file) and the front-end fragments left: both empty
    /// once every attachment is deleted.
    pub fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let mut left = Vec::new();
        let read = |file: &str| -> anyhow::Result<Value> {
            match std::fs::read_to_string(self.state_dir.join(file)) {
                Ok(text) => Ok(serde_json::from_str(&text)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
                Err(e) => Err(e.into()),
            }
        };
        let state = read("state.json")?;
        left.extend(state["endpoints"].as_object().into_iter().flat_map(|m| m.keys()).map(|k| format!("vland state: endpoint {k}")));
        let fragments = read("frontends.json")?;
        for table in ["endpoints", "networks"] {
            left.extend(fragments[table].as_object().into_iter().flat_map(|m| m.keys()).map(|k| format!("vland fragment: {table} {k}")));
        }
        Ok(left)
    }

    /// The end of a bench with a daemon (if it started): it is stopped and the bench's namespaces
    /// and pins are removed, whatever `result` is; then the result, or else the stop's error.
    pub fn finish<T>(daemon: Option<Daemon>, prefix: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let stopped = daemon.map(Daemon::stop).transpose();
        remove_namespaces(prefix);
        remove_bpf_dirs(prefix);
        let value = result?;
        stopped?;
        Ok(value)
    }

    /// SIGTERM, then `vland down` for what is left of this state dir (pins, parents).
    pub fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait()?;
        super::lab::vland_in(&self.host, &self.bin, &self.config, &["down"])?;
        Ok(())
    }
}

/// The conflist's plugin config, as the reference plugins' docs write it; `dataDir` keeps
/// host-local's store private to the bench.
fn netconf(plugin: &str, socket: &Path, data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "vlbench",
        "type": plugin,
        "master": "eth0",
        "mode": "bridge",
        "socket": socket,
        "ipam": {
            "type": "host-local",
            "subnet": "10.66.0.0/16",
            "rangeStart": "10.66.0.10",
            "rangeEnd": "10.66.3.250",
            "gateway": "10.66.0.1",
            "dataDir": data_dir,
            "routes": [{"dst": "0.0.0.0/0"}]
        }
    })
}

/// One CNI call as a runtime makes it, from the bench's host namespace; its result on success.
fn call(plugin: &Path, command: &str, i: usize, conf: &str) -> anyhow::Result<Value> {
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", host()))
        .arg(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("vlbench{i:05}"))
        .env("CNI_NETNS", format!("/run/netns/{}", container(i)))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", plugin.display()))?;
    child.stdin.take().expect("piped").write_all(conf.as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{} {command} of attachment {i} failed: {text} {}",
        plugin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}

/// Runs `command` for attachments 0..n, `parallel` at a time; how long it took, and the results.
fn run_all(plugin: &Path, command: &str, n: usize, parallel: usize, conf: &Value) -> anyhow::Result<(Duration, Vec<Value>)> {
    let conf = conf.to_string();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results: Vec<anyhow::Result<Vec<(usize, Value)>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..parallel)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(mine);
                        }
                        mine.push((i, call(plugin, command, i, &conf)?));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a CNI worker panicked")).collect()
    });
    let took = start.elapsed();
    let mut all = vec![Value::Null; n];
    for worker in results {
        for (i, v) in worker? {
            all[i] = v;
        }
    }
    Ok((took, all))
}

/// The IPv4 addresses of `ifname` in namespace `ns`, as the kernel shows them.
fn kernel_addrs(ns: &str, ifname: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("ip").args(["-n", ns, "-j", "-4", "addr", "show", "dev", ifname]).output()?;
    ensure!(out.status.success(), "ip -n {ns} addr show dev {ifname}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"].as_u64()?)))
        .collect())
}

/// The names of the links in namespace `ns`.
pub(super) fn link_names(ns: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("ip").args(["-n", ns, "-j", "link", "show"]).output()?;
    ensure!(out.status.success(), "ip -n {ns} link show: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array().into_iter().flatten().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect())
}

/// After ADD: every attachment's result address is the one the kernel shows on its child, and
/// no two attachments share one.
fn check_added(who: &str, results: &[Value]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        let addr = r["ips"][0]["address"].as_str().with_context(|| format!("{who}: attachment {i} has no address in its result: {r}"))?;
        let kernel = kernel_addrs(&container(i), "eth0")?;
        ensure!(kernel == [addr], "{who}: attachment {i}'s result says {addr}, the kernel shows {kernel:?}");
        ensure!(seen.insert(addr.to_string()), "{who}: address {addr} given twice (attachment {i})");
    }
    Ok(())
}

/// After DEL: no attachment namespace has anything but lo, the host has only its veth pair, and
/// host-local's store (when given) holds no reservation.
fn check_removed(who: &str, n: usize, host_local: Option<&Path>) -> anyhow::Result<()> {
    let mut left = Vec::new();
    for i in 0..n {
        left.extend(link_names(&container(i))?.into_iter().filter(|l| l != "lo").map(|l| format!("{} in {}", l, container(i))));
    }
    left.extend(
        link_names(&host())?.into_iter().filter(|l| !["lo", "eth0", "eth0p"].contains(&l.as_str())).map(|l| format!("{l} in the host")),
    );
    if let Some(dir) = host_local {
        for e in std::fs::read_dir(dir.join("vlbench")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // host-local keeps its lock and where it last allocated: no reservation.
            if name != "lock" && !name.starts_with("last_reserved_ip") {
                left.push(format!("host-local reservation {name}"));
            }
        }
    }
    ensure!(left.is_empty(), "{who} left behind: {}", left.join(", "));
    Ok(())
}

/// ADD of all, then DEL of all, `parallel` at a time, with the checks: (ADD time, DEL time).
fn round(
    who: &str,
    plugin: &Path,
    conf: &Value,
    n: usize,
    parallel: usize,
    host_local: Option<&Path>,
) -> anyhow::Result<(Duration, Duration)> {
    let (add, results) = run_all(plugin, "ADD", n, parallel, conf)?;
    check_added(who, &results)?;
    let (del, _) = run_all(plugin, "DEL", n, parallel, conf)?;
    check_removed(who, n, host_local)?;
    Ok((add, del))
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    vland_tests::engines::ensure_packages("/usr/lib/cni/macvlan", &["containernetworking-plugins"]);
    let (n, rounds) = if quick { (60, 1) } else { (200, 3) };
    let shim = vland_bin.with_file_name("vland-cni");
    ensure!(shim.exists(), "{} is missing: build it with `cargo xtask build`", shim.display());
    let reference = PathBuf::from("/usr/lib/cni/macvlan");
    let dir = target_dir().join("bench/cni");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    build_host(PREFIX)?;
    let mut daemon = None;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        for i in 0..n {
            add_ns(&container(i))?;
        }
        daemon = Some(Daemon::start(vland_bin, &dir, PREFIX, "")?);
        let d = daemon.as_ref().expect("started");
        let host_local = dir.join("host-local");
        let (ours, theirs) = (netconf("vland", &d.socket, &host_local), netconf("macvlan", &d.socket, &host_local));
        let mut rows = Vec::new();
        for (label, parallel) in [("one after another", 1), ("20 at a time", PARALLEL)] {
            let (mut v_add, mut v_del, mut r_add, mut r_del) = (vec![], vec![], vec![], vec![]);
            for _ in 0..rounds {
                let (a, dl) = round("macvlan", &reference, &theirs, n, parallel, Some(&host_local))?;
                r_add.push(a);
                r_del.push(dl);
                let (a, dl) = round("vland", &shim, &ours, n, parallel, None)?;
                let left = d.leftovers()?;
                ensure!(left.is_empty(), "vland left behind: {}", left.join(", "));
                v_add.push(a);
                v_del.push(dl);
            }
            let rate = |t: Vec<Duration>| n as f64 / median(t).as_secs_f64();
            for (what, v, r) in [("ADD", v_add, r_add), ("DEL", v_del, r_del)] {
                rows.push(Measurement::new(
                    &format!("CNI {what}: {n} attachments, {label}"),
                    rate(v),
                    "att/s",
                    REFERENCE,
                    rate(r),
                    Target::AtLeast(1.0),
                ));
            }
        }
        Ok(rows)
    })();
    Daemon::finish(daemon, PREFIX, result)
}
