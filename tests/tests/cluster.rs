//! Cluster networks (`scope = "cluster"`): lab hosts on one bridge share one /24 through etcd
//! members (Debian's etcd-server) the test starts. Every assertion is on what the kernel of each
//! host shows and on what etcd records (through `vland cluster status`).
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Output;
use vland_tests::etcd::{CONTROL_NET, Etcd};
use vland_tests::{Lab, ip};

/// A lab of `hosts` hosts (h1, h2, ...) on the seed's segment, each with an address on the
/// control subnet to reach the `members` etcd members.
fn cluster_lab(hosts: usize, members: usize) -> (Lab, Etcd, Vec<String>) {
    let mut lab = Lab::new();
    lab.add_switch("172.16.10.1/24");
    let names = (1..=hosts).map(|i| lab.add_host(&format!("h{i}"), Some(&format!("{CONTROL_NET}.{}/24", 9 + i)))).collect();
    let etcd = Etcd::start(&lab, members);
    (lab, etcd, names)
}

struct Net<'a> {
    extra: &'a str,
    lease_ttl: u32,
}

const NET: Net<'static> = Net { extra: "", lease_ttl: 30 };

/// Host `h`'s config: the cluster table, network `lan` (172.16.10.0/24, cluster scope) and
/// `count` endpoints, ten per namespace (eth0..eth9), plus `more` tables.
fn host_config(lab: &Lab, etcd: &Etcd, h: usize, count: usize, net: &Net<'_>, more: &str) -> PathBuf {
    let mut body = format!(
        "[cluster]\netcd = {}\nhost = \"h{h}\"\nlease_ttl = {}\n\n[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\n\
         subnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\nscope = \"cluster\"\n{}\n",
        etcd.toml_urls(),
        net.lease_ttl,
        net.extra
    );
    for (e, (ns, ifname)) in endpoints(lab, h, count).into_iter().enumerate() {
        body.push_str(&format!("\n[endpoints.e{e}]\nnetwork = \"lan\"\nnetns = \"{ns}\"\nifname = \"{ifname}\"\n"));
    }
    body.push_str(more);
    lab.config(&format!("h{h}"), &body)
}

/// Where host `h`'s endpoints live: (namespace, ifname).
fn endpoints(lab: &Lab, h: usize, count: usize) -> Vec<(String, String)> {
    (0..count).map(|e| (lab.ns(&format!("h{h}n{}", e / 10)), format!("eth{}", e % 10))).collect()
}

fn expect_namespaces(lab: &mut Lab, h: usize, count: usize) {
    for n in 0..count.div_ceil(10) {
        lab.expect_ns(&format!("h{h}n{n}"));
    }
}

/// The IPv4 address the kernel shows on each of host `h`'s first `count` endpoints.
fn addresses(lab: &Lab, h: usize, count: usize) -> Vec<Ipv4Addr> {
    endpoints(lab, h, count)
        .iter()
        .map(|(ns, ifname)| {
            let a = ip::addrs(ns, "-4", &["dev", ifname]);
            assert_eq!(a.len(), 1, "{ns}/{ifname}: {a:?}");
            a[0].local.parse().unwrap()
        })
        .collect()
}

fn status(lab: &mut Lab, host: &str, config: &std::path::Path) -> Value {
    let text = lab.vland_ok(host, config, &["cluster", "status", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json printed non-JSON ({e}): {text}"))
}

/// Block -> (owner, used) of network `lan`.
fn blocks(status: &Value) -> BTreeMap<String, (String, Option<u64>)> {
    status["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["network"] == "lan")
        .flat_map(|n| n["blocks"].as_array().unwrap().clone())
        .map(|b| (b["block"].as_str().unwrap().to_string(), (b["host"].as_str().unwrap().to_string(), b["used"].as_u64())))
        .collect()
}

fn block_of(a: Ipv4Addr) -> String {
    format!("{}/28", Ipv4Addr::from(u32::from(a) & !0xf))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn one_host_claims_blocks_and_allocates_inside_them() {
    let (mut lab, etcd, hosts) = cluster_lab(2, 1);
    let (h1, h2) = (hosts[0].clone(), hosts[1].clone());
    expect_namespaces(&mut lab, 1, 3);
    lab.expect_ns("static");
    let static_ep = format!("\n[endpoints.fixed]\nnetwork = \"lan\"\nnetns = \"{}\"\nip = \"172.16.10.200\"\n", lab.ns("static"));
    let config1 = host_config(&lab, &etcd, 1, 3, &NET, &static_ep);
    lab.vland_ok(&h1, &config1, &["apply"]);

    // The static address claims its block for h1, and the others are allocated in it, lowest
    // free first: one block holds them all.
    let got = addresses(&lab, 1, 3);
    assert_eq!(got, ["172.16.10.192", "172.16.10.193", "172.16.10.194"].map(|a| a.parse::<Ipv4Addr>().unwrap()));
    assert_eq!(ip::addrs(&lab.ns("static"), "-4", &["dev", "eth0"])[0].local, "172.16.10.200");
    // MACs follow the addresses (unique across hosts as the addresses are).
    assert_eq!(ip::link(&endpoints(&lab, 1, 1)[0].0, "eth0").address, "02:42:ac:10:0a:c0");
    let s = status(&mut lab, &h1, &config1);
    let b = blocks(&s);
    assert_eq!(b.get("172.16.10.192/28"), Some(&("h1".to_string(), Some(4))), "{s:#}");
    assert_eq!(b.len(), 1, "{s:#}");
    let h1_status = s["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "h1").unwrap().clone();
    assert!(h1_status["lease_ttl"].as_i64().is_some_and(|t| t > 0), "{s:#}");
    // Applied: nothing left to do, and etcd is not asked for more.
    assert_eq!(lab.vland(&h1, &config1, &["plan"]).status.code(), Some(0));
    lab.vland_ok(&h1, &config1, &["apply"]);
    assert_eq!(blocks(&status(&mut lab, &h1, &config1)).len(), 1);

    // A second host whose network differs is told how.
    let other = Net { extra: "", ..NET };
    let config2 = host_config(&lab, &etcd, 2, 2, &other, "");
    let wrong = std::fs::read_to_string(&config2).unwrap().replace("gateway = \"172.16.10.1\"", "gateway = \"172.16.10.254\"");
    std::fs::write(&config2, wrong).unwrap();
    expect_namespaces(&mut lab, 2, 2);
    let out = lab.vland(&h2, &config2, &["apply"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("gateway is 172.16.10.254 here but 172.16.10.1 in the cluster"), "{}", text(&out));
    // A static address in h1's block is refused.
    lab.expect_ns("static2");
    let theirs = format!("\n[endpoints.fixed]\nnetwork = \"lan\"\nnetns = \"{}\"\nip = \"172.16.10.201\"\n", lab.ns("static2"));
    let config2 = host_config(&lab, &etcd, 2, 2, &NET, &theirs);
    let out = lab.vland(&h2, &config2, &["apply"]);
    assert!(text(&out).contains("lies in block 172.16.10.192/28, which host `h1` owns"), "{}", text(&out));
    // Without it, h2 gets the lowest unclaimed block (.0 is the network address, .1 the gateway).
    let config2 = host_config(&lab, &etcd, 2, 2, &NET, "");
    lab.vland_ok(&h2, &config2, &["apply"]);
    assert_eq!(addresses(&lab, 2, 2), ["172.16.10.2", "172.16.10.3"].map(|a| a.parse::<Ipv4Addr>().unwrap()));
    // Both hosts' endpoints reach each other across the segment.
    let (ns1, _) = &endpoints(&lab, 1, 1)[0];
    lab.exec(ns1, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "172.16.10.2"]);

    // h1 is alive: its blocks cannot be released.
    let out = lab.vland(&h2, &config2, &["cluster", "release-host", "h1"]);
    assert!(!out.status.success() && text(&out).contains("host `h1` is alive"), "{}", text(&out));

    // h1's endpoints removed: its emptied block goes back after two applies that found it empty.
    let config1 = host_config(&lab, &etcd, 1, 0, &NET, "");
    lab.vland_ok(&h1, &config1, &["apply"]);
    assert_eq!(blocks(&status(&mut lab, &h1, &config1)).get("172.16.10.192/28"), Some(&("h1".to_string(), Some(0))));
    lab.vland_ok(&h1, &config1, &["apply"]);
    let b = blocks(&status(&mut lab, &h1, &config1));
    assert_eq!(b.keys().collect::<Vec<_>>(), ["172.16.10.0/28"], "{b:?}");
}

/// Configs of `count` endpoints on `net` for hosts h1..h3, with their namespaces expected.
fn three_host_configs(lab: &mut Lab, etcd: &Etcd, count: usize, net: &Net<'_>) -> Vec<PathBuf> {
    let configs = (1..=3).map(|h| host_config(lab, etcd, h, count, net, "")).collect();
    for h in 1..=3 {
        expect_namespaces(lab, h, count);
    }
    configs
}

/// `vland apply` on every host at the same moment.
fn apply_at_once(hosts: &[String], configs: &[PathBuf]) -> Vec<Output> {
    std::thread::scope(|s| {
        let runs: Vec<_> = hosts
            .iter()
            .zip(configs)
            .map(|(host, config)| s.spawn(move || Lab::vland_command(host, &["apply"], Some(config)).output().unwrap()))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// The seed's two (here three) hosts without a hand-split range: all apply at once, 60
/// endpoints each, into one /24 that holds them all.
#[test]
fn three_hosts_applying_at_once_share_one_subnet_without_duplicates() {
    let (mut lab, etcd, hosts) = cluster_lab(3, 1);
    let count = 60;
    let configs = three_host_configs(&mut lab, &etcd, count, &NET);
    let outputs = apply_at_once(&hosts, &configs);
    for (h, (host, config)) in hosts.iter().zip(&configs).enumerate() {
        // Registered for the lab's clean-up `down`.
        let _ = lab.vland(host, config, &["plan"]);
        assert!(outputs[h].status.success(), "h{}: {}", h + 1, text(&outputs[h]));
    }
    let s = status(&mut lab, &hosts[0], &configs[0]);
    let owners = blocks(&s);
    let mut seen: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for h in 1..=3 {
        for a in addresses(&lab, h, count) {
            if let Some(other) = seen.insert(a, h) {
                panic!("{a} given to both h{other} and h{h}");
            }
            let (owner, _) = owners.get(&block_of(a)).unwrap_or_else(|| panic!("{a} is in no claimed block: {s:#}"));
            assert_eq!(owner, &format!("h{h}"), "{a} of h{h} is in another host's block");
        }
    }
    assert_eq!(seen.len(), 3 * count);
    // Across hosts: h1's first endpoint reaches h2's and h3's.
    let (ns1, _) = &endpoints(&lab, 1, 1)[0];
    for h in [2, 3] {
        let target = addresses(&lab, h, 1)[0].to_string();
        lab.exec(ns1, &["ping", "-c", "2", "-i", "0.2", "-W", "2", &target]);
    }
}

/// Three hosts racing for a range that cannot hold them all: the rest get a clear "pool
/// exhausted", nobody gets a duplicate.
#[test]
fn an_exhausted_pool_is_a_clear_error_and_never_a_duplicate() {
    let (mut lab, etcd, hosts) = cluster_lab(3, 1);
    let count = 30;
    // 172.16.10.64/26: four blocks, 64 addresses, for 90 endpoints.
    let net = Net { extra: "ip_range = \"172.16.10.64/26\"", ..NET };
    let configs = three_host_configs(&mut lab, &etcd, count, &net);
    let outputs = apply_at_once(&hosts, &configs);
    let mut seen = BTreeSet::new();
    let mut failed = 0;
    for (h, out) in outputs.iter().enumerate() {
        let _ = lab.vland(&hosts[h], &configs[h], &["plan"]);
        if out.status.success() {
            for a in addresses(&lab, h + 1, count) {
                assert!(seen.insert(a), "{a} given twice");
                assert!((64..128).contains(&(u32::from(a) & 0xff)), "{a} is outside the range");
            }
        } else {
            failed += 1;
            assert!(text(out).contains("pool exhausted: 172.16.10.64/26"), "h{}: {}", h + 1, text(out));
        }
    }
    assert!(failed >= 1, "90 endpoints fitted in 64 addresses?");
    assert!(seen.len() <= 64);
}

/// etcd down: what the owned blocks hold still applies; what needs a new block is a clear
/// error; with etcd back, it applies.
#[test]
fn with_etcd_down_owned_blocks_still_serve() {
    let (mut lab, mut etcd, hosts) = cluster_lab(1, 1);
    let h1 = hosts[0].clone();
    expect_namespaces(&mut lab, 1, 30);
    lab.vland_ok(&h1, &host_config(&lab, &etcd, 1, 5, &NET, ""), &["apply"]);
    etcd.kill(0);
    // Block 172.16.10.0/28 holds 14: 10 endpoints fit.
    let config = host_config(&lab, &etcd, 1, 10, &NET, "");
    lab.vland_ok(&h1, &config, &["apply"]);
    assert_eq!(addresses(&lab, 1, 10).last().unwrap().to_string(), "172.16.10.11");
    let config = host_config(&lab, &etcd, 1, 30, &NET, "");
    let out = lab.vland(&h1, &config, &["apply"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("etcd is unreachable") && text(&out).contains("needs a new address block"), "{}", text(&out));
    etcd.restart(0);
    etcd.wait_healthy(&[0]);
    lab.vland_ok(&h1, &config, &["apply"]);
    assert_eq!(addresses(&lab, 1, 30).len(), 30);
}

/// A host killed with -9: its lease expires; until then release-host refuses; after, it frees
/// the host's blocks for others.
#[test]
fn a_dead_hosts_blocks_are_released_only_after_its_lease_expired() {
    let (mut lab, etcd, hosts) = cluster_lab(2, 1);
    let (h1, h2) = (hosts[0].clone(), hosts[1].clone());
    let net = Net { lease_ttl: 4, ..NET };
    expect_namespaces(&mut lab, 2, 3);
    let config1 = host_config(&lab, &etcd, 1, 0, &net, "");
    let config2 = host_config(&lab, &etcd, 2, 3, &net, "");
    let daemon = lab.spawn_daemon(&h2, &config2);
    let applied = vland_tests::wait_until(std::time::Duration::from_secs(30), || {
        blocks(&status(&mut lab, &h1, &config1)).values().any(|(h, used)| h == "h2" && *used == Some(3))
    });
    assert!(applied.is_some(), "{}", daemon.log_text());
    // Alive well past its TTL while the daemon renews the lease.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let out = lab.vland(&h1, &config1, &["cluster", "release-host", "h2"]);
    assert!(text(&out).contains("host `h2` is alive"), "{}", text(&out));
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let expired = vland_tests::wait_until(std::time::Duration::from_secs(15), || {
        let s = status(&mut lab, &h1, &config1);
        s["hosts"].as_array().unwrap().iter().any(|h| h["host"] == "h2" && h["lease_ttl"].is_null())
    });
    assert!(expired.is_some(), "h2's lease outlived it");
    let out = lab.vland_ok(&h1, &config1, &["cluster", "release-host", "h2"]);
    assert!(out.contains("released host h2: 1 block(s)"), "{out}");
    assert!(blocks(&status(&mut lab, &h1, &config1)).is_empty());
    drop(daemon);
}

/// kill -9 at points spread over applies that claim blocks (between the claim in etcd and the
/// local record, among others), then one apply: the blocks etcd says h1 owns are exactly the
/// ones it records and uses, none leaked, no address twice.
#[test]
fn kill_9_between_the_claim_and_the_local_record_leaks_no_block() {
    let (mut lab, etcd, hosts) = cluster_lab(1, 1);
    let h1 = hosts[0].clone();
    let count = 40;
    expect_namespaces(&mut lab, 1, count);
    let configs: Vec<PathBuf> = [10, 25, count]
        .iter()
        .map(|n| {
            let c = host_config(&lab, &etcd, 1, *n, &NET, "");
            let moved = c.with_file_name(format!("h1-{n}.toml"));
            std::fs::rename(&c, &moved).unwrap();
            moved
        })
        .collect();
    let start = std::time::Instant::now();
    lab.vland_ok(&h1, &configs[2], &["apply"]);
    let full = start.elapsed();
    lab.vland_ok(&h1, &configs[2], &["down"]);
    for trial in 0..12 {
        let config = &configs[trial % 3];
        let delay = full.mul_f64(((trial * 7919) % 1000) as f64 / 1000.0);
        let mut child = Lab::vland_command(&h1, &["apply"], Some(config)).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
    }
    lab.vland_ok(&h1, &configs[2], &["apply"]);
    let got = addresses(&lab, 1, count);
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), count, "{got:?}");
    let owned: BTreeSet<String> = blocks(&status(&mut lab, &h1, &configs[2])).into_keys().collect();
    let used: BTreeSet<String> = got.iter().map(|a| block_of(*a)).collect();
    assert_eq!(owned, used, "blocks owned in etcd but not used by the endpoints");
    // 40 endpoints: three /28 blocks (14 + 16 + 16 addresses), no more.
    assert_eq!(owned.len(), 3, "{owned:?}");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(lab.dir.join("h1-state/state.json")).unwrap()).unwrap();
    let recorded: BTreeSet<String> =
        state["cluster_blocks"]["lan"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect();
    assert_eq!(recorded, owned);
}

/// A three-member etcd cluster; one member (the one each host would talk to first, then the
/// others) killed while the hosts apply: no error, no duplicate.
#[test]
fn one_etcd_member_killed_during_applies_changes_nothing() {
    let (mut lab, mut etcd, hosts) = cluster_lab(3, 3);
    let count = 30;
    for h in 1..=3 {
        expect_namespaces(&mut lab, h, count);
    }
    // Each host's first applies claim blocks while member 0 dies, then member 1 (0 back).
    for (round, (kill, step)) in [(0usize, 10usize), (1, 20), (2, count)].into_iter().enumerate() {
        let configs: Vec<PathBuf> = (1..=3).map(|h| host_config(&lab, &etcd, h, step, &NET, "")).collect();
        let outputs: Vec<Output> = std::thread::scope(|s| {
            let runs: Vec<_> = hosts
                .iter()
                .zip(&configs)
                .map(|(host, config)| s.spawn(move || Lab::vland_command(host, &["apply"], Some(config)).output().unwrap()))
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(20));
            etcd.kill(kill);
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for (h, out) in outputs.iter().enumerate() {
            let _ = lab.vland(&hosts[h], &configs[h], &["plan"]);
            assert!(out.status.success(), "round {round}, h{}: {}", h + 1, text(out));
        }
        etcd.restart(kill);
        etcd.wait_healthy(&[0, 1, 2]);
    }
    let mut seen = BTreeSet::new();
    for h in 1..=3 {
        for a in addresses(&lab, h, count) {
            assert!(seen.insert(a), "{a} given twice");
        }
    }
    assert_eq!(seen.len(), 3 * count);
}
