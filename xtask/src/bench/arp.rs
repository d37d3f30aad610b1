//! ARP answered on the parent: 500 macvlan endpoints (bridge mode, 10 per namespace) on one veth
//! parent, and ARP requests for their addresses, in turn, offered at the parent by the live-frames
//! generator of the drop-rate benchmark. With `arp_responder` the parent's XDP program answers;
//! without it each request goes up the stack, where macvlan queues it and clones it to all 500
//! children (the owner answers). Each rate is the answers per second that came back to the
//! generator's veth (which carries an empty XDP program, so XDP_TX answers are delivered to it at
//! once, in both runs); the CPU time per answer is what both CPUs spent, less the generator's own
//! thread, over the answers.
use super::drop_rate::pin_to_cpu;
use super::lab::vland_in;
use super::report::{Measurement, Target, median};
use crate::netlab::{add_ns, in_ns, quiet, remove_namespaces};
use crate::paths::target_dir;
use anyhow::Context;
use aya::EbpfLoader;
use aya::maps::Array;
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vland_tests::frame::arp_request_frame;

const PREFIX: &str = "vlba-";
const ENDPOINTS: usize = 500;
const PER_NAMESPACE: usize = 10;
const ROUNDS: usize = 3;
const GENERATOR_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;
const REPEAT: u32 = 1_000_000;
const BATCH: u32 = 256;
const ASKER: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 0x01];

fn gen_ns() -> String {
    format!("{PREFIX}gen")
}

fn host_ns() -> String {
    format!("{PREFIX}host")
}

fn address(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 88, (i / 200) as u8, (i % 200 + 10) as u8)
}

fn config(dir: &Path, responder: bool) -> anyhow::Result<std::path::PathBuf> {
    let mut body = format!(
        "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{PREFIX}bench\"\n\n[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth1\"\n\
         subnet = \"10.88.0.0/16\"\ngratuitous_arp = false\narp_responder = {responder}\n",
        dir.join("state").display()
    );
    for i in 0..ENDPOINTS {
        body.push_str(&format!(
            "\n[endpoints.e{i}]\nnetwork = \"lan\"\nnetns = \"{PREFIX}n{}\"\nifname = \"eth{}\"\nip = \"{}\"\n",
            i / PER_NAMESPACE,
            i % PER_NAMESPACE,
            address(i)
        ));
    }
    let path = dir.join("arp.toml");
    std::fs::write(&path, body)?;
    Ok(path)
}

/// Busy and total jiffies of all CPUs (/proc/stat).
fn cpu_busy_jiffies() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let fields: Vec<u64> =
        stat.lines().next().context("empty /proc/stat")?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    Ok(fields.iter().take(8).sum::<u64>() - fields[3] - fields[4])
}

/// utime + stime of the calling thread, in jiffies.
fn thread_jiffies() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let after = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn gen0_rx() -> anyhow::Result<u64> {
    let out = Command::new("ip").args(["-n", &gen_ns(), "-j", "-s", "link", "show", "gen0"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v[0]["stats64"]["rx"]["packets"].as_u64().context("no rx counter on gen0")
}

/// Offers the requests for `secs`; (offered, seconds, generator thread jiffies).
fn generate(secs: Duration) -> anyhow::Result<(u64, f64, u64)> {
    let object = target_dir().join("bpfel-unknown-none/release/vlan-ebpf-bench");
    let netns = vland::netns::open(&vland::netns::named_path(&gen_ns()))?;
    vland::netns::run_in(&netns, || -> anyhow::Result<(u64, f64, u64)> {
        pin_to_cpu(0, GENERATOR_CPU)?;
        let ifindex = unsafe { libc::if_nametoindex(c"gen0".as_ptr()) };
        let count = ENDPOINTS as u32;
        let mut bpf = EbpfLoader::new()
            .override_global("GENERATOR_IFINDEX", &ifindex, true)
            .override_global("ARP_FRAME_COUNT", &count, true)
            .load_file(&object)?;
        let mut frames: Array<_, [u8; 42]> = Array::try_from(bpf.map_mut("ARP_FRAMES").context("no ARP_FRAMES map")?)?;
        for i in 0..ENDPOINTS {
            let f = arp_request_frame(ASKER, "10.88.255.1".parse()?, address(i));
            frames.set(i as u32, <[u8; 42]>::try_from(&f[..42])?, 0)?;
        }
        let generator: &mut Xdp = bpf.program_mut("arp_generator").context("no arp_generator program")?.try_into()?;
        generator.load()?;
        let frame = arp_request_frame(ASKER, "10.88.255.1".parse()?, address(0));
        let (start, cpu0) = (Instant::now(), thread_jiffies()?);
        let mut offered = 0u64;
        while start.elapsed() < secs {
            let opts = TestRunOptions {
                data_in: Some(&frame),
                repeat: REPEAT,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..Default::default()
            };
            generator.test_run(opts).context("BPF_PROG_TEST_RUN in live-frames mode")?;
            offered += REPEAT as u64;
        }
        Ok((offered, start.elapsed().as_secs_f64(), thread_jiffies()? - cpu0))
    })
}

/// The parent polls in its own NAPI thread, on RECEIVER_CPU (again after each XDP change).
fn receive_on_own_cpu() -> anyhow::Result<()> {
    in_ns(&host_ns(), &["ethtool", "-K", "eth1", "gro", "on"])?;
    in_ns(&host_ns(), &["sh", "-c", "echo 1 > /sys/class/net/eth1/threaded"])?;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<libc::pid_t>() else { continue };
        if std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().starts_with("napi/eth1-") {
            pin_to_cpu(pid, RECEIVER_CPU)?;
        }
    }
    Ok(())
}

/// (answers per second, CPU microseconds per answer) of one run.
fn measure(secs: Duration) -> anyhow::Result<(f64, f64, u64)> {
    let (rx0, busy0) = (gen0_rx()?, cpu_busy_jiffies()?);
    let (offered, took, gen_jiffies) = generate(secs)?;
    let (answers, busy) = (gen0_rx()? - rx0, cpu_busy_jiffies()? - busy0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_us = busy.saturating_sub(gen_jiffies) as f64 / hz * 1e6 / answers.max(1) as f64;
    Ok((answers as f64 / took, cpu_us, offered))
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    let secs = Duration::from_secs(if quick { 2 } else { 4 });
    remove_namespaces(PREFIX);
    let dir = target_dir().join("bench/arp");
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        add_ns(&gen_ns())?;
        add_ns(&host_ns())?;
        quiet(&["ip", "link", "add", "gen0", "netns", &gen_ns(), "type", "veth", "peer", "name", "eth1", "netns", &host_ns()])?;
        in_ns(&gen_ns(), &["ip", "link", "set", "gen0", "up"])?;
        in_ns(&host_ns(), &["ip", "link", "set", "eth1", "up"])?;
        // Attached while `_answers_in` lives (a bpf_link held by this process).
        let object = target_dir().join("bpfel-unknown-none/release/vlan-ebpf-bench");
        let mut empty = aya::Ebpf::load_file(&object)?;
        let prog: &mut Xdp = empty.program_mut("empty_xdp").context("no empty_xdp program")?.try_into()?;
        prog.load()?;
        let netns = vland::netns::open(&vland::netns::named_path(&gen_ns()))?;
        let _answers_in = vland::netns::run_in(&netns, || {
            let id = prog.attach("gen0", XdpMode::Default)?;
            Ok(prog.take_link(id)?)
        })?;
        let (mut xdp, mut kernel, mut xdp_cpu, mut kernel_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let order = if round % 2 == 0 { [true, false] } else { [false, true] };
            for responder in order {
                vland_in(&host_ns(), vland_bin, &config(&dir, responder)?, &["apply"])?;
                receive_on_own_cpu()?;
                let (rate, cpu, offered) = measure(secs)?;
                crate::process::step(&format!(
                    "arp: {} answered {:.0}/s of {:.1} Mpps offered, {cpu:.2} us CPU per answer",
                    if responder { "XDP responder" } else { "kernel (500 children)" },
                    rate,
                    offered as f64 / secs.as_secs_f64() / 1e6
                ));
                let (rates, cpus) = if responder { (&mut xdp, &mut xdp_cpu) } else { (&mut kernel, &mut kernel_cpu) };
                rates.push(rate / 1e3);
                cpus.push(cpu);
            }
        }
        vland_in(&host_ns(), vland_bin, &config(&dir, false)?, &["down"])?;
        Ok(vec![
            Measurement::new(
                "ARP answers, 500 endpoints on one veth parent",
                median(xdp),
                "k/s",
                "kernel path (macvlan clones to every child)",
                median(kernel),
                Target::AtLeast(10.0),
            ),
            Measurement::new(
                "CPU time per ARP answer, 500 endpoints",
                median(xdp_cpu),
                "us",
                "kernel path (macvlan clones to every child)",
                median(kernel_cpu),
                Target::AtMost(0.1),
            ),
        ])
    })();
    remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
    result
}
