//! vland as Docker's network and IPAM plugin, driven by a real dockerd (Debian's docker.io)
//! started by the test in the lab host's namespace: the seed's macvlan scenario with
//! `-d DRIVER --ipam-driver DRIVER` in place of `-d macvlan`, what `docker inspect` and the kernel
//! show, exact counters, teardown, a restart and a kill -9 of vland, the options, and bad input.
//! Each test's plugin socket is /run/docker/plugins/vlt-....sock, a driver name of its own, since
//! every dockerd finds its plugins there.
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use vland_tests::docker::{BUSYBOX, Dockerd};
use vland_tests::{Daemon, Lab, ip, run_ok, wait_until};

/// One dockerd at a time: the machine has two cores for everyone.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The seed's subnet, with the host's own address on the parent (as in the book) and the
/// gateway on the switch.
const GATEWAY: &str = "10.10.10.1";
const HOST_ADDR: &str = "10.10.10.254";

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Setup {
    // Dropped in this order: containers and dockerd (which still calls the plugin) before vland,
    // then the socket a killed vland may have left, then the namespaces.
    docker: Dockerd,
    daemon: Option<Daemon>,
    _plugin: RemoveOnDrop,
    host: String,
    config: PathBuf,
    /// Docker's driver name for vland: the plugin socket's file name.
    driver: String,
    lab: Lab,
}

impl Setup {
    fn new() -> Self {
        let mut lab = Lab::new();
        lab.add_switch(&format!("{GATEWAY}/24"));
        let host = lab.add_host("h1", Some(&format!("{HOST_ADDR}/24")));
        let driver = format!("{}docker", lab.prefix);
        let plugin = PathBuf::from(format!("/run/docker/plugins/{driver}.sock"));
        let api = lab.dir.join("docker/docker.sock");
        let control = lab.dir.join("vland.sock");
        let config = lab.config(
            "h1",
            &format!(
                "socket = \"{}\"\ndocker_api = \"{}\"\n\n[docker]\nsocket = \"{}\"\n",
                control.display(),
                api.display(),
                plugin.display()
            ),
        );
        let daemon = lab.spawn_daemon(&host, &config);
        assert!(wait_until(Duration::from_secs(30), || plugin.exists()).is_some(), "no plugin socket: {}", daemon.log_text());
        let docker = Dockerd::start(&lab.dir, &host);
        assert_eq!(docker.socket, api);
        docker.import_busybox(&lab.dir);
        Setup { docker, daemon: Some(daemon), _plugin: RemoveOnDrop(plugin), host, config, driver, lab }
    }

    fn log(&self) -> String {
        format!("vland: {}\ndockerd: {}", self.daemon.as_ref().map(Daemon::log_text).unwrap_or_default(), self.docker.log())
    }

    /// The seed's `docker network create`, with vland as the network and IPAM driver.
    fn create_args<'a>(&'a self, extra: &[&'a str], name: &'a str) -> Vec<&'a str> {
        let mut args = vec![
            "network",
            "create",
            "-d",
            &self.driver,
            "--ipam-driver",
            &self.driver,
            "--subnet",
            "10.10.10.0/24",
            "--ip-range",
            "10.10.10.0/25",
            "--gateway",
            GATEWAY,
            "--aux-address",
            "docker1=10.10.10.101",
            "--aux-address",
            "docker2=10.10.10.102",
            "-o",
            "parent=eth0",
        ];
        args.extend_from_slice(extra);
        args.push(name);
        args
    }

    /// `docker network create` with vland on another subnet (no aux addresses), and `extra`.
    fn create_on<'a>(&'a self, subnet: &'a str, range: &'a str, gateway: &'a str, extra: &[&'a str], name: &'a str) -> Vec<&'a str> {
        let mut args = vec!["network", "create", "-d", &self.driver, "--ipam-driver", &self.driver, "--subnet", subnet];
        args.extend_from_slice(&["--ip-range", range, "--gateway", gateway, "-o", "parent=eth0"]);
        args.extend_from_slice(extra);
        args.push(name);
        args
    }

    /// vland's front-end state, a missing file read as empty.
    fn fragment_tables(&self) -> Value {
        let f = self.fragments();
        let table = |k: &str| f.get(k).cloned().unwrap_or_else(|| json!({}));
        json!({"networks": table("networks"), "endpoints": table("endpoints"), "docker_pools": table("docker_pools")})
    }

    fn fragments(&self) -> Value {
        let text = std::fs::read_to_string(self.lab.dir.join("h1-state/frontends.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap()
    }

    fn fragments_text(&self) -> String {
        std::fs::read_to_string(self.lab.dir.join("h1-state/frontends.json")).unwrap_or_default()
    }

    /// The host's links other than lo and the parent: vland's children while they are there.
    fn host_children(&self) -> Vec<String> {
        ip::link_names(&self.host).into_iter().filter(|n| n != "lo" && n != "eth0").collect()
    }

    fn stats(&mut self) -> Value {
        self.lab.stats(&self.host, &self.config)
    }

    /// The stats row of container `name` (Docker's name: vland asks Docker's API).
    fn row(&mut self, name: &str) -> Option<Value> {
        self.stats()["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == name).cloned()
    }

    /// A container's network namespace as a lab namespace (`ip netns attach`), for `ip -n`.
    fn netns_of(&mut self, container: &str) -> String {
        let pid = self.docker.ok(&["inspect", "-f", "{{.State.Pid}}", container]);
        let ns = self.lab.expect_ns(&format!("c-{container}"));
        run_ok("ip", &["netns", "attach", &ns, &pid]);
        ns
    }

    fn restart_vland(&mut self, kill9: bool) {
        let daemon = self.daemon.take().unwrap();
        if kill9 {
            daemon.signal(nix::sys::signal::Signal::SIGKILL);
        }
        drop(daemon);
        let plugin = PathBuf::from(format!("/run/docker/plugins/{}.sock", self.driver));
        let daemon = self.lab.spawn_daemon(&self.host, &self.config);
        // The socket a killed daemon left is replaced: wait until the new one answers.
        let up = wait_until(Duration::from_secs(30), || std::os::unix::net::UnixStream::connect(&plugin).is_ok());
        assert!(up.is_some(), "vland did not come back: {}", daemon.log_text());
        self.daemon = Some(daemon);
    }
}

fn docker_address(docker: &Dockerd, container: &str, network: &str) -> (String, String, String) {
    let c = docker.inspect(&[container]);
    let n = &c["NetworkSettings"]["Networks"][network];
    (
        n["IPAddress"].as_str().unwrap_or("").to_string(),
        n["GlobalIPv6Address"].as_str().unwrap_or("").to_string(),
        n["MacAddress"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn the_seeds_macvlan_scenario_with_vland_as_dockers_driver() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::new();
    let args = s.create_args(&[], "macvlan_net");
    let net_id = s.docker.ok(&args);
    assert_eq!(net_id.len(), 64, "{net_id}");
    let net = s.docker.inspect(&["--type", "network", "macvlan_net"]);
    assert_eq!(net["Driver"], s.driver.as_str());
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.10.10.0/24");
    assert_eq!(net["IPAM"]["Config"][0]["IPRange"], "10.10.10.0/25");
    // vland holds the network (by Docker's ID) and the pool with the gateway and aux addresses.
    let f = s.fragments();
    let name = format!("docker-{}", &net_id[..12]);
    assert_eq!(f["networks"][&name]["config"]["parent"], "eth0", "{f}");
    let pool = f["docker_pools"].as_object().unwrap().values().next().cloned().unwrap_or_else(|| panic!("no pool: {f}"));
    for a in ["10.10.10.1", "10.10.10.101", "10.10.10.102"] {
        assert!(pool["addresses"].get(a).is_some(), "{a} not held: {pool}");
    }
    // No child before a container joins.
    assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());

    // A restart and a kill -9 between `network create` and `run` change nothing for Docker,
    // which never sends the network again.
    let saved = s.fragments_text();
    s.restart_vland(false);
    s.restart_vland(true);
    assert_eq!(s.fragments_text(), saved);

    s.docker.ok(&["run", "-d", "--name", "c1", "--net", "macvlan_net", BUSYBOX, "sleep", "600"]);
    s.docker.ok(&["run", "-d", "--name", "c2", "--net", "macvlan_net", BUSYBOX, "sleep", "600"]);
    // The book's addresses: the lowest free ones of the --ip-range.
    let (a1, _, docker_mac1) = docker_address(&s.docker, "c1", "macvlan_net");
    let (a2, _, docker_mac2) = docker_address(&s.docker, "c2", "macvlan_net");
    assert_eq!((a1.as_str(), a2.as_str()), ("10.10.10.2", "10.10.10.3"), "{}", s.log());

    // The kernel: a macvlan child in bridge mode of the parent, named eth0, with the address and
    // the default route via the gateway; the host holds no child any more.
    let c1 = s.netns_of("c1");
    let c2 = s.netns_of("c2");
    let link = ip::link(&c1, "eth0");
    assert_eq!(link.kind(), "macvlan");
    assert_eq!(link.linkinfo.info_data.mode.as_deref(), Some("bridge"));
    // Docker shows the MAC the child has: vland tells it in CreateEndpoint's reply.
    let mac1 = link.address.clone();
    assert_eq!(docker_mac1, mac1, "docker inspect shows another MAC than the kernel's");
    assert_eq!(docker_mac2, ip::link(&c2, "eth0").address, "docker inspect shows another MAC than the kernel's");
    assert_eq!(ip::addrs(&c1, "-4", &["dev", "eth0"]).iter().map(ip::Addr::cidr).collect::<Vec<_>>(), ["10.10.10.2/24"]);
    let routes = ip::routes(&c1, "-4", &["default"]);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].gateway.as_deref(), Some(GATEWAY));
    assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());

    // Docker's names in stats (asked from Docker's API), once vland has taken the children over.
    let rows = wait_until(Duration::from_secs(20), || s.row("c1").is_some() && s.row("c2").is_some());
    assert!(rows.is_some(), "no stats rows for c1 and c2: {}\n{}", s.stats(), s.log());
    let row = s.row("c1").unwrap();
    assert_eq!(row["network"], "macvlan_net", "{row}");
    let c1_id = s.docker.ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    assert_eq!(row["owner"], format!("docker container c1 ({})", &c1_id[..12]), "{row}");

    // The gateway on the switch answers; the host's own parent address does not (macvlan).
    s.docker.ok(&["exec", "c1", "ping", "-c", "1", "-W", "2", GATEWAY]);
    assert!(!s.docker.run(&["exec", "c1", "ping", "-c", "1", "-W", "1", HOST_ADDR]).status.success(), "the parent's address answered");
    s.docker.ok(&["exec", "c1", "ping", "-c", "1", "-W", "2", &a2]);

    // Exactly 3 frames each way for `ping -c 3`: IPv6 off and static neighbours on both sides, so
    // nothing else crosses c1's child meanwhile.
    for ns in [&c1, &c2] {
        run_ok("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    let gw_mac = ip::link(&s.lab.ns("sw"), "br0").address;
    run_ok("ip", &["-n", &c1, "neigh", "replace", GATEWAY, "lladdr", &gw_mac, "dev", "eth0", "nud", "permanent"]);
    run_ok("ip", &["-n", &s.lab.ns("sw"), "neigh", "replace", "10.10.10.2", "lladdr", &mac1, "dev", "br0", "nud", "permanent"]);
    // The unanswered ARP for the parent's address above may still be retried: only the permanent
    // entry stays.
    run_ok("ip", &["-n", &c1, "neigh", "flush", "dev", "eth0"]);
    std::thread::sleep(Duration::from_millis(300));
    let before = s.row("c1").unwrap();
    s.docker.ok(&["exec", "c1", "ping", "-c", "3", "-i", "0.2", "-W", "2", GATEWAY]);
    let after = s.row("c1").unwrap();
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!((delta("tx_packets"), delta("rx_packets")), (3, 3), "before {before}\nafter {after}");

    // `docker rm -f` removes the child and frees the address, which the next container gets.
    s.docker.ok(&["rm", "-f", "c1"]);
    assert!(s.row("c1").is_none());
    let f = s.fragments();
    assert_eq!(f["endpoints"].as_object().unwrap().len(), 1, "{f}");
    assert!(ip::try_link(&c1, "eth0").is_none());
    assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());
    s.docker.ok(&["run", "-d", "--name", "c3", "--net", "macvlan_net", BUSYBOX, "sleep", "600"]);
    assert_eq!(docker_address(&s.docker, "c3", "macvlan_net").0, "10.10.10.2");

    // `docker network rm` after the containers: nothing is left, in the kernel or in vland.
    s.docker.ok(&["rm", "-f", "c2", "c3"]);
    s.docker.ok(&["network", "rm", "macvlan_net"]);
    let f = s.fragments();
    assert_eq!(f["networks"], json!({}), "{f}");
    assert_eq!(f["endpoints"], json!({}), "{f}");
    assert!(f.get("docker_pools").is_none_or(|p| p == &json!({})), "{f}");
    assert!(s.stats()["endpoints"].as_array().unwrap().is_empty());
    assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());
    let state: Value = serde_json::from_str(&std::fs::read_to_string(s.lab.dir.join("h1-state/state.json")).unwrap()).unwrap();
    assert_eq!(state["endpoints"], json!({}), "{state}");
    assert!(state.get("parents").is_none_or(|p| p == &json!({})), "{state}");
    let plan = s.lab.vland_ok(&s.host.clone(), &s.config.clone(), &["plan"]);
    assert!(plan.contains("nothing to do"), "{plan}");
}

#[test]
fn internal_ipv6_and_a_chosen_address_and_mac() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::new();
    // --internal: no default route; --ipv6 with a ULA subnet: an IPv6 address too.
    let args = s.create_args(&["--internal", "--ipv6", "--subnet", "fd00:10::/64"], "inner");
    s.docker.ok(&args);
    let net = s.docker.inspect(&["--type", "network", "inner"]);
    assert_eq!(net["Internal"], true);
    assert_eq!(net["EnableIPv6"], true);
    s.docker.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--net",
        "inner",
        "--ip",
        "10.10.10.50",
        "--ip6",
        "fd00:10::50",
        "--mac-address",
        "02:42:0a:0a:0a:32",
        BUSYBOX,
        "sleep",
        "600",
    ]);
    let (v4, v6, mac) = docker_address(&s.docker, "fixed", "inner");
    assert_eq!((v4.as_str(), v6.as_str(), mac.as_str()), ("10.10.10.50", "fd00:10::50", "02:42:0a:0a:0a:32"), "{}", s.log());
    let ns = s.netns_of("fixed");
    assert_eq!(ip::link(&ns, "eth0").address, "02:42:0a:0a:0a:32");
    assert_eq!(ip::addrs(&ns, "-4", &["dev", "eth0"]).iter().map(ip::Addr::cidr).collect::<Vec<_>>(), ["10.10.10.50/24"]);
    let v6: Vec<String> = ip::addrs(&ns, "-6", &["dev", "eth0", "scope", "global"]).iter().map(ip::Addr::cidr).collect();
    assert_eq!(v6, ["fd00:10::50/64"]);
    assert!(ip::routes(&ns, "-4", &["default"]).is_empty(), "an internal network has no default route");
    assert!(ip::routes(&ns, "-6", &["default"]).is_empty(), "an internal network has no default route");
    // A container without --ip on the same network takes the lowest free addresses.
    s.docker.ok(&["run", "-d", "--name", "any", "--net", "inner", BUSYBOX, "sleep", "600"]);
    assert_eq!(docker_address(&s.docker, "any", "inner").0, "10.10.10.2");
    s.docker.ok(&["rm", "-f", "fixed", "any"]);
    s.docker.ok(&["network", "rm", "inner"]);
    assert_eq!(s.fragments()["networks"], json!({}));
    assert!(s.host_children().is_empty());
}

#[test]
fn bad_input_shows_vlands_error_in_docker_and_changes_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::new();
    let args = s.create_args(&[], "lan");
    s.docker.ok(&args);
    s.docker.ok(&["run", "-d", "--name", "c1", "--net", "lan", BUSYBOX, "sleep", "600"]);
    wait_until(Duration::from_secs(20), || s.row("c1").is_some()).unwrap_or_else(|| panic!("c1 has no stats row: {}", s.log()));
    // Compared once vland has followed c1's child into the container (its endpoint `joined`).
    let joined = |s: &Setup| {
        s.fragments()["endpoints"]
            .as_object()
            .is_some_and(|e| !e.is_empty() && e.values().all(|f| f["origin"]["phase"]["state"] == "joined"))
    };
    wait_until(Duration::from_secs(20), || joined(&s))
        .unwrap_or_else(|| panic!("c1 was not taken over: {}\n{}", s.fragments_text(), s.log()));
    let saved = s.fragments_text();
    let children = |s: &Setup| (s.host_children(), s.docker.ok(&["network", "ls", "-q"]), s.docker.ok(&["ps", "-aq"]));
    let before = children(&s);

    // An unknown option and a bad value, both named at once, on another subnet.
    let err = s.docker.fails(&s.create_on("10.20.0.0/24", "10.20.0.0/25", "10.20.0.1", &["-o", "colour=red", "-o", "mtu=big"], "bad1"));
    assert!(err.contains("colour") && err.contains("mtu"), "{err}");
    // A subnet overlapping vland's network in Docker.
    let err = s.docker.fails(&s.create_on("10.10.10.0/25", "10.10.10.0/26", "10.10.10.1", &[], "bad2"));
    assert!(err.contains("overlaps"), "{err}\n{}", s.log());
    // An --ip-range outside the subnet: Docker's own check, or vland's, names it.
    let err = s.docker.fails(&s.create_on("10.30.0.0/24", "10.31.0.0/25", "10.30.0.1", &[], "bad3"));
    assert!(err.contains("10.31.0.0/25"), "{err}");
    // An address another container holds, and an aux address.
    let err = s.docker.fails(&["run", "-d", "--name", "dup", "--net", "lan", "--ip", "10.10.10.2", BUSYBOX, "sleep", "600"]);
    assert!(err.contains("already taken"), "{err}");
    let _ = s.docker.run(&["rm", "-f", "dup"]);
    let err = s.docker.fails(&["run", "-d", "--name", "dup2", "--net", "lan", "--ip", "10.10.10.101", BUSYBOX, "sleep", "600"]);
    assert!(err.contains("already taken"), "{err}");
    let _ = s.docker.run(&["rm", "-f", "dup2"]);

    assert_eq!(s.fragments_text(), saved, "a refused request changed vland's fragments");
    assert_eq!(children(&s), before);
    s.docker.ok(&["rm", "-f", "c1"]);
    s.docker.ok(&["network", "rm", "lan"]);
}

/// `docker run`s at once: while Docker moves one container's child from vland's namespace into
/// the container, other calls (and the link events of the move) apply. The child in flight is
/// moving, not missing: were it made again, the copy (same MAC) could not come up on the parent
/// and Docker would roll that container back.
#[test]
fn parallel_runs_each_get_their_own_child() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::new();
    let args = s.create_args(&[], "lan");
    s.docker.ok(&args);
    let names: Vec<String> = (1..=6).map(|i| format!("p{i}")).collect();
    let runs: Vec<(&String, std::process::Child)> = names
        .iter()
        .map(|n| {
            let mut cmd = s.docker.command(&["run", "-d", "--name", n, "--net", "lan", BUSYBOX, "sleep", "600"]);
            let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("cannot run docker");
            (n, child)
        })
        .collect();
    let failed: Vec<String> = runs
        .into_iter()
        .filter_map(|(n, child)| {
            let out = child.wait_with_output().expect("docker run");
            (!out.status.success()).then(|| format!("docker run {n}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", s.log());
    let mut addresses = std::collections::BTreeSet::new();
    for n in &names {
        let (addr, _, mac) = docker_address(&s.docker, n, "lan");
        let ns = s.netns_of(n);
        let link = ip::link(&ns, "eth0");
        assert_eq!(link.kind(), "macvlan");
        assert_eq!(mac, link.address, "{n}: docker inspect and the kernel disagree on the MAC");
        assert_eq!(ip::addrs(&ns, "-4", &["dev", "eth0"]).iter().map(ip::Addr::cidr).collect::<Vec<_>>(), [format!("{addr}/24")]);
        assert!(addresses.insert(addr.clone()), "{addr} given twice");
    }
    let all = wait_until(Duration::from_secs(20), || names.iter().all(|n| s.row(n).is_some()));
    assert!(all.is_some(), "not every container has a stats row: {}\n{}", s.stats(), s.log());
    assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    s.docker.ok(&rm);
    s.docker.ok(&["network", "rm", "lan"]);
    assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());
}

/// What this machine's kernel cannot do is said, not skipped: without 802.1Q, `-o parent=eth0.19`
/// fails in Docker with vland's message and leaves nothing; without IPVLAN, `-o ipvlan_mode=l3`
/// likewise. With a kernel that has them the two networks are made and a container joins each.
#[test]
fn a_vlan_parent_and_ipvlan_l3_as_far_as_this_kernel_goes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let missing = vland_tests::vm::missing_features(&["vlan_8021q", "ipvlan"]);
    let mut s = Setup::new();
    for (option, feature, name) in [("parent=eth0.19", "vlan_8021q", "vlan19"), ("ipvlan_mode=l3", "ipvlan", "l3net")] {
        let mut args = s.create_args(&[], name);
        if option.starts_with("parent=") {
            args[17] = option;
        } else {
            args.insert(16, "-o");
            args.insert(17, option);
        }
        let saved = s.fragment_tables();
        if missing.iter().any(|m| m == feature) {
            // Straight to the terminal: libtest captures the print macros, and this must show.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\ndocker_engine: this kernel lacks {feature} (per vland doctor): `-o {option}` with a real dockerd is not run here; its refusal is checked\n").as_bytes(),
            );
            let out = s.docker.run(&args);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                // A network makes no link until a container joins: the refusal comes at run.
                let err = s.docker.fails(&["run", "-d", "--name", name, "--net", name, BUSYBOX, "sleep", "600"]);
                assert!(err.contains("vland"), "{err}");
                let _ = s.docker.run(&["rm", "-f", name]);
                s.docker.ok(&["network", "rm", name]);
            } else {
                assert!(err.contains("vland"), "{err}");
            }
            assert_eq!(s.fragment_tables(), saved);
            assert!(s.host_children().is_empty(), "{:?}\n{}", s.host_children(), s.log());
        } else {
            s.docker.ok(&args);
            s.docker.ok(&["run", "-d", "--name", name, "--net", name, BUSYBOX, "sleep", "600"]);
            let ns = s.netns_of(name);
            let link = ip::link(&ns, "eth0");
            let want = if feature == "ipvlan" { "ipvlan" } else { "macvlan" };
            assert_eq!(link.kind(), want);
            assert_eq!(ip::addrs(&ns, "-4", &["dev", "eth0"]).iter().map(ip::Addr::cidr).collect::<Vec<_>>(), ["10.10.10.2/24"]);
            if feature == "vlan_8021q" {
                assert_eq!(ip::link(&s.host, "eth0.19").linkinfo.info_data.id, Some(19));
            } else {
                let routes = ip::routes(&ns, "-4", &["default"]);
                assert_eq!((routes.len(), routes[0].gateway.as_deref()), (1, None), "ipvlan l3: a `dev` default route");
            }
            s.docker.ok(&["rm", "-f", name]);
            s.docker.ok(&["network", "rm", name]);
            assert_eq!(s.fragments()["networks"], json!({}));
        }
    }
}
