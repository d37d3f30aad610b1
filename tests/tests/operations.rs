//! vland run as a system daemon: the sd_notify protocol a `Type=notify` unit relies on, journal-
//! friendly logs, a real Prometheus scraping the daemon, the alert rules and dashboard queries
//! Prometheus accepts, and the Debian package unpacked and run.
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vland_tests::{Lab, ip, run, wait_until};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A process this test started, killed and reaped when the test ends, also on failure.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with_daemon_keys(config: &Path, keys: &str) {
    let text = std::fs::read_to_string(config).unwrap().replacen("[daemon]\n", &format!("[daemon]\n{keys}\n"), 1);
    std::fs::write(config, text).unwrap();
}

/// READY=1 once the first apply is done (the endpoint exists when it arrives), WATCHDOG=1 every
/// half WATCHDOG_USEC, STOPPING=1 on SIGTERM; under the journal, log lines carry neither a time
/// stamp (the journal adds its own) nor colour codes.
#[test]
fn systemd_notify_ready_after_the_first_apply_and_a_fed_watchdog() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    let socket_path = lab.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let daemon = lab.spawn_daemon_with(&host, &config, |cmd, log| {
        let meta = log.metadata().unwrap();
        cmd.env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .env("VLAND_LOG", "info");
    });
    let mut buf = [0u8; 4096];
    let mut recv = || -> String {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({e}): {}", std::fs::read_to_string(&daemon.log).unwrap_or_default()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.lines().any(|l| l == "READY=1"), "the first notification is not READY=1: {first:?}");
    assert!(first.lines().any(|l| l == "STATUS=first apply done"), "{first:?}");
    // Ready means applied: the endpoint's child is there with its address.
    let link = ip::link(&ns, "eth0");
    assert_eq!(link.ifalias.as_deref(), Some("vland:web1"), "READY=1 came before the apply finished");

    // WATCHDOG_USEC = 400 ms: fed every 200 ms, so ~10 in 2 s; fewer than 6 would let systemd kill it.
    let start = Instant::now();
    let mut pats = 0;
    while start.elapsed() < Duration::from_secs(2) {
        if recv().lines().any(|l| l == "WATCHDOG=1") {
            pats += 1;
        }
    }
    assert!((6..=14).contains(&pats), "{pats} WATCHDOG=1 in 2 s for a 400 ms watchdog");

    let log = daemon.log.clone();
    let stopped = daemon.stop();
    assert!(stopped.success());
    let mut rest = Vec::new();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "no STOPPING=1 on SIGTERM: {rest:?}");

    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.iter().any(|l| l.contains("vland running")), "{text}");
    for line in lines {
        assert!(!line.contains('\x1b'), "colour codes in the journal: {line:?}");
        assert!(!line.starts_with(|c: char| c.is_ascii_digit()), "a time stamp the journal already adds: {line:?}");
    }
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A Prometheus query through its HTTP API inside `ns`: the `data.result` array.
fn promql(ns: &str, addr: &str, query: &str) -> Option<serde_json::Value> {
    let body = vland_tests::http::get_in_netns(ns, addr, &format!("/api/v1/query?query={}", encode(query)))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].clone())
}

/// Debian's Prometheus, started in the lab host's namespace with a 1 s scrape interval, scrapes
/// the daemon: after 10 pings the PromQL query for the endpoint's tx packets gives exactly 10,
/// promtool accepts the exposition, Prometheus loads vland's alert rules, and every query of the
/// Grafana dashboard is valid PromQL that finds series.
#[test]
fn prometheus_scrapes_the_daemon_and_counts_ten_pings_exactly() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    with_daemon_keys(&config, "metrics_addr = \"127.0.0.1:9750\"");
    let daemon = lab.spawn_daemon(&host, &config);
    let metrics_up = wait_until(Duration::from_secs(30), || {
        vland_tests::http::get_in_netns(&host, "127.0.0.1:9750", "/metrics").is_some_and(|b| b.contains("endpoint=\"web1\""))
    });
    assert!(metrics_up.is_some(), "no metrics: {}", daemon.log_text());
    // Permanent neighbours both ways: no ARP, so the only frames the endpoint sends are the pings.
    lab.static_gateway(&ns);
    let ep_ip = ip::addrs(&ns, "-4", &["dev", "eth0"])[0].local.clone();
    let ep_mac = ip::link(&ns, "eth0").address;
    lab.exec(&lab.ns("sw"), &["ip", "neigh", "replace", &ep_ip, "lladdr", &ep_mac, "dev", "br0", "nud", "permanent"]);

    // The lab host's namespace is new: the port is free there whatever runs on the machine.
    let prom_addr = "127.0.0.1:9090";
    let prom_dir = lab.dir.join("prometheus");
    std::fs::create_dir_all(prom_dir.join("data")).unwrap();
    let prom_config = prom_dir.join("prometheus.yml");
    let rules = repo().join("monitoring/vland-alerts.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: vland\n    static_configs:\n      - targets: ['127.0.0.1:9750']\n",
            rules.display()
        ),
    )
    .unwrap();
    let prom_log = prom_dir.join("prometheus.log");
    let _prometheus = Reaped(
        Lab::command_in(&host, "prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prom_log).unwrap())
            .spawn()
            .expect("cannot start prometheus (apt install prometheus; cargo xtask test does)"),
    );
    let prom_text = || std::fs::read_to_string(&prom_log).unwrap_or_default();
    let up = wait_until(Duration::from_secs(60), || promql(&host, prom_addr, "up{job=\"vland\"}").is_some_and(|r| r[0]["value"][1] == "1"));
    assert!(up.is_some(), "Prometheus never scraped vland: {}", prom_text());

    let query = "vland_endpoint_packets_total{endpoint=\"web1\",direction=\"tx\"}";
    let before: u64 = promql(&host, prom_addr, query).unwrap()[0]["value"][1].as_str().unwrap().parse().unwrap();
    lab.exec(&ns, &["ping", "-c", "10", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let stats_tx = lab.stats(&host, &config)["endpoints"][0]["tx_packets"].as_u64().unwrap();
    assert_eq!(stats_tx, before + 10, "the static gateway leaves no ARP: 10 pings are 10 frames");
    let value = || promql(&host, prom_addr, query).and_then(|r| r[0]["value"][1].as_str().map(str::to_string));
    let seen = wait_until(Duration::from_secs(15), || value().as_deref() == Some(stats_tx.to_string().as_str()));
    assert!(seen.is_some(), "Prometheus has {:?}, vland stats {stats_tx}", value());

    // promtool's own check of what vland serves (format and naming conventions).
    let exposition = vland_tests::http::get_in_netns(&host, "127.0.0.1:9750", "/metrics").unwrap();
    let mut check = Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(checked.status.success(), "promtool check metrics: {}\n{exposition}", String::from_utf8_lossy(&checked.stderr));

    // The apply metrics the alert rules use.
    let success = promql(&host, prom_addr, "vland_last_apply_success").unwrap();
    assert_eq!(success[0]["value"][1], "1", "{success}");
    let oks = promql(&host, prom_addr, "vland_applies_total{outcome=\"ok\"}").unwrap();
    assert!(oks[0]["value"][1].as_str().unwrap().parse::<u64>().unwrap() >= 1, "{oks}");

    // Prometheus loaded the rules file and evaluates every rule without error.
    let body = vland_tests::http::get_in_netns(&host, prom_addr, "/api/v1/rules").unwrap();
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loaded: Vec<(String, String)> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["health"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(loaded.len(), 5, "{rules}");
    let evaluated = wait_until(Duration::from_secs(10), || {
        let body = vland_tests::http::get_in_netns(&host, prom_addr, "/api/v1/rules").unwrap_or_default();
        let r: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        r["data"]["groups"][0]["rules"].as_array().is_some_and(|rs| rs.iter().all(|r| r["health"] == "ok"))
    });
    assert!(evaluated.is_some(), "rules not healthy: {loaded:?}");

    // Every dashboard query, with its variables at "All", is valid PromQL; the endpoint and
    // apply panels find series (the lab has no trunk, so the trunk panels rightly find none).
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("monitoring/vland-dashboard.json")).unwrap()).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr =
                target["expr"].as_str().unwrap().replace("$__rate_interval", "1m").replace(['$'], "").replace("=~\"instance\"", "=~\".*\"");
            let expr = expr.replace("=~\"network\"", "=~\".*\"").replace("=~\"endpoint\"", "=~\".*\"");
            let result = promql(&host, prom_addr, &expr);
            assert!(result.is_some(), "panel {} has invalid PromQL: {expr}", panel["title"]);
            let title = panel["title"].as_str().unwrap();
            if !title.contains("Trunk") && !title.contains("drops") && !title.contains("Failed") {
                assert!(!result.unwrap().as_array().unwrap().is_empty(), "panel {title} finds no series: {expr}");
            }
        }
    }
    drop(daemon);
}

/// promtool accepts the shipped alert rules, and their unit tests (each alert fires on what it
/// is about and stays quiet otherwise) pass.
#[test]
fn the_alert_rules_pass_promtool() {
    let dir = repo().join("monitoring");
    let check = Command::new("promtool").args(["check", "rules", "vland-alerts.yml"]).current_dir(&dir).output().unwrap();
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 5 rules found"), "{}", String::from_utf8_lossy(&check.stdout));
    let test = Command::new("promtool").args(["test", "rules", "vland-alerts.test.yml"]).current_dir(&dir).output().unwrap();
    assert!(test.status.success(), "{}{}", String::from_utf8_lossy(&test.stdout), String::from_utf8_lossy(&test.stderr));
}

/// The Debian package `cargo xtask package` built ($VLAND_DEB, set by `cargo xtask test`):
/// unpacked with dpkg-deb, it holds what a system install needs, its unit passes
/// `systemd-analyze verify`, and its vland runs `--help` and `doctor`.
#[test]
fn the_debian_package_unpacks_and_runs() {
    let deb = std::env::var_os("VLAND_DEB").expect("VLAND_DEB is not set: run the tests with `cargo xtask test`, which builds the package");
    let lab = Lab::new();
    let root = lab.dir.join("unpacked");
    let out = run("dpkg-deb", &["-x", Path::new(&deb).to_str().unwrap(), root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in [
        "usr/sbin/vland",
        "lib/systemd/system/vland.service",
        "etc/vland/vland.toml",
        "usr/share/man/man8/vland.8.gz",
        "usr/share/man/man8/vland-stats.8.gz",
        "usr/share/bash-completion/completions/vland",
        "usr/share/zsh/vendor-completions/_vland",
        "usr/share/fish/vendor_completions.d/vland.fish",
        "usr/share/vland/grafana/vland-dashboard.json",
        "usr/share/vland/prometheus/vland-alerts.yml",
        "usr/share/doc/vland/copyright",
    ] {
        assert!(root.join(file).is_file(), "{file} is not in the package");
    }
    let conffiles = run("dpkg-deb", &["-f", Path::new(&deb).to_str().unwrap(), "Package"]);
    assert_eq!(String::from_utf8_lossy(&conffiles.stdout).trim(), "vland");
    let control = lab.dir.join("control");
    assert!(run("dpkg-deb", &["-e", Path::new(&deb).to_str().unwrap(), control.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(control.join("conffiles")).unwrap(), "/etc/vland/vland.toml\n");

    let vland = root.join("usr/sbin/vland");
    let help = Command::new(&vland).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: vland") && help.contains("/etc/vland/vland.toml") && help.contains("VLAND_CONFIG"), "{help}");
    let doctor = Command::new(&vland).args(["doctor", "--json"]).output().unwrap();
    assert!(doctor.status.success(), "{}", String::from_utf8_lossy(&doctor.stderr));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(report["features"]["macvlan"]["available"], true, "{report}");

    // The example config is one vland accepts as it is (it manages nothing until edited).
    let example = root.join("etc/vland/vland.toml");
    let parsed = vland::config::load(&example);
    assert!(parsed.is_ok_and(|c| c.networks.is_empty() && c.daemon.socket.is_some()), "the example config does not load");

    // The unit as installed, its commands pointed at the unpacked vland (systemd-analyze checks
    // they are executables): unknown keys, bad values and missing commands are all reported.
    let unit_dir = lab.dir.join("unit");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/vland.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("ExecReload=/usr/sbin/vland"), "{unit}");
    std::fs::write(unit_dir.join("vland.service"), unit.replace("/usr/sbin/vland", vland.to_str().unwrap())).unwrap();
    let verify = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(unit_dir.join("vland.service")).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && !said.contains("vland.service"), "systemd-analyze verify: {said}");
}

/// VLAND_CONFIG names the config for every command; `vland status` draws what the daemon manages
/// as a tree with the endpoint's address and state; `stats --network/--endpoint` filter and print
/// human units unless `--raw`; without any config, commands say where they looked.
#[test]
fn status_tree_stats_filters_and_the_config_from_the_environment() {
    let (mut lab, host, ns, config) = Lab::with_one_endpoint();
    with_daemon_keys(&config, &format!("socket = \"{}\"", lab.dir.join("h1.sock").display()));
    let daemon = lab.spawn_daemon(&host, &config);
    // No --config: the environment names it.
    let vland = |args: &[&str]| Lab::command_in(&host, vland_tests::vland_bin()).args(args).env("VLAND_CONFIG", &config).output().unwrap();
    let applied = wait_until(Duration::from_secs(30), || {
        let out = vland(&["status", "--json"]);
        out.status.success() && serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|s| s["last_apply"]["ok"] == true)
    });
    assert!(applied.is_some(), "no status: {}", daemon.log_text());
    let ep_ip = ip::addrs(&ns, "-4", &["dev", "eth0"])[0].local.clone();
    let ep_mac = ip::link(&ns, "eth0").address;

    let status = vland(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().any(|r| r == &["eth0"]), "the parent is the tree's root:\n{text}");
    assert!(rows.iter().any(|r| r == &["└─lan", "(macvlan)"]), "the network hangs from its parent:\n{text}");
    let endpoint_row = ["└─web1", ns.as_str(), "eth0", ep_ip.as_str(), "-", ep_mac.as_str(), "attached"];
    assert!(rows.iter().any(|r| r == &endpoint_row), "no row {endpoint_row:?}:\n{text}");
    let json: serde_json::Value = serde_json::from_slice(&vland(&["status", "--json"]).stdout).unwrap();
    let managed = &json["managed"][0];
    assert_eq!(
        (managed["parent"].as_str(), managed["vlans"][0]["networks"][0]["endpoints"][0]["ip"].as_str()),
        (Some("eth0"), Some(ep_ip.as_str())),
        "{json}"
    );
    assert!(json["pid"].is_number() && json["last_apply"].is_object(), "the earlier fields stay: {json}");

    lab.exec(&ns, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let table = |args: &[&str]| String::from_utf8_lossy(&vland(args).stdout).into_owned();
    let human = table(&["stats", "--network", "lan"]);
    assert!(human.contains("web1") && human.contains(" B "), "human units (bytes as `N B`):\n{human}");
    let raw = table(&["stats", "--endpoint", "web1", "--raw"]);
    let tx_bytes = lab.stats(&host, &config)["endpoints"][0]["tx_bytes"].as_u64().unwrap();
    assert!(raw.split_whitespace().any(|w| w == tx_bytes.to_string()), "--raw shows exact bytes {tx_bytes}:\n{raw}");
    assert!(!table(&["stats", "--network", "other"]).contains("web1"), "--network filters");
    let json: serde_json::Value = serde_json::from_slice(&vland(&["stats", "--json", "--endpoint", "nobody"]).stdout).unwrap();
    assert_eq!(json["endpoints"].as_array().map(Vec::len), Some(0), "{json}");

    // Nothing names a config and the default does not exist: the error says what to do.
    if !Path::new(vland::cli::DEFAULT_CONFIG).exists() {
        let out = Lab::command_in(&host, vland_tests::vland_bin()).arg("apply").env_remove("VLAND_CONFIG").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("no config at /etc/vland/vland.toml") && err.contains("VLAND_CONFIG"), "{err}");
    }
    drop(daemon);
}

/// What `apt install ./vland_*.deb` gives, in a VM (so this machine stays as it is): `dpkg -i`
/// installs it, the daemon starts from the installed files with the default config, applies an
/// endpoint added to /etc/vland/vland.toml, answers `vland status` and `vland reload` (the unit's
/// ExecReload), serves metrics promtool accepts, and `dpkg -r` keeps the edited conffile.
#[test]
fn the_package_installs_and_its_daemon_runs_in_the_vm() {
    let deb = std::env::var("VLAND_DEB").expect("VLAND_DEB is not set: run the tests with `cargo xtask test`, which builds the package");
    let xtask = std::env::var_os("VLAND_XTASK").expect("VLAND_XTASK is not set: run the tests with `cargo xtask test`");
    let lab = Lab::new();
    let script = lab.dir.join("install.sh");
    std::fs::write(
        &script,
        format!(
            r#"set -eu
dpkg -i {deb}
dpkg-query -W -f '${{Status}}\n' vland
test "$(command -v vland)" = /usr/sbin/vland
ip link set lo up
ip link add up0 type veth peer name up1
ip link set up0 up; ip link set up1 up
cat >> /etc/vland/vland.toml <<'TOML'
[networks.lan]
driver = "macvlan"
parent = "up0"
subnet = "172.16.10.0/24"
gateway = "172.16.10.1"

[endpoints.web1]
network = "lan"
netns = "web1"
TOML
vland 2>/tmp/vland.log &
pid=$!
i=0; until vland status 2>/dev/null | grep -q attached; do i=$((i+1)); [ $i -lt 150 ] || {{ cat /tmp/vland.log; exit 1; }}; sleep 0.2; done
vland status
ip -n web1 -br addr show eth0
vland reload
curl -sf http://127.0.0.1:9750/metrics > /tmp/metrics
promtool check metrics < /tmp/metrics
grep 'vland_endpoint_packets_total{{network="lan",endpoint="web1",direction="tx"}}' /tmp/metrics
kill $pid; wait $pid || true
vland down
dpkg -r vland
test ! -e /usr/sbin/vland
grep -q 'endpoints.web1' /etc/vland/vland.toml
echo INSTALL-TEST-PASSED
"#
        ),
    )
    .unwrap();
    let out = Command::new(xtask).args(["vm-run", "--timeout", "300", "--", "sh"]).arg(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("INSTALL-TEST-PASSED"), "{}\n{stdout}\n{stderr}", out.status);
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().any(|r| r.first() == Some(&"└─web1") && r.last() == Some(&"attached")), "{stdout}");
    assert!(stdout.contains("applied: ok"), "vland reload: {stdout}");
    assert!(stdout.contains("install ok installed"), "{stdout}");
}
