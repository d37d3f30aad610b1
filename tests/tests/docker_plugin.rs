//! vland's Docker plugin socket driven with the request bodies Docker 20.10 sends (as recorded
//! on this machine), against a lab parent. The test plays dockerd: it moves the child Join hands
//! over into a "sandbox" namespace, renames it and configures it as libnetwork does, then
//! checks what the kernel shows, what vland counts, and that bad input changes nothing.
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vland_tests::{Daemon, Lab, filter_programs, ip, wait_until};

const NID: &str = "9f2b1c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e9f";
const EID: &str = "5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
/// A second container's endpoint on the same network.
const EID2: &str = "6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";

/// One plugin call as Docker makes it: HTTP/1.1 POST with a JSON body on the Unix socket.
fn call(socket: &Path, name: &str, body: &Value) -> Value {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    let body = if body.is_null() { String::new() } else { body.to_string() };
    write!(
        s,
        "POST /{name} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not HTTP: {resp}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("application/vnd.docker.plugins.v1+json"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {body}"))
}

/// The field Docker reads a call's error from: libnetwork's remote IPAM reads `Error`, its
/// remote network driver `Err`; an error in the other field would pass as a success.
fn error_field(name: &str) -> (&'static str, &'static str) {
    if name.starts_with("IpamDriver.") { ("Error", "Err") } else { ("Err", "Error") }
}

fn ok(socket: &Path, name: &str, body: &Value) -> Value {
    let reply = call(socket, name, body);
    let (field, other) = error_field(name);
    assert!(reply.get(field).is_none() && reply.get(other).is_none(), "{name} failed: {reply}");
    reply
}

fn frag(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.join("h1-state/frontends.json")).unwrap_or_default()
}

/// A refused call: Docker shows the error (`Err` or `Error`, per protocol); the fragments file (and so vland's state) is unchanged,
/// and no link appeared in the host.
fn refused(lab: &Lab, host: &str, socket: &Path, name: &str, body: &Value, want: &str) {
    let (before, links) = (frag(lab), ip::link_names(host));
    let reply = call(socket, name, body);
    let (field, other) = error_field(name);
    assert!(reply.get(other).is_none(), "{name}: the error must be in `{field}`, which Docker reads: {reply}");
    let err = reply[field].as_str().unwrap_or_else(|| panic!("{name} should fail with `{field}`: {reply}"));
    assert!(err.contains(want), "`{want}` not in: {err}");
    assert_eq!(frag(lab), before, "{name} changed the fragments although refused");
    assert_eq!(ip::link_names(host), links, "{name} changed the host's links although refused");
}

fn start(lab: &mut Lab, host: &str, config: &Path, socket: &Path) -> Daemon {
    let daemon = lab.spawn_daemon(host, config);
    let up = wait_until(Duration::from_secs(30), || std::os::unix::net::UnixStream::connect(socket).is_ok());
    assert!(up.is_some(), "the daemon did not serve {}: {}", socket.display(), daemon.log_text());
    daemon
}

/// The plugin socket, in a directory of its own inside the lab's (short enough for a Unix
/// socket's path, and removed with the lab even when the test fails).
fn sock(lab: &Lab, tag: &str) -> PathBuf {
    lab.dir.join(format!("docker-{tag}/vland.sock"))
}

fn stats_row(lab: &mut Lab, host: &str, config: &Path, endpoint: &str) -> Option<Value> {
    lab.stats(host, config)["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == endpoint).cloned()
}

/// What libnetwork does with the child after Join: moves it into the sandbox, renames it
/// `eth0`, sets the address, brings it up, adds the gateway route.
fn docker_moves_in(lab: &Lab, host: &str, sandbox: &str, src: &str, cidr: &str, gateway: &str) {
    lab.exec(host, &["ip", "link", "set", src, "netns", sandbox]);
    lab.exec(sandbox, &["ip", "link", "set", src, "down"]);
    lab.exec(sandbox, &["ip", "link", "set", src, "name", "eth0"]);
    lab.exec(sandbox, &["ip", "addr", "add", cidr, "dev", "eth0"]);
    lab.exec(sandbox, &["ip", "link", "set", "eth0", "up"]);
    lab.exec(sandbox, &["ip", "route", "add", "default", "via", gateway, "dev", "eth0"]);
}

/// What libnetwork does before Leave: the child goes back to the host under its SrcName.
fn docker_moves_out(lab: &Lab, host: &str, sandbox: &str, src: &str) {
    lab.exec(sandbox, &["ip", "link", "set", "eth0", "down"]);
    lab.exec(sandbox, &["ip", "link", "set", "eth0", "name", src]);
    lab.exec(sandbox, &["ip", "link", "set", src, "netns", host]);
}

#[test]
fn the_seeds_network_create_run_rm_and_network_rm_as_docker_sends_them() {
    let (mut lab, host) = Lab::with_host();
    let socket = sock(&lab, "a");
    let config = lab.config("h1", &format!("[docker]\nsocket = \"{}\"\n", socket.display()));
    let daemon = start(&mut lab, &host, &config, &socket);

    // First use: the handshake.
    assert_eq!(call(&socket, "Plugin.Activate", &Value::Null), json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
    assert_eq!(ok(&socket, "NetworkDriver.GetCapabilities", &Value::Null)["Scope"], "local");
    ok(&socket, "IpamDriver.GetCapabilities", &Value::Null);
    assert_eq!(ok(&socket, "IpamDriver.GetDefaultAddressSpaces", &Value::Null)["LocalDefaultAddressSpace"], "LocalDefault");

    // Bad pools change nothing.
    let pool = |sub: &str| json!({"AddressSpace": "LocalDefault", "Pool": "172.16.10.0/24", "SubPool": sub, "Options": {}, "V6": false});
    refused(&lab, &host, &socket, "IpamDriver.RequestPool", &pool("172.16.20.0/25"), "outside --subnet");
    refused(&lab, &host, &socket, "IpamDriver.RequestPool", &json!({"Pool": 17}), "malformed IpamDriver.RequestPool");

    // `docker network create -d vland --ipam-driver vland --subnet 172.16.10.0/24 --ip-range 172.16.10.0/25
    //  --gateway 172.16.10.1 --aux-address docker1=172.16.10.101 -o parent=eth0 -o macvlan_mode=bridge`
    let pool_id = ok(&socket, "IpamDriver.RequestPool", &pool("172.16.10.0/25"))["PoolID"].as_str().unwrap().to_string();
    let gw = ok(
        &socket,
        "IpamDriver.RequestAddress",
        &json!({"PoolID": pool_id, "Address": "172.16.10.1", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gw["Address"], "172.16.10.1/24");
    ok(&socket, "IpamDriver.RequestAddress", &json!({"PoolID": pool_id, "Address": "172.16.10.101", "Options": null}));
    refused(
        &lab,
        &host,
        &socket,
        "IpamDriver.RequestAddress",
        &json!({"PoolID": pool_id, "Address": "172.16.10.101", "Options": null}),
        "already taken",
    );
    let create = |generic: Value| {
        json!({
            "NetworkID": NID,
            "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": generic},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "172.16.10.0/24", "Gateway": "172.16.10.1/24",
                          "AuxAddresses": {"docker1": "172.16.10.101/24"}}],
            "IPv6Data": []
        })
    };
    // An unknown option and a bad value: both named, nothing created.
    refused(
        &lab,
        &host,
        &socket,
        "NetworkDriver.CreateNetwork",
        &create(json!({"parent": "eth0", "colour": "red", "mtu": "big"})),
        "unknown option `-o colour`",
    );
    let e = call(&socket, "NetworkDriver.CreateNetwork", &create(json!({"parent": "eth0", "colour": "red", "mtu": "big"})));
    assert!(e["Err"].as_str().unwrap().contains("-o mtu must be a whole number"), "{e}");
    // vland's own validation (the TOML's): a parent that does not exist.
    refused(&lab, &host, &socket, "NetworkDriver.CreateNetwork", &create(json!({"parent": "nosuch0"})), "nosuch0");
    refused(&lab, &host, &socket, "NetworkDriver.CreateNetwork", &json!({"Options": {}}), "NetworkID");
    ok(&socket, "NetworkDriver.CreateNetwork", &create(json!({"parent": "eth0", "macvlan_mode": "bridge"})));

    // A restart and a kill -9 between `network create` and `run` change nothing for Docker.
    drop(daemon);
    let daemon = start(&mut lab, &host, &config, &socket);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    let daemon = start(&mut lab, &host, &config, &socket);

    // `docker run --net=...`: the first address of the range, as in the book.
    let addr = ok(&socket, "IpamDriver.RequestAddress", &json!({"PoolID": pool_id, "Address": "", "Options": {}}));
    assert_eq!(addr["Address"], "172.16.10.2/24");
    refused(
        &lab,
        &host,
        &socket,
        "NetworkDriver.Join",
        &json!({"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/x", "Options": {}}),
        "no endpoint",
    );
    let endpoint = json!({"NetworkID": NID, "EndpointID": EID,
        "Interface": {"Address": "172.16.10.2/24", "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
    // Docker sent no MAC: the reply names the one the child will have (docker inspect shows it).
    let created = ok(&socket, "NetworkDriver.CreateEndpoint", &endpoint);
    let mac = created["Interface"]["MacAddress"].as_str().unwrap_or_else(|| panic!("no MacAddress: {created}")).to_string();
    let (sandbox, join, src) = join_a_sandbox(&mut lab, &socket);
    assert_eq!(join["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(join["Gateway"], "172.16.10.1");
    // The child waits in the host namespace, bare: no address, no route there.
    let staged = ip::link(&host, &src);
    assert_eq!(staged.kind(), "macvlan");
    assert_eq!(staged.address, mac, "the child has another MAC than CreateEndpoint told Docker");
    assert!(ip::addrs(&host, "-4", &["dev", &src]).is_empty(), "a staged child got an address in the host");
    assert!(ip::routes(&host, "-4", &["default"]).is_empty(), "a staged child changed the host's routes");

    docker_moves_in(&lab, &host, &sandbox, &src, "172.16.10.2/24", "172.16.10.1");
    let ports = json!({"NetworkID": NID, "EndpointID": EID,
        "Options": {"com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]}});
    ok(&socket, "NetworkDriver.ProgramExternalConnectivity", &ports);
    ok(&socket, "NetworkDriver.EndpointOperInfo", &json!({"NetworkID": NID, "EndpointID": EID}));
    assert!(daemon.log_text().contains("Docker publishes no ports for remote network drivers"), "{}", daemon.log_text());

    // Adopted in the sandbox: same ifindex (its slot), counting programs attached.
    // Without Docker's API (no dockerd here), stats name Docker's endpoint by its 12-character ID.
    let name = EID[..12].to_string();
    let counted = wait_until(Duration::from_secs(10), || {
        ip::try_link(&sandbox, "eth0").is_some() && filter_programs(&sandbox, "eth0", "ingress").iter().any(|p| p == "vland_rx_tc")
    });
    assert!(counted.is_some(), "the moved child was not taken over: {}", daemon.log_text());
    let child = ip::link(&sandbox, "eth0");
    assert_eq!((child.ifindex, child.kind()), (staged.ifindex, "macvlan"));
    assert_eq!(ip::addrs(&sandbox, "-4", &["dev", "eth0"]).iter().map(|a| a.cidr()).collect::<Vec<_>>(), ["172.16.10.2/24"]);
    assert_eq!(ip::routes(&sandbox, "-4", &["default"])[0].gateway.as_deref(), Some("172.16.10.1"));
    // It reaches the gateway on the switch; exactly the pings are counted.
    lab.static_gateway(&sandbox);
    lab.exec(&lab.ns("sw"), &["ip", "neigh", "replace", "172.16.10.2", "lladdr", &child.address, "dev", "br0", "nud", "permanent"]);
    let before = stats_row(&mut lab, &host, &config, &name).expect("the Docker endpoint is in vland stats");
    lab.exec(&sandbox, &["ping", "-c", "3", "-i", "0.05", "-W", "1", "172.16.10.1"]);
    let after = stats_row(&mut lab, &host, &config, &name).unwrap();
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!((delta("tx_packets"), delta("rx_packets")), (3, 3), "{before} {after}");

    // Drift inside the container is repaired, as for any endpoint.
    lab.exec(&sandbox, &["ip", "addr", "flush", "dev", "eth0"]);
    let repaired = wait_until(Duration::from_secs(10), || ip::first_addr(&sandbox, "-4", "eth0").as_deref() == Some("172.16.10.2"));
    assert!(repaired.is_some(), "the flushed address was not restored: {}", daemon.log_text());
    // A kill -9 while the container runs: the endpoint stays as it is.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    let daemon = start(&mut lab, &host, &config, &socket);
    assert!(wait_until(Duration::from_secs(10), || stats_row(&mut lab, &host, &config, &name).is_some()).is_some());
    assert_eq!(ip::link(&sandbox, "eth0").ifindex, staged.ifindex);
    // The TOML's `vland plan` leaves Docker's network and endpoint alone.
    let plan = lab.vland(&host, &config, &["plan"]);
    assert_eq!(plan.status.code(), Some(0), "plan wants changes: {}", String::from_utf8_lossy(&plan.stdout));

    // `docker rm`: the child comes back under SrcName, Leave deletes it.
    ok(&socket, "NetworkDriver.RevokeExternalConnectivity", &json!({"NetworkID": NID, "EndpointID": EID}));
    docker_moves_out(&lab, &host, &sandbox, &src);
    ok(&socket, "NetworkDriver.Leave", &json!({"NetworkID": NID, "EndpointID": EID}));
    assert!(ip::try_link(&host, &src).is_none(), "Leave left the child");
    ok(&socket, "NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NID, "EndpointID": EID}));
    ok(&socket, "IpamDriver.ReleaseAddress", &json!({"PoolID": pool_id, "Address": "172.16.10.2"}));
    assert!(stats_row(&mut lab, &host, &config, &name).is_none());

    // `docker network rm`: IPAM first, then DeleteNetwork. Nothing is left.
    docker_network_rm(&socket, &pool_id, &["172.16.10.1", "172.16.10.101"]);
    assert_eq!(sorted_links(&host), ["eth0", "lo"]);
    let f: Value = serde_json::from_str(&frag(&lab)).unwrap();
    assert_eq!((&f["networks"], &f["endpoints"], f.get("docker_pools")), (&json!({}), &json!({}), None), "{f}");
    drop(daemon);
}

/// A Docker network beside the TOML's: the same parent rules across both (an ipvlan network on
/// the parent of the TOML's macvlan network is refused with vland's message); an `--internal`
/// network gets no gateway from Join, and its child is taken over without any further call
/// from Docker (internal networks get no ProgramExternalConnectivity); the TOML's `apply`
/// keeps Docker's endpoint. (ipvlan children need a kernel with ipvlan: the Join reply for
/// ipvlan l3 is checked by the daemon's unit tests.)
#[test]
fn beside_the_toml_an_internal_network_taken_over_without_further_calls() {
    let mut lab = Lab::new();
    let socket = sock(&lab, "b");
    lab.add_switch("172.16.10.1/24");
    let host = lab.add_host("h1", None);
    let web1 = lab.expect_ns("web1");
    // A second parent (this kernel has no dummy links): a veth pair of the host's own.
    lab.exec(&host, &["ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]);
    lab.exec(&host, &["ip", "link", "set", "eth1p", "up"]);
    lab.exec(&host, &["ip", "link", "set", "eth1", "up"]);
    let toml = format!(
        "[docker]\nsocket = \"{}\"\n\n[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{web1}\"\n",
        socket.display()
    );
    let config = lab.config("h1", &toml);
    let daemon = start(&mut lab, &host, &config, &socket);
    assert!(wait_until(Duration::from_secs(10), || ip::try_link(&web1, "eth0").is_some()).is_some(), "{}", daemon.log_text());

    let pool = json!({"AddressSpace": "LocalDefault", "Pool": "10.20.0.0/24", "SubPool": "", "Options": {}, "V6": false});
    let pool_id = ok(&socket, "IpamDriver.RequestPool", &pool)["PoolID"].as_str().unwrap().to_string();
    let gateway = json!({"PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}});
    assert_eq!(ok(&socket, "IpamDriver.RequestAddress", &gateway)["Address"], "10.20.0.1/24");
    let create = |generic: Value| {
        json!({"NetworkID": NID, "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.internal": true,
                "com.docker.network.generic": generic},
               "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.20.0.0/24", "Gateway": "10.20.0.1/24"}], "IPv6Data": []})
    };
    // eth0 carries the TOML's macvlan network: vland's parent rule, as for two TOML networks.
    refused(&lab, &host, &socket, "NetworkDriver.CreateNetwork", &create(json!({"parent": "eth0", "ipvlan_mode": "l3"})), "eth0");
    ok(&socket, "NetworkDriver.CreateNetwork", &create(json!({"parent": "eth1", "macvlan_mode": "private"})));
    let addr = ok(&socket, "IpamDriver.RequestAddress", &json!({"PoolID": pool_id, "Address": "10.20.0.7", "Options": {}}));
    assert_eq!(addr["Address"], "10.20.0.7/24");
    // `docker run --mac-address 02:42:0a:14:00:07`: base64 in the endpoint's options.
    let endpoint = json!({"NetworkID": NID, "EndpointID": EID,
        "Interface": {"Address": "10.20.0.7/24", "AddressIPv6": "", "MacAddress": ""},
        "Options": {"com.docker.network.endpoint.macaddress": "AkIKFAAH"}});
    ok(&socket, "NetworkDriver.CreateEndpoint", &endpoint);
    let (sandbox, join, src) = join_a_sandbox(&mut lab, &socket);
    assert_eq!((join.get("Gateway"), join.get("StaticRoutes")), (None, None), "{join}");
    let staged = ip::link(&host, &src);
    assert_eq!(staged.address, "02:42:0a:14:00:07");
    lab.exec(&host, &["ip", "link", "set", &src, "netns", &sandbox]);
    lab.exec(&sandbox, &["ip", "link", "set", &src, "name", "eth0"]);
    lab.exec(&sandbox, &["ip", "addr", "add", "10.20.0.7/24", "dev", "eth0"]);
    lab.exec(&sandbox, &["ip", "link", "set", "eth0", "up"]);
    // No call from Docker follows: the move itself is noticed.
    let counted = wait_until(Duration::from_secs(10), || filter_programs(&sandbox, "eth0", "ingress").iter().any(|p| p == "vland_rx_tc"));
    assert!(counted.is_some(), "the moved child was not taken over: {}", daemon.log_text());
    let child = ip::link(&sandbox, "eth0");
    assert_eq!((child.ifindex, child.kind(), child.linkinfo.info_data.mode.as_deref()), (staged.ifindex, "macvlan", Some("private")));
    assert!(ip::routes(&sandbox, "-4", &["default"]).is_empty(), "an internal network got a default route");

    // The TOML's apply keeps Docker's network and endpoint, and its own.
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&sandbox, "eth0").ifindex, staged.ifindex);
    assert_eq!(ip::link(&web1, "eth0").kind(), "macvlan");
    let names: Vec<String> =
        lab.stats(&host, &config)["endpoints"].as_array().unwrap().iter().map(|e| e["endpoint"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, [EID[..12].to_string(), "web1".to_string()]);

    // `docker rm` while vland is stopped: Docker gives the child back, its Leave fails. The
    // restarted daemon deletes the child; the endpoint waits for DeleteEndpoint.
    drop(daemon);
    docker_moves_out(&lab, &host, &sandbox, &src);
    let daemon = start(&mut lab, &host, &config, &socket);
    let gone = wait_until(Duration::from_secs(10), || ip::try_link(&host, &src).is_none());
    assert!(gone.is_some(), "the child Docker gave back stayed: {}", daemon.log_text());
    ok(&socket, "NetworkDriver.Leave", &json!({"NetworkID": NID, "EndpointID": EID}));
    ok(&socket, "NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NID, "EndpointID": EID}));
    docker_network_rm(&socket, &pool_id, &["10.20.0.7", "10.20.0.1"]);
    assert_eq!(sorted_links(&host), ["eth0", "eth1", "eth1p", "lo"], "only what vland did not make is left");
    assert_eq!(ip::link(&web1, "eth0").kind(), "macvlan", "the TOML's endpoint stays");
    drop(daemon);
}

/// Containers started and removed together: their Join and Leave calls arrive at once and share
/// one apply (the daemon says so), each still gets its own answer (one for an endpoint vland
/// does not have is refused while the others succeed), every child is made with the MAC
/// CreateEndpoint gave, and the Leaves remove every child Docker gave back.
#[test]
fn joins_and_leaves_that_arrive_together_share_one_apply() {
    const N: usize = 4;
    let (mut lab, host) = Lab::with_host();
    let socket = sock(&lab, "c");
    let config = lab.config("h1", &format!("[docker]\nsocket = \"{}\"\n", socket.display()));
    let daemon = start(&mut lab, &host, &config, &socket);
    let pool_id = network_on_eth0(&socket);
    // N containers: an address, an endpoint (its MAC from vland) and a sandbox each.
    let ids: Vec<String> = (0..N).map(|i| format!("{i}{}", &EID[1..])).collect();
    let mut macs = Vec::new();
    let mut sandboxes = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        macs.push(endpoint(&socket, &pool_id, id));
        sandboxes.push(lab.add_ns(&format!("sandbox{i}")));
    }
    // All at once, and among them a Join for an endpoint Docker never created.
    let together = |calls: Vec<(&'static str, Value)>| -> Vec<Value> {
        std::thread::scope(|s| {
            let threads: Vec<_> = calls.iter().map(|(name, body)| s.spawn(|| call(&socket, name, body))).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    };
    let mut joins: Vec<(&str, Value)> = ids
        .iter()
        .zip(&sandboxes)
        .map(|(id, sb)| {
            ("NetworkDriver.Join", json!({"NetworkID": NID, "EndpointID": id, "SandboxKey": format!("/run/netns/{sb}"), "Options": {}}))
        })
        .collect();
    let stranger = format!("f{}", &EID[1..]);
    joins.push(("NetworkDriver.Join", json!({"NetworkID": NID, "EndpointID": stranger, "SandboxKey": "/run/netns/x", "Options": {}})));
    let replies = together(joins);
    assert!(replies[N]["Err"].as_str().is_some_and(|e| e.contains("no endpoint")), "{}", replies[N]);
    let mut sources = Vec::new();
    for (i, reply) in replies[..N].iter().enumerate() {
        assert!(reply.get("Err").is_none(), "Join {i} failed: {reply}");
        let src = reply["InterfaceName"]["SrcName"].as_str().unwrap().to_string();
        assert_eq!(ip::link(&host, &src).address, macs[i], "the staged child of container {i} has another MAC");
        sources.push(src);
    }
    let joint = daemon.log_text().matches("Join and Leave calls together").count();
    assert!(joint > 0, "no joint apply for Joins that arrived together:\n{}", daemon.log_text());

    for (i, (src, sb)) in sources.iter().zip(&sandboxes).enumerate() {
        docker_moves_in(&lab, &host, sb, src, &format!("172.16.10.{}/24", i + 2), "172.16.10.1");
    }
    for sb in &sandboxes {
        let counted = wait_until(Duration::from_secs(10), || filter_programs(sb, "eth0", "ingress").iter().any(|p| p == "vland_rx_tc"));
        assert!(counted.is_some(), "a moved child was not taken over: {}", daemon.log_text());
    }
    // `docker rm -f` of all of them: the children come back, the Leaves come together.
    for (src, sb) in sources.iter().zip(&sandboxes) {
        docker_moves_out(&lab, &host, sb, src);
    }
    let leaves = ids.iter().map(|id| ("NetworkDriver.Leave", json!({"NetworkID": NID, "EndpointID": id}))).collect();
    for (i, reply) in together(leaves).iter().enumerate() {
        assert!(reply.get("Err").is_none(), "Leave {i} failed: {reply}");
    }
    // Not one apply each: the first may go alone; the others wait together behind it (or its
    // apply, seeing their children back, removes them and leaves them nothing to do).
    let alone = daemon.log_text().matches("applying reason=\"Docker Leave").count();
    assert!(alone <= 1, "{alone} Leaves that arrived together were applied one by one:\n{}", daemon.log_text());
    for src in &sources {
        assert!(ip::try_link(&host, src).is_none(), "Leave left the child {src}");
    }
    for id in &ids {
        ok(&socket, "NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NID, "EndpointID": id}));
    }
    docker_network_rm(&socket, &pool_id, &["172.16.10.1"]);
    assert_eq!(sorted_links(&host), ["eth0", "lo"]);
    drop(daemon);
}

/// `docker network rm` as Docker sends it: the addresses its IPAM still holds (gateway, aux
/// addresses, containers' it never released) given back, the pool, then DeleteNetwork.
fn docker_network_rm(socket: &Path, pool_id: &str, addresses: &[&str]) {
    for a in addresses {
        ok(socket, "IpamDriver.ReleaseAddress", &json!({"PoolID": pool_id, "Address": a}));
    }
    ok(socket, "IpamDriver.ReleasePool", &json!({"PoolID": pool_id}));
    ok(socket, "NetworkDriver.DeleteNetwork", &json!({"NetworkID": NID}));
}

/// The links in namespace `ns`, sorted.
fn sorted_links(ns: &str) -> Vec<String> {
    let mut links = ip::link_names(ns);
    links.sort();
    links
}

/// `docker network create -d vland --ipam-driver vland --subnet 172.16.10.0/24 --gateway
/// 172.16.10.1 -o parent=eth0` as Docker sends it; the pool's ID.
fn network_on_eth0(socket: &Path) -> String {
    let pool = json!({"AddressSpace": "LocalDefault", "Pool": "172.16.10.0/24", "SubPool": "", "Options": {}, "V6": false});
    let pool_id = ok(socket, "IpamDriver.RequestPool", &pool)["PoolID"].as_str().unwrap().to_string();
    ok(socket, "IpamDriver.RequestAddress", &json!({"PoolID": pool_id, "Address": "172.16.10.1", "Options": {}}));
    ok(
        socket,
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": NID, "Options": {"com.docker.network.generic": {"parent": "eth0"}},
                "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "172.16.10.0/24", "Gateway": "172.16.10.1/24"}], "IPv6Data": []}),
    );
    pool_id
}

/// Join of endpoint EID into a new sandbox namespace: the sandbox, Join's reply and the name
/// of the child vland staged for Docker to move there.
fn join_a_sandbox(lab: &mut Lab, socket: &Path) -> (String, Value, String) {
    join_sandbox(lab, socket, EID, "sandbox")
}

/// Join of endpoint `id` into a new namespace `name`, as `join_a_sandbox`.
fn join_sandbox(lab: &mut Lab, socket: &Path, id: &str, name: &str) -> (String, Value, String) {
    let sandbox = lab.add_ns(name);
    let join = ok(
        socket,
        "NetworkDriver.Join",
        &json!({"NetworkID": NID, "EndpointID": id, "SandboxKey": format!("/run/netns/{sandbox}"), "Options": {}}),
    );
    let src = join["InterfaceName"]["SrcName"].as_str().unwrap_or_else(|| panic!("no SrcName: {join}")).to_string();
    (sandbox, join, src)
}

/// A daemon serving Docker's calls, a network on eth0 and one container's endpoint joined to a
/// fresh sandbox (its child still staged in the host under `src`).
struct Joined {
    lab: Lab,
    host: String,
    socket: PathBuf,
    daemon: Daemon,
    pool_id: String,
    sandbox: String,
    src: String,
}

fn one_container_joined(tag: &str) -> Joined {
    let (mut lab, host) = Lab::with_host();
    let socket = sock(&lab, tag);
    let config = lab.config("h1", &format!("[docker]\nsocket = \"{}\"\n", socket.display()));
    let daemon = start(&mut lab, &host, &config, &socket);
    let pool_id = network_on_eth0(&socket);
    endpoint(&socket, &pool_id, EID);
    let (sandbox, _, src) = join_a_sandbox(&mut lab, &socket);
    Joined { lab, host, socket, daemon, pool_id, sandbox, src }
}

/// A container's address and endpoint (`id`) on that network; the MAC vland gives its child.
fn endpoint(socket: &Path, pool_id: &str, id: &str) -> String {
    let addr = ok(socket, "IpamDriver.RequestAddress", &json!({"PoolID": pool_id, "Address": "", "Options": {}}));
    let endpoint = json!({"NetworkID": NID, "EndpointID": id,
        "Interface": {"Address": addr["Address"], "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
    ok(socket, "NetworkDriver.CreateEndpoint", &endpoint)["Interface"]["MacAddress"].as_str().unwrap().to_string()
}

/// Docker calls Leave before it destroys the sandbox, which is when it moves the child back to
/// the host: a container removed right after it started leaves its child in the sandbox, where
/// vland may not have followed it yet. Leave deletes it there; nothing is left for Docker to move
/// back, and nothing of vland's stays.
#[test]
fn a_leave_before_docker_gives_the_child_back_deletes_it_in_the_sandbox() {
    let Joined { lab, host, socket, daemon, pool_id, sandbox, src } = one_container_joined("d");
    docker_moves_in(&lab, &host, &sandbox, &src, "172.16.10.2/24", "172.16.10.1");
    // At once: before the daemon's own look at the namespace events (150 ms), as `docker run -d
    // ... && docker rm -f` can.
    ok(&socket, "NetworkDriver.Leave", &json!({"NetworkID": NID, "EndpointID": EID}));
    assert!(ip::try_link(&sandbox, "eth0").is_none(), "Leave left the child in the sandbox: {}", daemon.log_text());
    assert!(ip::try_link(&host, &src).is_none(), "Leave left the child in the host: {}", daemon.log_text());
    ok(&socket, "NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NID, "EndpointID": EID}));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(lab.dir.join("h1-state/state.json")).unwrap()).unwrap();
    assert_eq!(state["endpoints"], json!({}), "{state}");
    docker_network_rm(&socket, &pool_id, &["172.16.10.1"]);
    assert_eq!(sorted_links(&host), ["eth0", "lo"]);
    drop(daemon);
}

/// Docker slow to configure a child it has moved (a loaded host starting many containers):
/// vland does not wait for it, so the next container's Join is answered meanwhile and the child
/// is not taken over half-configured; once Docker is done, vland takes it over with no further
/// call.
#[test]
fn a_child_docker_is_still_configuring_holds_up_no_call() {
    let Joined { mut lab, host, socket, daemon, pool_id, sandbox, src } = one_container_joined("e");
    // Moved, but not yet renamed, addressed or up.
    lab.exec(&host, &["ip", "link", "set", &src, "netns", &sandbox]);
    endpoint(&socket, &pool_id, EID2);
    join_sandbox(&mut lab, &socket, EID2, "sandbox2");
    assert!(filter_programs(&sandbox, &src, "ingress").is_empty(), "taken over half-configured: {}", daemon.log_text());
    assert!(!ip::link(&sandbox, &src).is_up(), "vland configured Docker's child: {}", daemon.log_text());

    lab.exec(&sandbox, &["ip", "link", "set", &src, "name", "eth0"]);
    lab.exec(&sandbox, &["ip", "addr", "add", "172.16.10.2/24", "dev", "eth0"]);
    lab.exec(&sandbox, &["ip", "link", "set", "eth0", "up"]);
    lab.exec(&sandbox, &["ip", "route", "add", "default", "via", "172.16.10.1", "dev", "eth0"]);
    let counted = wait_until(Duration::from_secs(10), || filter_programs(&sandbox, "eth0", "ingress").iter().any(|p| p == "vland_rx_tc"));
    assert!(counted.is_some(), "the configured child was not taken over: {}", daemon.log_text());
    assert!(daemon.log_text().contains("Docker configured its children"), "{}", daemon.log_text());
    assert!(!daemon.log_text().contains("taken over as it is"), "{}", daemon.log_text());
    drop(daemon);
}

/// While a child is staged in vland's own namespace, neither its own Join's events there nor a
/// link the host adds for reasons of its own make an apply: Docker moving the child is followed by
/// a look of its own. Docker names that namespace by path (`/proc/self/ns/net`), which once let
/// every host event in, and each of its events made an apply that found nothing to do.
#[test]
fn a_staged_child_and_a_host_link_beside_it_make_no_apply() {
    let Joined { mut lab, host, socket, daemon, pool_id, .. } = one_container_joined("f");
    // Events settle after 150 ms with none. The first child on eth0 changed eth0's flags: that
    // event is the parent's, followed as such, and would hide the second one's.
    std::thread::sleep(Duration::from_millis(600));
    let joined = daemon.log_text().len();
    endpoint(&socket, &pool_id, EID2);
    let (_, _, src) = join_sandbox(&mut lab, &socket, EID2, "sandbox2");
    assert!(ip::try_link(&host, &src).is_some(), "no staged child: {}", daemon.log_text());
    std::thread::sleep(Duration::from_millis(600));
    let log = daemon.log_text();
    assert!(!log[joined..].contains("event on namespace /proc/self/ns/net"), "an apply for the Join's own events: {}", &log[joined..]);
    let settled = log.len();
    lab.exec(&host, &["ip", "link", "add", "vlt-other", "type", "veth", "peer", "name", "vlt-peer"]);
    lab.exec(&host, &["ip", "link", "set", "vlt-other", "up"]);
    std::thread::sleep(Duration::from_millis(600));
    let log = daemon.log_text();
    assert!(!log[settled..].contains("applying"), "an apply for a link that is not vland's: {}", &log[settled..]);
    drop(daemon);
}
