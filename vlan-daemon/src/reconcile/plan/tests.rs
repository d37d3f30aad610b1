//! The planning step without a kernel: observed states built in memory, one kind of drift at a
//! time, against a config with one endpoint.
use super::*;
use crate::config::{Config, parse_str};
use crate::ebpf::{Pins, ProgramIds};
use crate::netlink::{ChildInfo, PresentAddress};
use crate::reconcile::allocate::allocate;
use crate::reconcile::desired::desired;
use crate::reconcile::observed::{NamespaceView, Observed};
use crate::state::{EndpointRecord, PendingLink, State};
use netlink_packet_route::link::MacVlanMode;
use std::collections::{BTreeMap, HashMap};

const CONFIG: &str = r#"
[daemon]
bpf_dir = "/sys/fs/bpf/vland-plan-test"

[networks.lan]
driver = "macvlan"
parent = "eth0"
subnet = "172.16.10.0/24"
gateway = "172.16.10.1"
mtu = 1500

[endpoints.web1]
network = "lan"
netns = "web1"
"#;

const PROGRAMS: ProgramIds = ProgramIds { ingress: 11, egress: 12 };
const MAC: &str = "02:42:ac:10:0a:02";

fn config(text: &str) -> Config {
    parse_str(text, "t").unwrap()
}

/// The state after a good apply of CONFIG: web1 holds 172.16.10.2, slot 1.
fn applied_state() -> State {
    let mut state = State { ebpf_object: Some(crate::ebpf::object_id()), ..State::default() };
    state.namespaces.insert("web1".into());
    state.endpoints.insert(
        "web1".into(),
        EndpointRecord {
            network: "lan".into(),
            parent: "eth0".into(),
            netns: NetnsRef::Named("web1".into()),
            ifname: "eth0".into(),
            ip: Some("172.16.10.2".parse().unwrap()),
            ip6: None,
            mac: Some(MAC.parse().unwrap()),
            link: None,
            slot: Some(1),
            routes: vec![RouteSpec { to: "0.0.0.0/0".parse().unwrap(), via: Some("172.16.10.1".parse().unwrap()), metric: None }],
        },
    );
    state
}

fn present(addr: &str, prefix: u8) -> PresentAddress {
    PresentAddress { addr: addr.parse().unwrap(), prefix, msg: Default::default() }
}

/// What the kernel shows after a good apply of CONFIG.
fn applied_view(pins: &Pins) -> NamespaceView {
    let index = pins.endpoint_ifindex(1);
    let child = LinkFacts {
        index,
        name: "eth0".into(),
        kind: Some("macvlan".into()),
        alias: Some("vland:web1".into()),
        mtu: Some(1500),
        up: true,
        mac: Some(MAC.parse().unwrap()),
        child: Some(ChildInfo::Macvlan { mode: MacVlanMode::Bridge, source_macs: vec![] }),
        ..LinkFacts::default()
    };
    let sysctls = [("ipv4/conf/eth0/arp_notify", true), ("ipv6/conf/eth0/disable_ipv6", true)];
    NamespaceView {
        exists: true,
        inum: Some(4026531840),
        handle: None,
        links: HashMap::from([("eth0".to_string(), child)]),
        addresses: HashMap::from([((index, false), vec![present("172.16.10.2", 24)])]),
        routes: HashMap::from([(
            index,
            vec![RouteSpec { to: "0.0.0.0/0".parse().unwrap(), via: Some("172.16.10.1".parse().unwrap()), metric: None }],
        )]),
        filters: HashMap::from([(index, (Some(PROGRAMS.ingress), Some(PROGRAMS.egress)))]),
        tcx: HashMap::new(),
        xdp_is_legacy: HashMap::new(),
        defaults: Some(Defaults { ipv6: Some(false), arp_notify: true }),
        sysctls: sysctls.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        leftovers: Vec::new(),
    }
}

fn parent_link() -> (String, LinkFacts) {
    ("eth0".into(), LinkFacts { index: 2, name: "eth0".into(), up: true, mtu: Some(1500), ..LinkFacts::default() })
}

/// The plan for `config` against `state` and a namespace view changed by `edit`.
fn plan_with(config: &Config, state: State, edit: impl FnOnce(&mut NamespaceView)) -> Result<Plan, ConfigErrors> {
    plan_with_responder(config, state, edit, Default::default())
}

fn plan_with_responder(
    config: &Config,
    state: State,
    edit: impl FnOnce(&mut NamespaceView),
    responder: crate::reconcile::responder::ResponderView,
) -> Result<Plan, ConfigErrors> {
    plan_in(config, state, edit, responder, None)
}

/// The plan of a scoped apply: only the namespaces in `scope` were read.
fn plan_in(
    config: &Config,
    state: State,
    edit: impl FnOnce(&mut NamespaceView),
    responder: crate::reconcile::responder::ResponderView,
    scope: Option<std::collections::BTreeSet<NetnsRef>>,
) -> Result<Plan, ConfigErrors> {
    let pins = Pins::new(&config.daemon.bpf_dir);
    let mut kept = state.clone();
    kept.endpoints.retain(|name, rec| config.endpoints.get(name).is_some_and(|ep| same_placement(ep, rec, config)));
    let desired = desired(config, allocate(config, &kept, "t").unwrap(), &pins);
    let mut view = applied_view(&pins);
    edit(&mut view);
    let has_ipv6 = sysctls::has_ipv6();
    if !has_ipv6 {
        view.sysctls.retain(|k, _| k.starts_with("ipv4"));
        view.defaults = Some(Defaults { ipv6: None, arp_notify: true });
    }
    let namespaces = desired.by_netns.keys().map(|ns| (ns.clone(), std::mem::replace(&mut view, applied_view(&pins)))).collect();
    let policies = HashMap::from([(1, Default::default())]);
    let observed = Observed {
        state,
        host_links: HashMap::from([parent_link()]),
        namespaces,
        programs: Some(PROGRAMS),
        policies,
        trunks_in_place: Vec::new(),
        responder,
        scope,
    };
    plan(&desired, &observed, "t")
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

#[test]
fn a_kernel_that_matches_gives_an_empty_plan() {
    let plan = plan_with(&config(CONFIG), applied_state(), |_| {}).unwrap();
    assert!(plan.is_empty(), "{:?}", lines(&plan));
}

#[test]
fn nothing_yet_means_namespace_programs_and_child_with_its_setup() {
    let pins = Pins::new(std::path::Path::new("/sys/fs/bpf/vland-plan-test"));
    let config = config(CONFIG);
    let desired = desired(&config, allocate(&config, &State::default(), "t").unwrap(), &pins);
    let mut view = applied_view(&pins);
    view.links.clear();
    view.exists = false;
    view.defaults = None;
    let observed = Observed {
        state: State::default(),
        host_links: HashMap::from([parent_link()]),
        namespaces: BTreeMap::from([(NetnsRef::Named("web1".into()), view)]),
        programs: None,
        policies: HashMap::new(),
        trunks_in_place: Vec::new(),
        scope: None,
        responder: Default::default(),
    };
    let plan = plan(&desired, &observed, "t").unwrap();
    assert_eq!(
        lines(&plan),
        [
            "load vland's eBPF programs: first apply: load and pin vland's programs",
            "create namespace web1",
            "create the child of endpoint web1: missing"
        ]
    );
    let Action::CreateChild { setup, .. } = &plan.actions[2] else { panic!() };
    let setup: Vec<String> = setup.iter().map(ToString::to_string).collect();
    assert!(setup.contains(&"ipv4 address none -> 172.16.10.2/24".to_string()), "{setup:?}");
    assert!(setup.contains(&"add route 0.0.0.0/0 via 172.16.10.1".to_string()), "{setup:?}");
    assert!(setup.contains(&"link down -> up".to_string()) && setup.contains(&"attach the egress counter".to_string()), "{setup:?}");
}

#[test]
fn each_kind_of_drift_is_one_fix_with_its_reason() {
    let config = config(CONFIG);
    let plan = plan_with(&config, applied_state(), |v| {
        let index = v.links["eth0"].index;
        let link = v.links.get_mut("eth0").unwrap();
        link.mtu = Some(1400);
        link.up = false;
        link.mac = Some("02:00:00:00:00:99".parse().unwrap());
        v.addresses.clear();
        v.routes.clear();
        v.filters.clear();
        v.sysctls.insert("ipv4/conf/eth0/arp_notify".into(), false);
        let _ = index;
    })
    .unwrap();
    assert_eq!(
        lines(&plan),
        ["endpoint web1: mtu 1400 -> 1500; mac 02:00:00:00:00:99 -> 02:42:ac:10:0a:02; ipv4 address none -> 172.16.10.2/24; \
          sysctl ipv4.conf.eth0.arp_notify=1; attach the ingress counter; attach the egress counter; link down -> up; \
          add route 0.0.0.0/0 via 172.16.10.1"]
    );
}

#[test]
fn a_changed_mode_recreates_an_older_xdp_counter_goes_and_a_foreign_xdp_program_stays() {
    let vepa = config(&CONFIG.replace("driver = \"macvlan\"", "driver = \"macvlan\"\nmode = \"vepa\""));
    let plan = plan_with(&vepa, applied_state(), |_| {}).unwrap();
    assert_eq!(lines(&plan), ["create the child of endpoint web1: mode bridge -> vepa: recreate"]);

    // An older build's child: its generic-XDP counter, no ingress filter.
    let plan = plan_with(&config(CONFIG), applied_state(), |v| {
        let index = v.links["eth0"].index;
        v.links.get_mut("eth0").unwrap().xdp_program = Some(99);
        v.xdp_is_legacy.insert(index, true);
        v.filters.get_mut(&index).unwrap().0 = None;
    })
    .unwrap();
    assert_eq!(
        lines(&plan),
        ["endpoint web1: attach the ingress counter; remove an older vland's XDP counter (vland counts in TC ingress now)"]
    );

    // Someone else's XDP program: nothing to do.
    let plan = plan_with(&config(CONFIG), applied_state(), |v| {
        let index = v.links["eth0"].index;
        v.links.get_mut("eth0").unwrap().xdp_program = Some(99);
        v.xdp_is_legacy.insert(index, false);
    })
    .unwrap();
    assert!(plan.is_empty(), "{:?}", lines(&plan));
}

#[test]
fn crash_leftovers_and_removed_endpoints_are_planned_away() {
    let mut state = applied_state();
    state.pending_links.push(PendingLink { netns: NetnsRef::Named("web1".into()), ifindex: 7 });
    let config = config(CONFIG);
    let plan =
        plan_with(&config, state, |v| v.leftovers.push(LinkFacts { index: 7, name: "eth9".into(), ..LinkFacts::default() })).unwrap();
    assert_eq!(lines(&plan), ["remove eth9 in web1: left half made by an interrupted run"]);

    let mut state = applied_state();
    state.endpoints.insert("old".into(), state.endpoints["web1"].clone());
    let plan = plan_with(&config, state, |_| {}).unwrap();
    assert_eq!(lines(&plan), ["remove endpoint old: not in the config"]);
}

#[test]
fn a_scoped_plan_touches_only_its_namespaces_and_keeps_vlands_other_namespaces() {
    // `old` (recorded, no longer configured) is in another namespace than web1.
    let mut state = applied_state();
    let mut old = state.endpoints["web1"].clone();
    old.netns = NetnsRef::Path("/run/netns/elsewhere".into());
    state.endpoints.insert("old".into(), old);
    let config = config(CONFIG);
    let web1 = || std::collections::BTreeSet::from([NetnsRef::Named("web1".into())]);
    // A call about web1 leaves `old` to the next whole apply, and keeps namespace web1.
    let plan = plan_in(&config, state.clone(), |_| {}, Default::default(), Some(web1())).unwrap();
    assert!(plan.is_empty(), "{:?}", lines(&plan));
    // A call about `old` removes it.
    let elsewhere = std::collections::BTreeSet::from([NetnsRef::Path("/run/netns/elsewhere".into())]);
    let plan = plan_in(&config, state.clone(), |_| {}, Default::default(), Some(elsewhere)).unwrap();
    assert_eq!(lines(&plan), ["remove endpoint old: not in the config"]);
    // A namespace vland made is removed only when no configured endpoint uses it.
    state.namespaces.insert("spare".into());
    let plan = plan_in(&config, state, |_| {}, Default::default(), Some(web1())).unwrap();
    assert_eq!(lines(&plan), ["remove namespace spare: no endpoint uses it"]);
}

#[test]
fn a_foreign_link_with_the_child_s_name_is_an_error_not_an_action() {
    let err = plan_with(&config(CONFIG), applied_state(), |v| v.links.get_mut("eth0").unwrap().alias = None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("endpoints.web1.ifname: namespace web1 already has an interface eth0 that vland did not create"), "{text}");
    // A link with vland's look but another endpoint's tag is someone else's too.
    let err = plan_with(&config(CONFIG), applied_state(), |v| v.links.get_mut("eth0").unwrap().alias = Some("vland:other".into()));
    assert!(err.is_err());
}

#[test]
fn a_mac_given_statically_is_taken_from_the_endpoint_that_held_it() {
    // web1 holds MAC (recorded); a new endpoint web2 now asks for it statically.
    let text = CONFIG.to_string() + &format!("\n[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"web2\"\nmac = \"{MAC}\"\n");
    let config = config(&text);
    let allocations = allocate(&config, &applied_state(), "t").unwrap();
    assert_eq!(allocations["web2"].mac.to_string(), MAC);
    assert_ne!(allocations["web1"].mac.to_string(), MAC, "two endpoints were given one MAC");
    // Without the claim, the recorded MAC stays.
    assert_eq!(allocate(&config_of_web1(), &applied_state(), "t").unwrap()["web1"].mac.to_string(), MAC);
}

fn config_of_web1() -> Config {
    config(CONFIG)
}

/// The responder answers only for children that are up: one that went down is taken out of the
/// table before apply touches it and put back after; an address no endpoint has goes.
#[test]
fn the_responder_follows_the_children() {
    let c = config(&CONFIG.replace("mtu = 1500", "mtu = 1500\narp_responder = true"));
    let entry = vlan_common::NeighEntry { slot: 1, mac: [0x02, 0x42, 0xac, 0x10, 0x0a, 0x02], flags: 0, _pad: 0 };
    let web1 = crate::ebpf::neigh_key(2, "172.16.10.2".parse().unwrap());
    let view = |entries: Vec<(vlan_common::NeighKey, vlan_common::NeighEntry)>, attached: &[u32]| {
        crate::reconcile::responder::ResponderView { entries: entries.into_iter().collect(), attached: attached.iter().copied().collect() }
    };
    let lines_of = |edit: fn(&mut NamespaceView), v| lines(&plan_with_responder(&c, applied_state(), edit, v).unwrap());
    assert_eq!(lines_of(|_| {}, view(vec![], &[])), ["attach vland's ARP/ND responder to eth0; answer for 172.16.10.2 (web1)"]);
    assert!(lines_of(|_| {}, view(vec![(web1, entry)], &[2])).is_empty(), "in place");
    assert_eq!(
        lines_of(|v| v.links.get_mut("eth0").unwrap().up = false, view(vec![(web1, entry)], &[2])),
        [
            "eth0 stops answering ARP/ND for 172.16.10.2 (until their children are up and current)",
            "endpoint web1: link down -> up",
            "the responder answers on eth0; answer for 172.16.10.2 (web1)",
        ]
    );
    let stale = crate::ebpf::neigh_key(2, "172.16.10.9".parse().unwrap());
    assert_eq!(
        lines_of(|_| {}, view(vec![(web1, entry), (stale, entry)], &[2])),
        ["eth0 stops answering ARP/ND for 172.16.10.9 (until their children are up and current)"]
    );
    // Turned off: the program leaves the parent, the entries go.
    let off = plan_with_responder(&config(CONFIG), applied_state(), |_| {}, view(vec![(web1, entry)], &[2])).unwrap();
    assert_eq!(
        lines(&off),
        [
            "detach vland's ARP/ND responder from eth0: no longer wanted there",
            "eth0 stops answering ARP/ND for 172.16.10.2 (until their children are up and current)"
        ]
    );
}

/// `detect_conflicts` without `arp_responder`: the parent program goes on, its entries watch-only;
/// turning the responder on makes them answer (a changed entry is taken out and put back).
#[test]
fn conflict_detection_puts_watch_only_entries_on_the_parent() {
    let c = config(&CONFIG.replace("mtu = 1500", "mtu = 1500\ndetect_conflicts = true"));
    let view = |entries: Vec<(vlan_common::NeighKey, vlan_common::NeighEntry)>, attached: &[u32]| {
        crate::reconcile::responder::ResponderView { entries: entries.into_iter().collect(), attached: attached.iter().copied().collect() }
    };
    let plan = plan_with_responder(&c, applied_state(), |_| {}, view(vec![], &[])).unwrap();
    assert_eq!(lines(&plan), ["attach vland's ARP/ND responder to eth0; watch for address conflicts 172.16.10.2 (web1)"]);
    let web1 = crate::ebpf::neigh_key(2, "172.16.10.2".parse().unwrap());
    let mac = [0x02, 0x42, 0xac, 0x10, 0x0a, 0x02];
    let watched = vlan_common::NeighEntry { slot: 1, mac, flags: vlan_common::NeighEntry::WATCH_ONLY, _pad: 0 };
    assert!(lines(&plan_with_responder(&c, applied_state(), |_| {}, view(vec![(web1, watched)], &[2])).unwrap()).is_empty(), "in place");
    let both = config(&CONFIG.replace("mtu = 1500", "mtu = 1500\ndetect_conflicts = true\narp_responder = true"));
    assert_eq!(
        lines(&plan_with_responder(&both, applied_state(), |_| {}, view(vec![(web1, watched)], &[2])).unwrap()),
        [
            "eth0 stops answering ARP/ND for 172.16.10.2 (until their children are up and current)",
            "the responder answers on eth0; answer for 172.16.10.2 (web1)"
        ]
    );
}

#[test]
fn a_staged_child_handed_over_is_moving_not_missing() {
    let pins = Pins::new(std::path::Path::new("/sys/fs/bpf/vland-plan-test"));
    let mut config = config(CONFIG);
    config.endpoints.get_mut("web1").unwrap().staged = true;
    let observed_with = |made: bool, here: bool| {
        let mut state = applied_state();
        state.endpoints.get_mut("web1").unwrap().link = made.then_some(vlan_common::LinkId { netns_inum: 4026531840, ifindex: 9 });
        let mut view = applied_view(&pins);
        if !here {
            view.links.clear();
            view.addresses.clear();
            view.routes.clear();
        }
        Observed {
            state,
            host_links: HashMap::from([parent_link()]),
            namespaces: BTreeMap::from([(NetnsRef::Named("web1".into()), view)]),
            programs: Some(PROGRAMS),
            policies: HashMap::from([(1, Default::default())]),
            trunks_in_place: Vec::new(),
            scope: None,
            responder: Default::default(),
        }
    };
    let planned = |observed: &Observed| {
        let mut desired = desired(&config, allocate(&config, &observed.state, "t").unwrap(), &pins);
        let moving = desired.set_aside_moving(observed);
        (moving, lines(&plan(&desired, observed, "t").unwrap()))
    };
    // Made, then gone from where it was made (Docker moved it): not made again.
    let (moving, plan) = planned(&observed_with(true, false));
    assert_eq!((moving, plan), (vec!["web1".to_string()], Vec::<String>::new()));
    // Never made yet (Join's own apply): made.
    let (moving, plan) = planned(&observed_with(false, false));
    assert!(moving.is_empty());
    assert_eq!(plan, ["create the child of endpoint web1: missing"]);
    // Still where it was made, once handed over: not corrected either (Docker may move it now).
    let (moving, plan) = planned(&observed_with(true, true));
    assert_eq!((moving, plan), (vec!["web1".to_string()], Vec::<String>::new()));
}

#[test]
fn a_staged_child_is_made_down_and_bare_and_a_placed_one_complete() {
    let setup_of = |staged: bool| {
        let mut config = config(CONFIG);
        config.endpoints.get_mut("web1").unwrap().staged = staged;
        let mut state = applied_state();
        state.endpoints.get_mut("web1").unwrap().link = None;
        let plan = plan_with(&config, state, |v| v.links.clear()).unwrap();
        plan.actions
            .iter()
            .find_map(|a| match a {
                Action::CreateChild { setup, .. } => Some(setup.iter().map(ToString::to_string).collect::<Vec<_>>()),
                _ => None,
            })
            .expect("the child is created")
    };
    // Its engine moves it (dropping programs and per-device sysctls) and brings it up there.
    let staged = setup_of(true);
    assert!(!staged.iter().any(|f| f.contains("up") || f.contains("counter") || f.contains("sysctl")), "{staged:?}");
    let placed = setup_of(false);
    for wanted in ["link down -> up", "attach the ingress counter", "attach the egress counter"] {
        assert!(placed.iter().any(|f| f == wanted), "{wanted} missing from {placed:?}");
    }
}

#[test]
fn counter_hook_tcx_attaches_through_tcx_first_and_then_removes_the_filters_and_back() {
    let tcx = config(&CONFIG.replace("driver = \"macvlan\"", "driver = \"macvlan\"\ncounter_hook = \"tcx\""));
    // tc -> tcx: the tcx counters go in before vland's filters go.
    let plan = plan_with(&tcx, applied_state(), |_| {}).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "endpoint web1: attach the ingress counter (tcx); attach the egress counter (tcx); remove the TC filter counters (counter_hook is tcx)"
        ]
    );
    let tcx_applied = |v: &mut NamespaceView| {
        let index = v.links["eth0"].index;
        v.filters.clear();
        v.tcx.insert(index, (Some(PROGRAMS.ingress), Some(PROGRAMS.egress)));
    };
    let plan = plan_with(&tcx, applied_state(), tcx_applied).unwrap();
    assert!(plan.is_empty(), "{:?}", lines(&plan));
    // A detached tcx counter (drift: no netlink event) is attached again; an older build's is
    // replaced in place.
    let plan = plan_with(&tcx, applied_state(), |v| {
        tcx_applied(v);
        let index = v.links["eth0"].index;
        *v.tcx.get_mut(&index).unwrap() = (None, Some(77));
    })
    .unwrap();
    assert_eq!(
        lines(&plan),
        ["endpoint web1: attach the ingress counter (tcx); replace program 77 with this build's egress counter (tcx)"]
    );
    // tcx -> tc: the filters go in before the tcx counters go.
    let plan = plan_with(&config(CONFIG), applied_state(), tcx_applied).unwrap();
    assert_eq!(
        lines(&plan),
        ["endpoint web1: attach the ingress counter; attach the egress counter; remove the tcx counters (counter_hook is tc)"]
    );
    let Action::Correct { fixes, .. } = &plan.actions[0] else { panic!() };
    assert_eq!(fixes[2], Fix::RemoveTcx { ingress: Some(PROGRAMS.ingress), egress: Some(PROGRAMS.egress) });
}
