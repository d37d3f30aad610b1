//! What a hostile local user or an unlucky operator can do to vland (issue 12): a state dir
//! others control, a tampered state file, a stats run without root or without its maps, two
//! instances on one bpf dir or one state dir, `ip netns exec` around vland.
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;
use vland_tests::{Lab, ip, run, run_ok, vland_bin, wait_until};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A config like `lab.config` but with the state dir at `state`.
fn config_with_state(lab: &Lab, name: &str, state: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = lab.config(name, body);
    let text = std::fs::read_to_string(&path).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let (_, rest) = rest.split_once('\n').unwrap();
    std::fs::write(&path, format!("{first}\nstate_dir = \"{}\"\n{rest}", state.display())).unwrap();
    path
}

/// D1: a state dir a normal user made (or can write to) is refused before anything changes.
#[test]
fn a_state_dir_another_user_controls_is_refused() {
    let (mut lab, host, ns, _) = Lab::with_one_endpoint();
    let body = format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\n\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{ns}\"\n"
    );
    // World-writable (no sticky bit) parent: anyone may rename the state dir away and plant another.
    let open = lab.dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = config_with_state(&lab, "open", &open.join("state"), &body);
    let out = lab.vland(&host, &config, &["apply"]);
    assert!(!out.status.success(), "applied with a state dir under a world-writable dir: {}", text(&out));
    assert!(text(&out).contains("writable by group or others"), "{}", text(&out));
    assert!(!open.join("state").exists(), "created the state dir anyway");
    assert!(!std::path::Path::new(&format!("/run/netns/{ns}")).exists(), "changed the kernel anyway");

    // A state dir owned by a normal user.
    let theirs = lab.dir.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let config = config_with_state(&lab, "theirs", &theirs, &body);
    let out = lab.vland(&host, &config, &["apply"]);
    assert!(!out.status.success() && text(&out).contains("owned by uid 65534"), "{}", text(&out));
    let out = lab.vland(&host, &config, &["down"]);
    assert!(!out.status.success() && text(&out).contains("owned by uid 65534"), "{}", text(&out));
}

/// D1: a crafted namespace name in the state file makes `down` refuse, and deletes nothing.
#[test]
fn down_never_deletes_by_a_crafted_name_in_the_state() {
    let (mut lab, host, _ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    let state_path = lab.dir.join("h1-state/state.json");
    let victim = lab.dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    // /run/netns/../../<victim>
    let crafted = format!("../..{}", victim.display());
    state["namespaces"].as_array_mut().unwrap().push(crafted.clone().into());
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = lab.vland(&host, &config, &["down"]);
    assert!(!out.status.success(), "down accepted a tampered state: {}", text(&out));
    assert!(text(&out).contains("tampered") && text(&out).contains("namespaces."), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // Repaired by hand, down works again (and the lab's own down cleans up).
    state["namespaces"].as_array_mut().unwrap().retain(|n| n != &crafted);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
}

/// D7: counters that cannot be read are an error naming the map and why, never zeros; the next
/// apply re-creates a deleted map and says so, and counting resumes.
#[test]
fn stats_fail_loudly_without_their_maps_and_apply_recreates_them() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    lab.static_gateway(&ns);

    // A normal user who may read the state (as before vland made state dirs 0700): the maps are
    // on bpffs, which is root's.
    std::fs::set_permissions(lab.dir.join("h1-state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(lab.dir.join("h1-state/state.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            vland_bin().to_str().unwrap(),
            "stats",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "stats as a normal user succeeded: {}", text(&out));
    assert!(
        text(&out).contains("ENDPOINT_TRAFFIC") && text(&out).contains("ermission denied") && text(&out).contains("root"),
        "{}",
        text(&out)
    );

    std::fs::remove_file(lab.bpf_dir_of("h1").join("ENDPOINT_TRAFFIC")).unwrap();
    let out = lab.vland(&host, &config, &["stats", "--json"]);
    assert!(!out.status.success(), "stats without the traffic map succeeded: {}", text(&out));
    assert!(text(&out).contains("ENDPOINT_TRAFFIC") && text(&out).contains("vland apply"), "{}", text(&out));

    let out = lab.vland(&host, &config, &["apply"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("re-created") && text(&out).contains("ENDPOINT_TRAFFIC"),
        "apply did not say it re-created the map: {}",
        text(&out)
    );
    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let stats = lab.stats(&host, &config);
    assert!(stats["endpoints"][0]["tx_packets"].as_u64().unwrap() >= 3, "not counting after the re-creation: {stats}");
}

/// D8: a bpf dir belongs to one state dir; a second state dir on it is refused and changes nothing.
#[test]
fn a_second_state_dir_on_one_bpf_dir_is_refused() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    lab.vland_ok(&host, &config, &["apply"]);
    let ns2 = lab.expect_ns("web2");
    let body = format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\n\n[endpoints.web2]\nnetwork = \"lan\"\nnetns = \"{ns2}\"\nip = \"172.16.10.30\"\n"
    );
    // Same bpf dir as h1's config, its own state dir.
    let h1_text = std::fs::read_to_string(&config).unwrap();
    let bpf_line = h1_text.lines().find(|l| l.starts_with("bpf_dir")).unwrap();
    let second = lab.dir.join("second.toml");
    std::fs::write(&second, format!("[daemon]\nstate_dir = \"{}\"\n{bpf_line}\n\n{body}", lab.dir.join("second-state").display())).unwrap();
    let out = lab.vland(&host, &second, &["apply"]);
    assert!(!out.status.success(), "a second state dir shared the bpf dir: {}", text(&out));
    assert!(text(&out).contains("belongs to state dir") && text(&out).contains("h1-state"), "{}", text(&out));
    assert!(!std::path::Path::new(&format!("/run/netns/{ns2}")).exists());
    let out = lab.vland(&host, &second, &["down"]);
    assert!(!out.status.success() && text(&out).contains("belongs to state dir"), "{}", text(&out));
    // The first instance's endpoint still runs its programs.
    assert!(vland_tests::ingress_counter(&ns, "eth0").is_some());
    let stats = lab.stats(&host, &config);
    assert_eq!(stats["endpoints"].as_array().unwrap().len(), 1, "{stats}");
}

/// D9: one state dir has one daemon: a second one (another socket) refuses, naming the first's PID.
#[test]
fn a_second_daemon_on_one_state_dir_refuses_naming_the_first() {
    let (mut lab, host, _ns, config) = Lab::with_one_endpoint();
    let with_socket = |name: &str| {
        let socket = lab.dir.join(format!("{name}.sock"));
        let text =
            std::fs::read_to_string(&config).unwrap().replacen("[daemon]\n", &format!("[daemon]\nsocket = \"{}\"\n", socket.display()), 1);
        let path = lab.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let (first_cfg, second_cfg) = (with_socket("d1"), with_socket("d2"));
    let first = lab.spawn_daemon(&host, &first_cfg);
    let up = wait_until(Duration::from_secs(30), || lab.dir.join("d1.sock").exists());
    assert!(up.is_some(), "{}", first.log_text());
    let log = lab.dir.join("d2.log");
    let mut second = Lab::vland_command(&host, &[], Some(&second_cfg)).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let exited = wait_until(Duration::from_secs(10), || second.try_wait().unwrap().is_some());
    if exited.is_none() {
        let _ = second.kill();
    }
    let status = second.wait().unwrap();
    let out = Output { status, stdout: Vec::new(), stderr: std::fs::read(&log).unwrap() };
    assert!(exited.is_some() && !out.status.success(), "a second daemon ran on the same state dir: {}", text(&out));
    assert!(text(&out).contains(&format!("PID {}", first.pid())), "{}", text(&out));
    assert!(first.stop().success());
    // The lock goes with the daemon: another one may start now.
    let again = lab.spawn_daemon(&host, &second_cfg);
    let up = wait_until(Duration::from_secs(30), || lab.dir.join("d2.sock").exists());
    assert!(up.is_some(), "{}", again.log_text());
}

/// D10: under `ip netns exec` /sys is private, so pins made there vanish with the process:
/// applying a trunk refuses and says why, and nothing is recorded or attached.
#[test]
fn apply_under_ip_netns_exec_refuses_instead_of_pinning_into_a_private_bpffs() {
    let mut lab = Lab::new();
    let (host, peer) = (lab.add_ns("h"), lab.add_ns("peer"));
    run_ok("ip", &["link", "add", "eth1", "netns", &host, "type", "veth", "peer", "name", "trunk", "netns", &peer]);
    lab.exec(&host, &["ip", "link", "set", "eth1", "up"]);
    let config = lab.config("h", "[trunks.eth1]\nallowed_vlans = [19]\n");
    let out = run("ip", &["netns", "exec", &host, vland_bin().to_str().unwrap(), "apply", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success(), "apply under ip netns exec succeeded: {}", text(&out));
    assert!(text(&out).contains("ip netns exec"), "{}", text(&out));
    assert!(ip::link(&host, "eth1").xdp.is_none(), "a trunk program was attached anyway");
    let state = std::fs::read_to_string(lab.dir.join("h-state/state.json")).unwrap_or_default();
    assert!(!state.contains("eth1"), "the state records a trunk: {state}");
    // The same apply through nsenter (vland's namespace, the host's mounts) works.
    lab.vland_ok(&host, &config, &["apply"]);
    assert!(ip::link(&host, "eth1").xdp.is_some());
}

/// GET /metrics on `addr` from inside `ns`, with deadlines: the body, or None.
fn scrape(ns: &str, addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let netns = vland::netns::open(&vland::netns::named_path(ns)).ok()?;
    vland::netns::run_in(&netns, || {
        let mut s = std::net::TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp.split_once("\r\n\r\n").map(|(_, body)| body.to_string()))
    })
    .ok()
    .flatten()
}

/// CPU seconds process `pid` has used.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// D2: 1000 idle connections to metrics_addr (opened by root here, from the daemon's namespace;
/// any local user can do the same) against a daemon started with the usual soft limit of 1024
/// open files: scrapes, `vland reload` and its apply keep working, the daemon stays idle and
/// holds a bounded number of descriptors.
#[test]
fn a_flood_of_idle_connections_leaves_scrapes_and_reload_working() {
    use std::os::unix::process::CommandExt;
    let (mut lab, host, _ns, config) = Lab::with_one_endpoint();
    let socket = lab.dir.join("flood.sock");
    let addr = "127.0.0.1:9750";
    let body = std::fs::read_to_string(&config).unwrap();
    let body = body.replacen("[daemon]\n", &format!("[daemon]\nsocket = \"{}\"\nmetrics_addr = \"{addr}\"\n", socket.display()), 1);
    std::fs::write(&config, body).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    let log = lab.dir.join("flood-daemon.log");
    let mut cmd = Lab::vland_command(&host, &[], Some(&config));
    cmd.stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = 1024.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let mut daemon = cmd.spawn().unwrap();
    let pid = daemon.id() as i32;
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let up = wait_until(Duration::from_secs(30), || socket.exists() && scrape(&host, addr).is_some_and(|b| b.contains("vland_endpoint")));
    assert!(up.is_some(), "daemon not serving: {}", log_text());

    let netns = vland::netns::open(&vland::netns::named_path(&host)).unwrap();
    let idle: Vec<std::net::TcpStream> = vland::netns::run_in(&netns, || {
        Ok((0..1000)
            .filter_map(|_| std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).ok())
            .collect())
    })
    .unwrap();
    assert!(idle.len() >= 900, "only {} connections opened", idle.len());

    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_seconds(pid) - cpu_before;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let scraped = wait_until(Duration::from_secs(10), || scrape(&host, addr).is_some_and(|b| b.contains("vland_endpoint")));
    let reload = run(
        "timeout",
        &[
            "20",
            "nsenter",
            &format!("--net=/run/netns/{host}"),
            vland_bin().to_str().unwrap(),
            "reload",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    eprintln!("flood of {}: daemon CPU {cpu:.2} s in 3 s, {fds} fds open, scrape after {scraped:?}", idle.len());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    let _ = daemon.wait();
    drop(idle);
    assert!(scraped.is_some(), "no scrape got through the flood: {}", log_text());
    assert!(reload.status.success(), "reload during the flood: {} {}", text(&reload), log_text());
    assert!(cpu < 0.5, "the daemon spun: {cpu:.2} CPU seconds in 3 s");
    assert!(fds < 200, "{fds} descriptors open: the flood is not capped");
}
