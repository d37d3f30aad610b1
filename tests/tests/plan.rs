//! `vland plan`: what apply would change, shown and changing nothing; exit code 0 when nothing is
//! to do, 2 with changes; after apply the plan is empty again.
use vland_tests::{Lab, ip};

fn plan(lab: &mut Lab, host: &str, config: &std::path::Path) -> (i32, String) {
    let out = lab.vland(host, config, &["plan"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn plan_lists_exactly_the_drift_changes_nothing_and_is_empty_after_apply() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();

    // Nothing exists yet: the namespace, the programs and the child are planned, none made.
    let (code, text) = plan(&mut lab, &host, &config);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&format!("create namespace {ns}")) && text.contains("create the child of endpoint web1: missing"), "{text}");
    assert!(!ip::link_names(&host).is_empty() && ip::try_link(&ns, "eth0").is_none(), "plan created something");

    lab.vland_ok(&host, &config, &["apply"]);
    let (code, text) = plan(&mut lab, &host, &config);
    assert_eq!((code, text.trim()), (0, "nothing to do: the kernel matches the config"));

    // Drift by hand: the address flushed, the MTU changed, the link down, the egress filter gone.
    lab.exec(&ns, &["ip", "addr", "flush", "dev", "eth0"]);
    lab.exec(&ns, &["ip", "link", "set", "eth0", "mtu", "1400", "down"]);
    lab.exec(&ns, &["tc", "filter", "del", "dev", "eth0", "egress"]);
    let (code, text) = plan(&mut lab, &host, &config);
    assert_eq!(code, 2, "{text}");
    let drift: Vec<&str> = text.lines().filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(
        drift,
        [
            "  - endpoint web1: ipv4 address none -> 172.16.10.2/24; attach the egress counter; link down -> up; add route 0.0.0.0/0 via 172.16.10.1"
        ],
        "{text}"
    );
    // The plan changed nothing.
    assert!(ip::addrs(&ns, "-4", &["dev", "eth0"]).is_empty());

    // The config changes too: the MTU is now the config's business.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("gateway = \"172.16.10.1\"", "gateway = \"172.16.10.1\"\nmtu = 1500"),
    )
    .unwrap();
    let (_, text) = plan(&mut lab, &host, &config);
    assert!(text.contains("mtu 1400 -> 1500"), "{text}");
    let applied = lab.vland_ok(&host, &config, &["apply"]);
    let _ = applied;
    assert_eq!(plan(&mut lab, &host, &config).0, 0);
    assert_eq!(ip::link(&ns, "eth0").mtu, 1500);

    // JSON for scripts, and errors as errors (exit code 1).
    let out = lab.vland(&host, &config, &["plan", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["actions"].as_array().map(Vec::len), Some(0));
    let broken = lab.config("broken", "[networks.x]\ndriver = \"vxlan\"\n");
    assert_eq!(plan(&mut lab, &host, &broken).0, 1);
}
