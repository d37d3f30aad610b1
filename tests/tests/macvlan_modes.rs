//! Docker's macvlan behaviours on this machine's kernel: the modes' isolation rules, passthru,
//! the seed's two hosts sharing a subnet, dual-stack addressing, routes, drift repair and
//! address persistence.
use vland_tests::Lab;
use vland_tests::ip::{self, Link};

fn link(ns: &str) -> Link {
    ip::link(ns, "eth0")
}

fn addrs(ns: &str, family: &str) -> Vec<String> {
    ip::addrs(ns, family, &["dev", "eth0", "scope", "global"]).iter().map(ip::Addr::cidr).collect()
}

fn mode(ns: &str) -> Option<String> {
    link(ns).linkinfo.info_data.mode
}

fn pings(lab: &Lab, ns: &str, ip: &str) -> bool {
    lab.exec_status(ns, &["ping", "-c", "1", "-W", "1", ip]).status.success()
}

fn mode_lab(mode: &str) -> (Lab, String, std::path::PathBuf) {
    let (mut lab, host) = Lab::with_host();
    lab.expect_ns("a");
    lab.expect_ns("b");
    let body = format!(
        "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nmode = \"{mode}\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\n\
         [endpoints.a]\nnetwork = \"n\"\nnetns = \"{}\"\n\n[endpoints.b]\nnetwork = \"n\"\nnetns = \"{}\"\n",
        lab.ns("a"),
        lab.ns("b")
    );
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    (lab, host, config)
}

#[test]
fn vepa_children_talk_only_through_a_hairpinning_switch_and_private_never() {
    for mode in ["vepa", "private"] {
        let (lab, _host, _config) = mode_lab(mode);
        let (a, sw) = (lab.ns("a"), lab.ns("sw"));
        assert_eq!(self::mode(&a).as_deref(), Some(mode));
        assert!(pings(&lab, &a, "172.16.10.1"), "{mode}: the gateway must answer");
        assert!(!pings(&lab, &a, "172.16.10.3"), "{mode}: siblings must not reach each other directly");
        // A switch port in hairpin (reflective relay) mode sends the frame back down the same port.
        lab.exec(&sw, &["bridge", "link", "set", "dev", "p-h1", "hairpin", "on"]);
        // Forget the failed resolution from the first attempt, then try for a while.
        lab.exec(&a, &["ip", "neigh", "flush", "dev", "eth0"]);
        let reached = lab.exec_status(&a, &["ping", "-c", "5", "-i", "0.2", "-W", "1", "172.16.10.3"]).status.success();
        assert_eq!(reached, mode == "vepa", "{mode} with a hairpinning switch");
    }
}

#[test]
fn passthru_child_takes_the_parents_mac_and_reaches_the_gateway() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.expect_ns("p");
    let body = format!(
        "[networks.pt]\ndriver = \"macvlan\"\nparent = \"eth0\"\nmode = \"passthru\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\n\
         [endpoints.p]\nnetwork = \"pt\"\nnetns = \"{ns}\"\n"
    );
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    let child = link(&ns);
    assert_eq!(child.linkinfo.info_data.mode.as_deref(), Some("passthru"));
    assert_eq!(child.address, ip::link(&host, "eth0").address);
    assert!(pings(&lab, &ns, "172.16.10.1"));
}

#[test]
fn two_hosts_share_a_subnet_each_allocating_from_its_half() {
    let mut lab = Lab::new();
    lab.add_switch("10.10.10.1/24");
    let net = |range: &str, ep: &str, ns: &str| {
        format!(
            "[networks.macvlan_net]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.10.10.0/24\"\nip_range = \"{range}\"\n\
             gateway = \"10.10.10.1\"\naux_addresses = {{ docker1 = \"10.10.10.101\", docker2 = \"10.10.10.102\" }}\n\n\
             [endpoints.{ep}]\nnetwork = \"macvlan_net\"\nnetns = \"{ns}\"\n"
        )
    };
    let d1 = lab.add_host("docker1", Some("10.10.10.101/24"));
    let d2 = lab.add_host("docker2", Some("10.10.10.102/24"));
    let (w1, w2) = (lab.expect_ns("web1"), lab.expect_ns("web2"));
    let c1 = lab.config("docker1", &net("10.10.10.0/25", "web1", &w1));
    let c2 = lab.config("docker2", &net("10.10.10.128/25", "web2", &w2));
    lab.vland_ok(&d1, &c1, &["apply"]);
    lab.vland_ok(&d2, &c2, &["apply"]);
    // The seed's outputs: 10.10.10.2 on docker1, 10.10.10.128 on docker2.
    assert_eq!(addrs(&w1, "-4"), vec!["10.10.10.2/24"]);
    assert_eq!(addrs(&w2, "-4"), vec!["10.10.10.128/24"]);
    assert!(pings(&lab, &w1, "10.10.10.128"), "containers on two hosts must reach each other");
    // And the host cannot reach its own container (the seed's "Destination Host Unreachable").
    assert!(!pings(&lab, &d1, "10.10.10.2"));
}

#[test]
fn dual_stack_endpoints_get_both_families_and_no_slaac() {
    let mut lab = Lab::new();
    let sw = lab.add_switch("172.16.10.1/24");
    // IPv6 on the switch's bridge only, for a gateway to answer.
    lab.exec(&sw, &["sysctl", "-q", "-w", "net.ipv6.conf.br0.disable_ipv6=0"]);
    lab.exec(&sw, &["ip", "-6", "addr", "add", "fd00:10::1/64", "dev", "br0", "nodad"]);
    let host = lab.add_host("h1", None);
    let (a, b) = (lab.expect_ns("a"), lab.expect_ns("b"));
    let body = format!(
        "[networks.ds]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\
         subnet6 = \"fd00:10::/64\"\ngateway6 = \"fd00:10::1\"\n\n\
         [endpoints.a]\nnetwork = \"ds\"\nnetns = \"{a}\"\n\n[endpoints.b]\nnetwork = \"ds\"\nnetns = \"{b}\"\nip6 = \"fd00:10::b\"\n"
    );
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(addrs(&a, "-6"), vec!["fd00:10::2/64"], "lowest free after the gateway");
    assert_eq!(addrs(&b, "-6"), vec!["fd00:10::b/64"]);
    let route = &ip::routes(&a, "-6", &["default"])[0];
    assert_eq!(route.gateway.as_deref(), Some("fd00:10::1"), "{route:?}");
    let sysctl = |ns: &str, key: &str| lab.exec(ns, &["sysctl", "-n", &format!("net.ipv6.conf.eth0.{key}")]).trim().to_string();
    assert_eq!((sysctl(&a, "accept_ra"), sysctl(&a, "autoconf")), ("0".into(), "0".into()));
    let out = lab.exec(&a, &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00:10::b"]);
    assert!(out.contains("2 received"), "{out}");
    assert!(lab.exec_status(&a, &["ping", "-6", "-c", "1", "-W", "2", "fd00:10::1"]).status.success(), "IPv6 gateway");
}

#[test]
fn extra_routes_drift_and_mtu_are_reconciled() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.expect_ns("a");
    let net = |mtu: u32, route: &str| {
        format!(
            "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\nmtu = {mtu}\nmetric = 50\n\n\
             [endpoints.a]\nnetwork = \"n\"\nnetns = \"{ns}\"\nroutes = [{route}]\n"
        )
    };
    let config = lab.config("h1", &net(1400, "{ to = \"10.99.0.0/16\", via = \"172.16.10.254\" }"));
    lab.vland_ok(&host, &config, &["apply"]);
    let ifindex = link(&ns).ifindex;
    assert_eq!(link(&ns).mtu, 1400);
    let route = &ip::routes(&ns, "-4", &["10.99.0.0/16"])[0];
    assert_eq!(route.gateway.as_deref(), Some("172.16.10.254"), "{route:?}");
    assert_eq!(ip::routes(&ns, "-4", &["default"])[0].metric, Some(50));

    // Someone removes the address and the default route: the next apply puts them back.
    lab.exec(&ns, &["ip", "addr", "flush", "dev", "eth0"]);
    lab.exec(&ns, &["ip", "route", "flush", "dev", "eth0"]);
    lab.exec(&ns, &["ip", "link", "set", "eth0", "mtu", "1300"]);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(addrs(&ns, "-4"), vec!["172.16.10.2/24"]);
    assert_eq!(ip::routes(&ns, "-4", &["default"])[0].gateway.as_deref(), Some("172.16.10.1"));
    assert_eq!(link(&ns).mtu, 1400);

    // The config changes: a new MTU and another route; the old route goes, the link stays.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&net(1400, "{ to = \"10.99.0.0/16\", via = \"172.16.10.254\" }"), &net(1450, "{ to = \"10.98.0.0/16\" }")),
    )
    .unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(link(&ns).mtu, 1450);
    assert_eq!(link(&ns).ifindex, ifindex, "the child was recreated instead of corrected");
    assert!(ip::routes(&ns, "-4", &["10.99.0.0/16"]).is_empty(), "stale route left");
    assert_eq!(ip::routes(&ns, "-4", &["10.98.0.0/16"])[0].dev, "eth0");
}

#[test]
fn allocations_survive_a_restart_and_freed_addresses_are_reused_lowest_first() {
    let (mut lab, host) = Lab::with_host();
    let names: Vec<String> = ["a", "b", "c"].iter().map(|n| lab.expect_ns(n)).collect();
    let prefix = lab.ns("");
    let body = |eps: &[&str]| {
        let mut s =
            "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n".to_string();
        for e in eps {
            s.push_str(&format!("\n[endpoints.{e}]\nnetwork = \"n\"\nnetns = \"{prefix}{e}\"\n"));
        }
        s
    };
    let config = lab.config("h1", &body(&["a", "b"]));
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!((addrs(&names[0], "-4"), addrs(&names[1], "-4")), (vec!["172.16.10.2/24".into()], vec!["172.16.10.3/24".into()]));
    // a leaves: b keeps .3 (no renumbering), even though .2 is free now.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace(&body(&["a", "b"]), &body(&["b"]))).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(addrs(&names[1], "-4"), vec!["172.16.10.3/24"]);
    // c arrives: the lowest free address, the one a gave back.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace(&body(&["b"]), &body(&["b", "c"]))).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(addrs(&names[2], "-4"), vec!["172.16.10.2/24"]);
    assert_eq!(addrs(&names[1], "-4"), vec!["172.16.10.3/24"]);
}

#[test]
fn internal_with_a_parent_has_no_default_route_and_source_mode_lists_its_macs_and_sysctls_hold() {
    let (mut lab, host) = Lab::with_host();
    let (i, s) = (lab.expect_ns("i"), lab.expect_ns("s"));
    let body = format!(
        "[networks.int]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/25\"\ngateway = \"172.16.10.1\"\ninternal = true\n\n\
         [networks.src]\ndriver = \"macvlan\"\nparent = \"eth0\"\nmode = \"source\"\ngratuitous_arp = false\nsource_macs = [\"02:00:00:00:00:01\", \"02:00:00:00:00:02\"]\n\n\
         [endpoints.i]\nnetwork = \"int\"\nnetns = \"{i}\"\n\n[endpoints.s]\nnetwork = \"src\"\nnetns = \"{s}\"\n"
    );
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert!(ip::routes(&i, "-4", &["default"]).is_empty(), "internal = no default route");
    assert_eq!(addrs(&i, "-4"), vec!["172.16.10.2/25"]);
    let data = link(&s).linkinfo.info_data;
    assert_eq!((data.mode.as_deref(), data.macaddr_count), (Some("source"), Some(2)), "{data:?}");
    // arp_notify on (off where the network says gratuitous_arp = false), IPv6 off on a network
    // without IPv6 settings; the namespace's loopback keeps IPv6.
    let sysctl = |lab: &Lab, ns: &str, key: &str| lab.exec(ns, &["sysctl", "-n", key]).trim().to_string();
    assert_eq!(sysctl(&lab, &i, "net.ipv4.conf.eth0.arp_notify"), "1");
    assert_eq!(sysctl(&lab, &s, "net.ipv4.conf.eth0.arp_notify"), "0");
    assert_eq!(sysctl(&lab, &i, "net.ipv6.conf.eth0.disable_ipv6"), "1");
    assert_eq!(sysctl(&lab, &i, "net.ipv6.conf.lo.disable_ipv6"), "0");
    // Changed by hand: the next apply puts them back.
    lab.exec(&i, &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=0", "net.ipv6.conf.eth0.disable_ipv6=0"]);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(sysctl(&lab, &i, "net.ipv4.conf.eth0.arp_notify"), "1");
    assert_eq!(sysctl(&lab, &i, "net.ipv6.conf.eth0.disable_ipv6"), "1");

    // An edited source list reaches the kernel (the child is recreated), not just the state.
    let source_macs = |ns: &str| {
        let shown: Vec<Link> = ip::show(ns, &["-d", "link", "show", "eth0"]);
        let mut macs = shown[0].linkinfo.info_data.macaddr_data.clone();
        macs.sort();
        macs
    };
    assert_eq!(source_macs(&s), ["02:00:00:00:00:01", "02:00:00:00:00:02"]);
    let edited = std::fs::read_to_string(&config).unwrap().replace("\"02:00:00:00:00:02\"]", "\"02:00:00:00:00:03\"]");
    std::fs::write(&config, edited).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(source_macs(&s), ["02:00:00:00:00:01", "02:00:00:00:00:03"]);
}

#[test]
fn an_endpoint_can_join_a_running_process_namespace_by_path_which_down_keeps() {
    let (mut lab, host) = Lab::with_host();
    // A "container": a process in a network namespace of its own, not under /run/netns.
    let mut proc_ns = std::process::Command::new("unshare").args(["--net", "sleep", "60"]).spawn().unwrap();
    let pid = proc_ns.id();
    let ns_path = format!("/proc/{pid}/ns/net");
    // unshare may not have switched namespaces yet: wait until it differs from ours.
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    vland_tests::wait_until(std::time::Duration::from_secs(5), || std::fs::read_link(&ns_path).is_ok_and(|l| l != ours)).unwrap();
    let body = format!(
        "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\n\
         [endpoints.c]\nnetwork = \"n\"\nnetns_path = \"{ns_path}\"\n"
    );
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    let in_proc = |args: &[&str]| {
        let out = Lab::command_in(&ns_path, args[0]).args(&args[1..]).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, out) = in_proc(&["ip", "-br", "-4", "addr", "show", "dev", "eth0"]);
    assert!(ok && out.contains("172.16.10.2/24"), "{out}");
    assert!(in_proc(&["ping", "-c", "1", "-W", "2", "172.16.10.1"]).0);
    lab.vland_ok(&host, &config, &["down"]);
    assert!(!in_proc(&["ip", "link", "show", "dev", "eth0"]).0, "the child is still there");
    assert!(std::path::Path::new(&ns_path).exists(), "the process's namespace must stay");
    let _ = proc_ns.kill();
    let _ = proc_ns.wait();
}

#[test]
fn spoof_check_drops_what_an_endpoint_sends_as_someone_else_and_apply_restores_its_mac() {
    let (mut lab, host) = Lab::with_host();
    let a = lab.expect_ns("a");
    let body = format!(
        "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\nspoof_check = true\n\n\
         [endpoints.a]\nnetwork = \"n\"\nnetns = \"{a}\"\n"
    );
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert!(pings(&lab, &a, "172.16.10.1"), "its own address works");
    // An address the endpoint was not given: frames from it never leave.
    lab.exec(&a, &["ip", "addr", "add", "172.16.10.99/24", "dev", "eth0"]);
    assert!(!lab.exec_status(&a, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "172.16.10.99", "172.16.10.1"]).status.success());
    let stats = lab.stats(&host, &config);
    let e = &stats["endpoints"][0];
    assert!(e["drops"]["spoofed_ip"].as_u64().unwrap_or(0) >= 2, "{e}");
    assert_eq!(e["dropped_packets"], e["drops"]["spoofed_ip"].as_u64().unwrap() + e["drops"]["spoofed_mac"].as_u64().unwrap_or(0));

    // A MAC changed from inside: frames with it are dropped, and the next apply restores the MAC.
    let mac = link(&a).address;
    lab.exec(&a, &["ip", "addr", "del", "172.16.10.99/24", "dev", "eth0"]);
    lab.exec(&a, &["ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01"]);
    lab.exec(&a, &["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(!pings(&lab, &a, "172.16.10.1"), "a foreign MAC must not get through");
    assert!(lab.stats(&host, &config)["endpoints"][0]["drops"]["spoofed_mac"].as_u64().unwrap_or(0) >= 1);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(link(&a).address, mac);
    assert!(pings(&lab, &a, "172.16.10.1"));
}

#[test]
fn endpoints_sharing_a_namespace_share_one_default_route_and_a_second_apply_keeps_it() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.expect_ns("multi");
    let body = format!(
        "[networks.a]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/25\"\ngateway = \"172.16.10.1\"\nmetric = 200\n\n\
         [networks.b]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.128/25\"\ngateway = \"172.16.10.129\"\nmetric = 100\n\n\
         [endpoints.x]\nnetwork = \"a\"\nnetns = \"{ns}\"\nifname = \"eth0\"\n\n[endpoints.y]\nnetwork = \"b\"\nnetns = \"{ns}\"\nifname = \"eth1\"\n"
    );
    let config = lab.config("h1", &body);
    for _ in 0..2 {
        lab.vland_ok(&host, &config, &["apply"]);
        // One default route: the lower metric's network (b, through eth1) carries it.
        let routes = ip::routes(&ns, "-4", &["default"]);
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!((routes[0].dev.as_str(), routes[0].gateway.as_deref()), ("eth1", Some("172.16.10.129")), "{routes:?}");
    }
}
