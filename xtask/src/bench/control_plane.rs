//! Control-plane benchmarks on a lab of namespaces: vland bringing up and tearing down N
//! endpoints against iproute2 doing the same operations (`ip -batch` up, one link at a time
//! down), `vland stats --json` against `ip -s -j link` over the same links, and the daemon's
//! memory with those endpoints.
use super::lab::{veth_host, vland_in};
use super::report::{Measurement, Target, median};
use crate::netlab::{quiet, remove_namespaces};
use crate::paths::target_dir;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "vlb-";
/// Endpoints per namespace: endpoints may share namespaces, as containers of a pod do.
const PER_NS: usize = 10;
/// Bring-up/teardown rounds; each result is the median.
const ROUNDS: usize = 3;

fn host() -> String {
    format!("{PREFIX}host")
}

fn ep_ns(i: usize) -> String {
    format!("{PREFIX}ep{}", i / PER_NS)
}

fn address(i: usize) -> String {
    format!("10.64.{}.{}", 1 + i / 250, 1 + i % 250)
}

/// `ip -batch` announces nothing, so for the same operations vland's endpoints do not either
/// (a gratuitous ARP per child reaches every sibling on the parent: N children, N² deliveries).
const ANNOUNCE: &str = "gratuitous_arp = false";

fn config(dir: &Path, n: usize) -> anyhow::Result<PathBuf> {
    let mut text = format!(
        "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{PREFIX}bench\"\n\n[networks.bench]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.64.0.0/16\"\n{ANNOUNCE}\n",
        dir.join("state").display()
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[endpoints.e{i}]\nnetwork = \"bench\"\nnetns = \"{}\"\nifname = \"eth{}\"\nip = \"{}\"\nroutes = [{{ to = \"10.{}.{}.0/24\" }}]\n",
            ep_ns(i),
            i % PER_NS,
            address(i),
            100 + i / 256,
            i % 256
        ));
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn ip_batch(ns: Option<&str>, lines: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd.args(["-batch", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    child.stdin.take().unwrap().write_all(lines.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("ip -batch failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// iproute2 doing what vland does (without eBPF): namespaces, children created in them, renamed,
/// addressed, up, routed.
fn ip_bring_up(n: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let namespaces = n.div_ceil(PER_NS);
    let mut top = String::new();
    for k in 0..namespaces {
        top.push_str(&format!("netns add {PREFIX}ep{k}\n"));
    }
    ip_batch(None, &top)?;
    let mut host_lines = String::new();
    for i in 0..n {
        host_lines.push_str(&format!("link add name vt{i} link eth0 netns {} type macvlan mode bridge\n", ep_ns(i)));
    }
    ip_batch(Some(&host()), &host_lines)?;
    for k in 0..namespaces {
        let mut lines = String::new();
        for i in (k * PER_NS)..((k + 1) * PER_NS).min(n) {
            let ifname = format!("eth{}", i % PER_NS);
            lines.push_str(&format!(
                "link set dev vt{i} name {ifname}\naddress add {}/16 dev {ifname}\nlink set dev {ifname} up\n",
                address(i)
            ));
            lines.push_str(&format!("route add 10.{}.{}.0/24 dev {ifname}\n", 100 + i / 256, i % 256));
        }
        ip_batch(Some(&format!("{PREFIX}ep{k}")), &lines)?;
    }
    Ok(start.elapsed())
}

/// Deleting the same links one at a time, as a script looping over `ip link del` does.
fn ip_delete_one_by_one(n: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for k in 0..n.div_ceil(PER_NS) {
        let mut lines = String::new();
        for i in (k * PER_NS)..((k + 1) * PER_NS).min(n) {
            lines.push_str(&format!("link del dev eth{}\n", i % PER_NS));
        }
        ip_batch(Some(&format!("{PREFIX}ep{k}")), &lines)?;
    }
    Ok(start.elapsed())
}

fn remove_endpoint_namespaces() {
    remove_namespaces(&format!("{PREFIX}ep"));
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    // The targets are for 500 endpoints, in quick runs too: at 100, fixed costs (creating the
    // maps) dominate.
    let n_up = 500;
    let n_stats = if quick { 200 } else { 1000 };
    let dir = target_dir().join("bench/lab");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    veth_host(PREFIX, &host())?;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        let mut out = Vec::new();

        // Bring-up and teardown, iproute2 and vland taking turns, each from a clean slate; the
        // median of ROUNDS (the machine is shared, and one round takes a fraction of a second).
        // One-by-one deletion takes ~11 s, so it runs once; other rounds remove the namespaces.
        let cfg = config(&dir, n_up)?;
        let (mut ip_ups, mut vland_ups, mut vland_downs) = (Vec::new(), Vec::new(), Vec::new());
        let mut ip_down = None;
        for round in 0..ROUNDS {
            ip_ups.push(ip_bring_up(n_up)?);
            if round == 0 {
                ip_down = Some(ip_delete_one_by_one(n_up)?);
            }
            remove_endpoint_namespaces();
            vland_ups.push(vland_in(&host(), vland_bin, &cfg, &["apply"]).map(|(_, took)| took)?);
            vland_downs.push(vland_in(&host(), vland_bin, &cfg, &["down"]).map(|(_, took)| took)?);
        }
        let (ip_up, vland_up, vland_down) = (median(ip_ups), median(vland_ups), median(vland_downs));
        let ip_down = ip_down.expect("round 0 ran");
        let rate = |d: Duration| n_up as f64 / d.as_secs_f64();
        out.push(Measurement::new(
            &format!("apply: bring up {n_up} endpoints"),
            rate(vland_up),
            "eps/s",
            "ip -batch, same operations without eBPF",
            rate(ip_up),
            Target::AtLeast(1.0),
        ));
        out.push(Measurement::new(
            &format!("down: remove {n_up} endpoints"),
            rate(vland_down),
            "eps/s",
            "ip link del, one link at a time",
            rate(ip_down),
            Target::AtLeast(50.0),
        ));

        // Stats and memory with more endpoints, under the daemon.
        let cfg = config(&dir, n_stats)?;
        let log = std::fs::File::create(dir.join("daemon.log"))?;
        let mut daemon = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", host()))
            .arg(vland_bin)
            .arg("--config")
            .arg(&cfg)
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(300);
        while !std::fs::read_to_string(dir.join("daemon.log"))?.contains("apply done") {
            if Instant::now() > deadline || daemon.try_wait()?.is_some() {
                let _ = daemon.kill();
                bail!("the daemon did not apply {n_stats} endpoints: {}", std::fs::read_to_string(dir.join("daemon.log"))?);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let rss = rss_mib(daemon.id())?;
        let stats_time = median(
            (0..5)
                .map(|_| vland_in(&host(), vland_bin, &cfg, &["stats", "--json"]).map(|(_, took)| took))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let namespaces: Vec<String> = (0..n_stats.div_ceil(PER_NS)).map(|k| format!("{PREFIX}ep{k}")).collect();
        let ip_time = median(
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    for ns in &namespaces {
                        quiet(&["ip", "-n", ns, "-s", "-j", "link", "show"])?;
                    }
                    Ok(start.elapsed())
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
        let _ = daemon.wait();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        out.push(Measurement::new(
            &format!("stats --json over {n_stats} endpoints"),
            ms(stats_time),
            "ms",
            "ip -s -j link over the same links",
            ms(ip_time),
            Target::AtMost(1.0),
        ));
        out.push(Measurement::new(
            &format!("daemon RSS with {n_stats} endpoints"),
            rss,
            "MiB",
            "the 30 MiB budget",
            30.0,
            Target::AtMost(1.0),
        ));
        vland_in(&host(), vland_bin, &cfg, &["down"])?;
        Ok(out)
    })();
    remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
    result
}
