//! vland's programs share a device with other programs where the kernel allows: a foreign tcx
//! program on an endpoint's egress stays attached and running (tcx runs before classic filters;
//! this one lets frames go on), and vland's filter still counts exactly.
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

#[test]
fn a_child_gets_its_xdp_program_back_but_someone_elses_stays() {
    let (mut lab, host, ns, config) = one_endpoint_applied();
    let xdp_name = |lab: &Lab| ip::link(&lab.ns("web1"), "eth0").xdp_prog().map(|p| p.name.clone());
    assert_eq!(xdp_name(&lab).as_deref(), Some("vland_ingress"));

    // Removed by hand: the next apply attaches it again.
    lab.exec(&ns, &["ip", "link", "set", "dev", "eth0", "xdpgeneric", "off"]);
    assert_eq!(xdp_name(&lab), None);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(xdp_name(&lab).as_deref(), Some("vland_ingress"));

    // Replaced by someone else's program: apply leaves it (and says so), and counts what the child
    // receives in TC ingress instead.
    lab.exec(&ns, &["ip", "link", "set", "dev", "eth0", "xdpgeneric", "off"]);
    let mut foreign = foreign_programs();
    let prog: &mut Xdp = foreign.program_mut("empty_xdp").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let link = in_netns(&ns, || {
        let id = prog.attach("eth0", XdpMode::Skb)?;
        Ok(prog.take_link(id)?)
    });
    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("another XDP program holds this child's XDP hook"), "{log}");
    assert_eq!(xdp_name(&lab).as_deref(), Some("empty_xdp"));
    assert_eq!(filter_programs(&ns, "eth0", "ingress"), vec!["vland_rx_tc"]);
    lab.exec(&ns, &["ping", "-c", "1", "-W", "1", "172.16.10.1"]);
    let rx = |lab: &mut Lab| lab.stats(&host, &config)["endpoints"][0]["rx_packets"].as_u64().unwrap();
    let before = rx(&mut lab);
    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = rx(&mut lab);
    assert!(after - before >= 3, "the replies count in TC ingress: {before} -> {after}");

    // Gone again: vland's XDP program returns and the TC fallback goes (nothing counts twice).
    drop(link);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(xdp_name(&lab).as_deref(), Some("vland_ingress"));
    assert!(filter_programs(&ns, "eth0", "ingress").is_empty());
}
