//! The parent's ARP/ND responder (`arp_responder = true`): requests for endpoint addresses sent
//! from the segment are answered by XDP on the parent with the child's MAC and never reach the
//! children; requests for other addresses reach the kernel as before; the answers count per
//! endpoint. The parent is a veth, whose XDP_TX goes back through its peer: the kernel only
//! delivers it at once when the peer has an XDP program of its own (it then polls the frames
//! sent to it), so the switch's port gets an empty one; without it the answers never arrive
//! (shown below).
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use vland_tests::capture::Capture;
use vland_tests::frame::{arp_request_frame, neighbour_solicitation_frame};
use vland_tests::{Lab, ip};

const ASKER: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const ASKER_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 10, 99);

/// The benchmarks' empty XDP program: a stand-in for someone else's, and what lets the switch's
/// port take XDP_TX frames from the parent. Attached (a bpf_link) while the result lives.
fn empty_xdp(ns: &str, ifname: &str, mode: aya::programs::XdpMode) -> (aya::Ebpf, aya::programs::xdp::XdpLink) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpfel-unknown-none/release/vlan-ebpf-bench");
    let mut object = aya::Ebpf::load_file(path).expect("run the tests with `cargo xtask test` (it builds the object)");
    let prog: &mut aya::programs::Xdp = object.program_mut("empty_xdp").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let netns = vland::netns::open(&vland::netns::named_path(ns)).unwrap();
    let link = vland::netns::run_in(&netns, || {
        let id = prog.attach(ifname, mode)?;
        Ok(prog.take_link(id)?)
    })
    .unwrap();
    (object, link)
}

fn mac(text: &str) -> [u8; 6] {
    let v: Vec<u8> = text.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap()
}

fn config_body(web1: &str, web2: &str, responder: Option<bool>, extra: &str) -> String {
    let key = responder.map_or(String::new(), |on| format!("arp_responder = {on}\n"));
    format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\
         subnet6 = \"fd00:10::/64\"\ngratuitous_arp = false\n{key}\n\
         [endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{web1}\"\nip = \"172.16.10.20\"\nip6 = \"fd00:10::20\"\n\n\
         [endpoints.web2]\nnetwork = \"lan\"\nnetns = \"{web2}\"\nip = \"172.16.10.21\"\n{extra}"
    )
}

/// ARP replies arriving at the switch port for `ip`: the MAC each one gives.
fn arp_replies(cap: &Capture, ip: Ipv4Addr, wait: Duration) -> Vec<[u8; 6]> {
    cap.frames_until(wait, |_| false)
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[28..32] == ip.octets() && f[0..6] == ASKER)
        .map(|f| f[22..28].try_into().unwrap())
        .collect()
}

fn endpoint<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == name).unwrap()
}

fn counts(stats: &serde_json::Value, name: &str) -> (u64, u64, u64) {
    let e = endpoint(stats, name);
    (e["rx_packets"].as_u64().unwrap(), e["arp_answered"].as_u64().unwrap(), e["nd_answered"].as_u64().unwrap())
}

/// A lab applied with the responder on: the switch port `p-h1` has an XDP program so that the
/// responder's XDP_TX answers reach it (veth delivers them only to a peer with XDP).
struct Responding {
    lab: Lab,
    host: String,
    sw: String,
    web1: String,
    web2: String,
    config: std::path::PathBuf,
    _port: (aya::Ebpf, aya::programs::xdp::XdpLink),
}

fn responding() -> Responding {
    let (mut lab, host) = Lab::with_host();
    let sw = lab.ns("sw");
    let (web1, web2) = (lab.expect_ns("web1"), lab.expect_ns("web2"));
    let _port = empty_xdp(&sw, "p-h1", aya::programs::XdpMode::Default);
    let config = lab.config("h1", &config_body(&web1, &web2, Some(true), ""));
    lab.vland_ok(&host, &config, &["apply"]);
    Responding { lab, host, sw, web1, web2, config, _port }
}

#[test]
fn the_parent_answers_arp_and_nd_for_its_endpoints_in_xdp() {
    let Responding { mut lab, host, sw, web1, web2, config, _port } = responding();
    let parent = ip::link(&host, "eth0");
    assert_eq!(parent.xdp_prog().map(|p| p.name.as_str()), Some("vland_parent"), "{parent:?}");
    assert_eq!(parent.xdp.as_ref().map(|x| x.mode), Some(1), "veth has native XDP");
    let web1_mac = mac(&ip::link(&web1, "eth0").address);
    let plan = lab.vland_ok(&host, &config, &["plan"]);
    assert!(plan.contains("nothing to do"), "a second apply changes nothing: {plan}");

    // Five requests for web1: five answers with web1's MAC, counted, and no child sees them.
    let cap = Capture::open(&sw, "p-h1");
    let children = [Capture::open(&web1, "eth0"), Capture::open(&web2, "eth0")];
    let asked = |c: &Capture| c.frames_until(Duration::from_millis(300), |_| false).iter().filter(|f| f[6..12] == ASKER).count();
    for _ in 0..5 {
        cap.send(&arp_request_frame(ASKER, ASKER_IP, "172.16.10.20".parse().unwrap()));
    }
    let replies = arp_replies(&cap, "172.16.10.20".parse().unwrap(), Duration::from_millis(600));
    assert_eq!(replies, vec![web1_mac; 5], "XDP answers with the child's MAC: {}", lab.stats(&host, &config));
    let after = lab.stats(&host, &config);
    assert_eq!((counts(&after, "web1").1, counts(&after, "web1").2), (5, 0), "arp_answered, nd_answered");
    assert_eq!(children.each_ref().map(asked), [0, 0], "the requests reached no child");

    // An address vland does not own passes to the kernel: both children receive the broadcast,
    // nobody answers.
    cap.send(&arp_request_frame(ASKER, ASKER_IP, "172.16.10.250".parse().unwrap()));
    assert_eq!(arp_replies(&cap, "172.16.10.250".parse().unwrap(), Duration::from_millis(400)), Vec::<[u8; 6]>::new());
    assert_eq!(children.each_ref().map(asked), [1, 1], "the kernel cloned it to both children");
    let passed = lab.stats(&host, &config);
    assert_eq!(counts(&passed, "web1").1, 5, "not counted as answered");
    assert!(counts(&passed, "web1").0 > counts(&after, "web1").0, "and vland's ingress counter saw it");

    // A neighbour solicitation for web1's IPv6 address: a valid advertisement with web1's MAC.
    let asker6: Ipv6Addr = "fe80::aa".parse().unwrap();
    let target: Ipv6Addr = "fd00:10::20".parse().unwrap();
    cap.send(&neighbour_solicitation_frame(ASKER, asker6, target));
    // (web1's own stack may advertise to all nodes meanwhile: only what is addressed to the asker.)
    let is_answer = |f: &[u8]| f.len() >= 86 && f[0..6] == ASKER && f[12..14] == [0x86, 0xdd] && f[54] == 136;
    let na =
        cap.frames_until(Duration::from_millis(600), is_answer).into_iter().find(|f| is_answer(f)).expect("no neighbour advertisement");
    assert_eq!((&na[0..6], &na[6..12]), (&ASKER[..], &web1_mac[..]));
    assert_eq!((&na[22..38], &na[38..54]), (&target.octets()[..], &asker6.octets()[..]), "from the target to the asker");
    assert_eq!((na[21], na[58], &na[62..78]), (255, 0x60, &target.octets()[..]), "hop limit 255, solicited + override, target");
    assert_eq!((na[78], na[79], &na[80..86]), (2, 1, &web1_mac[..]), "target link-layer address option");
    let icmp = pnet_packet::icmpv6::Icmpv6Packet::new(&na[54..86]).unwrap();
    assert_eq!(pnet_packet::icmpv6::checksum(&icmp, &target, &asker6), u16::from_be_bytes([na[56], na[57]]), "ICMPv6 checksum");
    assert_eq!(counts(&lab.stats(&host, &config), "web1").2, 1, "nd_answered");

    // A real client: the switch's stack resolves web1 through the responder and pings it.
    lab.exec(&sw, &["ping", "-c", "1", "-W", "2", "172.16.10.20"]);
    let neigh = lab.exec(&sw, &["ip", "neigh", "show", "172.16.10.20"]);
    assert!(neigh.contains(&ip::link(&web1, "eth0").address), "{neigh}");
    assert_eq!(counts(&lab.stats(&host, &config), "web1").1, 6, "the switch's own request was answered in XDP");

    // A child that goes down is not answered for until apply brings it up again.
    lab.exec(&web2, &["ip", "link", "set", "eth0", "down"]);
    let plan = String::from_utf8(lab.vland(&host, &config, &["plan"]).stdout).unwrap();
    assert!(plan.contains("eth0 stops answering ARP/ND for 172.16.10.21"), "{plan}");
    lab.vland_ok(&host, &config, &["apply"]);
    // An endpoint that goes is not answered for any more.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().split("[endpoints.web2]").next().unwrap()).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    cap.send(&arp_request_frame(ASKER, ASKER_IP, "172.16.10.21".parse().unwrap()));
    assert_eq!(arp_replies(&cap, "172.16.10.21".parse().unwrap(), Duration::from_millis(400)), Vec::<[u8; 6]>::new());

    // Turned off: the parent's XDP hook is free again and web1's own stack answers.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace("arp_responder = true", "arp_responder = false")).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&host, "eth0").xdp, None);
    cap.send(&arp_request_frame(ASKER, ASKER_IP, "172.16.10.20".parse().unwrap()));
    assert_eq!(arp_replies(&cap, "172.16.10.20".parse().unwrap(), Duration::from_millis(600)), vec![web1_mac], "the kernel answers");
    assert_eq!(counts(&lab.stats(&host, &config), "web1").1, 6);
}

/// Why the responder is off by default: on a veth parent its answers go back through the peer's
/// XDP path, which does not deliver them unless the peer has an XDP program.
#[test]
fn on_a_veth_parent_answers_need_an_xdp_program_on_the_peer() {
    let (mut lab, host) = Lab::with_host();
    let sw = lab.ns("sw");
    let (web1, web2) = (lab.expect_ns("web1"), lab.expect_ns("web2"));
    let body = config_body(&web1, &web2, None, "");
    let config = lab.config("h1", &body);
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&host, "eth0").xdp, None, "off by default");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("gratuitous_arp = false", "gratuitous_arp = false\narp_responder = true"),
    )
    .unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    let cap = Capture::open(&sw, "p-h1");
    cap.send(&arp_request_frame(ASKER, ASKER_IP, "172.16.10.20".parse().unwrap()));
    assert_eq!(arp_replies(&cap, "172.16.10.20".parse().unwrap(), Duration::from_millis(500)), Vec::<[u8; 6]>::new());
    let stats = lab.stats(&host, &config);
    assert_eq!(counts(&stats, "web1").1, 1, "answered in XDP, but the answer never reached the peer");
}

/// A parent that is also a trunk: one XDP program, the trunk's, enforces the VLANs and answers.
#[test]
fn a_parent_that_is_a_trunk_answers_from_the_trunk_program() {
    let Responding { mut lab, host, sw, web1: _, web2, config, _port } = responding();
    assert_eq!(ip::link(&host, "eth0").xdp_prog().map(|p| p.name.clone()).as_deref(), Some("vland_parent"));
    // The parent becomes a trunk: vland's responder makes way for the trunk program.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[trunks.eth0]\nallowed_vlans = [19]\n")).unwrap();
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&host, "eth0").xdp_prog().map(|p| p.name.clone()).as_deref(), Some("vland_trunk"));
    let cap = Capture::open(&sw, "p-h1");
    cap.send(&arp_request_frame(ASKER, ASKER_IP, "172.16.10.21".parse().unwrap()));
    let web2_mac = mac(&ip::link(&web2, "eth0").address);
    assert_eq!(arp_replies(&cap, "172.16.10.21".parse().unwrap(), Duration::from_millis(600)), vec![web2_mac]);
    assert_eq!(counts(&lab.stats(&host, &config), "web2").1, 1);
    let plan = lab.vland_ok(&host, &config, &["plan"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    lab.vland_ok(&host, &config, &["down"]);
    assert_eq!(ip::link(&host, "eth0").xdp, None, "down detaches everything");
}

/// Someone else's XDP program on the parent stays: vland says so and the kernel answers.
#[test]
fn a_foreign_xdp_program_on_the_parent_is_left_alone() {
    let (mut lab, host) = Lab::with_host();
    let (web1, web2) = (lab.expect_ns("web1"), lab.expect_ns("web2"));
    let _foreign = empty_xdp(&host, "eth0", aya::programs::XdpMode::Skb);
    let id = ip::link(&host, "eth0").xdp_prog().unwrap().id;
    let config = lab.config("h1", &config_body(&web1, &web2, Some(true), ""));
    let plan = String::from_utf8(lab.vland(&host, &config, &["plan"]).stdout).unwrap();
    assert!(plan.contains(&format!("no ARP/ND responder on eth0: another XDP program (id {id})")), "{plan}");
    lab.vland_ok(&host, &config, &["apply"]);
    assert_eq!(ip::link(&host, "eth0").xdp_prog().map(|p| p.id), Some(id), "the foreign program stays");
    lab.vland_ok(&host, &config, &["down"]);
    assert_eq!(ip::link(&host, "eth0").xdp_prog().map(|p| p.id), Some(id), "down leaves it too");
}
