//! Building the eBPF object, and the `vland` binary that embeds it.
use crate::paths::{ebpf_object, vland_binary, workspace_root};
use crate::process::{clean_cargo_env, run, step};
use crate::toolchain;
use std::path::PathBuf;
use std::process::Command;

pub fn build() -> anyhow::Result<PathBuf> {
    let tc = toolchain::ensure()?;
    step("building the eBPF object (vlan-ebpf, bpfel-unknown-none, with BTF)");
    let path = std::env::join_paths(
        std::iter::once(tc.linker_bin_dir.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let mut cmd = cargo_for_ebpf(&tc.toolchain, "build");
    cmd.env("PATH", path)
        // debuginfo + --btf make the linker emit .BTF/.BTF.ext, which the verifier and aya use.
        .env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS", "-C debuginfo=2 -C link-arg=--btf");
    run(&mut cmd)?;
    let object = ebpf_object();
    step(&format!("eBPF object: {}", object.display()));
    Ok(object)
}

/// `cargo SUBCOMMAND` of the nightly `toolchain` over the eBPF crate, for the only target its
/// programs build for.
pub fn cargo_for_ebpf(toolchain: &str, subcommand: &str) -> Command {
    const TARGET: &[&str] = &["--package", "vlan-ebpf", "--target", "bpfel-unknown-none", "-Z", "build-std=core", "--release"];
    let mut cmd = Command::new("rustup");
    clean_cargo_env(&mut cmd).current_dir(workspace_root()).args(["run", toolchain, "cargo", subcommand]).args(TARGET);
    cmd
}

/// The release `vland`, with the freshly built eBPF object embedded, and the CNI plugin
/// `vland-cni` next to it.
pub fn build_daemon() -> anyhow::Result<PathBuf> {
    let object = build()?;
    step("building vland and vland-cni (release)");
    let mut cmd = Command::new("cargo");
    clean_cargo_env(&mut cmd)
        .current_dir(workspace_root())
        .args(["build", "--release", "--package", "vlan-daemon", "--bin", "vland", "--bin", "vland-cni"])
        .env("VLAND_EBPF_OBJECT", &object);
    run(&mut cmd)?;
    Ok(vland_binary())
}
