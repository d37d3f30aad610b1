//! `cargo xtask lint`: formatting, and clippy with warnings as errors over the host crates and
//! over the eBPF crate for its own target. `cargo xtask test` runs it first.
use crate::ebpf::cargo_for_ebpf;
use crate::paths::workspace_root;
use crate::process::{clean_cargo_env, describe, step};
use crate::toolchain;
use anyhow::bail;
use std::process::Command;

pub fn run() -> anyhow::Result<()> {
    // Clippy builds vland, whose etcd client needs protoc.
    crate::prereqs::ensure_host_tools(&[])?;
    toolchain::ensure_component(None, "rustfmt", "for cargo fmt --check")?;
    toolchain::ensure_component(None, "clippy", "for the lint")?;
    let nightly = toolchain::ensure_nightly()?;
    toolchain::ensure_component(Some(&nightly), "clippy", "for the eBPF crate's lint")?;

    let host = |args: &[&str]| {
        let mut cmd = Command::new("cargo");
        clean_cargo_env(&mut cmd).current_dir(workspace_root()).args(args);
        cmd
    };
    let mut ebpf_clippy = cargo_for_ebpf(&nightly, "clippy");
    ebpf_clippy.args(["--keep-going", "--", "-D", "warnings"]);
    let checks = [
        ("formatting", host(&["fmt", "--all", "--check"])),
        (
            "clippy, host crates",
            host(&["clippy", "--workspace", "--exclude", "vlan-ebpf", "--all-targets", "--keep-going", "--", "-D", "warnings"]),
        ),
        ("clippy, eBPF crate (bpfel-unknown-none)", ebpf_clippy),
    ];
    // Every check runs (clippy past a failing crate too), so one run reports everything to fix.
    let mut failed = Vec::new();
    for (what, mut cmd) in checks {
        step(&format!("lint: {what}: {}", describe(&cmd)));
        if !cmd.status().is_ok_and(|s| s.success()) {
            failed.push(what);
        }
    }
    if !failed.is_empty() {
        bail!("lint failed: {} (see the output above)", failed.join("; "));
    }
    step("lint: clean");
    Ok(())
}
