//! What needs ipvlan, 802.1Q and dummy links, which this machine's kernel lacks: these tests run
//! through `vm_suite` (here when `vland doctor` finds the features, else in the VM suite).
use pnet_packet::Packet;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::vlan::VlanPacket;
use std::time::Duration;
use vland_tests::capture::Capture;
use vland_tests::{Lab, ip_json, run_ok};

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
fn ipvlan_l3_children_ping_each_other_with_default_dev_routes() {
    let mut lab = Lab::new();
    let host = dummy_host(&mut lab, "h");
    let (a, b) = (lab.add_ns("a"), lab.add_ns("b"));
    for (ns, cidr) in [(&a, "10.1.1.2/24"), (&b, "10.1.2.3/24")] {
        lab.exec(&host, &["ip", "link", "add", "iv", "link", "d0", "type", "ipvlan", "mode", "l3"]);
        lab.exec(&host, &["ip", "link", "set", "iv", "netns", ns]);
        lab.exec(ns, &["ip", "addr", "add", cidr, "dev", "iv"]);
        lab.exec(ns, &["ip", "link", "set", "iv", "up"]);
        lab.exec(ns, &["ip", "route", "add", "default", "dev", "iv"]);
    }
    let l = &ip_json(&a, &["link", "show", "dev", "iv"])[0];
    assert_eq!(l["linkinfo"]["info_kind"], "ipvlan");
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "l3");
    // Different subnets: ipvlan l3 routes between its children with only `default dev` routes.
    let out = lab.exec(&a, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.2.3"]);
    assert!(out.contains("3 received"), "{out}");
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn vlan_19_frames_carry_their_tag_on_the_wire() {
    let mut lab = Lab::new();
    let (host, peer) = (lab.add_ns("h"), lab.add_ns("peer"));
    run_ok("ip", &["link", "add", "trunk", "netns", &host, "type", "veth", "peer", "name", "trunk", "netns", &peer]);
    lab.exec(&host, &["ip", "link", "set", "trunk", "up"]);
    lab.exec(&peer, &["ip", "link", "set", "trunk", "up"]);
    lab.exec(&host, &["ip", "link", "add", "link", "trunk", "name", "trunk.19", "type", "vlan", "id", "19"]);
    lab.exec(&host, &["ip", "addr", "add", "10.19.0.1/24", "dev", "trunk.19"]);
    lab.exec(&host, &["ip", "link", "set", "trunk.19", "up"]);
    let l = &ip_json(&host, &["link", "show", "dev", "trunk.19"])[0];
    assert_eq!((l["linkinfo"]["info_data"]["protocol"].as_str(), l["linkinfo"]["info_data"]["id"].as_u64()), (Some("802.1Q"), Some(19)));

    let capture = Capture::open(&peer, "trunk");
    // Nobody answers 10.19.0.2: the host's ARP requests go out of trunk.19, tagged.
    let _ = lab.exec_status(&host, &["ping", "-c", "1", "-W", "1", "10.19.0.2"]);
    let frames =
        capture.frames_until(Duration::from_secs(3), |f| EthernetPacket::new(f).is_some_and(|e| e.get_ethertype() == EtherTypes::Vlan));
    let tagged = frames
        .iter()
        .filter_map(|f| EthernetPacket::new(f))
        .find(|e| e.get_ethertype() == EtherTypes::Vlan)
        .unwrap_or_else(|| panic!("no 802.1Q frame among {} captured", frames.len()));
    let vlan = VlanPacket::new(tagged.payload()).unwrap();
    assert_eq!(vlan.get_vlan_identifier(), 19);
    assert_eq!(vlan.get_ethertype(), EtherTypes::Arp, "the tagged frame should be the ARP request");
}

#[test]
#[ignore = "needs ipvlan/802.1Q/dummy: run by vm_suite (here or in the VM)"]
fn internal_network_on_a_dummy_parent_connects_only_its_children() {
    let mut lab = Lab::new();
    let host = dummy_host(&mut lab, "h");
    let (a, b) = (lab.add_ns("a"), lab.add_ns("b"));
    for (ns, cidr) in [(&a, "192.168.77.2/24"), (&b, "192.168.77.3/24")] {
        lab.exec(&host, &["ip", "link", "add", "mv", "link", "d0", "type", "macvlan", "mode", "bridge"]);
        lab.exec(&host, &["ip", "link", "set", "mv", "netns", ns]);
        lab.exec(ns, &["ip", "addr", "add", cidr, "dev", "mv"]);
        lab.exec(ns, &["ip", "link", "set", "mv", "up"]);
    }
    let out = lab.exec(&a, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "192.168.77.3"]);
    assert!(out.contains("2 received"), "{out}");
    // The dummy parent drops everything sent to it: nothing leaves the host.
    let stats = &ip_json(&host, &["-s", "link", "show", "dev", "d0"])[0]["stats64"];
    assert_eq!(stats["rx"]["packets"], 0, "{stats}");
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
    for (ep, ip) in [("web1", "10.50.0.1"), ("web2", "10.50.0.2")] {
        let ns = lab.ns(ep);
        let l = &ip_json(&ns, &["link", "show", "dev", "eth0"])[0];
        assert_eq!(l["linkinfo"]["info_kind"], "ipvlan", "{l}");
        assert_eq!(l["linkinfo"]["info_data"]["mode"], "l3", "{l}");
        assert_eq!(l["ifalias"], format!("vland:{ep}"));
        let addr = &ip_json(&ns, &["-4", "addr", "show", "dev", "eth0"])[0]["addr_info"][0];
        assert_eq!(addr["local"], ip);
        // ipvlan l3: `default dev eth0`, no gateway.
        let route = &ip_json(&ns, &["-4", "route", "show", "default"])[0];
        assert_eq!((route["dev"].as_str(), route.get("gateway")), (Some("eth0"), None), "{route}");
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
    assert_eq!(ip_json(&host, &["link", "show", "dev", "d0"])[0]["linkinfo"]["info_kind"], "dummy", "the parent was touched");
}
