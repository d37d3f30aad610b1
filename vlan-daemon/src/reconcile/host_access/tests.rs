//! The host child in the planner, without a kernel: observed states built in memory (the host's
//! own namespace with its parent and routes, and each endpoint namespace) as a good apply leaves
//! them, then one kind of drift at a time.
use super::*;
use crate::config::parse_str;
use crate::ebpf::{Pins, ProgramIds};
use crate::netlink::{ChildInfo, LinkFacts, PresentAddress};
use crate::reconcile::Plan;
use crate::reconcile::allocate::allocate;
use crate::reconcile::desired::{Desired, desired};
use crate::reconcile::observed::{NamespaceView, Observed};
use crate::reconcile::plan::{Action, Fix, plan};
use crate::reconcile::sysctls::{self, Defaults};
use crate::state::{EndpointRecord, State};
use netlink_packet_route::link::MacVlanMode;
use std::collections::{BTreeMap, HashMap};

const CONFIG: &str = r#"
[daemon]
bpf_dir = "/sys/fs/bpf/vland-host-access-test"

[networks.lan]
driver = "macvlan"
parent = "eth0"
subnet = "172.16.10.0/24"
gateway = "172.16.10.1"
host_access = true
host_address = "172.16.10.2"

[endpoints.web1]
network = "lan"
netns = "web1"

[endpoints.web2]
network = "lan"
netns = "web2"
"#;

const PROGRAMS: ProgramIds = ProgramIds { ingress: 11, egress: 12 };
const PARENT: u32 = 2;

fn config(text: &str) -> Config {
    with_host_children(&parse_str(text, "t").unwrap()).into_owned()
}

fn route(to: &str) -> RouteSpec {
    RouteSpec { to: to.parse().unwrap(), via: None, metric: None }
}

/// The host's own links and routes: the parent, with its address and route to the subnet.
fn host_view() -> NamespaceView {
    let parent = LinkFacts { index: PARENT, name: "eth0".into(), up: true, mtu: Some(1500), ..LinkFacts::default() };
    NamespaceView {
        exists: true,
        inum: Some(4026531840),
        handle: None,
        links: HashMap::from([("eth0".to_string(), parent)]),
        addresses: HashMap::from([((PARENT, false), vec![present("172.16.10.200", 24)])]),
        routes: HashMap::from([(PARENT, vec![route("172.16.10.0/24"), route("0.0.0.0/0")])]),
        filters: HashMap::new(),
        tcx: HashMap::new(),
        xdp_is_legacy: HashMap::new(),
        defaults: Some(Defaults { ipv6: Some(false), arp_notify: true }),
        sysctls: BTreeMap::new(),
        leftovers: Vec::new(),
    }
}

/// An endpoint namespace with nothing of vland's in it.
fn empty_view() -> NamespaceView {
    NamespaceView { links: HashMap::new(), addresses: HashMap::new(), routes: HashMap::new(), ..host_view() }
}

fn present(addr: &str, prefix: u8) -> PresentAddress {
    PresentAddress { addr: addr.parse().unwrap(), prefix, msg: Default::default() }
}

/// Every namespace as a good apply of `desired` leaves it (the host's with its own links too).
fn applied(desired: &Desired<'_>) -> BTreeMap<NetnsRef, NamespaceView> {
    let mut out = BTreeMap::new();
    for (ns_ref, names) in &desired.by_netns {
        let mut view = if *ns_ref == NetnsRef::Own { host_view() } else { empty_view() };
        for name in names {
            let d = &desired.endpoints[name];
            view.links.insert(
                d.ep.ifname.clone(),
                LinkFacts {
                    index: d.ifindex,
                    name: d.ep.ifname.clone(),
                    kind: Some("macvlan".into()),
                    alias: Some(d.alias.clone()),
                    up: true,
                    mac: Some(d.alloc.mac),
                    child: Some(ChildInfo::Macvlan { mode: MacVlanMode::Bridge, source_macs: vec![] }),
                    ..LinkFacts::default()
                },
            );
            for (v6, a) in d.addresses.iter().enumerate() {
                if let Some((addr, prefix)) = a {
                    view.addresses
                        .insert((d.ifindex, v6 == 1), vec![PresentAddress { addr: *addr, prefix: *prefix, msg: Default::default() }]);
                }
            }
            view.routes.insert(d.ifindex, d.routes.clone());
            view.filters.insert(d.ifindex, (Some(PROGRAMS.ingress), Some(PROGRAMS.egress)));
            view.sysctls.extend(d.sysctls.wanted(sysctls::has_ipv6()));
        }
        out.insert(ns_ref.clone(), view);
    }
    out
}

/// The state a good apply of `desired` records.
fn applied_state(desired: &Desired<'_>) -> State {
    let mut state = State { ebpf_object: Some(crate::ebpf::object_id()), ..State::default() };
    for (name, d) in &desired.endpoints {
        if let NetnsRef::Named(n) = &d.ep.netns {
            state.namespaces.insert(n.clone());
        }
        state.endpoints.insert(
            name.clone(),
            EndpointRecord {
                network: d.ep.network.clone(),
                parent: d.net.parent.name.clone(),
                netns: d.ep.netns.clone(),
                ifname: d.ep.ifname.clone(),
                ip: d.alloc.ip,
                ip6: d.alloc.ip6,
                mac: Some(d.alloc.mac),
                link: None,
                slot: Some(d.alloc.slot),
                routes: d.routes.clone(),
            },
        );
    }
    state
}

/// The plan for `config` after a good apply of `before` (None: nothing applied yet), with the
/// namespaces changed by `edit`.
fn plan_after(config: &Config, before: Option<&Config>, edit: impl FnOnce(&mut BTreeMap<NetnsRef, NamespaceView>)) -> Plan {
    let pins = Pins::new(&config.daemon.bpf_dir);
    let (state, mut namespaces) = match before {
        Some(b) => {
            let d = desired(b, allocate(b, &State::default(), "t").unwrap(), &pins);
            (applied_state(&d), applied(&d))
        }
        None => (State::default(), BTreeMap::from([(NetnsRef::Own, host_view())])),
    };
    let mut kept = state.clone();
    kept.endpoints.retain(|name, _| config.endpoints.contains_key(name));
    let d = desired(config, allocate(config, &kept, "t").unwrap(), &pins);
    for ns_ref in d.by_netns.keys() {
        namespaces.entry(ns_ref.clone()).or_insert_with(|| NamespaceView { exists: false, defaults: None, ..empty_view() });
    }
    edit(&mut namespaces);
    let policies = d.endpoints.values().map(|e| (e.alloc.slot, e.policy(None))).collect();
    let observed = Observed {
        state,
        host_links: HashMap::from([("eth0".to_string(), host_view().links.remove("eth0").unwrap())]),
        namespaces,
        programs: Some(PROGRAMS),
        policies,
        trunks_in_place: Vec::new(),
        responder: Default::default(),
        scope: None,
    };
    plan(&d, &observed, "t").unwrap()
}

fn host_actions(plan: &Plan) -> Vec<&Action> {
    plan.actions.iter().filter(|a| a.endpoint() == Some("lan/host")).collect()
}

fn host_index(config: &Config) -> u32 {
    let pins = Pins::new(&config.daemon.bpf_dir);
    let d = desired(config, allocate(config, &State::default(), "t").unwrap(), &pins);
    d.endpoints["lan/host"].ifindex
}

#[test]
fn a_new_host_child_carries_its_address_alone_and_a_route_to_each_endpoint() {
    let config = config(CONFIG);
    let plan = plan_after(&config, None, |_| {});
    let host = host_actions(&plan);
    let [Action::CreateChild { reason, setup, .. }] = host.as_slice() else { panic!("{plan}") };
    assert_eq!(reason, "missing");
    // The address alone (no subnet route), and the endpoints' addresses: web1 and web2 get the
    // lowest free ones, 172.16.10.2 being the host's.
    assert!(setup.contains(&Fix::Addresses { family: "ipv4", remove: vec![], add: Some("172.16.10.2/32".into()) }), "{plan}");
    assert!(setup.contains(&Fix::Routes { remove: vec![], add: vec![route("172.16.10.3/32"), route("172.16.10.4/32")] }), "{plan}");
    // Created in vland's namespace, never a namespace of its own.
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateNamespace { netns } if netns.contains("host"))), "{plan}");
    // The host's own routes and the parent are untouched.
    assert!(plan.actions.iter().all(|a| !a.to_string().contains("eth0 ") && !a.to_string().contains("172.16.10.0/24")), "{plan}");
}

#[test]
fn a_kernel_that_matches_plans_nothing_for_the_host_child() {
    let config = config(CONFIG);
    let plan = plan_after(&config, Some(&config), |_| {});
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn drift_of_the_host_child_is_repaired_and_only_that() {
    let config = config(CONFIG);
    let index = host_index(&config);
    // A route to an endpoint deleted by hand.
    let plan = plan_after(&config, Some(&config), |ns| {
        ns.get_mut(&NetnsRef::Own).unwrap().routes.get_mut(&index).unwrap().retain(|r| r.to.ip().to_string() != "172.16.10.3");
    });
    assert_eq!(host_actions(&plan).len(), 1, "{plan}");
    assert_eq!(plan.actions.len(), 1, "{plan}");
    assert!(plan.to_string().contains("lan/host: add route 172.16.10.3/32 dev"), "{plan}");
    // Its address flushed, and the link set down.
    let plan = plan_after(&config, Some(&config), |ns| {
        let own = ns.get_mut(&NetnsRef::Own).unwrap();
        own.addresses.remove(&(index, false));
        own.links.get_mut("vh-lan").unwrap().up = false;
    });
    let text = plan.to_string();
    assert!(text.contains("ipv4 address none -> 172.16.10.2/32") && text.contains("link down -> up"), "{text}");
    // The child deleted: created again, with its routes.
    let plan = plan_after(&config, Some(&config), |ns| {
        ns.get_mut(&NetnsRef::Own).unwrap().links.remove("vh-lan");
    });
    assert!(matches!(host_actions(&plan).as_slice(), [Action::CreateChild { reason, .. }] if reason == "missing"), "{plan}");
}

#[test]
fn endpoints_coming_and_going_change_the_host_routes() {
    let config_now = config(&format!("{CONFIG}\n[endpoints.web3]\nnetwork = \"lan\"\nnetns = \"web3\"\n"));
    let before = config(CONFIG);
    let plan = plan_after(&config_now, Some(&before), |_| {});
    assert!(plan.to_string().contains("endpoint lan/host: add route 172.16.10.5/32 dev"), "{plan}");
    let fewer = config(&CONFIG.replace("[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"web2\"\n", ""));
    let plan = plan_after(&fewer, Some(&before), |_| {});
    assert!(plan.to_string().contains("endpoint lan/host: remove route 172.16.10.4/32 dev"), "{plan}");
}

#[test]
fn turning_host_access_off_removes_the_host_child() {
    let before = config(CONFIG);
    let off = config(&CONFIG.replace("host_access = true\nhost_address = \"172.16.10.2\"\n", ""));
    let plan = plan_after(&off, Some(&before), |_| {});
    assert!(plan.actions.iter().any(|a| matches!(a, Action::RemoveEndpoint { endpoint, .. } if endpoint == "lan/host")), "{plan}");
}

#[test]
fn no_host_child_no_change_in_the_config() {
    let plain = parse_str(&CONFIG.replace("host_access = true\nhost_address = \"172.16.10.2\"\n", ""), "t").unwrap();
    assert!(matches!(with_host_children(&plain), Cow::Borrowed(_)));
}

#[test]
fn names_are_distinct_from_configured_ones_and_fit_the_kernel() {
    assert_eq!(endpoint_name("lan"), "lan/host");
    assert_eq!(network_of("lan/host"), Some("lan"));
    assert_eq!(network_of("lan"), None);
    assert_eq!(network_of("/host"), None);
    assert_eq!(ifname("lan"), "vh-lan");
    let long = ifname("a-very-long-network-name");
    assert!(long.len() <= 15 && long.starts_with("vh-"), "{long}");
    assert_ne!(long, ifname("a-very-long-network-nam3"));
}

#[test]
fn dual_stack_host_child_has_both_addresses_and_routes() {
    let text = CONFIG.replace(
        "host_address = \"172.16.10.2\"\n",
        "host_address = \"172.16.10.2\"\nsubnet6 = \"fd00:10::/64\"\nhost_address6 = \"fd00:10::2\"\n",
    );
    let config = config(&text);
    let plan = plan_after(&config, None, |_| {});
    let [Action::CreateChild { setup, .. }] = host_actions(&plan).as_slice() else { panic!("{plan}") };
    let text: String = setup.iter().map(|f| format!("{f}; ")).collect();
    for want in ["172.16.10.2/32", "fd00:10::2/128", "fd00:10::1/128", "fd00:10::3/128"] {
        assert!(text.contains(want), "{want} missing: {text}");
    }
}
