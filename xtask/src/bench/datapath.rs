//! What vland's programs cost the endpoints' own traffic: iperf3 between two children of one veth
//! parent, plain kernel macvlan children (no programs) against two of vland's endpoints on the
//! same parent at the same time. UDP with 64-byte payloads (packets per second the receiver got:
//! per-packet costs show most there) and TCP (throughput). Sibling traffic in macvlan bridge mode
//! goes from one child's xmit straight into the other's receive path, on the sender's CPU, so
//! whatever runs on either child's hooks is paid for on that CPU.
//!
//! vland's children come twice: with the default `counter_hook = "tc"` (clsact + cls_bpf
//! filters) and with `counter_hook = "tcx"` (rows with a tcx suffix), each pair on a network of
//! its own on the same parent.
//!
//! Rounds take turns (each round starts with the next arm: plain, vland, vland tcx) and each
//! value is the median, since the machine is shared and slows down in spells; the spread of the
//! per-round ratios to the plain children of the same round is printed with it, so a single slow
//! spell is told from a steady cost.
use super::report::{Measurement, Target, median};
use crate::netlab::{add_ns, in_ns, remove_namespaces};
use crate::paths::target_dir;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const PREFIX: &str = "vlbp-";
/// Rounds in a full run and in a quick one.
const ROUNDS: usize = 9;
const QUICK_ROUNDS: usize = 5;
/// CPUs of the iperf3 client and server (the machine has two).
const CLIENT_CPU: &str = "0";
const SERVER_CPU: &str = "1";

fn host() -> String {
    format!("{PREFIX}host")
}

/// One pair of children: (client namespace, server namespace, server address).
struct Pair {
    label: &'static str,
    client: String,
    server: String,
    server_ip: &'static str,
}

fn pairs() -> [Pair; 3] {
    [
        Pair { label: "plain", client: format!("{PREFIX}pa"), server: format!("{PREFIX}pb"), server_ip: "10.77.0.12" },
        Pair { label: "vland", client: format!("{PREFIX}va"), server: format!("{PREFIX}vb"), server_ip: "10.77.0.22" },
        Pair { label: "vland tcx", client: format!("{PREFIX}ta"), server: format!("{PREFIX}tb"), server_ip: "10.77.1.22" },
    ]
}

/// The host and its parent (one end of a veth pair), and the two plain macvlan children.
fn build_lab() -> anyhow::Result<()> {
    super::lab::veth_host(PREFIX, &host())?;
    let plain = &pairs()[0];
    for (ns, ip) in [(&plain.client, "10.77.0.11/24"), (&plain.server, "10.77.0.12/24")] {
        add_ns(ns)?;
        in_ns(&host(), &["ip", "link", "add", "tmp0", "link", "eth0", "netns", ns, "type", "macvlan", "mode", "bridge"])?;
        in_ns(ns, &["ip", "link", "set", "tmp0", "name", "eth0"])?;
        in_ns(ns, &["ip", "address", "add", ip, "dev", "eth0"])?;
        in_ns(ns, &["ip", "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

fn config(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let [_, vl, tcx] = &pairs();
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{PREFIX}bench\"\n\n\
         [networks.bench]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.77.0.0/24\"\ngratuitous_arp = false\n\n\
         [networks.benchtcx]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.77.1.0/24\"\ngratuitous_arp = false\n\
         counter_hook = \"tcx\"\n\n\
         [endpoints.va]\nnetwork = \"bench\"\nnetns = \"{}\"\nip = \"10.77.0.21\"\n\n\
         [endpoints.vb]\nnetwork = \"bench\"\nnetns = \"{}\"\nip = \"{}\"\n\n\
         [endpoints.ta]\nnetwork = \"benchtcx\"\nnetns = \"{}\"\nip = \"10.77.1.21\"\n\n\
         [endpoints.tb]\nnetwork = \"benchtcx\"\nnetns = \"{}\"\nip = \"{}\"\n",
        dir.join("state").display(),
        vl.client,
        vl.server,
        vl.server_ip,
        tcx.client,
        tcx.server,
        tcx.server_ip
    );
    let path = dir.join("datapath.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn vland(bin: &Path, config: &Path, args: &[&str]) -> anyhow::Result<()> {
    super::lab::vland_in(&host(), bin, config, args).map(|_| ())
}

/// An iperf3 server in the pair's server namespace (killed when dropped).
struct Server(Child);

impl Server {
    fn start(pair: &Pair) -> anyhow::Result<Self> {
        let child = Command::new("ip")
            .args(["netns", "exec", &pair.server, "iperf3", "-s", "-B", pair.server_ip, "-A", SERVER_CPU])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start iperf3 (apt-get install iperf3)")?;
        Ok(Server(child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the iperf3 client of `pair` for `secs` with `extra` arguments; its JSON report.
fn client(pair: &Pair, secs: u64, extra: &[&str]) -> anyhow::Result<serde_json::Value> {
    let secs = secs.to_string();
    let mut args = vec!["netns", "exec", &pair.client, "iperf3", "-c", pair.server_ip, "-t", &secs, "-A", CLIENT_CPU, "-J"];
    args.extend_from_slice(extra);
    // The server may still be binding right after start, or finishing the test before: retry.
    let mut last = String::new();
    for _ in 0..20 {
        let out = Command::new("ip").args(&args).output()?;
        // iperf3 3.12 may exit 0 with an error in its report (e.g. connection refused).
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.success() && report.get("error").is_none() && report.get("end").is_some() {
            return Ok(report);
        }
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("iperf3 client in {} failed: {last}", pair.client)
}

/// Packets per second the server received, UDP with 64-byte payloads, as fast as the sender goes.
fn udp_kpps(pair: &Pair, secs: u64) -> anyhow::Result<f64> {
    let report = client(pair, secs, &["-u", "-l", "64", "-b", "0"])?;
    let sum = &report["end"]["sum"];
    let packets = sum["packets"].as_f64().with_context(|| format!("no packets in iperf3's report: {report}"))?;
    let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
    let seconds = sum["seconds"].as_f64().context("no seconds in iperf3's report")?;
    Ok((packets - lost) / seconds / 1e3)
}

fn tcp_gbits(pair: &Pair, secs: u64) -> anyhow::Result<f64> {
    let report = client(pair, secs, &[])?;
    report["end"]["sum_received"]["bits_per_second"].as_f64().map(|b| b / 1e9).context("no sum_received in iperf3's report")
}

/// The median and range of an arm's per-round ratio to the plain children.
fn spread(plain: &[f64], vland: &[f64]) -> String {
    let ratios: Vec<f64> = plain.iter().zip(vland).map(|(p, v)| v / p).collect();
    let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    format!("median {:.3}, range {lo:.3}-{hi:.3}", median(ratios))
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    let (secs, rounds) = if quick { (2, QUICK_ROUNDS) } else { (5, ROUNDS) };
    let dir = target_dir().join("bench/datapath");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = config(&dir)?;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        build_lab()?;
        vland(vland_bin, &config, &["apply"])?;
        let pairs = pairs();
        let _servers = pairs.iter().map(Server::start).collect::<anyhow::Result<Vec<_>>>()?;
        let (mut udp, mut tcp) = (pairs.each_ref().map(|_| Vec::new()), pairs.each_ref().map(|_| Vec::new()));
        for round in 0..rounds {
            let order: Vec<usize> = (0..pairs.len()).map(|k| (round + k) % pairs.len()).collect();
            for &i in &order {
                udp[i].push(udp_kpps(&pairs[i], secs)?);
            }
            for &i in &order {
                tcp[i].push(tcp_gbits(&pairs[i], secs)?);
            }
            let show = |values: &[Vec<f64>; 3], digits: usize| {
                pairs.iter().zip(values).map(|(p, v)| format!("{} {:.*}", p.label, digits, v[round])).collect::<Vec<_>>().join(" / ")
            };
            crate::process::step(&format!("data path round {}: UDP {} kpps, TCP {} Gbit/s", round + 1, show(&udp, 0), show(&tcp, 2)));
        }
        for i in 1..pairs.len() {
            crate::process::step(&format!(
                "data path per-round ratios, {}: UDP {}, TCP {}",
                pairs[i].label,
                spread(&udp[0], &udp[i]),
                spread(&tcp[0], &tcp[i])
            ));
        }
        let [udp_plain, udp_vland, udp_tcx] = udp.map(median);
        let [tcp_plain, tcp_vland, tcp_tcx] = tcp.map(median);
        vland(vland_bin, &config, &["down"])?;
        let row =
            |name: &str, value, unit, plain| Measurement::new(name, value, unit, "plain macvlan children", plain, Target::AtLeast(0.97));
        Ok(vec![
            row("endpoint data path, UDP 64-byte payloads (iperf3)", udp_vland, "kpps", udp_plain),
            row("endpoint data path, TCP (iperf3)", tcp_vland, "Gbit/s", tcp_plain),
            row("endpoint data path, UDP 64-byte payloads (iperf3), tcx", udp_tcx, "kpps", udp_plain),
            row("endpoint data path, TCP (iperf3), tcx", tcp_tcx, "Gbit/s", tcp_plain),
        ])
    })();
    remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
    result
}
