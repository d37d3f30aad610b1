//! What the benchmarks' labs share: a namespace standing in for the host, with a veth end as the
//! parent, and vland run inside it.
use crate::netlab::{add_ns, in_ns, remove_namespaces};
use anyhow::bail;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Replaces every namespace starting with `prefix` by `host`: a namespace whose `eth0` (one end of
/// a veth pair, the other `eth0p`) is the parent, both up, with loopback up.
pub fn veth_host(prefix: &str, host: &str) -> anyhow::Result<()> {
    remove_namespaces(prefix);
    add_ns(host)?;
    in_ns(host, &["ip", "link", "set", "lo", "up"])?;
    in_ns(host, &["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"])?;
    in_ns(host, &["ip", "link", "set", "eth0", "up"])?;
    in_ns(host, &["ip", "link", "set", "eth0p", "up"])
}

/// Runs `vland ARGS --config CONFIG` inside namespace `ns`: its stdout, and how long it took.
pub fn vland_in(ns: &str, bin: &Path, config: &Path, args: &[&str]) -> anyhow::Result<(String, Duration)> {
    let start = Instant::now();
    let out = Command::new("nsenter").arg(format!("--net=/run/netns/{ns}")).arg(bin).args(args).arg("--config").arg(config).output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("vland {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), took))
}
