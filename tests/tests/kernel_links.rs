//! vland's ipvlan l3 network on a dummy parent, which needs ipvlan and dummy links this machine's
//! kernel lacks: run through `vm_suite` (here when `vland doctor` finds the features, else in the
//! VM suite). Tagged parents, internal networks and the other ipvlan modes are in
//! kernel_networks.rs.
use vland_tests::{Lab, ip, run_ok};

#[test]
fn vm_suite() {
    vland_tests::vm::run_guest_tests(&["ipvlan", "vlan_8021q", "dummy"]);
}

/// A host namespace whose `d0` is a dummy link: a parent that goes nowhere.
fn dummy_host(lab: &mut Lab, short: &str) -> String {
    let host = lab.add_ns(short);
    lab.exec(&host, &["ip", "link", "add", "d0", "type", "dummy"]);
    lab.exec(&host, &["ip", "link", "set", "d0", "up"]);
    host
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn vland_applies_and_removes_an_ipvlan_l3_network() {
    let mut lab = Lab::new();
    let host = dummy_host(&mut lab, "h");
    lab.expect_ns("web1");
    lab.expect_ns("web2");
    let body = format!(
        "[networks.l3net]\ndriver = \"ipvlan\"\nparent = \"d0\"\nmode = \"l3\"\nsubnet = \"10.50.0.0/24\"\n\n\
         [endpoints.web1]\nnetwork = \"l3net\"\nnetns = \"{}\"\n\n[endpoints.web2]\nnetwork = \"l3net\"\nnetns = \"{}\"\n",
        lab.ns("web1"),
        lab.ns("web2")
    );
    let config = lab.config("h", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    for (ep, want_ip) in [("web1", "10.50.0.1"), ("web2", "10.50.0.2")] {
        let ns = lab.ns(ep);
        let l = ip::link(&ns, "eth0");
        assert_eq!((l.kind(), l.linkinfo.info_data.mode.as_deref()), ("ipvlan", Some("l3")), "{l:?}");
        assert_eq!(l.ifalias, Some(format!("vland:{ep}")));
        assert_eq!(ip::first_addr(&ns, "-4", "eth0").as_deref(), Some(want_ip));
        // ipvlan l3: `default dev eth0`, no gateway.
        let route = &ip::routes(&ns, "-4", &["default"])[0];
        assert_eq!((route.dev.as_str(), route.gateway.as_deref()), ("eth0", None), "{route:?}");
    }
    let before = lab.stats(&host, &config);
    lab.exec(&lab.ns("web1"), &["ping", "-c", "10", "-i", "0.05", "-W", "2", "10.50.0.2"]);
    let after = lab.stats(&host, &config);
    let delta = |ep: &str, f: &str| {
        let get =
            |s: &serde_json::Value| s["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == ep).unwrap()[f].as_u64().unwrap();
        get(&after) - get(&before)
    };
    // ipvlan l3 frames carry no ARP; 10 requests out of web1 into web2, 10 replies back.
    assert_eq!((delta("web1", "tx_packets"), delta("web2", "rx_packets")), (10, 10));
    assert_eq!((delta("web2", "tx_packets"), delta("web1", "rx_packets")), (10, 10));

    lab.vland_ok(&host, &config, &["down"]);
    assert!(!run_ok("ip", &["netns", "list"]).contains(&lab.ns("web1")), "vland's namespace is still there");
    assert_eq!(ip::link(&host, "d0").kind(), "dummy", "the parent was touched");
}
