//! `cargo xtask test`: the lint, then every test, with its prerequisites installed first. Unit
//! tests and the namespace integration tests run on this machine's kernel; tests needing kernel
//! features this kernel lacks run in the VM suite.
use crate::paths::workspace_root;
use crate::prereqs::ensure_host_tools;
use crate::process::{clean_cargo_env, run, step};
use crate::{ebpf, vm};
use std::process::Command;

/// Test namespaces and bpffs dirs all start with this (see tests/src/lib.rs).
const TEST_PREFIX: &str = "vlt-";

pub fn run_all(args: &[String]) -> anyhow::Result<()> {
    // protoc first: the lint builds vland (its etcd client). Then the lint, so that CI (which
    // runs this command) fails on lint as on a failed test.
    ensure_host_tools(&[])?;
    crate::lint::run()?;
    // Prometheus and promtool for the metrics and alert-rule tests, systemd-analyze for the unit.
    ensure_host_tools(&[("prometheus", "prometheus"), ("promtool", "prometheus"), ("systemd-analyze", "systemd")])?;
    sweep_leftovers();
    let object = ebpf::build()?;
    // Prepared here, not inside a test: the first run downloads a kernel (about 70 MB).
    let kernel = match std::env::var("VLAND_VM_KERNEL").as_deref() {
        Ok("backports") => vm::KernelChoice::Backports,
        _ => vm::KernelChoice::Bookworm,
    };
    vm::prepare(kernel)?;
    step("building vland and vland-cni (debug) for the tests");
    let mut build = Command::new("cargo");
    clean_cargo_env(&mut build)
        .current_dir(workspace_root())
        .args(["build", "--package", "vlan-daemon", "--bin", "vland", "--bin", "vland-cni"])
        .env("VLAND_EBPF_OBJECT", &object);
    run(&mut build)?;

    // The package test unpacks and runs the real .deb (release build, checked by lintian).
    let deb = crate::package::build()?;

    step("running unit and namespace integration tests");
    let mut test = Command::new("cargo");
    clean_cargo_env(&mut test)
        .current_dir(workspace_root())
        .arg("test")
        .env("VLAND_EBPF_OBJECT", &object)
        .env("VLAND_BIN", workspace_root().join("target/debug/vland"))
        .env("VLAND_DEB", &deb)
        // The kernel-feature tests boot the VM through this very binary.
        .env("VLAND_XTASK", std::env::current_exe()?);
    if !args.is_empty() {
        test.arg("--").args(args);
    }
    run(&mut test)
}

/// A test run that was killed cannot clean up after itself; the next one does it.
fn sweep_leftovers() {
    for name in crate::netlab::remove_namespaces(TEST_PREFIX) {
        step(&format!("removed namespace {name} left by an interrupted test run"));
    }
    crate::netlab::remove_bpf_dirs(TEST_PREFIX);
}
