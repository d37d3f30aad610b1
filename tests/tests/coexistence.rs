//! vland's programs share a device with other programs where the kernel allows: a foreign tcx
//! program on an endpoint's egress stays attached and running (tcx runs before classic filters;
//! this one lets frames go on), and vland's filter still counts exactly; a foreign XDP program on
//! an endpoint stays, while an older vland's XDP counter is removed.
use aya::Ebpf;
use aya::programs::tc::SchedClassifierLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use vland::netns;
use vland_tests::{Lab, filter_programs, ip};

/// The empty programs `cargo xtask build-ebpf` builds for the benchmarks: a stand-in for someone
/// else's programs.
fn foreign_programs() -> Ebpf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpfel-unknown-none/release/vlan-ebpf-bench");
    Ebpf::load_file(path).expect("run the tests with `cargo xtask test` (it builds the object)")
}

/// Runs `f` on a thread inside namespace `ns` (attaching resolves device names there).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> anyhow::Result<T> + Send) -> T {
    netns::run_in(&netns::open(&netns::named_path(ns)).unwrap(), f).unwrap()
}

/// One macvlan endpoint `web1`, applied.
fn one_endpoint_applied() -> (Lab, String, String, std::path::PathBuf) {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    (lab, host, ns, config)
}

#[test]
fn a_foreign_tcx_program_and_vlands_counters_share_an_endpoint() {
    let (mut lab, host, ns, config) = one_endpoint_applied();

    // Someone else's program on the same hook (as tcx), attached after vland's.
    let mut foreign = foreign_programs();
    let prog: &mut SchedClassifier = foreign.program_mut("empty_tc").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let link: SchedClassifierLink = in_netns(&ns, || {
        let id = prog.attach("eth0", TcAttachType::Egress)?;
        Ok(prog.take_link(id)?)
    });
    let names = || -> Vec<String> {
        in_netns(&ns, || {
            let (_, infos) = SchedClassifier::query_tcx("eth0", TcAttachType::Egress)?;
            Ok(infos.iter().map(|p| p.name_as_str().unwrap_or("").to_string()).collect())
        })
    };
    assert_eq!(names(), vec!["empty_tc"], "the foreign program on the tcx egress hook");
    assert_eq!(filter_programs(&ns, "eth0", "egress"), vec!["vland_egress"], "vland's classic egress filter");

    lab.static_gateway(&ns);
    // One ping first, so the gateway has resolved us (its ARP request would add a reply).
    lab.exec(&ns, &["ping", "-c", "1", "-W", "1", "172.16.10.1"]);
    let tx = |s: &serde_json::Value| s["endpoints"][0]["tx_packets"].as_u64().unwrap();
    let before = tx(&lab.stats(&host, &config));
    lab.exec(&ns, &["ping", "-c", "5", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    assert_eq!(tx(&lab.stats(&host, &config)) - before, 5, "vland's counter with a tcx program before it");

    // A second apply leaves the foreign program where it is, and its own filter as it was.
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(names(), vec!["empty_tc"]);
    assert_eq!(filter_programs(&ns, "eth0", "egress"), vec!["vland_egress"]);
    drop(link);
}

/// Pings the gateway `n` times from `ns` after one ping that lets the gateway resolve the
/// endpoint; the change in the endpoint's (rx, tx) counters over those `n`.
fn counted_pings(lab: &mut Lab, host: &str, ns: &str, config: &std::path::Path, n: u32) -> (u64, u64) {
    let counts =
        |s: &serde_json::Value| (s["endpoints"][0]["rx_packets"].as_u64().unwrap(), s["endpoints"][0]["tx_packets"].as_u64().unwrap());
    lab.exec(ns, &["ping", "-c", "1", "-W", "1", "172.16.10.1"]);
    let before = counts(&lab.stats(host, config));
    lab.exec(ns, &["ping", "-c", &n.to_string(), "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = counts(&lab.stats(host, config));
    (after.0 - before.0, after.1 - before.1)
}

#[test]
fn an_older_builds_xdp_counter_goes_and_someone_elses_xdp_program_stays() {
    let (mut lab, host, ns, config) = one_endpoint_applied();
    lab.static_gateway(&ns);
    let xdp_name = |lab: &Lab| ip::link(&lab.ns("web1"), "eth0").xdp_prog().map(|p| p.name.clone());
    assert_eq!(xdp_name(&lab), None, "vland counts in TC ingress: no XDP program on its children");
    assert_eq!(filter_programs(&ns, "eth0", "ingress"), vec!["vland_rx_tc"]);

    // A child as an older build left it: its generic-XDP counter attached over netlink (as those
    // builds did; a stand-in with the same name), and no ingress filter.
    let mut foreign = foreign_programs();
    let old: &mut Xdp = foreign.program_mut("vland_ingress").unwrap().try_into().unwrap();
    old.load().unwrap();
    let pin = std::path::PathBuf::from(format!("{}-old-xdp", lab.bpf_dir.display()));
    old.pin(&pin).unwrap();
    // nsenter rather than `ip netns exec`, which mounts a sysfs of its own over /sys (and so
    // hides bpffs).
    let netns = format!("--net=/run/netns/{ns}");
    vland_tests::run_ok("nsenter", &[&netns, "ip", "link", "set", "dev", "eth0", "xdpgeneric", "pinned", pin.to_str().unwrap()]);
    let _ = std::fs::remove_file(&pin);
    lab.exec(&ns, &["tc", "filter", "del", "dev", "eth0", "ingress"]);
    assert_eq!(xdp_name(&lab).as_deref(), Some("vland_ingress"));
    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("removed an older vland's XDP counter"), "{log}");
    assert_eq!(xdp_name(&lab), None, "apply removed the older build's XDP program");
    assert_eq!(filter_programs(&ns, "eth0", "ingress"), vec!["vland_rx_tc"]);
    assert_eq!(counted_pings(&mut lab, &host, &ns, &config, 3), (3, 3), "each frame counted once");

    // Someone else's XDP program (a bpf_link, as aya attaches): apply leaves it, and vland counts
    // what it lets through, exactly.
    let prog: &mut Xdp = foreign.program_mut("empty_xdp").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let link = in_netns(&ns, || {
        let id = prog.attach("eth0", XdpMode::Skb)?;
        Ok(prog.take_link(id)?)
    });
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(xdp_name(&lab).as_deref(), Some("empty_xdp"));
    assert_eq!(filter_programs(&ns, "eth0", "ingress"), vec!["vland_rx_tc"]);
    assert_eq!(counted_pings(&mut lab, &host, &ns, &config, 3), (3, 3), "counted behind a foreign XDP program");
    drop(link);
}
