//! Duplicate addresses seen on the wire (`detect_conflicts = true`, the ARP/ND responder off): a
//! foreign host on the segment claims an endpoint's addresses with a gratuitous ARP and an
//! unsolicited neighbour advertisement. The parent's XDP program counts each claim for the
//! endpoint and keeps the foreign MAC; `vland stats --json` shows it within a second, the daemon
//! logs it once per change, the data plane's own (rate-limited) aya-log event reaches the
//! daemon's log, /metrics exports it, and the frames still reach the endpoint. An ordinary ARP
//! request for the endpoint's address (the foreign host pinging it) is no conflict.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use vland_tests::capture::Capture;
use vland_tests::frame::{arp_frame, neighbour_advertisement_frame};
use vland_tests::lab::wait_until;
use vland_tests::{Lab, ip};

const WEB1: Ipv4Addr = Ipv4Addr::new(172, 16, 10, 20);
const WEB1_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 0x20);

fn mac(text: &str) -> [u8; 6] {
    let v: Vec<u8> = text.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap()
}

fn web1(stats: &serde_json::Value) -> serde_json::Value {
    stats["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == "web1").cloned().expect("web1 in stats")
}

fn conflicts(lab: &mut Lab, host: &str, config: &std::path::Path) -> (u64, serde_json::Value) {
    let e = web1(&lab.stats(host, config));
    (e["address_conflicts"].as_u64().unwrap(), e["last_conflict"].clone())
}

#[test]
fn a_foreign_host_claiming_an_endpoints_address_is_seen_counted_and_logged_once() {
    let (mut lab, host) = Lab::with_host();
    let foreign = lab.add_host("f1", Some("172.16.10.99/24"));
    let web1_ns = lab.expect_ns("web1");
    let body = format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\
         subnet6 = \"fd00:10::/64\"\ngratuitous_arp = false\ndetect_conflicts = true\n\n\
         [endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{web1_ns}\"\nip = \"{WEB1}\"\nip6 = \"{WEB1_V6}\"\n"
    );
    let config = lab.config("h1", &body);
    let text = std::fs::read_to_string(&config).unwrap().replacen("[daemon]\n", "[daemon]\nmetrics_addr = \"127.0.0.1:9750\"\n", 1);
    std::fs::write(&config, text).unwrap();
    let daemon = lab.spawn_daemon(&host, &config);
    let attached = wait_until(Duration::from_secs(20), || ip::link(&host, "eth0").xdp_prog().is_some_and(|p| p.name == "vland_parent"));
    assert!(attached.is_some(), "the parent program with the responder off: {}", daemon.log_text());
    assert_eq!(conflicts(&mut lab, &host, &config), (0, serde_json::Value::Null));

    // The foreign host asks for web1's address and gets web1's answer (the kernel's: the
    // responder is off): a question is no claim.
    lab.exec(&foreign, &["ping", "-c", "2", "-W", "2", &WEB1.to_string()]);
    let web1_mac = ip::link(&web1_ns, "eth0").address;
    assert!(lab.exec(&foreign, &["ip", "neigh", "show", &WEB1.to_string()]).contains(&web1_mac));
    assert_eq!(conflicts(&mut lab, &host, &config).0, 0, "an ARP request from a foreign host is not a conflict");

    // Five gratuitous ARPs from the foreign host claiming web1's address.
    let f_mac_text = ip::link(&foreign, "eth0").address;
    let f_mac = mac(&f_mac_text);
    let port = Capture::open(&foreign, "eth0");
    let inside = Capture::open(&web1_ns, "eth0");
    let sent = Instant::now();
    for _ in 0..5 {
        port.send(&arp_frame(1, f_mac, WEB1, WEB1));
    }
    let seen = wait_until(Duration::from_secs(3), || conflicts(&mut lab, &host, &config).0 == 5).map(|_| sent.elapsed());
    let (n, last) = conflicts(&mut lab, &host, &config);
    assert!(seen.is_some_and(|t| t < Duration::from_secs(1)), "in stats after {seen:?}: {n} {last}");
    assert_eq!((last["address"].as_str(), last["mac"].as_str()), (Some("172.16.10.20"), Some(f_mac_text.as_str())), "{last}");
    let delivered = inside.frames_until(Duration::from_millis(300), |_| false);
    let claims = delivered.iter().filter(|f| f.len() >= 42 && f[12..14] == [8, 6] && f[22..28] == f_mac && f[28..32] == WEB1.octets());
    assert_eq!(claims.count(), 5, "the claims still reach the endpoint, untouched");

    // The daemon reads the last claims every half second: it has logged this one once it is
    // done (a change that a later one replaces within the half second is logged as the later).
    let line4 = format!("endpoint web1: address 172.16.10.20 claimed by MAC {f_mac_text}");
    assert!(wait_until(Duration::from_secs(2), || daemon.log_text().contains(&line4)).is_some(), "{}", daemon.log_text());

    // An unsolicited advertisement for web1's IPv6 address naming the foreign MAC.
    port.send(&neighbour_advertisement_frame(f_mac, WEB1_V6, Some(f_mac)));
    assert!(wait_until(Duration::from_secs(1), || conflicts(&mut lab, &host, &config).0 == 6).is_some());
    let last = conflicts(&mut lab, &host, &config).1;
    assert_eq!(last["address"].as_str().map(|a| a.parse::<IpAddr>().unwrap()), Some(IpAddr::V6(WEB1_V6)), "{last}");

    // The daemon's log: one line per change (five claims of one address, then the other address).
    let line6 = format!("endpoint web1: address {WEB1_V6} claimed by MAC {f_mac_text}");
    let logged = wait_until(Duration::from_secs(3), || daemon.log_text().contains(&line6));
    let log = daemon.log_text();
    assert!(logged.is_some(), "{log}");
    assert_eq!((log.matches(&line4).count(), log.matches(&line6).count()), (1, 1), "{log}");
    // The data plane's own events came through aya-log, at most one a second for web1: one for the
    // five ARP claims sent back to back, at most one more for the advertisement.
    let events = log.lines().filter(|l| l.contains("address conflict: endpoint slot")).collect::<Vec<_>>();
    assert_eq!(events.iter().filter(|l| l.contains("address 172.16.10.20 ")).count(), 1, "{events:?}");
    assert!(events.len() <= 2, "{events:?}");
    assert!(events[0].contains(&format!("address 172.16.10.20 claimed by MAC {f_mac_text}")), "{events:?}");

    // Metrics: the count, and the last claim as labels.
    let metrics = vland_tests::http::get_in_netns(&host, "127.0.0.1:9750", "/metrics").expect("metrics");
    assert!(metrics.contains("vland_endpoint_address_conflicts_total{network=\"lan\",endpoint=\"web1\"} 6"), "{metrics}");
    let gauge = format!(
        "vland_endpoint_last_address_conflict_timestamp_seconds{{network=\"lan\",endpoint=\"web1\",address=\"{WEB1_V6}\",mac=\"{f_mac_text}\"}}"
    );
    assert!(metrics.contains(&gauge), "{metrics}");

    // The table shows it too.
    let table = lab.vland_ok(&host, &config, &["stats"]);
    assert!(table.contains("CLAIMED_BY") && table.contains(&f_mac_text), "{table}");
    drop(daemon);
}
