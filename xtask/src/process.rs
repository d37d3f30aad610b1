//! Running child commands with their command line shown, and errors that say which command failed.
use anyhow::{Context, bail};
use std::process::{Command, Output};

/// Says what is about to run, so a long step (building bpf-linker) is never silent.
pub fn step(message: &str) {
    eprintln!("xtask: {message}");
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs with inherited stdio; fails naming the command when it exits non-zero.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

/// Runs capturing output; fails with the command's stderr when it exits non-zero.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let Output { status, stdout, stderr } = cmd.output().with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}: {}", describe(cmd), String::from_utf8_lossy(&stderr).trim());
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// A cargo/rustup command that does not inherit the outer cargo's toolchain selection.
pub fn clean_cargo_env(cmd: &mut Command) -> &mut Command {
    for var in
        ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTC_WRAPPER", "RUSTDOC", "CARGO", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"]
    {
        cmd.env_remove(var);
    }
    cmd
}
