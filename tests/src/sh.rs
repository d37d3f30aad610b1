//! Running commands and reading the kernel's JSON views.
use std::process::{Command, Output};

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs and panics with the command's stderr when it fails.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -j -d ARGS` inside namespace `ns`, parsed.
pub fn ip_json(ns: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-n", ns, "-j", "-d"];
    full.extend_from_slice(args);
    let text = run_ok("ip", &full);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip {} printed non-JSON ({e}): {text}", full.join(" ")))
}

/// Like `ip_json`, for polling: None while the command fails (e.g. the device is not there yet).
pub fn try_ip_json(ns: &str, args: &[&str]) -> Option<serde_json::Value> {
    let mut full = vec!["-n", ns, "-j", "-d"];
    full.extend_from_slice(args);
    let out = run("ip", &full);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The names of the BPF programs in the classic TC filters on `ifname`'s `hook` ("ingress" or
/// "egress"), in the order they run (`tc -j filter show`).
pub fn filter_programs(ns: &str, ifname: &str, hook: &str) -> Vec<String> {
    let text = run_ok("tc", &["-n", ns, "-j", "filter", "show", "dev", ifname, hook]);
    let filters: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("tc printed non-JSON ({e}): {text}"));
    filters.as_array().into_iter().flatten().filter_map(|f| f["options"]["bpf_name"].as_str().map(str::to_string)).collect()
}
