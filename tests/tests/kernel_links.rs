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

/// `counter_hook = "tcx"` where the kernel has no tcx (the VM's 6.1; tcx came in 6.6): refused at
/// apply with the key and the fix named, and nothing made; "tc" then applies. On a kernel with
/// tcx (this test runs here when the machine has the VM suite's features) it is used instead.
#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn counter_hook_tcx_is_refused_where_the_kernel_has_no_tcx() {
    let mut lab = Lab::new();
    let host = dummy_host(&mut lab, "h");
    let ns = lab.expect_ns("web1");
    let body = |hook: &str| {
        format!(
            "[networks.lan]\ndriver = \"macvlan\"\nparent = \"d0\"\nsubnet = \"10.60.0.0/24\"\ncounter_hook = \"{hook}\"\n\n\
             [endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{ns}\"\n"
        )
    };
    let config = lab.config("h", &body("tcx"));
    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    if vland::netlink::tcx::supported() {
        assert!(out.status.success(), "this kernel has tcx: {log}");
        eprintln!("this kernel has tcx: counter_hook = \"tcx\" applied");
        return;
    }
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("networks.lan.counter_hook: this kernel has no tcx") && log.contains(r#"use counter_hook = "tc""#), "{log}");
    assert!(!vland::netns::is_namespace(&vland::netns::named_path(&ns)), "nothing made: {log}");
    let config = lab.config("h", &body("tc"));
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(vland_tests::filter_programs(&ns, "eth0", "egress"), vec!["vland_egress"]);
}
