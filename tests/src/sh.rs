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

/// The (name, id) of the BPF programs in the classic TC filters on `ifname`'s `hook`; None when
/// `tc` fails (no such device).
pub fn try_filters(ns: &str, ifname: &str, hook: &str) -> Option<Vec<(String, u32)>> {
    let out = run("tc", &["-n", ns, "-j", "filter", "show", "dev", ifname, hook]);
    if !out.status.success() {
        return None;
    }
    let filters: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        filters
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["options"]["bpf_name"].as_str()?.to_string(), f["options"]["prog"]["id"].as_u64()? as u32)))
            .collect(),
    )
}

/// The id of the program in vland's ingress counting filter on `ifname`, if it is there.
pub fn ingress_counter(ns: &str, ifname: &str) -> Option<u32> {
    try_filters(ns, ifname, "ingress")?.into_iter().find(|(name, _)| name == "vland_rx_tc").map(|(_, id)| id)
}
