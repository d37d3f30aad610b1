//! Disallowed-VLAN drops: a generator blasts 802.1Q frames of a VLAN the trunk does not carry
//! into a veth, as fast as one thread with sendmmsg(2) manages; the receiving end drops them with
//! vland's XDP program, and then, without vland, with an nftables rule at the netdev ingress hook
//! (the kernel's earliest drop without XDP). Both rates are frames dropped per second.
use super::report::{Measurement, Target};
use crate::netlab::{add_ns, in_ns, quiet, remove_namespaces};
use crate::paths::target_dir;
use anyhow::{Context, bail};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PREFIX: &str = "vlbd-";
const BATCH: usize = 64;

fn gen_ns() -> String {
    format!("{PREFIX}gen")
}

fn trunk_ns() -> String {
    format!("{PREFIX}trunk")
}

/// A 64-byte frame (60 plus the tag) tagged with VLAN 20, from a made-up source.
fn frame() -> Vec<u8> {
    let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xbe, 0, 0, 0, 0x01, 0x81, 0x00, 0x00, 20, 0x88, 0xb5];
    f.resize(64, 0);
    f
}

/// Sends the frame from `ifname` in namespace `ns` for `secs`; returns the frames sent.
fn blast(ns: &str, ifname: &str, secs: Duration) -> anyhow::Result<u64> {
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::spawn(move || -> anyhow::Result<u64> {
        let nsf = std::fs::File::open(format!("/run/netns/{ns}"))?;
        if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // Straight to the driver: no qdisc in the way of the generator.
        unsafe {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, 20 /* PACKET_QDISC_BYPASS */, &one as *const _ as *const _, 4)
        };
        let cname = std::ffi::CString::new(ifname)?;
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if unsafe { libc::bind(fd.as_raw_fd(), &sll as *const _ as *const _, std::mem::size_of::<libc::sockaddr_ll>() as u32) } != 0 {
            bail!("bind: {}", std::io::Error::last_os_error());
        }
        let f = frame();
        let mut iov: Vec<libc::iovec> = (0..BATCH).map(|_| libc::iovec { iov_base: f.as_ptr() as *mut _, iov_len: f.len() }).collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let deadline = Instant::now() + secs;
        let mut sent = 0u64;
        while Instant::now() < deadline {
            let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n > 0 {
                sent += n as u64;
            }
        }
        Ok(sent)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("generator thread panicked"))?
}

fn vland(bin: &Path, config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out =
        Command::new("nsenter").arg(format!("--net=/run/netns/{}", trunk_ns())).arg(bin).args(args).arg("--config").arg(config).output()?;
    if !out.status.success() {
        bail!("vland {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn vlan20_dropped(bin: &Path, config: &Path) -> anyhow::Result<u64> {
    let stats: serde_json::Value = serde_json::from_str(&vland(bin, config, &["stats", "--json"])?)?;
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
        quiet(&["ip", "link", "add", "gen0", "netns", &gen_ns(), "type", "veth", "peer", "name", "eth1", "netns", &trunk_ns()])?;
        in_ns(&gen_ns(), &["ip", "link", "set", "gen0", "up"])?;
        in_ns(&trunk_ns(), &["ip", "link", "set", "eth1", "up"])?;

        vland(vland_bin, &config, &["apply"])?;
        let before = vlan20_dropped(vland_bin, &config)?;
        let start = Instant::now();
        let sent_xdp = blast(&gen_ns(), "gen0", secs)?;
        let xdp_secs = start.elapsed().as_secs_f64();
        let xdp_dropped = vlan20_dropped(vland_bin, &config)? - before;
        vland(vland_bin, &config, &["down"])?;

        in_ns(&trunk_ns(), &["nft", "add", "table", "netdev", "vlbench"])?;
        in_ns(
            &trunk_ns(),
            &["nft", "add", "chain", "netdev", "vlbench", "drop20", "{ type filter hook ingress device eth1 priority 0; }"],
        )?;
        in_ns(&trunk_ns(), &["nft", "add", "rule", "netdev", "vlbench", "drop20", "vlan", "id", "20", "counter", "drop"])?;
        let start = Instant::now();
        let sent_nft = blast(&gen_ns(), "gen0", secs)?;
        let nft_secs = start.elapsed().as_secs_f64();
        let nft_dropped = nft_dropped()?;
        crate::process::step(&format!(
            "drop rate: XDP dropped {xdp_dropped} of {sent_xdp} sent, nftables {nft_dropped} of {sent_nft} sent"
        ));
        Ok(vec![Measurement::new(
            "disallowed-VLAN drops into a veth trunk",
            xdp_dropped as f64 / xdp_secs / 1e6,
            "Mpps",
            "nftables netdev ingress drop rule",
            nft_dropped as f64 / nft_secs / 1e6,
            Target::AtLeast(5.0),
        )])
    })();
    remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
    result
}
