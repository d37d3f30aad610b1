//! VLAN enforcement on a trunk on this machine's kernel: frames are injected from the far end
//! of a veth trunk, the XDP program (native on veth) lets through only the allowed VLAN, and
//! `vland stats --json` reports every frame per VLAN and per drop reason.
use std::time::Duration;
use vland_tests::capture::Capture;
use vland_tests::frame::{BROADCAST, ETHERTYPE_EXPERIMENTAL, Frame};
use vland_tests::{Lab, ip, run_ok};

const SRC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];

/// A broadcast frame of `len` bytes from SRC with `tags`, of an ethertype nothing answers.
fn frame(tags: &[(u16, u16)], len: usize) -> Vec<u8> {
    Frame::new(ETHERTYPE_EXPERIMENTAL).dst(BROADCAST).src(SRC).tags(tags).padded_to(len, 0x5a).build()
}

fn row(stats: &serde_json::Value, vlan: serde_json::Value) -> &serde_json::Value {
    stats["parents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["parent"] == "eth1" && p["vlan"] == vlan)
        .unwrap_or_else(|| panic!("no row for vlan {vlan} in {stats}"))
}

#[test]
fn a_trunk_passes_its_vlans_and_drops_and_counts_the_rest() {
    let mut lab = Lab::new();
    let (host, peer) = (lab.add_ns("h"), lab.add_ns("peer"));
    run_ok("ip", &["link", "add", "eth1", "netns", &host, "type", "veth", "peer", "name", "trunk", "netns", &peer]);
    lab.exec(&host, &["ip", "link", "set", "eth1", "up"]);
    lab.exec(&peer, &["ip", "link", "set", "trunk", "up"]);
    let config = lab.config("h", "[trunks.eth1]\nallowed_vlans = [19]\nuntagged = \"drop\"\n");
    lab.vland_ok(&host, &config, &["apply"]);
    let l = ip::link(&host, "eth1");
    assert_eq!(l.xdp.as_ref().map(|x| x.mode), Some(1), "veth supports native XDP: {l:?}");
    assert_eq!(l.xdp_prog().unwrap().name, "vland_trunk");

    let tx = Capture::open(&peer, "trunk");
    let rx = Capture::open(&host, "eth1");
    let sent = [
        (frame(&[(0x8100, 19)], 100), 10),
        (frame(&[(0x8100, 20)], 100), 7),
        (frame(&[], 100), 5),
        (frame(&[], 14)[..12].iter().chain(&[0x81, 0x00, 0x00]).copied().collect::<Vec<u8>>(), 3),
    ];
    for (f, n) in &sent {
        for _ in 0..*n {
            tx.send(f);
        }
    }
    // What got past XDP on the host side. Packet sockets see frames before TC ingress, so the
    // untagged ones (dropped by the TC hook) still show here; VLAN 20 and the malformed frames,
    // dropped by XDP, do not.
    let got = rx.frames_until(Duration::from_millis(700), |_| false);
    let tags: Vec<Option<u16>> = got
        .iter()
        .filter(|f| f.get(6..12) == Some(&SRC[..]))
        .map(|f| (f[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff))
        .collect();
    let mut want = vec![Some(19); 10];
    want.extend([None; 5]);
    assert_eq!(tags, want, "frames that got past XDP");

    let stats = lab.stats(&host, &config);
    let v19 = row(&stats, 19.into());
    assert_eq!((v19["rx_packets"].as_u64(), v19["rx_bytes"].as_u64(), v19["dropped_packets"].as_u64()), (Some(10), Some(1000), Some(0)));
    assert_eq!(v19["protocol"], "802.1Q");
    let v20 = row(&stats, 20.into());
    assert_eq!(
        (v20["rx_packets"].as_u64(), v20["dropped_packets"].as_u64(), v20["drops"]["vlan_not_allowed"].as_u64()),
        (Some(7), Some(7), Some(7))
    );
    let untagged = row(&stats, serde_json::Value::Null);
    assert_eq!(
        (untagged["rx_packets"].as_u64(), untagged["drops"]["untagged"].as_u64(), untagged["drops"]["malformed"].as_u64()),
        (Some(5), Some(5), Some(3))
    );
    assert_eq!(untagged["dropped_packets"], 8, "untagged + malformed");

    // Allowing VLAN 20 later takes effect without re-attaching.
    let prog = l.xdp_prog().unwrap().id;
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace("[19]", "[19, 20]")).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&host, "eth1").xdp_prog().map(|p| p.id), Some(prog));
    tx.send(&sent[1].0);
    let got = rx.frames_until(Duration::from_millis(500), |f| f.get(14..16) == Some(&[0x00, 20][..]));
    assert!(got.iter().any(|f| f.get(14..16) == Some(&[0x00, 20][..])), "VLAN 20 is allowed now");

    // Removing the table detaches the program.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().split("[trunks.eth1]").next().unwrap()).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&host, "eth1").xdp, None, "the trunk program stayed attached");
}
