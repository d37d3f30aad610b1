//! Small helpers to build labs of network namespaces with iproute2, shared by the demo and the
//! benchmarks (the tests have their own harness in tests/).
use anyhow::{Context, bail};
use std::process::Command;

/// Runs a command silently; fails with its stderr.
pub fn quiet(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("cannot run {}", args[0]))?;
    crate::demo::check_interrupted()?;
    if !out.status.success() {
        bail!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

pub fn in_ns(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    quiet(&full)
}

/// A namespace with IPv6 off (no ND/MLD chatter in counts) and lo up.
pub fn add_ns(name: &str) -> anyhow::Result<()> {
    quiet(&["ip", "netns", "add", name])?;
    in_ns(name, &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])?;
    in_ns(name, &["ip", "link", "set", "lo", "up"])
}

/// Deletes every namespace whose name starts with `prefix`; returns their names.
pub fn remove_namespaces(prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.split_whitespace().next().filter(|n| n.starts_with(prefix)) {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
                removed.push(name.to_string());
            }
        }
    }
    removed
}

/// Deletes every directory of /sys/fs/bpf whose name starts with `prefix` (pins and all).
pub fn remove_bpf_dirs(prefix: &str) {
    for e in std::fs::read_dir("/sys/fs/bpf").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Ctrl-C: `f` runs, and the running step fails at its next command so cleanup code runs.
pub fn on_interrupt(f: impl Fn() + Send + 'static) -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(f)
}
