//! kill -9 at any point of an apply or a down, then apply again: no leaked links, addresses,
//! namespaces, pins or allocations, and no address handed out twice.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use vland_tests::{Lab, filter_programs, ip, run_ok};

/// At least 20; `VLAND_CRASH_TRIALS` raises it for a longer soak.
fn trials() -> usize {
    std::env::var("VLAND_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(21).max(20)
}

fn body(lab: &Lab, own: &[&str], shared: &[(&str, &str)]) -> String {
    let mut s =
        "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n".to_string();
    for e in own {
        s.push_str(&format!("\n[endpoints.{e}]\nnetwork = \"n\"\nnetns = \"{}\"\n", lab.ns(e)));
    }
    for (e, ifname) in shared {
        s.push_str(&format!("\n[endpoints.{e}]\nnetwork = \"n\"\nnetns = \"{}\"\nifname = \"{ifname}\"\n", lab.ns("shared")));
    }
    s
}

fn lab_namespaces(lab: &Lab) -> BTreeSet<String> {
    run_ok("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix(&lab.ns("")).map(String::from))
        .collect()
}

#[test]
fn kill_9_at_random_points_then_apply_leaves_exactly_the_config() {
    let (mut lab, host) = Lab::with_host();
    lab.add_ns("shared");
    let own_a = ["e0", "e1", "e2", "e3", "e4", "e5"];
    let own_b = ["e0", "e1", "e2", "e6", "e7"];
    for e in own_a.iter().chain(&own_b) {
        lab.expect_ns(e);
    }
    let shared_a = [("s0", "eth0"), ("s1", "eth1")];
    let shared_b = [("s0", "eth0")];
    let config_a = lab.config("h1", &body(&lab, &own_a, &shared_a));
    // Config B shares A's [daemon] table (same state and pins), with another set of endpoints.
    let header: String = std::fs::read_to_string(&config_a).unwrap().lines().take(4).map(|l| format!("{l}\n")).collect();
    let config_b = config_a.with_file_name("h1-b.toml");
    std::fs::write(&config_b, header + &body(&lab, &own_b, &shared_b)).unwrap();

    // How long a whole apply takes here, to spread the kills over it.
    let start = Instant::now();
    lab.vland_ok(&host, &config_a, &["apply"]);
    let full = start.elapsed().max(Duration::from_millis(50));
    lab.vland_ok(&host, &config_a, &["down"]);

    for trial in 0..trials() {
        let (config, cmd) = match trial % 3 {
            0 => (&config_a, "apply"),
            1 => (&config_b, "apply"),
            _ => (&config_a, "down"),
        };
        // A fixed spread of kill points over the run (reproducible, unlike a random seed).
        let delay = full.mul_f64(((trial * 7919) % 1000) as f64 / 1000.0);
        let mut child = Lab::vland_command(&host, &[cmd], Some(config)).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL: nsenter has exec'd into vland
        let _ = child.wait();
    }

    lab.vland_ok(&host, &config_a, &["apply"]);

    // Exactly the configured children, each with one address, all addresses distinct.
    let mut seen_ips = BTreeMap::new();
    let expected: Vec<(String, String, String)> = own_a
        .iter()
        .map(|e| (e.to_string(), lab.ns(e), "eth0".to_string()))
        .chain(shared_a.iter().map(|(e, i)| (e.to_string(), lab.ns("shared"), i.to_string())))
        .collect();
    for (ep, ns, ifname) in &expected {
        let l = ip::link(ns, ifname);
        assert_eq!(l.ifalias, Some(format!("vland:{ep}")), "{l:?}");
        assert!(vland_tests::ingress_counter(ns, ifname).is_some(), "{ep} has no counting program");
        let addrs = ip::addrs(ns, "-4", &["dev", ifname]);
        assert_eq!(addrs.len(), 1, "{ep}: {addrs:?}");
        let ip = addrs[0].local.clone();
        if let Some(other) = seen_ips.insert(ip.clone(), ep.clone()) {
            panic!("{ip} given to both {other} and {ep}");
        }
    }
    // No half-made links: nothing but the configured children in the endpoints' namespaces.
    let names = |ns: &str| -> BTreeSet<String> { ip::link_names(ns).into_iter().collect() };
    for e in own_a {
        assert_eq!(names(&lab.ns(e)), BTreeSet::from(["lo".to_string(), "eth0".into()]), "namespace of {e}");
    }
    assert_eq!(names(&lab.ns("shared")), BTreeSet::from(["lo".to_string(), "eth0".into(), "eth1".into()]));
    // Namespaces: the lab's own, plus exactly config A's.
    let mut want: BTreeSet<String> = ["sw", "h1", "shared"].iter().map(|s| s.to_string()).collect();
    want.extend(own_a.iter().map(|s| s.to_string()));
    assert_eq!(lab_namespaces(&lab), want);
    // Counting programs: vland's egress filter on every child (ingress is checked above); no
    // per-endpoint pins (the attachments belong to the devices).
    for (ep, ns, ifname) in &expected {
        assert_eq!(filter_programs(ns, ifname, "egress"), vec!["vland_egress"], "{ep}");
    }
    let pin_dir = std::path::PathBuf::from(format!("{}-h1/links", lab.bpf_dir.display()));
    assert_eq!(std::fs::read_dir(&pin_dir).unwrap().count(), 0);
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(lab.dir.join("h1-state/state.json")).unwrap()).unwrap();
    assert_eq!(state["pending_links"].as_array().map(Vec::len), Some(0));
    let recorded: BTreeSet<&str> = state["endpoints"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(recorded, expected.iter().map(|(e, _, _)| e.as_str()).collect());

    // And a down after all that removes everything vland made.
    lab.vland_ok(&host, &config_a, &["down"]);
    assert_eq!(lab_namespaces(&lab), ["h1", "shared", "sw"].iter().map(|s| s.to_string()).collect());
    assert_eq!(names(&lab.ns("shared")), BTreeSet::from(["lo".to_string()]));
    assert!(!pin_dir.exists(), "pins left after down");
}

/// Issue 12 D4: the state dir deleted while vland's objects live on. The next apply adopts what
/// vland tagged in the kernel (same address, MAC and number, so the counters go on) and still
/// knows the namespace it made, so `down` removes it.
#[test]
fn losing_the_state_dir_renumbers_nothing_and_down_still_cleans_up() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    let before = ip::link(&ns, "eth0");
    let addrs_before: Vec<String> = ip::addrs(&ns, "-4", &["dev", "eth0"]).iter().map(|a| a.cidr()).collect();
    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.10.1"]);
    let counted = |lab: &mut Lab| lab.stats(&host, &config)["endpoints"][0]["tx_packets"].as_u64().unwrap_or(0);
    let tx_before = counted(&mut lab);
    assert!(tx_before >= 3, "the pings were not counted: {tx_before}");

    std::fs::remove_dir_all(lab.dir.join("h1-state")).unwrap();
    let log = lab.vland_ok(&host, &config, &["apply"]);
    let after = ip::link(&ns, "eth0");
    assert_eq!((after.ifindex, &after.address), (before.ifindex, &before.address), "the child was renumbered or got a new MAC:\n{log}");
    let addrs_after: Vec<String> = ip::addrs(&ns, "-4", &["dev", "eth0"]).iter().map(|a| a.cidr()).collect();
    assert_eq!(addrs_after, addrs_before);
    assert!(counted(&mut lab) >= tx_before, "the counters were reset");
    let plan = lab.vland(&host, &config, &["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", String::from_utf8_lossy(&plan.stdout));

    lab.vland_ok(&host, &config, &["down"]);
    assert!(!lab_namespaces(&lab).contains("web1"), "down forgot the namespace vland made");
}
