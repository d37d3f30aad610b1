//! `host_access`: the host reaches its own children. The lab's host namespace `h1` stands for the
//! host (vland runs inside it, so "vland's namespace" is h1): its eth0 (172.16.10.2/24) is the
//! parent of a macvlan bridge network, the switch holds the gateway (172.16.10.1) and another host
//! `h2` (172.16.10.3) sits on the same segment. The ipvlan variants need ipvlan links: they run
//! through `vm_suite` (here when `vland doctor` finds ipvlan, else in the VM).
use serde_json::Value;
use std::time::Duration;
use vland_tests::{Lab, ip, run, wait_until};

const HOST_ADDRESS: &str = "172.16.10.101";

#[test]
fn vm_suite() {
    vland_tests::vm::run_guest_tests(&["ipvlan"]);
}

fn config_body(lab: &Lab, host_access: bool) -> String {
    let keys = if host_access { format!("host_access = true\nhost_address = \"{HOST_ADDRESS}\"\n") } else { String::new() };
    format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\
         aux_addresses = {{ h1 = \"172.16.10.2\", h2 = \"172.16.10.3\" }}\n{keys}\n\
         [endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{}\"\n\n[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"{}\"\n",
        lab.ns("web1"),
        lab.ns("web2")
    )
}

/// The seed's segment with hosts h1 and h2, and the endpoint namespaces expected.
fn lab() -> (Lab, String) {
    let mut lab = Lab::new();
    lab.add_switch("172.16.10.1/24");
    let h1 = lab.add_host("h1", Some("172.16.10.2/24"));
    lab.add_host("h2", Some("172.16.10.3/24"));
    lab.expect_ns("web1");
    lab.expect_ns("web2");
    (lab, h1)
}

fn pings(lab: &Lab, ns: &str, to: &str) -> bool {
    lab.exec_status(ns, &["ping", "-c", "1", "-W", "1", to]).status.success()
}

fn json(lab: &Lab, ns: &str, cmd: &[&str]) -> Value {
    serde_json::from_str(&lab.exec(ns, cmd)).unwrap()
}

/// Everything `down` must leave as it was in the host: links (with their details), addresses and
/// routes of every table.
fn host_dump(lab: &Lab, ns: &str) -> [Value; 3] {
    [
        json(lab, ns, &["ip", "-j", "-d", "link", "show"]),
        json(lab, ns, &["ip", "-j", "addr", "show"]),
        json(lab, ns, &["ip", "-j", "route", "show", "table", "all"]),
    ]
}

/// How the host reaches `to`: (device, source address).
fn route_get(lab: &Lab, ns: &str, to: &str) -> (String, String) {
    let r = json(lab, ns, &["ip", "-j", "route", "get", to]);
    (r[0]["dev"].as_str().unwrap().to_string(), r[0]["prefsrc"].as_str().unwrap_or_default().to_string())
}

fn endpoint_addr(ns: &str) -> String {
    ip::first_addr(ns, "-4", "eth0").expect("the endpoint has an address")
}

fn host_routes(ns: &str) -> Vec<String> {
    let mut v: Vec<String> = ip::routes(ns, "-4", &["dev", "vh-lan"]).into_iter().map(|r| r.dst).collect();
    v.sort();
    v
}

fn host_row(stats: &Value) -> Value {
    stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "lan/host")
        .unwrap_or_else(|| panic!("no lan/host in {stats}"))
        .clone()
}

#[test]
fn the_host_reaches_its_children_and_they_reach_it_without_changing_its_other_routes() {
    let (mut lab, h1) = lab();
    let before = host_dump(&lab, &h1);
    let to_gateway = route_get(&lab, &h1, "172.16.10.1");
    let to_h2 = route_get(&lab, &h1, "172.16.10.3");
    assert_eq!(to_gateway, ("eth0".to_string(), "172.16.10.2".to_string()));

    // Without host_access: macvlan's limitation, the host cannot reach its own children.
    let plain = lab.config("h1", &config_body(&lab, false));
    lab.vland_ok(&h1, &plain, &["apply"]);
    let (web1, web2) = (lab.ns("web1"), lab.ns("web2"));
    let addrs = [endpoint_addr(&web1), endpoint_addr(&web2)];
    assert!(!pings(&lab, &h1, &addrs[0]), "the host reached a child without host_access: the lab does not show the limitation");

    // With it: planned, then applied.
    let config = lab.config("h1", &config_body(&lab, true));
    let plan = lab.vland(&h1, &config, &["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{text}");
    assert!(text.contains("create the child of endpoint lan/host: missing"), "{text}");
    lab.vland_ok(&h1, &config, &["apply"]);

    let child = ip::link(&h1, "vh-lan");
    assert_eq!(child.kind(), "macvlan", "{child:?}");
    assert_eq!(child.linkinfo.info_data.mode.as_deref(), Some("bridge"), "{child:?}");
    assert_eq!(child.ifalias.as_deref(), Some("vland:lan/host"), "{child:?}");
    assert!(child.is_up(), "{child:?}");
    let carried: Vec<String> = ip::addrs(&h1, "-4", &["dev", "vh-lan"]).iter().map(ip::Addr::cidr).collect();
    assert_eq!(carried, vec![format!("{HOST_ADDRESS}/32")]);
    let mut want: Vec<String> = addrs.to_vec();
    want.sort();
    assert_eq!(host_routes(&h1), want, "one host route per endpoint address through the host child");
    // Endpoints never get the host address, and the host's own route to the subnet is the parent's.
    assert!(!addrs.contains(&HOST_ADDRESS.to_string()));
    assert_eq!(ip::routes(&h1, "-4", &["172.16.10.0/24"]).iter().map(|r| r.dev.as_str()).collect::<Vec<_>>(), vec!["eth0"]);

    for a in &addrs {
        assert!(pings(&lab, &h1, a), "the host cannot reach its child {a}");
    }
    for ns in [&web1, &web2] {
        assert!(pings(&lab, ns, HOST_ADDRESS), "{ns} cannot reach the host at {HOST_ADDRESS}");
    }
    // Traffic to the gateway and to the other host takes the same way as before, and works.
    assert_eq!(route_get(&lab, &h1, "172.16.10.1"), to_gateway);
    assert_eq!(route_get(&lab, &h1, "172.16.10.3"), to_h2);
    assert_eq!(route_get(&lab, &h1, &addrs[0]), ("vh-lan".to_string(), HOST_ADDRESS.to_string()));
    assert!(pings(&lab, &h1, "172.16.10.1") && pings(&lab, &h1, "172.16.10.3"));

    // Counted like an endpoint: five pings out of the host child, five replies in.
    let stats = lab.stats(&h1, &config);
    let (tx0, rx0) = (host_row(&stats)["tx_packets"].as_u64().unwrap(), host_row(&stats)["rx_packets"].as_u64().unwrap());
    assert_eq!(host_row(&stats)["netns"], "(host)");
    lab.exec(&h1, &["ping", "-c", "5", "-i", "0.2", "-W", "1", &addrs[0]]);
    let stats = lab.stats(&h1, &config);
    assert_eq!(host_row(&stats)["tx_packets"].as_u64().unwrap() - tx0, 5, "{stats}");
    assert_eq!(host_row(&stats)["rx_packets"].as_u64().unwrap() - rx0, 5, "{stats}");
    let second = lab.vland(&h1, &config, &["plan"]);
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stdout));

    // `down` leaves the host exactly as it was.
    lab.vland_ok(&h1, &config, &["down"]);
    assert_eq!(host_dump(&lab, &h1), before);
}

#[test]
fn drift_of_the_host_child_is_repaired_by_apply_and_by_the_daemon() {
    let (mut lab, h1) = lab();
    let before = host_dump(&lab, &h1);
    let config = lab.config("h1", &config_body(&lab, true));
    lab.vland_ok(&h1, &config, &["apply"]);
    let routes = host_routes(&h1);
    assert_eq!(routes.len(), 2);

    // By hand: a route deleted and the address flushed; `plan` says so, `apply` repairs just that.
    lab.exec(&h1, &["ip", "route", "del", &routes[0], "dev", "vh-lan"]);
    lab.exec(&h1, &["ip", "addr", "flush", "dev", "vh-lan"]);
    let plan = lab.vland(&h1, &config, &["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("endpoint lan/host:") && text.contains(&format!("-> {HOST_ADDRESS}/32")), "{text}");
    lab.vland_ok(&h1, &config, &["apply"]);
    assert_eq!(host_routes(&h1), routes);
    assert_eq!(ip::first_addr(&h1, "-4", "vh-lan").as_deref(), Some(HOST_ADDRESS));

    // The daemon repairs at once what its netlink watcher sees: a route, then the child itself.
    let daemon = lab.spawn_daemon(&h1, &config);
    let up = wait_until(Duration::from_secs(10), || lab.vland(&h1, &config, &["plan"]).status.code() == Some(0));
    assert!(up.is_some(), "the daemon did not settle: {}", daemon.log_text());
    // It watches vland's own namespace now; its own applies change nothing there, so they do not
    // set off more.
    let applies = || daemon.log_text().matches("event on namespace (host)").count();
    let settled = applies();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(applies(), settled, "the daemon keeps re-applying: {}", daemon.log_text());
    // The host's own changes (a route of its own, added and removed) are none of its business.
    lab.exec(&h1, &["ip", "route", "add", "10.99.0.0/16", "dev", "eth0"]);
    lab.exec(&h1, &["ip", "route", "del", "10.99.0.0/16", "dev", "eth0"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(applies(), settled, "a route of the host's own set off an apply: {}", daemon.log_text());
    lab.exec(&h1, &["ip", "route", "del", &routes[1], "dev", "vh-lan"]);
    let repaired = wait_until(Duration::from_secs(5), || host_routes(&h1) == routes);
    assert!(repaired.is_some(), "the route was not restored: {}", daemon.log_text());
    lab.exec(&h1, &["ip", "link", "del", "vh-lan"]);
    let repaired =
        wait_until(Duration::from_secs(5), || ip::try_link(&h1, "vh-lan").is_some_and(|l| l.is_up()) && host_routes(&h1) == routes);
    assert!(repaired.is_some(), "the host child was not restored: {}", daemon.log_text());
    let web1 = lab.ns("web1");
    assert!(pings(&lab, &web1, HOST_ADDRESS));
    drop(daemon);

    // An endpoint that goes takes its host route with it; `down` then leaves the host as it was.
    let one = config_body(&lab, true).replace(&format!("\n[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"{}\"\n", lab.ns("web2")), "");
    let config = lab.config("h1", &one);
    lab.vland_ok(&h1, &config, &["apply"]);
    assert_eq!(host_routes(&h1), vec![endpoint_addr(&web1)]);
    lab.vland_ok(&h1, &config, &["down"]);
    assert_eq!(host_dump(&lab, &h1), before);
    assert!(!run("ip", &["netns", "exec", &h1, "ip", "link", "show", "vh-lan"]).status.success());
}

/// ipvlan in the network's mode: the host child shares the parent's MAC (l2) or routes by address
/// alone (l3); either way the host and the endpoints reach each other and `down` restores the host.
fn ipvlan_host_access(mode: &str) {
    let (mut lab, h1) = lab();
    let before = host_dump(&lab, &h1);
    let body = config_body(&lab, true).replace("driver = \"macvlan\"", &format!("driver = \"ipvlan\"\nmode = \"{mode}\""));
    let config = lab.config("h1", &body);
    lab.vland_ok(&h1, &config, &["apply"]);
    let child = ip::link(&h1, "vh-lan");
    assert_eq!(child.kind(), "ipvlan", "{child:?}");
    assert_eq!(child.address, ip::link(&h1, "eth0").address, "an ipvlan child has its parent's MAC");
    let addrs = [endpoint_addr(&lab.ns("web1")), endpoint_addr(&lab.ns("web2"))];
    for a in &addrs {
        assert!(pings(&lab, &h1, a), "ipvlan {mode}: the host cannot reach its child {a}");
    }
    for ep in ["web1", "web2"] {
        assert!(pings(&lab, &lab.ns(ep), HOST_ADDRESS), "ipvlan {mode}: {ep} cannot reach the host");
    }
    assert_eq!(route_get(&lab, &h1, "172.16.10.1"), ("eth0".to_string(), "172.16.10.2".to_string()));
    assert!(pings(&lab, &h1, "172.16.10.1") && pings(&lab, &h1, "172.16.10.3"));
    lab.vland_ok(&h1, &config, &["down"]);
    assert_eq!(host_dump(&lab, &h1), before);
}

#[test]
#[ignore = "needs ipvlan: run by vm_suite (here or in the VM)"]
fn ipvlan_l2_host_reaches_its_children() {
    ipvlan_host_access("l2");
}

#[test]
#[ignore = "needs ipvlan: run by vm_suite (here or in the VM)"]
fn ipvlan_l3_host_reaches_its_children() {
    ipvlan_host_access("l3");
}
