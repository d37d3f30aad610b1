use super::parse::parse_str;
use super::*;
use crate::drivers::{Driver, Ipvlan, IpvlanFlag, IpvlanMode, Macvlan, MacvlanMode};

fn errors_of(text: &str) -> Vec<String> {
    errors_in(text)
}

fn has(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

const GOOD: &str = r#"
[networks.lan]
driver = "macvlan"
parent = "eth0"
subnet = "172.16.10.0/24"
ip_range = "172.16.10.0/25"
gateway = "172.16.10.1"
aux_addresses = { host1 = "172.16.10.2" }

[endpoints.web1]
network = "lan"
netns = "web1"
"#;

#[test]
fn a_good_config_gets_docker_defaults() {
    let c = parse_str(GOOD, "t").unwrap();
    let lan = &c.networks["lan"];
    assert_eq!(lan.driver, Driver::Macvlan(Macvlan { mode: MacvlanMode::Bridge, source_macs: vec![] }));
    assert_eq!(lan.default_gateway(false), Some("172.16.10.1".parse().unwrap()));
    let ipam = lan.ipam4.as_ref().unwrap();
    assert_eq!(ipam.range.to_string(), "172.16.10.0/25");
    assert_eq!(ipam.reserved["host1"].to_string(), "172.16.10.2");
    let ep = &c.endpoints["web1"];
    assert_eq!(ep.ifname, "eth0");
    assert_eq!(ep.netns, NetnsRef::Named("web1".into()));
    assert_eq!(c.daemon.state_dir, std::path::PathBuf::from("/var/lib/vland"));
    assert_eq!(c.daemon.bpf_dir, std::path::PathBuf::from("/sys/fs/bpf/vland"));
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let text = GOOD.replace("gateway = \"172.16.10.1\"", "gateway = \"172.16.10.1\"\nmtuu = 1400") + "\n[daemon]\nsokcet = \"/x\"\n";
    let errors = errors_of(&text);
    assert!(has(&errors, "networks.lan.mtuu (line 8): unknown key `mtuu`"), "{errors:?}");
    assert!(has(&errors, "daemon.sokcet (line 16)"), "{errors:?}");
}

#[test]
fn the_resync_interval_defaults_to_90_s_and_is_at_most_a_day() {
    assert_eq!(parse_str(GOOD, "t").unwrap().daemon.resync_interval, 90);
    assert_eq!(parse_str(&format!("{GOOD}\n[daemon]\nresync_interval = 0\n"), "t").unwrap().daemon.resync_interval, 0);
    let errors = errors_of(&format!("{GOOD}\n[daemon]\nresync_interval = 100000\n"));
    assert!(has(&errors, "daemon.resync_interval"), "{errors:?}");
    let errors = errors_of(&format!("{GOOD}\n[daemon]\nresync_interval = -1\n"));
    assert!(has(&errors, "daemon.resync_interval"), "{errors:?}");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = r#"
[networks.a]
driver = "macvlan"
parent = "lo"
mode = "bridged"
subnet = "10.0.0.1/24"
ip_range = "10.1.0.0/25"
gateway = "10.0.1.1"
aux_addresses = { x = "10.9.9.9" }

[networks.b]
driver = "vxlan"
parent = "averyveryverylongname0"

[endpoints.e1]
network = "a"
netns = "n1"
ip = "10.0.0.300"
mac = "01:00:00:00:00:01"
ifname = "eth0/1"

[endpoints.e2]
network = "nope"
"#;
    let errors = errors_of(text);
    for needle in [
        "networks.a.parent: the loopback device cannot be a parent",
        "networks.a.mode: macvlan mode `bridged` is not valid",
        "networks.a.subnet: invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24",
        "networks.a.ip_range: 10.1.0.0/25 is not inside subnet 10.0.0.0/24",
        "networks.a.gateway: gateway 10.0.1.1 is outside subnet",
        "networks.a.aux_addresses.x: aux address 10.9.9.9 is outside subnet",
        "networks.b.driver: unknown driver `vxlan`",
        "networks.b.parent: interface name `averyveryverylongname0` is 22 bytes",
        "endpoints.e1.ip: `10.0.0.300` is not an IPv4 address",
        "endpoints.e1.mac: 01:00:00:00:00:01 is a multicast MAC",
        "endpoints.e1.ifname",
        "endpoints.e2.network: no network `nope`",
        "endpoints.e2.netns: missing",
    ] {
        assert!(has(&errors, needle), "missing `{needle}` in {errors:#?}");
    }
}

#[test]
fn static_addresses_are_checked_against_the_network() {
    let body = |ip: &str| format!("{GOOD}\n[endpoints.s]\nnetwork = \"lan\"\nnetns = \"s\"\nip = \"{ip}\"\n");
    assert!(has(&errors_of(&body("172.16.10.1")), "is the gateway"));
    assert!(has(&errors_of(&body("172.16.10.2")), "reserved as aux address `host1`"));
    assert!(has(&errors_of(&body("172.16.11.5")), "is outside subnet"));
    assert!(has(&errors_of(&body("172.16.10.255")), "network or broadcast"));
    assert!(errors_of(&body("172.16.10.200")).is_empty(), "outside ip_range but inside the subnet is fine for a static IP");
    let dup = format!("{}\n[endpoints.t]\nnetwork = \"lan\"\nnetns = \"t\"\nip = \"172.16.10.200\"\n", body("172.16.10.200"));
    assert!(has(&errors_of(&dup), "already taken by endpoint"));
}

#[test]
fn kernel_rules_per_parent_are_said_up_front() {
    let mixed = "[networks.m]\ndriver = \"macvlan\"\nparent = \"eth0\"\n[networks.i]\ndriver = \"ipvlan\"\nparent = \"eth0\"\n";
    assert!(has(&errors_of(mixed), "cannot put macvlan and ipvlan children on one parent"));
    let modes = "[networks.a]\ndriver = \"ipvlan\"\nparent = \"eth0\"\nmode = \"l2\"\n[networks.b]\ndriver = \"ipvlan\"\nparent = \"eth0\"\nmode = \"l3\"\n";
    assert!(has(&errors_of(modes), "share one mode"));
    let same_mode = modes.replace("mode = \"l3\"", "mode = \"l2\"");
    assert!(errors_of(&same_mode).is_empty(), "ipvlan networks with one mode may share a parent");
    let passthru = "[networks.p]\ndriver = \"macvlan\"\nparent = \"eth0\"\nmode = \"passthru\"\n[networks.q]\ndriver = \"macvlan\"\nparent = \"eth0\"\n";
    assert!(has(&errors_of(passthru), "cannot use mode passthru"));
    let overlap = "[networks.a]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.0.0.0/16\"\n[networks.b]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.0.5.0/24\"\n";
    assert!(has(&errors_of(overlap), "overlaps"));
}

#[test]
fn syntax_errors_carry_a_line() {
    let errors = errors_of("[networks.a]\ndriver = macvlan\n");
    assert!(errors.iter().any(|e| e.contains("(line 2)")), "{errors:?}");
}

#[test]
fn dotted_parents_are_802_1q_sub_interfaces_with_docker_s_checks() {
    let net = |parent: &str, extra: &str| format!("[networks.v]\ndriver = \"macvlan\"\nparent = \"{parent}\"\n{extra}");
    let c = parse_str(&net("eth1.19", ""), "t").unwrap();
    assert_eq!(c.networks["v"].parent.kind, ParentKind::Vlan { base: "eth1".into(), vid: 19, protocol: VlanProtocol::Dot1Q });
    let c = parse_str(&net("eth1.100", "vlan_protocol = \"802.1ad\"\n"), "t").unwrap();
    assert!(matches!(c.networks["v"].parent.kind, ParentKind::Vlan { protocol: VlanProtocol::Dot1Ad, .. }));
    assert!(has(&errors_of(&net("eth1.4095", "")), "vlan id must be between 1-4094, received: 4095"));
    assert!(has(&errors_of(&net("eth1.0", "")), "vlan id must be between 1-4094, received: 0"));
    assert!(has(&errors_of(&net("eth1.1.2", "")), "name.vlan_id"));
    assert!(errors_of(&net("enp0s3.1000", "")).is_empty(), "a name of 11 bytes is fine");
    assert!(has(&errors_of(&net("enp0s31f6u1c2.19", "")), "is 16 bytes; Linux allows 1 to 15"));
    assert!(has(&errors_of(&net("eth1", "vlan_protocol = \"802.1ad\"\n")), "is not a VLAN sub-interface"));
}

#[test]
fn no_parent_means_an_internal_network_on_a_dummy() {
    let c = parse_str("[networks.backend]\ndriver = \"ipvlan\"\nsubnet = \"10.9.0.0/24\"\ngateway = \"10.9.0.1\"\n", "t").unwrap();
    let n = &c.networks["backend"];
    assert_eq!(n.parent, Parent { name: "vd-backend".into(), kind: ParentKind::Dummy });
    assert!(n.internal && n.default_gateway(false).is_none());
    // A long name still fits the 15-byte limit.
    let c = parse_str("[networks.a-very-long-network-name]\ndriver = \"macvlan\"\n", "t").unwrap();
    assert!(c.networks["a-very-long-network-name"].parent.name.len() <= 15);
}

#[test]
fn ipv6_keys_mirror_ipv4_and_are_checked_the_same_way() {
    let text = r#"
[networks.ds]
driver = "macvlan"
parent = "eth0"
subnet6 = "fd00:10::/64"
ip_range6 = "fd00:10::/120"
gateway6 = "fd00:10::1"
aux_addresses = { router = "fd00:10::fe" }

[endpoints.a]
network = "ds"
netns = "a"
ip6 = "fd00:10::1"
"#;
    assert!(has(&errors_of(text), "endpoints.a.ip6: fd00:10::1 is the gateway"));
    let ok = text.replace("ip6 = \"fd00:10::1\"", "ip6 = \"fd00:10::a\"");
    let c = parse_str(&ok, "t").unwrap();
    let ipam = c.networks["ds"].ipam6.as_ref().unwrap();
    assert_eq!(ipam.reserved["router"].to_string(), "fd00:10::fe");
    assert!(c.networks["ds"].ipam4.is_none());
    assert!(has(&errors_of(&ok.replace("fd00:10::/64", "fd00:10::5/64")), "it should be fd00:10::/64"));
    assert!(has(&errors_of(&ok.replace("ip_range6 = \"fd00:10::/120\"", "ip_range6 = \"fd00:11::/120\"")), "not inside subnet6"));
    assert!(has(&errors_of(&ok.replace("subnet6 = \"fd00:10::/64\"", "subnet6 = \"10.0.0.0/24\"")), "not an IPv6 CIDR"));
}

#[test]
fn driver_specific_keys_are_checked() {
    let m = |extra: &str| format!("[networks.m]\ndriver = \"macvlan\"\nparent = \"eth0\"\n{extra}");
    assert!(has(&errors_of(&m("mode = \"source\"\n")), "mode source needs the MACs"));
    assert!(has(&errors_of(&m("source_macs = [\"02:00:00:00:00:01\"]\n")), "only macvlan mode \"source\""));
    assert!(has(&errors_of(&m("ipvlan_flag = \"private\"\n")), "only ipvlan networks have a flag"));
    let i = |extra: &str| format!("[networks.i]\ndriver = \"ipvlan\"\nparent = \"eth0\"\n{extra}");
    let c = parse_str(&i("mode = \"l3s\"\nipvlan_flag = \"vepa\"\n"), "t").unwrap();
    assert_eq!(c.networks["i"].driver, Driver::Ipvlan(Ipvlan { mode: IpvlanMode::L3s, flag: IpvlanFlag::Vepa }));
    assert!(has(&errors_of(&i("ipvlan_flag = \"loud\"\n")), "ipvlan flag `loud` is not valid"));
    let ep = |extra: &str| format!("{}\n[endpoints.e]\nnetwork = \"i\"\nnetns = \"e\"\n{extra}", i("subnet = \"10.0.0.0/24\"\n"));
    assert!(has(&errors_of(&ep("mac = \"02:00:00:00:00:09\"\n")), "take the parent's MAC"));
    assert!(has(&errors_of(&ep("routes = [{ to = \"10.1.0.0/16\", via = \"192.168.1.1\" }]\n")), "not inside a subnet"));
    assert!(has(&errors_of(&ep("routes = [{ via = \"10.0.0.1\" }]\n")), "a route needs `to`"));
    assert!(errors_of(&ep("routes = [{ to = \"10.1.0.0/16\", via = \"10.0.0.254\", metric = 10 }]\n")).is_empty());
}

#[test]
fn names_that_could_forge_a_line_or_a_path_are_refused() {
    for bad in ["rp e1", "rp-é1", "rp-e1\nfoo", "-lead", "..", "a/b", ""] {
        let text = GOOD.replace("netns = \"web1\"", &format!("netns = {}", toml::Value::String(bad.into())));
        assert!(has(&errors_of(&text), "endpoints.web1.netns: `"), "netns {bad:?} was accepted");
    }
    let net = GOOD.replace("[networks.lan]", "[networks.\"l\\nan\"]").replace("network = \"lan\"", "network = \"l\\nan\"");
    assert!(has(&errors_of(&net), "is not a usable name"), "{:?}", errors_of(&net));
    let ep = GOOD.replace("[endpoints.web1]", "[endpoints.\"web 1\"]");
    assert!(has(&errors_of(&ep), "endpoints.web 1.name: `web 1` is not a usable name"), "{:?}", errors_of(&ep));
    let long = GOOD.replace("[endpoints.web1]", &format!("[endpoints.{}]", "e".repeat(201)));
    assert!(has(&errors_of(&long), "is not a usable name"));
    assert!(errors_of(&GOOD.replace("netns = \"web1\"", "netns = \"ns.web_1-a\"")).is_empty());
}

#[test]
fn configs_that_used_to_fail_half_way_are_refused_up_front() {
    let v6 = |extra: &str| format!("{GOOD}\n[networks.v6]\ndriver = \"macvlan\"\nparent = \"eth1\"\n{extra}");
    assert!(has(&errors_of(&v6("subnet6 = \"ff02::/64\"\n")), "networks.v6.subnet6: ff02::/64 is a multicast range"));
    assert!(has(&errors_of(&v6("subnet = \"224.1.0.0/24\"\n")), "networks.v6.subnet: 224.1.0.0/24 is a multicast range"));
    assert!(has(&errors_of(&v6("subnet = \"127.0.0.0/24\"\n")), "is a loopback range"));
    assert!(has(&errors_of(&v6("subnet6 = \"fd00:1::/64\"\nmtu = 1000\n")), "networks.v6.mtu: 1000 is below 1280"));
    assert!(errors_of(&v6("subnet = \"10.9.0.0/24\"\nmtu = 1000\n")).is_empty(), "IPv4 alone may use a small MTU");
    let lo = GOOD.replace("netns = \"web1\"", "netns = \"web1\"\nifname = \"lo\"");
    assert!(has(&errors_of(&lo), "endpoints.web1.ifname: every namespace has its own loopback"));
    let trunk = format!("{GOOD}\n[trunks.lo]\nallowed_vlans = [5]\n");
    assert!(has(&errors_of(&trunk), "trunks.lo.name: the loopback device carries no VLANs"));
    let many: String =
        (0..vlan_common::MAX_ENDPOINTS).map(|i| format!("[endpoints.e{i}]\nnetwork = \"big\"\nnetns = \"n{i}\"\n")).collect();
    let big = format!("[networks.big]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.128.0.0/16\"\n{many}");
    assert!(has(&errors_of(&big), "4096 endpoints, but vland's data plane holds at most 4095"));
}

#[test]
fn routes_must_be_canonical_and_may_not_replace_the_network_s_default_route() {
    let route = |r: &str| GOOD.replace("netns = \"web1\"", &format!("netns = \"web1\"\nroutes = [{r}]"));
    assert!(has(&errors_of(&route("{ to = \"10.20.0.1/16\" }")), "invalid route destination 10.20.0.1/16: it should be 10.20.0.0/16"));
    assert!(has(&errors_of(&route("{ to = \"0.0.0.0/0\", via = \"172.16.10.254\" }")), "already gives this endpoint its default route"));
    let internal = route("{ to = \"0.0.0.0/0\", via = \"172.16.10.254\" }").replace("gateway = \"172.16.10.1\"", "internal = true");
    assert!(errors_of(&internal).is_empty(), "{:?}", errors_of(&internal));
}

#[test]
fn only_regular_files_of_a_sane_size_are_read() {
    let err = |path: &str| format!("{:#}", anyhow::Error::from(super::load(std::path::Path::new(path)).unwrap_err()));
    assert!(err("/dev/zero").contains("is not a regular file"), "{}", err("/dev/zero"));
    let dir = std::env::temp_dir().join(format!("vland-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
    let fifo_err = err(fifo.to_str().unwrap());
    let huge = dir.join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len(64 << 20).unwrap();
    let huge_err = err(huge.to_str().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(fifo_err.contains("is not a regular file"), "{fifo_err}");
    assert!(huge_err.contains("more than the"), "{huge_err}");
}

#[test]
fn the_docker_table_defaults_to_dockers_plugin_dir_and_checks_its_path() {
    assert_eq!(parse_str(GOOD, "t").unwrap().docker, None);
    let c = parse_str(&format!("{GOOD}\n[docker]\n"), "t").unwrap();
    assert_eq!(c.docker.unwrap().socket, std::path::PathBuf::from("/run/docker/plugins/vland.sock"));
    let c = parse_str(&format!("{GOOD}\n[docker]\nsocket = \"/run/docker/plugins/lan.sock\"\n"), "t").unwrap();
    assert_eq!(c.docker.unwrap().socket, std::path::PathBuf::from("/run/docker/plugins/lan.sock"));
    let errors = errors_of(&format!("{GOOD}\n[docker]\nsocket = \"plugins/vland.sock\"\ncolour = 1\n"));
    assert!(has(&errors, "docker.socket") && has(&errors, "is relative"), "{errors:?}");
    assert!(has(&errors, "docker.colour"), "{errors:?}");
    assert!(has(&errors_of(&format!("{GOOD}\n[docker]\nsocket = \"/run/vland\"\n")), ".sock"));
}

#[test]
fn counter_hook_is_tc_unless_tcx_is_asked_for_and_a_bad_value_is_named_with_the_fix() {
    assert_eq!(parse_str(GOOD, "t").unwrap().networks["lan"].counter_hook, CounterHook::Tc);
    let with = |v: &str| GOOD.replace("gateway = \"172.16.10.1\"", &format!("gateway = \"172.16.10.1\"\ncounter_hook = {v}"));
    assert_eq!(parse_str(&with("\"tcx\""), "t").unwrap().networks["lan"].counter_hook, CounterHook::Tcx);
    assert_eq!(parse_str(&with("\"tc\""), "t").unwrap().networks["lan"].counter_hook, CounterHook::Tc);
    // Reported with the other errors of the file, not instead of them.
    let errors = errors_of(&with("\"xdp\"").replace("subnet = \"172.16.10.0/24\"", "subnet = \"172.16.10.1/24\""));
    assert!(
        has(&errors, r#"networks.lan.counter_hook: `xdp` is not a counter hook: use "tc" (classic TC filters, the default) or "tcx""#),
        "{errors:?}"
    );
    assert!(has(&errors, "networks.lan.subnet"), "{errors:?}");
    assert!(has(&errors_of(&with("true")), "networks.lan.counter_hook"));
    assert!(network_keys().contains(&"counter_hook"), "front-ends and the fuzzer see the key");
}
