//! Host tools the demo and the tests drive, installed from Debian's packages when missing.
use crate::process::{run, step};
use std::process::Command;

/// (command, Debian package providing it). protoc builds vland's etcd client (xtask itself is
/// built without it); etcd serves the cluster tests and benchmark.
const TOOLS: &[(&str, &str)] =
    &[("ip", "iproute2"), ("ping", "iputils-ping"), ("nsenter", "util-linux"), ("protoc", "protobuf-compiler"), ("etcd", "etcd-server")];

fn have(cmd: &str) -> bool {
    which::which(cmd).is_ok()
}

pub fn ensure_host_tools(extra: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = TOOLS.iter().chain(extra).filter(|(cmd, _)| !have(cmd)).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing {} with apt-get", missing.join(" ")));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
