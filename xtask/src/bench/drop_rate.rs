//! Disallowed-VLAN drops: 802.1Q frames of a VLAN the trunk does not carry are pushed into a
//! veth trunk as fast as this machine can generate them, and the receiving end drops them with
//! vland's XDP program, then (without vland) with an nftables rule at the netdev ingress hook, the
//! kernel's earliest drop without XDP. Both rates are frames dropped per second.
//!
//! The generator is an XDP program run by BPF_PROG_TEST_RUN in live-frames mode (what
//! xdp-trafficgen does): it redirects one frame into the sending veth per repetition, so no
//! socket or skb is spent on the sending side. The receiver polls in its own NAPI thread on the
//! other CPU, and the generator offers more than it can take (the rest overflow the veth ring),
//! so each rate is what the receiving path sustains. GRO is on for the receiving veth in both
//! runs: it is what gives a veth a NAPI instance (and a thread) without an XDP program.
use super::lab::vland_in;
use super::report::{Measurement, Target, median};
use crate::netlab::{add_ns, in_ns, quiet, remove_namespaces};
use crate::paths::target_dir;
use anyhow::{Context, bail};
use aya::EbpfLoader;
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vland_tests::frame::{BROADCAST, ETHERTYPE_EXPERIMENTAL, Frame, TPID_8021Q};

const PREFIX: &str = "vlbd-";
/// CPUs of the generator and of the receiver's NAPI thread (the machine has two).
const GENERATOR_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;
/// Repetitions per BPF_PROG_TEST_RUN call, and frames per batch inside it (the kernel's maximum
/// is 256).
const REPEAT: u32 = 1_000_000;
/// XDP/nftables rounds; each rate is the median.
const ROUNDS: usize = 3;
const BATCH: u32 = 256;
/// The generator rewrites this much of its frame each time: Ethernet header and VLAN tag (the
/// size of its GENERATOR_HEADER global in vlan-ebpf/src/bench.rs, which the loader checks).
const HEADER_LEN: usize = 18;

fn gen_ns() -> String {
    format!("{PREFIX}gen")
}

fn trunk_ns() -> String {
    format!("{PREFIX}trunk")
}

/// A 64-byte frame (60 plus the tag) tagged with VLAN 20, from a made-up source.
fn frame() -> Vec<u8> {
    Frame::new(ETHERTYPE_EXPERIMENTAL).dst(BROADCAST).src([0x02, 0xbe, 0, 0, 0, 0x01]).tags(&[(TPID_8021Q, 20)]).padded_to(64, 0).build()
}

pub(super) fn pin_to_cpu(pid: libc::pid_t, cpu: usize) -> anyhow::Result<()> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!("sched_setaffinity({pid}, cpu {cpu}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends the frame out of `ifname` in namespace `ns` for about `secs`, from GENERATOR_CPU;
/// returns the frames offered and the seconds it took.
fn generate(ns: &str, ifname: &str, secs: Duration) -> anyhow::Result<(u64, f64)> {
    let object = target_dir().join("bpfel-unknown-none/release/vlan-ebpf-bench");
    let netns = vland::netns::open(&vland::netns::named_path(ns))?;
    // On a thread of its own inside the namespace, pinned to the generator's CPU.
    vland::netns::run_in(&netns, || -> anyhow::Result<(u64, f64)> {
        pin_to_cpu(0, GENERATOR_CPU)?;
        let cname = std::ffi::CString::new(ifname)?;
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            bail!("no device {ifname} in {ns}");
        }
        let f = frame();
        let header: [u8; HEADER_LEN] = f[..HEADER_LEN].try_into()?;
        let mut bpf = EbpfLoader::new()
            .override_global("GENERATOR_IFINDEX", &ifindex, true)
            .override_global("GENERATOR_HEADER", &header, true)
            .load_file(&object)?;
        let generator: &mut Xdp = bpf.program_mut("generator").context("no generator program")?.try_into()?;
        generator.load()?;
        let start = Instant::now();
        let mut offered = 0u64;
        while start.elapsed() < secs {
            let opts = TestRunOptions {
                data_in: Some(&f),
                repeat: REPEAT,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..Default::default()
            };
            generator.test_run(opts).context("BPF_PROG_TEST_RUN in live-frames mode")?;
            offered += REPEAT as u64;
        }
        Ok((offered, start.elapsed().as_secs_f64()))
    })
}

/// The generator's veth pair, made anew for each measurement, so that every run starts from the
/// same state (no NAPI, page pool or hook left by the run before).
fn fresh_veth() -> anyhow::Result<()> {
    let _ = quiet(&["ip", "-n", &gen_ns(), "link", "del", "gen0"]);
    quiet(&["ip", "link", "add", "gen0", "netns", &gen_ns(), "type", "veth", "peer", "name", "eth1", "netns", &trunk_ns()])?;
    in_ns(&gen_ns(), &["ip", "link", "set", "gen0", "up"])?;
    in_ns(&trunk_ns(), &["ip", "link", "set", "eth1", "up"])
}

/// Gives the receiving veth a NAPI instance polled by its own thread, on RECEIVER_CPU. Called
/// again after each change that may recreate the instance (attaching XDP).
fn receive_on_own_cpu() -> anyhow::Result<()> {
    in_ns(&trunk_ns(), &["ethtool", "-K", "eth1", "gro", "on"])?;
    in_ns(&trunk_ns(), &["sh", "-c", "echo 1 > /sys/class/net/eth1/threaded"])?;
    let mut pinned = 0;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<libc::pid_t>() else { continue };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.starts_with("napi/eth1-") {
            pin_to_cpu(pid, RECEIVER_CPU)?;
            pinned += 1;
        }
    }
    if pinned == 0 {
        bail!("the receiving veth has no NAPI thread (threaded NAPI did not take)");
    }
    Ok(())
}

fn vlan20_dropped(bin: &Path, config: &Path) -> anyhow::Result<u64> {
    let stats: serde_json::Value = serde_json::from_str(&vland_in(&trunk_ns(), bin, config, &["stats", "--json"])?.0)?;
    Ok(stats["parents"]
        .as_array()
        .context("no parents")?
        .iter()
        .find(|p| p["vlan"] == 20)
        .map_or(0, |p| p["dropped_packets"].as_u64().unwrap_or(0)))
}

fn nft_dropped() -> anyhow::Result<u64> {
    let out = Command::new("ip").args(["netns", "exec", &trunk_ns(), "nft", "list", "chain", "netdev", "vlbench", "drop20"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().skip_while(|w| *w != "packets").nth(1).and_then(|n| n.parse().ok()).context("no nftables counter")
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    let secs = Duration::from_secs(if quick { 2 } else { 5 });
    remove_namespaces(PREFIX);
    let dir = target_dir().join("bench/drop");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("trunk.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{PREFIX}bench\"\n\n[trunks.eth1]\nallowed_vlans = [19]\n",
            dir.join("state").display()
        ),
    )?;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        add_ns(&gen_ns())?;
        add_ns(&trunk_ns())?;
        // XDP and nftables take turns, ROUNDS times; each rate is the median (the machine is
        // shared: a busy moment slows one run, not three).
        let (mut xdp_rates, mut nft_rates) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            fresh_veth()?;
            vland_in(&trunk_ns(), vland_bin, &config, &["apply"])?;
            receive_on_own_cpu()?;
            let before = vlan20_dropped(vland_bin, &config)?;
            let (sent_xdp, xdp_secs) = generate(&gen_ns(), "gen0", secs)?;
            let xdp_dropped = vlan20_dropped(vland_bin, &config)? - before;
            vland_in(&trunk_ns(), vland_bin, &config, &["down"])?;

            fresh_veth()?;
            receive_on_own_cpu()?;
            in_ns(&trunk_ns(), &["nft", "add", "table", "netdev", "vlbench"])?;
            in_ns(
                &trunk_ns(),
                &["nft", "add", "chain", "netdev", "vlbench", "drop20", "{ type filter hook ingress device eth1 priority 0; }"],
            )?;
            in_ns(&trunk_ns(), &["nft", "add", "rule", "netdev", "vlbench", "drop20", "vlan", "id", "20", "counter", "drop"])?;
            let (sent_nft, nft_secs) = generate(&gen_ns(), "gen0", secs)?;
            let nft_dropped = nft_dropped()?;
            in_ns(&trunk_ns(), &["nft", "delete", "table", "netdev", "vlbench"])?;
            crate::process::step(&format!(
                "drop rate: XDP dropped {xdp_dropped} of {sent_xdp} offered, nftables {nft_dropped} of {sent_nft} offered \
                 (generator: {:.1} and {:.1} Mpps)",
                sent_xdp as f64 / xdp_secs / 1e6,
                sent_nft as f64 / nft_secs / 1e6
            ));
            xdp_rates.push(xdp_dropped as f64 / xdp_secs / 1e6);
            nft_rates.push(nft_dropped as f64 / nft_secs / 1e6);
        }
        Ok(vec![Measurement::new(
            "disallowed-VLAN drops into a veth trunk",
            median(xdp_rates),
            "Mpps",
            "nftables netdev ingress drop rule",
            median(nft_rates),
            Target::AtLeast(5.0),
        )])
    })();
    remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
    result
}
