//! The daemon in the foreground: it applies, exits cleanly on SIGTERM, and leaves the links and
//! pinned programs counting after it is gone; `doctor` tells the kernel's features by trying.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vland_tests::{Lab, ip_json, run, vland_bin};

#[test]
fn counters_keep_counting_after_the_daemon_exits() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.expect_ns("web1");
    let body = format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{ns}\"\n"
    );
    let config = lab.config("h1", &body);
    // Registered for `down` on drop, even if the daemon never gets to apply.
    let _ = lab.vland(&host, &config, &["stats"]);

    let mut daemon = Command::new("nsenter")
        .args([&format!("--net=/run/netns/{host}"), vland_bin().to_str().unwrap(), "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let s = lab.stats(&host, &config);
        if !s["endpoints"].as_array().unwrap().is_empty() {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon did not apply within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = stats;
    // SIGTERM: a clean exit.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().unwrap();
    assert!(status.success(), "daemon exited with {status}");

    let l = &ip_json(&ns, &["link", "show", "dev", "eth0"])[0];
    assert!(l["xdp"]["mode"].as_u64().is_some(), "XDP program detached with the daemon: {l}");
    let before = lab.stats(&host, &config);
    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = lab.stats(&host, &config);
    let tx = |s: &serde_json::Value| s["endpoints"][0]["tx_packets"].as_u64().unwrap();
    // 3 echo requests at least (an ARP request may precede them).
    assert!(tx(&after) >= tx(&before) + 3, "before {before} after {after}");
}

#[test]
fn doctor_reports_what_the_kernel_really_does() {
    let out = run(vland_bin().to_str().unwrap(), &["doctor", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["features"];
    // Cross-check against iproute2 in a scratch namespace of our own.
    let lab = Lab::new();
    let probe = |kind: &[&str]| -> bool {
        let ns = lab.ns("probe");
        let _ = run("ip", &["netns", "add", &ns]);
        let mut args = vec!["-n", ns.as_str(), "link", "add"];
        args.extend_from_slice(kind);
        let ok = run("ip", &args).status.success();
        let _ = run("ip", &["netns", "del", &ns]);
        ok
    };
    assert_eq!(f["veth"]["available"], true);
    assert_eq!(f["dummy"]["available"], probe(&["d0", "type", "dummy"]), "{f}");
    assert_eq!(f["macvlan"]["available"], probe(&["v0", "type", "veth", "peer", "name", "v1"]) && probe_macvlan(&lab), "{f}");
    for key in ["ipvlan", "vlan_8021q", "xdp_native", "xdp_generic", "tcx", "btf", "bpffs", "bridge"] {
        assert!(f[key]["available"].is_boolean(), "{key} missing: {f}");
    }
}

fn probe_macvlan(lab: &Lab) -> bool {
    let ns = lab.ns("probe2");
    let _ = run("ip", &["netns", "add", &ns]);
    let _ = run("ip", &["-n", &ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    let ok = run("ip", &["-n", &ns, "link", "add", "m0", "link", "v0", "type", "macvlan", "mode", "bridge"]).status.success();
    let _ = run("ip", &["netns", "del", &ns]);
    ok
}
