//! The drivers' rules without a kernel: modes by name, drift of every key that shapes a child.
use super::*;
use crate::config::{Network, parse_str};
use crate::netlink::ChildInfo;
use netlink_packet_route::link::{IpVlanFlags, IpVlanMode, MacVlanMode};

fn network(table: &str) -> Network {
    let text = format!("[networks.n]\nparent = \"eth0\"\n{table}");
    parse_str(&text, "t").unwrap().networks.remove("n").unwrap()
}

fn link(kind: &str, child: ChildInfo) -> LinkFacts {
    LinkFacts { kind: Some(kind.into()), child: Some(child), ..LinkFacts::default() }
}

#[test]
fn each_mode_name_maps_to_one_kernel_value_and_back() {
    for m in MacvlanMode::ALL {
        assert_eq!(MacvlanMode::from_kernel(m.kernel()), Some(*m));
        assert_eq!(MacvlanMode::parse(m.name(), "macvlan mode"), Ok(*m));
    }
    for m in IpvlanMode::ALL {
        assert_eq!(IpvlanMode::from_kernel(m.kernel()), Some(*m));
    }
    for f in IpvlanFlag::ALL {
        assert_eq!(IpvlanFlag::from_kernel(f.kernel()), Some(*f));
    }
    assert_eq!(MacvlanMode::Passthru.kernel(), MacVlanMode::Passthrough);
    assert_eq!(
        MacvlanMode::parse("bridged", "macvlan mode").unwrap_err(),
        "macvlan mode `bridged` is not valid: use bridge (the default), vepa, private, passthru or source"
    );
}

#[test]
fn a_macvlan_child_drifts_by_mode_and_by_its_source_list() {
    let net = network("driver = \"macvlan\"\nmode = \"source\"\nsource_macs = [\"02:00:00:00:00:01\", \"02:00:00:00:00:02\"]\n");
    let macs = |list: &[&str]| list.iter().map(|m| m.parse().unwrap()).collect::<Vec<Mac>>();
    let same =
        link("macvlan", ChildInfo::Macvlan { mode: MacVlanMode::Source, source_macs: macs(&["02:00:00:00:00:02", "02:00:00:00:00:01"]) });
    assert_eq!(net.driver.link_drift(&same), Vec::<String>::new());
    let fewer = link("macvlan", ChildInfo::Macvlan { mode: MacVlanMode::Source, source_macs: macs(&["02:00:00:00:00:01"]) });
    assert_eq!(net.driver.link_drift(&fewer), ["source_macs [02:00:00:00:00:01] -> [02:00:00:00:00:01,02:00:00:00:00:02]"]);
    let vepa = link("macvlan", ChildInfo::Macvlan { mode: MacVlanMode::Vepa, source_macs: vec![] });
    assert_eq!(net.driver.link_drift(&vepa), ["mode vepa -> source", "source_macs [] -> [02:00:00:00:00:01,02:00:00:00:00:02]"]);
}

#[test]
fn an_ipvlan_child_drifts_by_mode_and_by_flag() {
    let net = network("driver = \"ipvlan\"\nmode = \"l3\"\nipvlan_flag = \"private\"\n");
    let same = link("ipvlan", ChildInfo::Ipvlan { mode: IpVlanMode::L3, flags: IpVlanFlags::Private });
    assert!(net.driver.link_drift(&same).is_empty());
    let bridge = link("ipvlan", ChildInfo::Ipvlan { mode: IpVlanMode::L3, flags: IpVlanFlags::empty() });
    assert_eq!(net.driver.link_drift(&bridge), ["ipvlan_flag bridge -> private"]);
    let l2 = link("ipvlan", ChildInfo::Ipvlan { mode: IpVlanMode::L2, flags: IpVlanFlags::Private });
    assert_eq!(net.driver.link_drift(&l2), ["mode l2 -> l3"]);
    let macvlan = link("macvlan", ChildInfo::Macvlan { mode: MacVlanMode::Bridge, source_macs: vec![] });
    assert_eq!(net.driver.link_drift(&macvlan), ["kind macvlan -> ipvlan"]);
}

#[test]
fn drivers_say_what_their_children_take_and_route() {
    let passthru = network("driver = \"macvlan\"\nmode = \"passthru\"\n");
    assert!(passthru.driver.takes_parent_mac());
    assert_eq!(passthru.driver.max_endpoints().map(|(n, _)| n), Some(1));
    let bridge = network("driver = \"macvlan\"\n");
    assert!(!bridge.driver.takes_parent_mac() && !bridge.driver.routes_by_device());
    let l3s = network("driver = \"ipvlan\"\nmode = \"l3s\"\n");
    assert!(l3s.driver.takes_parent_mac() && l3s.driver.routes_by_device());
    assert!(!network("driver = \"ipvlan\"\n").driver.routes_by_device());
}

#[test]
fn sharing_rules_follow_the_kernel() {
    let named = |name: &str, table: &str| Network { name: name.into(), ..network(table) };
    let (a, b) = (named("a", "driver = \"macvlan\"\n"), named("b", "driver = \"ipvlan\"\n"));
    assert_eq!(b.driver.sharing_conflict(&a.driver, "a", "eth0").unwrap().0, "driver");
    let c = named("c", "driver = \"macvlan\"\nmode = \"vepa\"\n");
    assert_eq!(c.driver.sharing_conflict(&a.driver, "a", "eth0"), None);
    let p = named("p", "driver = \"macvlan\"\nmode = \"passthru\"\n");
    assert!(p.driver.sharing_conflict(&a.driver, "a", "eth0").unwrap().1.contains("cannot use mode passthru"));
    assert!(a.driver.sharing_conflict(&p.driver, "p", "eth0").unwrap().1.contains("cannot use mode passthru"));
    let (l2, l3) = (named("l2", "driver = \"ipvlan\"\n"), named("l3", "driver = \"ipvlan\"\nmode = \"l3\"\n"));
    assert!(l3.driver.sharing_conflict(&l2.driver, "l2", "eth0").unwrap().1.contains("share one mode and flag"));
}
