//! The foundation slice on this machine's kernel: a macvlan bridge network on a veth parent, two
//! endpoints in namespaces, counters read back from the pinned eBPF maps.
use serde_json::Value;
use vland_tests::ip;
use vland_tests::{Lab, filter_programs, run_ok};

const NET: &str = r#"
[networks.lan]
driver = "macvlan"
parent = "eth0"
mode = "bridge"
subnet = "172.16.10.0/24"
ip_range = "172.16.10.0/25"
gateway = "172.16.10.1"
aux_addresses = { host1 = "172.16.10.2" }
"#;

fn two_endpoints(lab: &Lab) -> String {
    format!(
        "{NET}\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{}\"\n\n[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"{}\"\n",
        lab.ns("web1"),
        lab.ns("web2")
    )
}

/// A lab with the seed's segment, host `h1` (172.16.10.2 on its eth0) and vland applied on it.
fn applied_lab() -> (Lab, String, std::path::PathBuf) {
    let mut lab = Lab::new();
    lab.add_switch("172.16.10.1/24");
    let host = lab.add_host("h1", Some("172.16.10.2/24"));
    lab.expect_ns("web1");
    lab.expect_ns("web2");
    let config = lab.config("h1", &two_endpoints(&lab));
    lab.vland_ok(&host, &config, &["apply"]);
    (lab, host, config)
}

fn ipv4_of(ns: &str, ifname: &str) -> Vec<String> {
    ip::addrs(ns, "-4", &["dev", ifname]).iter().map(ip::Addr::cidr).collect()
}

fn endpoint_stats(stats: &Value, name: &str) -> Value {
    stats["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == name).unwrap_or_else(|| panic!("no {name} in {stats}")).clone()
}

fn counter(stats: &Value, name: &str, field: &str) -> u64 {
    endpoint_stats(stats, name)[field].as_u64().unwrap()
}

#[test]
fn apply_creates_macvlan_children_with_addresses_and_gateway_route() {
    let (lab, _host, _config) = applied_lab();
    for (ep, ip) in [("web1", "172.16.10.3/24"), ("web2", "172.16.10.4/24")] {
        let ns = lab.ns(ep);
        let l = ip::link(&ns, "eth0");
        assert_eq!(l.kind(), "macvlan", "{l:?}");
        assert_eq!(l.linkinfo.info_data.mode.as_deref(), Some("bridge"), "{l:?}");
        assert_eq!(l.ifalias, Some(format!("vland:{ep}")), "{l:?}");
        assert!(l.is_up(), "{l:?}");
        // .1 is the gateway and .2 the aux address: allocation starts at .3.
        assert_eq!(ipv4_of(&ns, "eth0"), vec![ip.to_string()]);
        let routes = ip::routes(&ns, "-4", &["default"]);
        assert_eq!((routes[0].gateway.as_deref(), routes[0].dev.as_str()), (Some("172.16.10.1"), "eth0"), "{routes:?}");
        // A locally administered unicast MAC.
        let mac = u8::from_str_radix(&l.address[..2], 16).unwrap();
        assert_eq!(mac & 0b11, 0b10, "{l:?}");
        // The counting programs are attached, in the kernel's view (and no XDP program: the
        // children have no native XDP, and generic XDP would cost them per frame).
        assert_eq!(filter_programs(&ns, "eth0", "ingress"), vec!["vland_rx_tc"], "{ep}");
        assert_eq!(filter_programs(&ns, "eth0", "egress"), vec!["vland_egress"], "{ep}");
        assert!(l.xdp.is_none(), "an XDP program on {ep}: {l:?}");
    }
}

#[test]
fn ten_pings_count_exactly_ten_each_way_on_both_endpoints() {
    let (mut lab, host, config) = applied_lab();
    let (ns1, ns2) = (lab.ns("web1"), lab.ns("web2"));
    // Static neighbours: no ARP, so the only frames are the ICMP ones.
    let mac1 = ip::link(&ns1, "eth0").address;
    let mac2 = ip::link(&ns2, "eth0").address;
    lab.exec(&ns1, &["ip", "neigh", "replace", "172.16.10.4", "lladdr", &mac2, "dev", "eth0", "nud", "permanent"]);
    lab.exec(&ns2, &["ip", "neigh", "replace", "172.16.10.3", "lladdr", &mac1, "dev", "eth0", "nud", "permanent"]);

    let before = lab.stats(&host, &config);
    lab.exec(&ns1, &["ping", "-c", "10", "-i", "0.01", "-W", "1", "172.16.10.4"]);
    let after = lab.stats(&host, &config);

    let delta = |ep: &str, f: &str| counter(&after, ep, f) - counter(&before, ep, f);
    // 84-byte IP packets + 14-byte Ethernet header = 98 bytes per frame.
    assert_eq!((delta("web1", "tx_packets"), delta("web1", "tx_bytes")), (10, 980), "requests sent by web1");
    assert_eq!((delta("web2", "rx_packets"), delta("web2", "rx_bytes")), (10, 980), "requests received by web2");
    assert_eq!((delta("web2", "tx_packets"), delta("web2", "tx_bytes")), (10, 980), "replies sent by web2");
    assert_eq!((delta("web1", "rx_packets"), delta("web1", "rx_bytes")), (10, 980), "replies received by web1");
    let e = endpoint_stats(&after, "web1");
    assert_eq!((e["network"].as_str(), e["netns"].as_str(), e["ifname"].as_str()), (Some("lan"), Some(ns1.as_str()), Some("eth0")));
}

#[test]
fn children_reach_the_gateway_but_not_the_parents_own_address() {
    let (lab, _host, _config) = applied_lab();
    let ns1 = lab.ns("web1");
    assert!(lab.exec_status(&ns1, &["ping", "-c", "1", "-W", "1", "172.16.10.1"]).status.success(), "gateway unreachable");
    // macvlan never delivers between a child and its own parent: the seed's known limitation.
    assert!(!lab.exec_status(&ns1, &["ping", "-c", "1", "-W", "1", "172.16.10.2"]).status.success(), "reached the parent's address");
}

#[test]
fn a_test_server_on_another_subnet_reaches_the_endpoints_through_the_gateway() {
    let (mut lab, _host, _config) = applied_lab();
    let sw = lab.ns("sw");
    let srv = lab.add_ns("srv");
    run_ok("ip", &["link", "add", "eth0", "netns", &srv, "type", "veth", "peer", "name", "to-srv", "netns", &sw]);
    lab.exec(&sw, &["ip", "addr", "add", "10.20.30.1/24", "dev", "to-srv"]);
    lab.exec(&sw, &["ip", "link", "set", "to-srv", "up"]);
    lab.exec(&sw, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    lab.exec(&srv, &["ip", "addr", "add", "10.20.30.13/24", "dev", "eth0"]);
    lab.exec(&srv, &["ip", "link", "set", "eth0", "up"]);
    lab.exec(&srv, &["ip", "route", "add", "default", "via", "10.20.30.1"]);
    for ip in ["172.16.10.3", "172.16.10.4"] {
        let out = lab.exec(&srv, &["ping", "-c", "2", "-W", "2", ip]);
        // One hop through the switch's router, as in the seed (ttl=63).
        assert!(out.contains("ttl=63"), "{out}");
    }
}

#[test]
fn second_apply_changes_nothing() {
    let (mut lab, host, config) = applied_lab();
    let snapshot = |lab: &Lab| {
        ["web1", "web2"]
            .map(|ep| {
                let ns = lab.ns(ep);
                let l = ip::link(&ns, "eth0");
                // The counting filters too: a second apply must not re-attach them.
                (l.ifindex, l.address.clone(), vland_tests::try_filters(&ns, "eth0", "ingress"), ipv4_of(&ns, "eth0"))
            })
            .to_vec()
    };
    let first = snapshot(&lab);
    let out = lab.vland(&host, &config, &["apply"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("created=0 repaired=0 removed=0"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(snapshot(&lab), first);
}

#[test]
fn down_removes_what_vland_created_and_keeps_what_it_did_not() {
    let (mut lab, host) = Lab::with_host();
    // A namespace that exists before vland, with a link of its own.
    let mine = lab.add_ns("mine");
    lab.exec(&mine, &["ip", "link", "add", "keep0", "type", "veth", "peer", "name", "keep1"]);
    let made = lab.expect_ns("made");
    let body =
        format!("{NET}\n[endpoints.a]\nnetwork = \"lan\"\nnetns = \"{mine}\"\n\n[endpoints.b]\nnetwork = \"lan\"\nnetns = \"{made}\"\n");
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&mine, "eth0").kind(), "macvlan");
    let bpf_dir = format!("{}-h1", lab.bpf_dir.display());
    assert!(std::path::Path::new(&bpf_dir).join("ENDPOINT_TRAFFIC").exists());

    lab.vland_ok(&host, &config, &["down"]);
    let names = ip::link_names(&mine);
    assert!(names.contains(&"keep0".to_string()) && names.contains(&"keep1".to_string()), "{names:?}");
    assert!(!names.contains(&"eth0".to_string()), "vland's child is still there: {names:?}");
    let netns_list = run_ok("ip", &["netns", "list"]);
    assert!(netns_list.contains(&mine), "the pre-existing namespace was removed");
    assert!(!netns_list.lines().any(|l| l.split_whitespace().next() == Some(made.as_str())), "vland's namespace is still there");
    assert!(!std::path::Path::new(&bpf_dir).exists(), "pins left in {bpf_dir}");
    // The parent is untouched.
    assert_eq!(ip::link(&host, "eth0").kind(), "veth");
}

#[test]
fn an_existing_interface_vland_did_not_create_is_never_taken_over() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.add_ns("busy");
    lab.exec(&ns, &["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other"]);
    let config = lab.config("h1", &format!("{NET}\n[endpoints.a]\nnetwork = \"lan\"\nnetns = \"{ns}\"\n"));
    let out = lab.vland(&host, &config, &["apply"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not create"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ip::link(&ns, "eth0").kind(), "veth", "vland changed a link it did not create");
}
