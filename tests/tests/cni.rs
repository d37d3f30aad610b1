//! `vland-cni`, invoked as a container runtime does (CNI_* variables, the network config on
//! stdin), against a running daemon and real namespaces: ADD, CHECK, DEL, GC, STATUS, VERSION,
//! a conflist written for the reference macvlan plugin, and bad input.
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use vland_tests::{Daemon, Lab, ip, vland_bin, wait_until};

fn shim() -> PathBuf {
    let p = vland_bin().with_file_name("vland-cni");
    assert!(p.exists(), "{} is missing: run the tests with `cargo xtask test`", p.display());
    p
}

/// One CNI call: (exit code, what it printed on stdout as JSON, or null).
fn cni(command: &str, id: &str, netns: &str, ifname: &str, args: &str, conf: &Value) -> (i32, Value) {
    plugin(Command::new(shim()), command, id, netns, ifname, args, conf)
}

fn plugin(mut cmd: Command, command: &str, id: &str, netns: &str, ifname: &str, args: &str, conf: &Value) -> (i32, Value) {
    let mut child = cmd
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_ARGS", args)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")) };
    (out.status.code().unwrap(), value)
}

fn ok(command: &str, id: &str, netns: &str, conf: &Value) -> Value {
    let (code, out) = cni(command, id, netns, "eth0", "", conf);
    assert_eq!(code, 0, "{command} {id} failed: {out}");
    out
}

fn refused(command: &str, id: &str, netns: &str, args: &str, conf: &Value, want_code: u64, want_text: &str) {
    let (code, out) = cni(command, id, netns, "eth0", args, conf);
    assert_ne!(code, 0, "{command} should fail: {out}");
    assert_eq!(out["code"], want_code, "{out}");
    let text = format!("{} {}", out["msg"], out["details"]);
    assert!(text.contains(want_text), "`{want_text}` not in {out}");
}

/// The lab's daemon with a control socket, and the TOML network `lan` (the seed's segment).
/// A lab host running the daemon with `networks`; its socket is in the lab's directory (removed
/// with the lab, even when the test fails).
fn daemon_lab(networks: &str) -> (Lab, String, PathBuf, Daemon, PathBuf) {
    let (mut lab, host) = Lab::with_host();
    let socket = lab.dir.join("vland.sock");
    let config = lab.config("h1", &format!("socket = \"{}\"\n\n{networks}", socket.display()));
    let daemon = start(&mut lab, &host, &config, &socket);
    (lab, host, config, daemon, socket)
}

fn start(lab: &mut Lab, host: &str, config: &Path, socket: &Path) -> Daemon {
    let daemon = lab.spawn_daemon(host, config);
    let up = wait_until(Duration::from_secs(30), || std::os::unix::net::UnixStream::connect(socket).is_ok());
    assert!(up.is_some(), "the daemon did not listen on {}: {}", socket.display(), daemon.log_text());
    daemon
}

const LAN: &str = "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\nip_range = \"172.16.10.0/25\"\ngateway = \"172.16.10.1\"\n";

fn fragments(config_dir: &Path) -> Value {
    let text = std::fs::read_to_string(config_dir.join("h1-state/frontends.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).unwrap()
}

#[test]
fn add_check_del_status_against_a_namespace_and_across_a_restart() {
    let (mut lab, host, config, daemon, socket) = daemon_lab(LAN);
    let conf = json!({"cniVersion": "1.1.0", "name": "lan", "type": "vland", "socket": socket, "network": "lan"});
    let c1 = lab.add_ns("c1");
    let netns = format!("/run/netns/{c1}");
    let id = "0123456789abcdef0123456789abcdef";

    let (code, version) = cni("VERSION", "", "", "", "", &json!({"cniVersion": "1.0.0"}));
    assert_eq!((code, &version["cniVersion"]), (0, &json!("1.0.0")));
    assert_eq!(version["supportedVersions"], json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    ok("STATUS", "", "", &conf);

    let (code, result) = cni("ADD", id, &netns, "eth0", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0", &conf);
    assert_eq!(code, 0, "{result}");
    // The seed's first address of the lower half, as Docker would give.
    assert_eq!(result["ips"], json!([{"address": "172.16.10.2/24", "gateway": "172.16.10.1", "interface": 0}]));
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][0]["sandbox"], json!(netns));
    assert_eq!(result["interfaces"][0]["mac"], json!(ip::link(&c1, "eth0").address));
    assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0", "gw": "172.16.10.1"}]));
    assert_eq!(ip::addrs(&c1, "-4", &["dev", "eth0"]).iter().map(|a| a.cidr()).collect::<Vec<_>>(), ["172.16.10.2/24"]);
    assert_eq!(ip::link(&c1, "eth0").kind(), "macvlan");
    let default = ip::routes(&c1, "-4", &["default"]);
    assert_eq!(default[0].gateway.as_deref(), Some("172.16.10.1"));

    // Counted like any endpoint, named by its container and pod.
    // Permanent neighbours both ways: no ARP in the counts.
    lab.static_gateway(&c1);
    let mac = ip::link(&c1, "eth0").address;
    lab.exec(&lab.ns("sw"), &["ip", "neigh", "replace", "172.16.10.2", "lladdr", &mac, "dev", "br0", "nud", "permanent"]);
    let row = |s: &Value| s["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == "cni-0123456789ab-eth0").cloned().unwrap();
    let before = row(&lab.stats(&host, &config));
    assert_eq!(before["owner"], "pod default/web-0 (container 0123456789ab)");
    lab.exec(&c1, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = row(&lab.stats(&host, &config));
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!((delta("tx_packets"), delta("rx_packets")), (3, 3), "{before} {after}");
    let table = lab.vland_ok(&host, &config, &["stats"]);
    assert!(table.contains("pod default/web-0 (container 0123456789ab)"), "{table}");

    ok("CHECK", id, &netns, &conf);
    // CHECK compares with the kernel: an address removed by hand is drift.
    lab.exec(&c1, &["ip", "addr", "flush", "dev", "eth0"]);
    refused("CHECK", id, &netns, "", &conf, 100, "172.16.10.2");
    lab.vland_ok(&host, &config, &["reload"]);
    ok("CHECK", id, &netns, &conf);
    refused("CHECK", "not-a-container", &netns, "", &conf, 3, "no such attachment");

    // `vland apply` of the file keeps what CNI made (the effective config includes it).
    let applied = lab.vland(&host, &config, &["plan"]);
    assert_eq!(applied.status.code(), Some(0), "plan wants changes: {}", String::from_utf8_lossy(&applied.stdout));

    // kill -9 and a restart: the daemon forgets nothing (the fragments are on disk).
    // containerd sends DEL without CNI_NETNS.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    let daemon = start(&mut lab, &host, &config, &socket);
    ok("CHECK", id, &netns, &conf);
    ok("DEL", id, "", &conf);
    assert!(ip::try_link(&c1, "eth0").is_none(), "DEL left the child");
    assert!(lab.stats(&host, &config)["endpoints"].as_array().unwrap().is_empty());
    assert_eq!(fragments(&lab.dir)["endpoints"], json!({}));
    // Idempotent.
    ok("DEL", id, "", &conf);
    drop(daemon);
    refused("STATUS", "", "", "", &conf, 50, "does not answer");
    refused("ADD", id, &netns, "", &conf, 11, "does not answer");
}

#[test]
fn a_conflist_for_the_reference_macvlan_plugin_works_with_only_type_changed_and_gc_removes_the_rest() {
    let (mut lab, host, config, _daemon, socket) = daemon_lab("");
    // As the reference plugins' docs write it; `socket` only because this lab's daemon is not
    // on the default /run/vland.sock.
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "mynet",
        "plugins": [{
            "type": "vland",
            "master": "eth0",
            "mode": "bridge",
            "ipam": {
                "type": "host-local",
                "subnet": "172.16.10.0/24",
                "rangeStart": "172.16.10.200",
                "rangeEnd": "172.16.10.216",
                "gateway": "172.16.10.1",
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        }]
    });
    // A runtime passes each plugin its config with the list's name and version.
    let mut conf = conflist["plugins"][0].clone();
    conf["name"] = conflist["name"].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    conf["socket"] = json!(socket);
    let (c1, c2) = (lab.add_ns("c1"), lab.add_ns("c2"));

    // The conflist really is one for the reference plugin: CNI's macvlan (with host-local),
    // run in the lab's host, gives the same first address. Its own name keeps host-local's
    // store fresh; the store goes afterwards.
    vland_tests::engines::ensure_packages("/usr/lib/cni/macvlan", &["containernetworking-plugins"]);
    let mut reference = conf.clone();
    reference["type"] = json!("macvlan");
    reference["name"] = json!(format!("{}mynet", lab.prefix));
    let c3 = lab.add_ns("c3");
    let in_host = || Lab::command_in(&host, "/usr/lib/cni/macvlan");
    let (code, r) = plugin(in_host(), "ADD", "c3", &format!("/run/netns/{c3}"), "eth0", "", &reference);
    assert_eq!((code, &r["ips"][0]["address"]), (0, &json!("172.16.10.200/24")), "{r}");
    assert_eq!(plugin(in_host(), "DEL", "c3", &format!("/run/netns/{c3}"), "eth0", "", &reference).0, 0);
    let _ = std::fs::remove_dir_all(format!("/var/lib/cni/networks/{}mynet", lab.prefix));

    let r1 = ok("ADD", "c1", &format!("/run/netns/{c1}"), &conf);
    let r2 = ok("ADD", "c2", &format!("/run/netns/{c2}"), &conf);
    assert_eq!(r1["ips"][0]["address"], "172.16.10.200/24");
    assert_eq!(r2["ips"][0]["address"], "172.16.10.201/24");
    assert_eq!(ip::link(&c2, "eth0").kind(), "macvlan");
    lab.exec(&c1, &["ping", "-c", "1", "-W", "2", "172.16.10.1"]);
    lab.exec(&c1, &["ping", "-c", "1", "-W", "2", "172.16.10.201"]);

    // GC: c2 is not a valid attachment any more.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    ok("GC", "", "", &gc);
    assert!(ip::try_link(&c2, "eth0").is_none(), "GC left c2's child");
    assert!(ip::try_link(&c1, "eth0").is_some(), "GC removed a valid attachment");
    ok("DEL", "c1", &format!("/run/netns/{c1}"), &conf);
    // The inline network goes with its last attachment.
    assert_eq!(fragments(&lab.dir)["networks"], json!({}));
    let _ = (host, config);
}

#[test]
fn bad_requests_get_the_specs_errors_and_change_nothing() {
    let (mut lab, _host, _config, _daemon, socket) = daemon_lab(LAN);
    let conf = json!({"cniVersion": "1.1.0", "name": "lan", "type": "vland", "socket": socket, "network": "lan"});
    let (c1, c2) = (lab.add_ns("c1"), lab.add_ns("c2"));
    let (n1, n2) = (format!("/run/netns/{c1}"), format!("/run/netns/{c2}"));
    ok("ADD", "c1", &n1, &conf);
    let saved = fragments(&lab.dir);

    refused("ADD", "", &n2, "", &conf, 4, "CNI_CONTAINERID is missing");
    refused("ADD", "c2", "/proc/self/ns/mnt", "", &conf, 4, "not a network namespace");
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.2.0");
    refused("ADD", "c2", &n2, "", &old, 1, "supports CNI versions");
    let mut unknown = conf.clone();
    unknown["colour"] = json!("red");
    refused("ADD", "c2", &n2, "", &unknown, 7, "unknown key `colour`");
    refused(
        "ADD",
        "c2",
        &n2,
        "",
        &json!({"cniVersion": "1.1.0", "name": "x", "socket": socket, "network": "nope"}),
        7,
        "no network `nope`",
    );
    let inline = |ipam: Value| json!({"cniVersion": "1.1.0", "name": "other", "type": "vland", "socket": socket, "master": "eth0", "mtu": "big", "ipam": ipam});
    // Every problem at once: a wrong type and a range outside the subnet.
    let (code, out) = cni("ADD", "c2", &n2, "eth0", "", &inline(json!({"subnet": "10.9.0.0/24", "rangeStart": "10.8.0.1"})));
    assert_eq!((code, &out["code"]), (1, &json!(7)), "{out}");
    assert!(out["details"].as_str().unwrap().contains("`mtu` must be a whole number"), "{out}");
    assert!(out["details"].as_str().unwrap().contains("rangeStart 10.8.0.1 is outside subnet 10.9.0.0/24"), "{out}");
    // The same parent rules as the file's: a subnet overlapping `lan` on eth0 is refused.
    let overlapping = json!({"cniVersion": "1.1.0", "name": "other", "type": "vland", "socket": socket, "master": "eth0",
        "ipam": {"type": "host-local", "subnet": "172.16.10.0/25"}});
    refused("ADD", "c2", &n2, "", &overlapping, 7, "overlap");
    // An address another endpoint holds.
    refused("ADD", "c2", &n2, "IP=172.16.10.2", &conf, 7, "address 172.16.10.2 is already taken by endpoint cni-c1-eth0");
    refused("ADD", "c2", &n2, "IP=172.16.10.1", &conf, 7, "gateway");
    let (code, out) = cni("ADD", "c2", &n2, "lo", "", &conf);
    assert_eq!((code, &out["code"]), (1, &json!(7)), "{out}");

    assert!(ip::try_link(&c2, "eth0").is_none(), "a refused ADD left a child");
    assert_eq!(fragments(&lab.dir), saved, "a refused ADD changed the fragments");
    assert_eq!(ip::first_addr(&c1, "-4", "eth0").as_deref(), Some("172.16.10.2"));
}

/// Calls a runtime makes at once reach the daemon together and share an apply: every one still
/// gets its own answer, with distinct addresses, and the deletions leave nothing.
#[test]
fn twenty_concurrent_adds_and_dels_all_succeed_with_distinct_addresses_and_leave_nothing() {
    const N: usize = 20;
    let (mut lab, host, config, daemon, socket) = daemon_lab(LAN);
    let conf = json!({"cniVersion": "1.1.0", "name": "lan", "type": "vland", "socket": socket, "network": "lan"});
    let namespaces: Vec<String> = (0..2 * N).map(|i| lab.add_ns(&format!("p{i}"))).collect();
    // Each call from a thread of its own, as N runtimes' plugin processes: (index, exit code, output).
    let at_once = |calls: Vec<(&'static str, usize)>| -> Vec<(usize, i32, Value)> {
        std::thread::scope(|s| {
            let threads: Vec<_> = calls
                .into_iter()
                .map(|(command, i)| {
                    let (conf, netns) = (&conf, format!("/run/netns/{}", namespaces[i]));
                    s.spawn(move || {
                        let (code, out) = cni(command, &format!("pod{i}"), &netns, "eth0", "", conf);
                        (i, code, out)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    };
    let added = |results: &[(usize, i32, Value)]| -> Vec<String> {
        results
            .iter()
            .map(|(i, code, out)| {
                assert_eq!(*code, 0, "ADD pod{i} failed: {out}");
                let address = out["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no address for pod{i}: {out}")).to_string();
                // The answer is this call's own: the kernel shows that address in its namespace.
                let shown: Vec<String> = ip::addrs(&namespaces[*i], "-4", &["dev", "eth0"]).iter().map(|a| a.cidr()).collect();
                assert_eq!(shown, std::slice::from_ref(&address), "pod{i}");
                address
            })
            .collect()
    };
    let deleted = |results: &[(usize, i32, Value)]| {
        for (i, code, out) in results {
            assert_eq!(*code, 0, "DEL pod{i} failed: {out}");
            assert!(ip::try_link(&namespaces[*i], "eth0").is_none(), "DEL pod{i} left its child");
        }
    };

    // N ADDs at once.
    let first = at_once((0..N).map(|i| ("ADD", i)).collect());
    let mut addresses = added(&first);
    // Half of them go while N/2 others come, all at once.
    let mixed = at_once((0..N / 2).map(|i| ("DEL", i)).chain((N..N + N / 2).map(|i| ("ADD", i))).collect());
    let (dels, adds): (Vec<_>, Vec<_>) = mixed.into_iter().partition(|(i, _, _)| *i < N);
    deleted(&dels);
    addresses.extend(added(&adds));
    // The rest go at once.
    let last = at_once((N / 2..N + N / 2).map(|i| ("DEL", i)).collect());
    deleted(&last);

    let live: Vec<&String> = addresses[N / 2..].iter().collect();
    let mut distinct = live.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), live.len(), "two live attachments had the same address: {live:?}");
    assert_eq!(addresses[..N].iter().collect::<std::collections::BTreeSet<_>>().len(), N, "the first {N} shared addresses: {addresses:?}");
    assert!(lab.stats(&host, &config)["endpoints"].as_array().unwrap().is_empty(), "{}", daemon.log_text());
    assert_eq!(fragments(&lab.dir)["endpoints"], json!({}));
    assert_eq!(fragments(&lab.dir)["networks"], json!({}));
    // The daemon answered them in batches (the log names each joint apply), not only one by one.
    assert!(daemon.log_text().contains("DEL together"), "no call shared an apply: {}", daemon.log_text());
}
