//! Running commands; reading `tc`'s JSON view (`ip`'s is typed in `ip`).
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

/// The names of the BPF programs in the classic TC filters on `ifname`'s `hook` ("ingress" or
/// "egress"), in the order they run (`tc -j filter show`).
pub fn filter_programs(ns: &str, ifname: &str, hook: &str) -> Vec<String> {
    let text = run_ok("tc", &["-n", ns, "-j", "filter", "show", "dev", ifname, hook]);
    let filters: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("tc printed non-JSON ({e}): {text}"));
    filters.as_array().into_iter().flatten().filter_map(|f| f["options"]["bpf_name"].as_str().map(str::to_string)).collect()
}
