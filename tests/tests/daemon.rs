//! The daemon in the foreground: it applies, exits cleanly on SIGTERM, and leaves the links and
//! pinned programs counting after it is gone; `doctor` tells the kernel's features by trying.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vland_tests::{Lab, ip, run, vland_bin, wait_until};

#[test]
fn counters_keep_counting_after_the_daemon_exits() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    let daemon = lab.spawn_daemon(&host, &config);
    let applied = wait_until(Duration::from_secs(30), || !lab_stats(&host, &config)["endpoints"].as_array().unwrap().is_empty());
    assert!(applied.is_some(), "the daemon did not apply within 30 s: {}", daemon.log_text());
    // SIGTERM: a clean exit.
    let status = daemon.stop();
    assert!(status.success(), "daemon exited with {status}");

    assert!(vland_tests::ingress_counter(&ns, "eth0").is_some(), "counting program detached with the daemon");
    let before = lab.stats(&host, &config);
    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = lab.stats(&host, &config);
    let tx = |s: &serde_json::Value| s["endpoints"][0]["tx_packets"].as_u64().unwrap();
    // 3 echo requests at least (an ARP request may precede them).
    assert!(tx(&after) >= tx(&before) + 3, "before {before} after {after}");
}

#[test]
fn doctor_reports_what_the_kernel_really_does() {
    // Read before doctor runs: its eBPF probes mount bpffs when it is missing.
    let bpffs_mounted = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/sys/fs/bpf") && l.split(' ').nth(2) == Some("bpf"));
    let child = Command::new(vland_bin()).args(["doctor", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Its scratch pins are gone with it.
    assert!(!std::path::Path::new(&format!("/sys/fs/bpf/vland-doctor-{pid}")).exists(), "doctor left its pins behind");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let available = |key: &str| report["features"][key]["available"].as_bool().unwrap_or_else(|| panic!("{key} missing: {report}"));

    // What the kernel says without vland: iproute2 creating each kind of link in a scratch
    // namespace, the kernel's build config (when it shows it) and its version.
    let mut lab = Lab::new();
    let ns = lab.add_ns("probe");
    let creates = |args: &[&str]| {
        let mut full = vec!["-n", ns.as_str(), "link", "add"];
        full.extend_from_slice(args);
        run("ip", &full).status.success()
    };
    let veth = creates(&["v0", "type", "veth", "peer", "name", "v1"]);
    let want = [
        ("veth", veth),
        ("bridge", creates(&["b0", "type", "bridge"])),
        ("dummy", creates(&["d0", "type", "dummy"])),
        ("macvlan", veth && creates(&["m0", "link", "v0", "type", "macvlan", "mode", "bridge"])),
        // On the other veth end: macvlan and ipvlan cannot share a parent.
        ("ipvlan", veth && creates(&["i0", "link", "v1", "type", "ipvlan", "mode", "l2"])),
        ("vlan_8021q", veth && creates(&["link", "v0", "name", "v0.5", "type", "vlan", "id", "5"])),
        ("btf", kernel_config("DEBUG_INFO_BTF").unwrap_or_else(|| std::path::Path::new("/sys/kernel/btf/vmlinux").exists())),
        ("bpffs", bpffs_mounted),
    ];
    for (key, want) in want {
        assert_eq!(available(key), want, "{key}: {report}");
    }
    // eBPF on a veth: native XDP since 4.19, generic before that, tcx since 6.6 (NET_XGRESS).
    let bpf = kernel_config("BPF_SYSCALL").unwrap_or_else(|| std::path::Path::new("/proc/sys/kernel/unprivileged_bpf_disabled").exists());
    let version = kernel_version();
    assert_eq!(available("xdp_native"), bpf && veth && version >= (4, 19), "kernel {version:?}: {report}");
    assert_eq!(available("xdp_generic"), bpf && veth && version >= (4, 12), "kernel {version:?}: {report}");
    let xgress = kernel_config("NET_XGRESS").unwrap_or(true);
    assert_eq!(available("tcx"), bpf && veth && xgress && version >= (6, 6), "kernel {version:?}: {report}");
}

/// `CONFIG_<option>` from /proc/config.gz: built in or a module (None if the kernel does not show
/// its config).
fn kernel_config(option: &str) -> Option<bool> {
    let out = Command::new("zcat").arg("/proc/config.gz").output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().any(|l| l == format!("CONFIG_{option}=y") || l == format!("CONFIG_{option}=m")))
}

/// (major, minor) of the running kernel, from `uname -r`.
fn kernel_version() -> (u32, u32) {
    let release = String::from_utf8_lossy(&run("uname", &["-r"]).stdout).trim().to_string();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_restarted_daemon_keeps_programs_and_counters() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    let daemon = lab.spawn_daemon(&host, &config);
    let applied = || vland_tests::ingress_counter(&ns, "eth0").is_some();
    assert!(wait_until(Duration::from_secs(15), applied).is_some(), "{}", daemon.log_text());
    // No ARP in the counts: a static neighbour for the gateway.
    lab.static_gateway(&ns);
    let tx = |s: &serde_json::Value| (s["endpoints"][0]["tx_packets"].as_u64().unwrap(), s["endpoints"][0]["rx_packets"].as_u64().unwrap());
    let prog = vland_tests::ingress_counter(&ns, "eth0");

    lab.exec(&ns, &["ping", "-c", "5", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let before = tx(&lab.stats(&host, &config));
    assert!(daemon.stop().success());
    let daemon = lab.spawn_daemon(&host, &config);
    assert!(wait_until(Duration::from_secs(15), || daemon.log_text().contains("apply done")).is_some(), "{}", daemon.log_text());
    lab.exec(&ns, &["ping", "-c", "5", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = tx(&lab.stats(&host, &config));
    // Counters before the restart + the traffic after it = counters after.
    assert_eq!(after, (before.0 + 5, before.1 + 5));
    assert_eq!(vland_tests::ingress_counter(&ns, "eth0"), prog, "the restart re-attached the program");
}

#[test]
fn the_daemon_serves_the_map_counters_as_prometheus_metrics() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    // metrics_addr goes into the [daemon] table the lab wrote.
    let text = std::fs::read_to_string(&config).unwrap().replacen("[daemon]\n", "[daemon]\nmetrics_addr = \"127.0.0.1:9750\"\n", 1);
    std::fs::write(&config, text).unwrap();
    let daemon = lab.spawn_daemon(&host, &config);
    let scrape = || vland_tests::http::get_in_netns(&host, "127.0.0.1:9750", "/metrics");
    let up = wait_until(Duration::from_secs(15), || scrape().is_some_and(|b| b.contains("endpoint=\"web1\"")));
    assert!(up.is_some(), "no metrics: {}", daemon.log_text());
    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let metrics = scrape().unwrap();
    let stats = lab.stats(&host, &config);
    // The scrape and `vland stats` read the same maps: the same numbers.
    let tx = stats["endpoints"][0]["tx_packets"].as_u64().unwrap();
    let line = format!("vland_endpoint_packets_total{{network=\"lan\",endpoint=\"web1\",direction=\"tx\"}} {tx}");
    assert!(metrics.contains(&line), "missing `{line}` in:\n{metrics}");
    // Asked without `Accept: application/openmetrics-text`: the classic text format.
    assert!(metrics.contains("# TYPE vland_endpoint_bytes_total counter"), "{metrics}");
    assert!(!metrics.contains("# EOF"), "{metrics}");
    assert!(metrics.contains("\nvland_counters_readable 1\n"), "{metrics}");

    // A counter map removed behind vland's back: the scrape says so instead of looking quiet,
    // and the next apply (SIGHUP) re-creates the map.
    std::fs::remove_file(lab.bpf_dir_of("h1").join("ENDPOINT_TRAFFIC")).unwrap();
    let metrics = scrape().unwrap();
    assert!(metrics.contains("\nvland_counters_readable 0\n") && !metrics.contains("endpoint=\"web1\""), "{metrics}");
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let back = wait_until(Duration::from_secs(10), || scrape().is_some_and(|m| m.contains("\nvland_counters_readable 1\n")));
    assert!(back.is_some(), "the re-apply did not bring the counters back: {}", daemon.log_text());
}

#[test]
fn stats_watch_reports_per_second_rates() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    // About 20 echo requests a second for 3 s while stats watches.
    let mut ping =
        Lab::command_in(&ns, "ping").args(["-c", "60", "-i", "0.05", "-W", "1", "172.16.10.1"]).stdout(Stdio::null()).spawn().unwrap();
    let out = lab.vland_ok(&host, &config, &["stats", "--watch", "--json", "--interval", "0.5", "--count", "3"]);
    let _ = ping.wait();
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    let tx: Vec<f64> = lines.iter().map(|l| l["endpoints"][0]["tx_pps"].as_f64().unwrap()).collect();
    // Rates, not running totals (60 after 3 s); wide bounds, as this machine may be busy.
    assert!(tx.iter().all(|r| (1.0..45.0).contains(r)), "tx rates {tx:?} for ~20 pings/s");
    assert!(lines.iter().all(|l| l["interval_s"].as_f64().unwrap() >= 0.5));
}

#[test]
fn doctor_lists_the_namespace_devices_with_their_vlan_offload() {
    let mut lab = Lab::new();
    let ns = lab.add_ns("doc");
    lab.exec(&ns, &["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    let out = Lab::vland_command(&ns, &["doctor", "--json"], None).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report["devices"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["v0", "v1"], "devices of the namespace doctor runs in: {report}");
    // veth hands VLAN tags to its peer out of band: reported as rx VLAN offload.
    assert_eq!(report["devices"][0]["rx_vlan_offload"], true, "{report}");
}

#[test]
fn an_upgrade_swaps_the_programs_in_place_and_keeps_the_counters() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    lab.static_gateway(&ns);
    lab.exec(&ns, &["ping", "-c", "4", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let counts =
        |s: &serde_json::Value| (s["endpoints"][0]["tx_packets"].as_u64().unwrap(), s["endpoints"][0]["rx_packets"].as_u64().unwrap());
    let before = counts(&lab.stats(&host, &config));
    let prog = |lab: &Lab| vland_tests::ingress_counter(&lab.ns("web1"), "eth0").unwrap();
    let old_prog = prog(&lab);

    // Pretend the links were attached by another build: the next start must upgrade them.
    let state_path = lab.dir.join("h1-state/state.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["ebpf_object"] = "0000000000000000".into();
    std::fs::write(&state_path, serde_json::to_string(&state).unwrap()).unwrap();
    let out = lab.vland(&host, &config, &["apply"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("replacing the earlier build's eBPF programs"), "{log}");

    assert_ne!(prog(&lab), old_prog, "the ingress counting program was not replaced");
    lab.exec(&ns, &["ping", "-c", "4", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    assert_eq!(counts(&lab.stats(&host, &config)), (before.0 + 4, before.1 + 4), "counters before + traffic after");
}

#[test]
fn reload_and_status_go_through_the_daemons_control_socket() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    let socket = lab.dir.join("h1.sock");
    let text =
        std::fs::read_to_string(&config).unwrap().replacen("[daemon]\n", &format!("[daemon]\nsocket = \"{}\"\n", socket.display()), 1);
    std::fs::write(&config, text).unwrap();
    let daemon = lab.spawn_daemon(&host, &config);
    let status = || {
        let out = lab_vland(&host, &config, &["status", "--json"]);
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    };
    let applied = wait_until(Duration::from_secs(30), || status().is_some_and(|s| !s["last_apply"].is_null()));
    assert!(applied.is_some(), "no status from the daemon: {}", daemon.log_text());
    let first = status().unwrap();
    assert_eq!(first["pid"], daemon.pid());
    assert_eq!((first["last_apply"]["reason"].as_str(), first["last_apply"]["ok"].as_bool()), (Some("start"), Some(true)), "{first}");
    assert_eq!(first["last_apply"]["created"], 1, "{first}");
    let mode = std::fs::metadata(&socket).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap();
    assert_eq!(mode, 0o600, "root only");

    // The child removed by hand: reload puts it back before it returns.
    lab.exec(&ns, &["ip", "link", "del", "eth0"]);
    let out = lab.vland_ok(&host, &config, &["reload"]);
    assert!(out.contains("1 created"), "{out}");
    assert_eq!(ip::link(&ns, "eth0").ifalias.as_deref(), Some("vland:web1"));
    assert_eq!(status().unwrap()["last_apply"]["reason"], "control socket");

    // A second daemon on the same config (state dir and socket) refuses to start, naming the
    // first, and changes nothing.
    let second = lab_vland(&host, &config, &[]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains(&format!("another vland daemon (PID {})", daemon.pid())),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(status().is_some(), "the first daemon still answers");

    // Gone with its daemon.
    assert!(daemon.stop().success());
    assert!(!socket.exists(), "the socket outlived the daemon");
    assert!(!lab.vland(&host, &config, &["status"]).status.success(), "no daemon, no status");
}

/// `vland ARGS --config CONFIG` in namespace `host`, without a Lab (for closures); killed after
/// 30 s (a daemon that should have refused to start would otherwise run on).
fn lab_vland(host: &str, config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let vland = Lab::vland_command(host, args, Some(config));
    Command::new("timeout").arg("30").arg(vland.get_program()).args(vland.get_args()).output().unwrap()
}

/// `vland stats --json` in `host`, without a Lab (for closures).
fn lab_stats(host: &str, config: &std::path::Path) -> serde_json::Value {
    let out = lab_vland(host, config, &["stats", "--json"]);
    assert!(out.status.success(), "vland stats failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_and_status_answer_while_an_apply_waits_for_the_state_lock() {
    let (mut lab, host, _ns, config) = Lab::with_one_endpoint();
    let socket = lab.dir.join("h1.sock");
    let daemon_table = format!("[daemon]\nmetrics_addr = \"127.0.0.1:9750\"\nsocket = \"{}\"\n", socket.display());
    let text = std::fs::read_to_string(&config).unwrap().replacen("[daemon]\n", &daemon_table, 1);
    std::fs::write(&config, text).unwrap();
    let daemon = lab.spawn_daemon(&host, &config);
    let last_reason = || {
        let out = lab_vland(&host, &config, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        status["last_apply"]["reason"].as_str().map(String::from)
    };
    assert!(wait_until(Duration::from_secs(30), || last_reason().is_some()).is_some(), "{}", daemon.log_text());

    // Another vland holds the state lock (as `vland apply` would): the daemon's next apply waits.
    let lock = std::fs::File::options().write(true).open(lab.dir.join("h1-state/lock")).unwrap();
    lock.lock().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let waiting = wait_until(Duration::from_secs(15), || daemon.log_text().contains("another vland holds the state lock"));
    assert!(waiting.is_some(), "{}", daemon.log_text());

    // Meanwhile /metrics and the control socket answer, each within a few seconds.
    let (tx, rx) = std::sync::mpsc::channel();
    let ns = host.clone();
    std::thread::spawn(move || tx.send(vland_tests::http::get_in_netns(&ns, "127.0.0.1:9750", "/metrics")));
    let metrics = rx.recv_timeout(Duration::from_secs(5)).expect("/metrics stalled while an apply waited for the lock");
    assert!(metrics.is_some_and(|m| m.contains("endpoint=\"web1\"")), "{}", daemon.log_text());
    let start = Instant::now();
    assert_eq!(last_reason().as_deref(), Some("start"), "the SIGHUP apply cannot have finished");
    assert!(start.elapsed() < Duration::from_secs(5), "status took {:?}", start.elapsed());

    // The lock released, the apply goes on.
    lock.unlock().unwrap();
    let done = wait_until(Duration::from_secs(15), || last_reason().as_deref() == Some("SIGHUP"));
    assert!(done.is_some(), "{}", daemon.log_text());
    assert!(daemon.stop().success());
}
