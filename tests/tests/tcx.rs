//! `counter_hook = "tcx"`: the children's counting programs attached through tcx instead of
//! clsact filters, on this machine's kernel (which has tcx; the VM suite's 6.1 kernel, which has
//! not, checks the refusal: see vm_runner.rs). What the kernel shows is read with BPF_PROG_QUERY
//! (tcx) and `tc -j filter show` (classic filters); counts come from `vland stats --json`.
use aya::Ebpf;
use serde_json::Value;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Duration;
use vland::netlink::tcx::{self, TcxHook};
use vland::netns;
use vland_tests::{Lab, ip, try_filters, wait_until};

const NET: &str = r#"
[networks.lan]
driver = "macvlan"
parent = "eth0"
subnet = "172.16.10.0/24"
gateway = "172.16.10.1"
"#;

/// The config body: NET with `counter_hook` (None: the key left out), web1 in namespace `web1`
/// (made by vland), web2 in `keep` (made by the lab, so `down` keeps it).
fn body(lab: &Lab, hook: Option<&str>) -> String {
    let key = hook.map(|h| format!("counter_hook = \"{h}\"\n")).unwrap_or_default();
    format!(
        "{NET}{key}\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{}\"\nip = \"172.16.10.3\"\n\n[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"{}\"\nip = \"172.16.10.4\"\n",
        lab.ns("web1"),
        lab.ns("keep")
    )
}

/// A lab with host h1 and two endpoints applied with `hook`: (lab, host, config, web1's and
/// web2's namespaces), the two with static neighbours of each other (no ARP in the counts).
fn applied(hook: Option<&str>) -> (Lab, String, std::path::PathBuf, String, String) {
    let (mut lab, host) = Lab::with_host();
    let ns1 = lab.expect_ns("web1");
    let ns2 = lab.add_ns("keep");
    let config = lab.config("h1", &body(&lab, hook));
    lab.vland_ok(&host, &config, &["apply"]);
    let (mac1, mac2) = (ip::link(&ns1, "eth0").address, ip::link(&ns2, "eth0").address);
    lab.exec(&ns1, &["ip", "neigh", "replace", "172.16.10.4", "lladdr", &mac2, "dev", "eth0", "nud", "permanent"]);
    lab.exec(&ns2, &["ip", "neigh", "replace", "172.16.10.3", "lladdr", &mac1, "dev", "eth0", "nud", "permanent"]);
    (lab, host, config, ns1, ns2)
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> anyhow::Result<T> + Send) -> T {
    netns::run_in(&netns::open(&netns::named_path(ns)).unwrap(), f).unwrap()
}

/// (name, id) of the programs on the tcx `hook` of `ifname` in `ns`, in the order they run.
fn tcx_programs(ns: &str, ifname: &str, hook: TcxHook) -> Vec<(String, u32)> {
    in_netns(ns, || {
        let index = nix::net::if_::if_nametoindex(ifname)?;
        Ok(tcx::query(index, hook)?.into_iter().map(|id| (vland::ebpf::program_name(id).unwrap_or_default(), id)).collect())
    })
}

fn tcx_names(ns: &str, hook: TcxHook) -> Vec<String> {
    tcx_programs(ns, "eth0", hook).into_iter().map(|(n, _)| n).collect()
}

/// The names in the classic TC filters of eth0's `hook` (none without a clsact qdisc).
fn filter_names(ns: &str, hook: &str) -> Vec<String> {
    try_filters(ns, "eth0", hook).unwrap_or_default().into_iter().map(|(n, _)| n).collect()
}

/// Asserts where vland's two counters are on both children: through tcx or as classic filters,
/// never both.
fn assert_counters_on(ns: &[&str], hook: &str) {
    for ns in ns {
        let (tcx_in, tcx_eg) = (tcx_names(ns, TcxHook::Ingress), tcx_names(ns, TcxHook::Egress));
        let (tc_in, tc_eg) = (filter_names(ns, "ingress"), filter_names(ns, "egress"));
        if hook == "tcx" {
            assert_eq!((tcx_in, tcx_eg), (vec!["vland_rx_tc".to_string()], vec!["vland_egress".to_string()]), "{ns}: tcx");
            assert!(tc_in.is_empty() && tc_eg.is_empty(), "{ns}: classic filters left: {tc_in:?} {tc_eg:?}");
        } else {
            assert_eq!((tc_in, tc_eg), (vec!["vland_rx_tc".to_string()], vec!["vland_egress".to_string()]), "{ns}: filters");
            assert!(tcx_in.is_empty() && tcx_eg.is_empty(), "{ns}: tcx programs left: {tcx_in:?} {tcx_eg:?}");
        }
    }
}

fn counter(stats: &Value, name: &str, field: &str) -> u64 {
    let e = stats["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == name).unwrap_or_else(|| panic!("no {name}"));
    e[field].as_u64().unwrap()
}

/// `n` pings web1 -> web2; the change of (web1 tx, web2 rx, web2 tx, web1 rx) packets and of
/// web1's tx bytes.
fn counted_pings(lab: &mut Lab, host: &str, config: &std::path::Path, ns1: &str, n: u32) -> ([u64; 4], u64) {
    let before = lab.stats(host, config);
    lab.exec(ns1, &["ping", "-c", &n.to_string(), "-i", "0.01", "-W", "1", "172.16.10.4"]);
    let after = lab.stats(host, config);
    let d = |ep: &str, f: &str| counter(&after, ep, f) - counter(&before, ep, f);
    ([d("web1", "tx_packets"), d("web2", "rx_packets"), d("web2", "tx_packets"), d("web1", "rx_packets")], d("web1", "tx_bytes"))
}

#[test]
fn tcx_counters_count_exactly_and_no_filter_is_attached() {
    let (mut lab, host, config, ns1, ns2) = applied(Some("tcx"));
    assert_counters_on(&[&ns1, &ns2], "tcx");
    // 84-byte IP packets + 14-byte Ethernet header.
    assert_eq!(counted_pings(&mut lab, &host, &config, &ns1, 10), ([10; 4], 980));
    // A second apply changes nothing (the programs are recognised as this build's).
    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !log.contains("plan:"), "{log}");
    // The counters keep counting without vland: nothing of vland's runs now, and no link holds them.
    assert_eq!(counted_pings(&mut lab, &host, &config, &ns1, 3), ([3; 4], 294));
}

#[test]
fn switching_tc_tcx_tc_hands_over_without_an_uncounted_frame_and_counts_stay_exact() {
    let (mut lab, host, config, ns1, ns2) = applied(None);
    assert_counters_on(&[&ns1, &ns2], "tc");
    assert_eq!(counted_pings(&mut lab, &host, &config, &ns1, 5), ([5; 4], 490));
    for hook in ["tcx", "tc"] {
        // A stream of pings while the apply switches the hooks: every frame is counted (the new
        // hook goes in before the old one goes; a frame in between may be counted by both).
        lab.config("h1", &body(&lab, Some(hook)));
        let before = lab.stats(&host, &config);
        let flood = Lab::command_in(&ns1, "ping")
            .args(["-c", "1500", "-i", "0.002", "-W", "1", "172.16.10.4"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let out = lab.vland(&host, &config, &["apply"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let pings = flood.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&pings.stdout);
        let sent: u64 = text.split(" packets transmitted").next().and_then(|s| s.rsplit('\n').next()).unwrap().trim().parse().unwrap();
        let after = lab.stats(&host, &config);
        let d = |ep: &str, f: &str| counter(&after, ep, f) - counter(&before, ep, f);
        let (tx, rx) = (d("web1", "tx_packets"), d("web2", "rx_packets"));
        eprintln!("switch to {hook}: {sent} requests sent, web1 counted {tx} sent, web2 {rx} received");
        assert!(tx >= sent && rx >= sent, "frames uncounted in the switch to {hook}: sent {sent}, counted {tx} / {rx}\n{log}");
        assert_counters_on(&[&ns1, &ns2], hook);
        // Once switched, exact again.
        assert_eq!(counted_pings(&mut lab, &host, &config, &ns1, 10), ([10; 4], 980), "after the switch to {hook}");
    }
}

#[test]
fn a_detached_tcx_counter_is_attached_again_by_the_next_apply() {
    let (mut lab, host, config, ns1, _ns2) = applied(Some("tcx"));
    let (_, id) = tcx_programs(&ns1, "eth0", TcxHook::Egress).into_iter().next().unwrap();
    // Someone detaches vland's egress counter (no netlink event tells anyone).
    in_netns(&ns1, || {
        let index = nix::net::if_::if_nametoindex("eth0")?;
        tcx::detach(index, TcxHook::Egress, std::os::fd::AsFd::as_fd(&tcx::program_fd(id)?))
    });
    assert!(tcx_names(&ns1, TcxHook::Egress).is_empty());
    let out = lab.vland(&host, &config, &["plan"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("attach the egress counter (tcx)"), "{out:?}");
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(tcx_programs(&ns1, "eth0", TcxHook::Egress), vec![("vland_egress".to_string(), id)]);
    assert_eq!(counted_pings(&mut lab, &host, &config, &ns1, 4), ([4; 4], 392));
}

#[test]
fn down_leaves_no_counter_of_vlands_and_no_program_loaded() {
    let (mut lab, host, config, ns1, ns2) = applied(Some("tcx"));
    let ids: Vec<u32> = [TcxHook::Ingress, TcxHook::Egress].iter().flat_map(|h| tcx_programs(&ns1, "eth0", *h)).map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 2);
    lab.vland_ok(&host, &config, &["down"]);
    assert!(!netns::is_namespace(&netns::named_path(&ns1)), "the namespace vland made is gone");
    // The lab's own namespace stays, with nothing of vland's on any of its links' tcx hooks.
    for link in ip::links(&ns2) {
        for hook in [TcxHook::Ingress, TcxHook::Egress] {
            assert!(tcx_programs(&ns2, &link.ifname, hook).is_empty(), "{} {hook:?}", link.ifname);
        }
    }
    // Nothing holds the programs any more: the kernel unloads them (after an RCU grace period).
    let loaded = || aya::programs::loaded_programs().filter_map(Result::ok).any(|p| ids.contains(&p.id()));
    assert!(wait_until(Duration::from_secs(5), || !loaded()).is_some(), "programs {ids:?} still loaded after down");
}

#[test]
fn a_bad_counter_hook_is_refused_with_the_key_named_and_nothing_is_made() {
    let (mut lab, host) = Lab::with_host();
    let ns1 = lab.expect_ns("web1");
    let _ = lab.add_ns("keep");
    let config = lab.config("h1", &body(&lab, Some("xdp")));
    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("networks.lan.counter_hook") && log.contains(r#"use "tc""#), "{log}");
    assert!(!netns::is_namespace(&netns::named_path(&ns1)), "nothing made");
    assert!(ip::try_link(&lab.ns("keep"), "eth0").is_none(), "nothing made");
}

#[test]
fn an_older_builds_tcx_counter_is_replaced_in_place_and_a_foreign_program_stays() {
    let (mut lab, host, config, ns1, _ns2) = applied(Some("tcx"));
    let ours = tcx_programs(&ns1, "eth0", TcxHook::Egress);
    // A stand-in for an older build's egress counter: the same object loaded again (its own maps,
    // under a scratch bpf dir), so a program named vland_egress with another id.
    let scratch = std::path::PathBuf::from(format!("{}-older", lab.bpf_dir.display()));
    std::fs::create_dir_all(&scratch).unwrap();
    let _cleanup = RemoveDir(scratch.clone());
    let pins = vland::ebpf::Pins::new(&scratch);
    let mut older = vland::ebpf::load_object_from(vland::ebpf::object().unwrap(), &pins, pins.ifindex_base(), 0).unwrap();
    let prog: &mut aya::programs::SchedClassifier = older.program_mut("vland_egress").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let older_id = prog.info().unwrap().id();
    let older_fd = prog.fd().unwrap().try_clone().unwrap();
    // As the older build left it: its program where this build's is, and someone else's after it.
    in_netns(&ns1, || {
        let index = nix::net::if_::if_nametoindex("eth0")?;
        let current = tcx::program_fd(ours[0].1)?;
        tcx::attach(index, TcxHook::Egress, older_fd.as_fd(), Some(std::os::fd::AsFd::as_fd(&current)))
    });
    let mut foreign =
        Ebpf::load_file(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpfel-unknown-none/release/vlan-ebpf-bench"))
            .expect("the benchmark object (cargo xtask build-ebpf builds it)");
    let empty: &mut aya::programs::SchedClassifier = foreign.program_mut("empty_tc").unwrap().try_into().unwrap();
    empty.load().unwrap();
    let empty_id = empty.info().unwrap().id();
    in_netns(&ns1, || {
        let index = nix::net::if_::if_nametoindex("eth0")?;
        tcx::attach(index, TcxHook::Egress, empty.fd()?.as_fd(), None)
    });
    let names_ids = || tcx_programs(&ns1, "eth0", TcxHook::Egress);
    assert_eq!(names_ids(), vec![("vland_egress".to_string(), older_id), ("empty_tc".to_string(), empty_id)]);

    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains(&format!("replace program {older_id} with this build's egress counter (tcx)")), "{log}");
    assert_eq!(names_ids(), vec![ours[0].clone(), ("empty_tc".to_string(), empty_id)], "replaced in its place; the foreign one stays");
    assert_eq!(counted_pings(&mut lab, &host, &config, &ns1, 5), ([5; 4], 490));
    // A switch to tc and down leave the foreign program alone.
    lab.config("h1", &body(&lab, None));
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(names_ids(), vec![("empty_tc".to_string(), empty_id)]);
    in_netns(&ns1, || {
        let index = nix::net::if_::if_nametoindex("eth0")?;
        tcx::detach(index, TcxHook::Egress, empty.fd()?.as_fd())
    });
    drop(older);
}

/// Removes a directory when dropped (a scratch bpf dir, also when the test fails).
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
