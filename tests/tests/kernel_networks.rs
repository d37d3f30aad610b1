//! vland's own networks that need ipvlan, 802.1Q or dummy links: tagged parents on a trunk,
//! 802.1ad, internal networks, and the seed's ipvlan l2/l3 labs across two hosts. Run through
//! `vm_suite` (here when `vland doctor` finds the features, else in the VM).
use pnet_packet::Packet;
use pnet_packet::ethernet::EthernetPacket;
use pnet_packet::vlan::VlanPacket;
use std::time::Duration;
use vland_tests::capture::Capture;
use vland_tests::ip::{self, Link};
use vland_tests::{Lab, run_ok};

#[test]
fn vm_suite() {
    vland_tests::vm::run_guest_tests(&["ipvlan", "vlan_8021q", "dummy"]);
}

fn link(ns: &str, dev: &str) -> Link {
    ip::link(ns, dev)
}

fn has_link(ns: &str, dev: &str) -> bool {
    ip::link_names(ns).iter().any(|l| l == dev)
}

fn pings(lab: &Lab, ns: &str, ip: &str) -> bool {
    lab.exec_status(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", ip]).status.success()
}

/// A host whose `eth1` is one end of a veth "trunk"; the other end, `trunk`, is in namespace `peer`.
fn trunk_lab() -> (Lab, String, String) {
    let mut lab = Lab::new();
    let (host, peer) = (lab.add_ns("h"), lab.add_ns("peer"));
    run_ok("ip", &["link", "add", "eth1", "netns", &host, "type", "veth", "peer", "name", "trunk", "netns", &peer]);
    lab.exec(&host, &["ip", "link", "set", "eth1", "up"]);
    lab.exec(&peer, &["ip", "link", "set", "trunk", "up"]);
    (lab, host, peer)
}

/// (VLAN id, TPID) of every tagged frame from `mac` seen on the capture.
fn tags_from(frames: &[Vec<u8>], mac: &str) -> Vec<(u16, u16)> {
    frames
        .iter()
        .filter_map(|f| EthernetPacket::new(f))
        .filter(|e| e.get_source().to_string() == mac)
        .filter_map(|e| {
            let tpid = e.get_ethertype().0;
            (tpid == 0x8100 || tpid == 0x88a8).then(|| (VlanPacket::new(e.payload()).unwrap().get_vlan_identifier(), tpid))
        })
        .collect()
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn vlan_19_and_20_networks_share_one_trunk_with_the_right_tags() {
    let (mut lab, host, peer) = trunk_lab();
    for vid in ["19", "20", "30"] {
        lab.exec(&peer, &["ip", "link", "add", "link", "trunk", "name", &format!("trunk.{vid}"), "type", "vlan", "id", vid]);
        lab.exec(&peer, &["ip", "addr", "add", &format!("10.{vid}.0.1/24"), "dev", &format!("trunk.{vid}")]);
        lab.exec(&peer, &["ip", "link", "set", &format!("trunk.{vid}"), "up"]);
    }
    // A sub-interface that exists before vland: used, never deleted.
    lab.exec(&host, &["ip", "link", "add", "link", "eth1", "name", "eth1.30", "type", "vlan", "id", "30"]);
    lab.exec(&host, &["ip", "link", "set", "eth1.30", "up"]);
    let (e19, e20, e30) = (lab.expect_ns("e19"), lab.expect_ns("e20"), lab.expect_ns("e30"));
    let mut body = String::new();
    for (vid, ns) in [("19", &e19), ("20", &e20), ("30", &e30)] {
        body.push_str(&format!(
            "[networks.vlan{vid}]\ndriver = \"macvlan\"\nparent = \"eth1.{vid}\"\nsubnet = \"10.{vid}.0.0/24\"\ngateway = \"10.{vid}.0.1\"\n\n\
             [endpoints.e{vid}]\nnetwork = \"vlan{vid}\"\nnetns = \"{ns}\"\n\n"
        ));
    }
    let config = lab.config("h", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    for vid in [19u16, 20] {
        let l = link(&host, &format!("eth1.{vid}"));
        assert_eq!((l.kind(), l.linkinfo.info_data.id), ("vlan", Some(vid)), "{l:?}");
        assert!(l.is_up(), "{l:?}");
    }

    let capture = Capture::open(&peer, "trunk");
    assert!(pings(&lab, &e19, "10.19.0.1") && pings(&lab, &e20, "10.20.0.1") && pings(&lab, &e30, "10.30.0.1"));
    let frames = capture.frames_until(Duration::from_millis(500), |_| false);
    let mac = |ns: &str| link(ns, "eth0").address;
    for (ns, vid) in [(&e19, 19u16), (&e20, 20)] {
        let tags = tags_from(&frames, &mac(ns));
        assert!(!tags.is_empty(), "no tagged frame from {ns}");
        assert!(tags.iter().all(|t| *t == (vid, 0x8100)), "frames from {ns} carried {tags:?}");
    }

    // Exact per-endpoint counts on a VLAN network: 10 pings to the gateway, a static neighbour.
    let gw_mac = link(&peer, "trunk.19").address;
    lab.exec(&e19, &["ip", "neigh", "replace", "10.19.0.1", "lladdr", &gw_mac, "dev", "eth0", "nud", "permanent"]);
    let e19_mac = link(&e19, "eth0").address;
    let e19_ip = ip::first_addr(&e19, "-4", "eth0").unwrap();
    lab.exec(&peer, &["ip", "neigh", "replace", &e19_ip, "lladdr", &e19_mac, "dev", "trunk.19", "nud", "permanent"]);
    let count = |s: &serde_json::Value, f: &str| {
        s["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == "e19").unwrap()[f].as_u64().unwrap()
    };
    let before = lab.stats(&host, &config);
    lab.exec(&e19, &["ping", "-c", "10", "-i", "0.05", "-W", "2", "10.19.0.1"]);
    let after = lab.stats(&host, &config);
    assert_eq!(
        (count(&after, "tx_packets") - count(&before, "tx_packets"), count(&after, "rx_packets") - count(&before, "rx_packets")),
        (10, 10)
    );
    assert_eq!(count(&after, "tx_bytes") - count(&before, "tx_bytes"), 980);

    // The trunk program on eth1 saw the tagged frames arriving from the peer's VLAN devices and
    // let the configured VLANs through; a VLAN no network carries is dropped and counted.
    let stats = lab.stats(&host, &config);
    let vlan_rx = |vid: u64| {
        stats["parents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["parent"] == "eth1" && p["vlan"] == vid)
            .map(|p| p["rx_packets"].as_u64().unwrap())
    };
    assert!(vlan_rx(19).unwrap_or(0) >= 2 && vlan_rx(20).unwrap_or(0) >= 2, "per-VLAN counters on the trunk: {stats}");
    lab.exec(&peer, &["ip", "link", "add", "link", "trunk", "name", "trunk.40", "type", "vlan", "id", "40"]);
    lab.exec(&peer, &["ip", "addr", "add", "10.40.0.1/24", "dev", "trunk.40"]);
    lab.exec(&peer, &["ip", "link", "set", "trunk.40", "up"]);
    let _ = lab.exec_status(&peer, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.40.0.2"]);
    let stats = lab.stats(&host, &config);
    let v40 = stats["parents"].as_array().unwrap().iter().find(|p| p["parent"] == "eth1" && p["vlan"] == 40).cloned().unwrap_or_default();
    assert!(v40["drops"]["vlan_not_allowed"].as_u64().unwrap_or(0) >= 2, "VLAN 40 must be dropped: {stats}");

    lab.vland_ok(&host, &config, &["down"]);
    assert!(!has_link(&host, "eth1.19") && !has_link(&host, "eth1.20"), "vland left the sub-interfaces it made");
    assert!(has_link(&host, "eth1.30") && has_link(&host, "eth1"), "vland deleted a link it did not create");
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn an_802_1ad_parent_tags_frames_with_the_service_tpid() {
    let (mut lab, host, peer) = trunk_lab();
    let ns = lab.expect_ns("q");
    let body = format!(
        "[networks.qinq]\ndriver = \"macvlan\"\nparent = \"eth1.100\"\nvlan_protocol = \"802.1ad\"\nsubnet = \"10.100.0.0/24\"\n\n\
         [endpoints.q]\nnetwork = \"qinq\"\nnetns = \"{ns}\"\n"
    );
    let config = lab.config("h", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(link(&host, "eth1.100").linkinfo.info_data.protocol.as_deref(), Some("802.1ad"));
    let capture = Capture::open(&peer, "trunk");
    let _ = lab.exec_status(&ns, &["ping", "-c", "1", "-W", "1", "10.100.0.99"]);
    let frames = capture.frames_until(Duration::from_secs(2), |f| EthernetPacket::new(f).is_some_and(|e| e.get_ethertype().0 == 0x88a8));
    let tags = tags_from(&frames, &link(&ns, "eth0").address);
    assert!(tags.contains(&(100, 0x88a8)), "tags seen: {tags:?} in {} frames", frames.len());
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn an_internal_network_gets_a_dummy_parent_and_no_default_route() {
    let mut lab = Lab::new();
    let host = lab.add_ns("h");
    let (a, b) = (lab.expect_ns("a"), lab.expect_ns("b"));
    let body = format!(
        "[networks.backend]\ndriver = \"macvlan\"\nsubnet = \"192.168.77.0/24\"\ngateway = \"192.168.77.1\"\n\n\
         [endpoints.a]\nnetwork = \"backend\"\nnetns = \"{a}\"\n\n[endpoints.b]\nnetwork = \"backend\"\nnetns = \"{b}\"\n"
    );
    let config = lab.config("h", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(link(&host, "vd-backend").kind(), "dummy");
    assert!(ip::routes(&a, "-4", &["default"]).is_empty(), "internal networks have no default route");
    assert!(pings(&lab, &a, "192.168.77.3"), "members of an internal network reach each other");
    lab.vland_ok(&host, &config, &["down"]);
    assert!(!has_link(&host, "vd-backend"), "the dummy parent was left behind");
}

/// The seed's two hosts on one segment, each with its own address on eth0.
fn two_hosts() -> (Lab, String, String) {
    let mut lab = Lab::new();
    lab.add_switch("172.16.10.1/24");
    let h1 = lab.add_host("net1", Some("172.16.10.2/24"));
    let h2 = lab.add_host("net2", Some("172.16.10.3/24"));
    (lab, h1, h2)
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn ipvlan_l2_endpoints_on_two_hosts_share_the_parents_mac_and_reach_each_other() {
    let (mut lab, h1, h2) = two_hosts();
    let (w1, w2) = (lab.expect_ns("web1"), lab.expect_ns("web2"));
    let net = |range: &str, ep: &str, ns: &str| {
        format!(
            "[networks.ipvlan_net]\ndriver = \"ipvlan\"\nparent = \"eth0\"\nmode = \"l2\"\nsubnet = \"172.16.10.0/24\"\nip_range = \"{range}\"\n\
             gateway = \"172.16.10.1\"\naux_addresses = {{ net1 = \"172.16.10.2\", net2 = \"172.16.10.3\" }}\n\n\
             [endpoints.{ep}]\nnetwork = \"ipvlan_net\"\nnetns = \"{ns}\"\n"
        )
    };
    let c1 = lab.config("net1", &net("172.16.10.0/25", "web1", &w1));
    let c2 = lab.config("net2", &net("172.16.10.128/25", "web2", &w2));
    lab.vland_ok(&h1, &c1, &["apply"]);
    lab.vland_ok(&h2, &c2, &["apply"]);
    assert_eq!(link(&w1, "eth0").address, link(&h1, "eth0").address, "ipvlan children use the parent's MAC");
    assert_eq!(link(&w1, "eth0").linkinfo.info_data.mode.as_deref(), Some("l2"));
    assert!(pings(&lab, &w1, "172.16.10.128"));
    assert!(pings(&lab, &w1, "172.16.10.1"));
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn ipvlan_l3_subnets_on_two_hosts_reach_each_other_through_host_routes() {
    let (mut lab, h1, h2) = two_hosts();
    let (w1, w3) = (lab.expect_ns("web1"), lab.expect_ns("web3"));
    let net = |subnet: &str, ep: &str, ns: &str| {
        format!(
            "[networks.ipvlan_net]\ndriver = \"ipvlan\"\nparent = \"eth0\"\nmode = \"l3\"\nsubnet = \"{subnet}\"\n\n[endpoints.{ep}]\nnetwork = \"ipvlan_net\"\nnetns = \"{ns}\"\n"
        )
    };
    let c1 = lab.config("net1", &net("10.10.20.0/24", "web1", &w1));
    let c2 = lab.config("net2", &net("10.10.40.0/24", "web3", &w3));
    lab.vland_ok(&h1, &c1, &["apply"]);
    lab.vland_ok(&h2, &c2, &["apply"]);
    // The seed's routes: each host routes the other's container subnet via the other host.
    lab.exec(&h1, &["ip", "route", "add", "10.10.40.0/24", "via", "172.16.10.3"]);
    lab.exec(&h2, &["ip", "route", "add", "10.10.20.0/24", "via", "172.16.10.2"]);
    let route = &ip::routes(&w1, "-4", &["default"])[0];
    assert_eq!((route.dev.as_str(), route.gateway.as_deref()), ("eth0", None), "l3 uses `default dev`: {route:?}");
    assert!(pings(&lab, &w1, "10.10.40.1"), "l3 across hosts");
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn ipvlan_private_flag_isolates_siblings_and_ebusy_is_explained() {
    let (mut lab, h1, _h2) = two_hosts();
    let (a, b) = (lab.expect_ns("a"), lab.expect_ns("b"));
    let body = format!(
        "[networks.p]\ndriver = \"ipvlan\"\nparent = \"eth0\"\nipvlan_flag = \"private\"\nsubnet = \"172.16.10.0/24\"\nip_range = \"172.16.10.64/26\"\ngateway = \"172.16.10.1\"\n\n\
         [endpoints.a]\nnetwork = \"p\"\nnetns = \"{a}\"\n\n[endpoints.b]\nnetwork = \"p\"\nnetns = \"{b}\"\n"
    );
    let config = lab.config("net1", &body);
    lab.vland_ok(&h1, &config, &["apply"]);
    let data = link(&a, "eth0").linkinfo.info_data;
    assert_eq!(data.private, Some(true), "{data:?}");
    assert!(pings(&lab, &a, "172.16.10.1"), "the gateway is reachable");
    assert!(!lab.exec_status(&a, &["ping", "-c", "1", "-W", "1", "172.16.10.65"]).status.success(), "private siblings must not talk");

    // An edited flag reaches the kernel (the children are recreated), not just the state.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace("ipvlan_flag = \"private\"", "ipvlan_flag = \"vepa\""))
        .unwrap();
    lab.vland_ok(&h1, &config, &["apply"]);
    for ns in [&a, &b] {
        let data = link(ns, "eth0").linkinfo.info_data;
        assert!(data.vepa == Some(true) && data.private != Some(true), "{data:?}");
    }

    // A macvlan network on a parent that already carries ipvlan children (made outside this
    // config): the kernel says EBUSY, vland says why.
    let c = lab.expect_ns("c");
    let other = lab.config(
        "other",
        &format!("[networks.m]\ndriver = \"macvlan\"\nparent = \"eth0\"\n\n[endpoints.c]\nnetwork = \"m\"\nnetns = \"{c}\"\n"),
    );
    let out = lab.vland(&h1, &other, &["apply"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("macvlan and ipvlan cannot share a parent"), "{err}");
    assert!(!err.contains("os error 16"), "the raw errno reached the user: {err}");
}
