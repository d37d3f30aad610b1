//! The trunk programs run on fixture frames through BPF_PROG_TEST_RUN, as the kernel runs them:
//! XDP first, then TC ingress for what XDP passed. Every verdict and every counter delta is
//! checked, for hand-built frames of each kind and for 100,000 random and mangled ones against a
//! reference model written independently of the programs.
use aya::Ebpf;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use pnet_packet::ethernet::{EtherType, EtherTypes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::PathBuf;
use vlan_common::{DropReason, LinkId, VlanStats, names};
use vland::config::TrunkVlans;
use vland::ebpf::{DropKey, Pins, TrunkCounters, TrunkTable, VlanKey, endpoint_policy, ensure_bpffs, load_object, read_trunk_counters};
use vland_tests::frame::{ETHERTYPE_EXPERIMENTAL, Frame, arp_request, ipv4_packet, ipv6_packet};

const INUM: u32 = 7;
/// The endpoint slot the programs count in.
const SLOT: u32 = 1;
/// BPF_PROG_TEST_RUN runs programs as if on the loopback device.
const LO: u32 = 1;
/// The ifindex numbering that makes the loopback device the endpoint in SLOT.
const IFINDEX_BASE: u32 = LO - SLOT;
/// The trunk the programs serve, and its slot (the first free one).
const TRUNK: LinkId = LinkId { netns_inum: INUM, ifindex: LO };
const TRUNK_SLOT: u32 = 1;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const TC_ACT_SHOT: u32 = 2;
/// TC_ACT_UNSPEC (-1): "no opinion", the frame goes on.
const TC_ACT_UNSPEC: u32 = u32::MAX;
/// The combined verdict of both hooks.
const PASS: u32 = XDP_PASS;
const DROP: u32 = XDP_DROP;

/// A loaded object with maps pinned in a scratch bpffs dir, removed when dropped.
struct Fixture {
    bpf: Ebpf,
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    fn new(untagged_drop: bool) -> Fixture {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = PathBuf::from(format!("/sys/fs/bpf/vlt-fixtures-{}-{n}", std::process::id()));
        ensure_bpffs(&dir).unwrap();
        let mut bpf = load_object(&Pins::new(&dir), IFINDEX_BASE, TRUNK_SLOT).unwrap();
        let xdp: &mut Xdp = bpf.program_mut(names::TRUNK_PROGRAM).unwrap().try_into().unwrap();
        xdp.load().unwrap();
        let tc: &mut SchedClassifier = bpf.program_mut(names::TRUNK_TC_PROGRAM).unwrap().try_into().unwrap();
        tc.load().unwrap();
        let fx = Fixture { bpf, dir };
        let allowed = ALLOWED.into_iter().collect();
        let mut table = fx.table();
        assert_eq!(table.slot_for(TRUNK).unwrap(), TRUNK_SLOT);
        table.set(TRUNK_SLOT, TRUNK, &TrunkVlans { allowed, untagged_drop }).unwrap();
        fx
    }

    /// The trunk table in the fixture's pinned maps, as the daemon opens it.
    fn table(&self) -> TrunkTable {
        TrunkTable::open(&Pins::new(&self.dir)).unwrap().expect("the fixture pinned the maps")
    }

    fn run_xdp(&self, frame: &[u8]) -> u32 {
        let xdp: &Xdp = self.bpf.program(names::TRUNK_PROGRAM).unwrap().try_into().unwrap();
        xdp.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() }).unwrap().return_value
    }

    fn run_tc(&self, frame: &[u8]) -> u32 {
        let tc: &SchedClassifier = self.bpf.program(names::TRUNK_TC_PROGRAM).unwrap().try_into().unwrap();
        tc.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() }).unwrap().return_value
    }

    /// XDP, then TC if XDP passed: the frame's fate on a trunk.
    fn run(&self, frame: &[u8]) -> u32 {
        match self.run_xdp(frame) {
            XDP_PASS => match self.run_tc(frame) {
                TC_ACT_UNSPEC => PASS,
                TC_ACT_SHOT => DROP,
                other => panic!("TC returned {other}"),
            },
            XDP_DROP => DROP,
            other => panic!("XDP returned {other}"),
        }
    }

    /// Every VLAN's counters and drops, read as `vland stats` reads them.
    fn counters(&self) -> TrunkCounters {
        read_trunk_counters(&Pins::new(&self.dir), false).unwrap()
    }

    fn vlans(&self) -> HashMap<VlanKey, VlanStats> {
        self.counters().vlans
    }

    fn drops(&self) -> HashMap<DropKey, u64> {
        self.counters().drops
    }
}

fn row(tpid: u16, vid: u16) -> VlanKey {
    VlanKey { netns_inum: INUM, ifindex: LO, tpid, vid }
}

fn untagged_row() -> VlanKey {
    row(0, 0)
}

/// An Ethernet frame with `tags` (tpid, vid) in order, each with priority 1 (the programs must
/// look at the VID only), then `ethertype` and `payload`.
fn frame(tags: &[(u16, u16)], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    Frame::new(ethertype).tags(tags).priority(1).payload(payload).build()
}

/// What a frame should do: the verdict, the VLAN row it is counted on (None: no row, only a
/// drop reason), and the drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    verdict: u32,
    row: Option<VlanKey>,
    reason: Option<DropReason>,
}

/// The reference model of the trunk policy, written from the spec, not from the program.
fn model(f: &[u8], untagged_drop: bool, allowed: &[(u16, u16)]) -> Expect {
    let be16 = |at: usize| f.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let malformed = Expect { verdict: DROP, row: None, reason: Some(DropReason::Malformed) };
    let Some(ethertype) = be16(12) else { return malformed };
    if ethertype != 0x8100 && ethertype != 0x88a8 {
        return if untagged_drop {
            Expect { verdict: DROP, row: Some(untagged_row()), reason: Some(DropReason::Untagged) }
        } else {
            Expect { verdict: PASS, row: Some(untagged_row()), reason: None }
        };
    }
    let (Some(tci), Some(inner)) = (be16(14), be16(16)) else { return malformed };
    if ethertype == 0x88a8 && inner == 0x8100 && be16(20).is_none() {
        return malformed;
    }
    let r = row(ethertype, tci & 0x0fff);
    if allowed.contains(&(ethertype, tci & 0x0fff)) {
        Expect { verdict: PASS, row: Some(r), reason: None }
    } else {
        Expect { verdict: DROP, row: Some(r), reason: Some(DropReason::VlanNotAllowed) }
    }
}

const ALLOWED: [(u16, u16); 3] = [(0x8100, 19), (0x8100, 4094), (0x88a8, 100)];

/// Runs `frames` and checks each verdict against the model and all counter deltas at the end.
fn check(fx: &Fixture, untagged_drop: bool, frames: &[(String, Vec<u8>)]) {
    let (vlans_before, drops_before) = (fx.vlans(), fx.drops());
    let mut want_rows: HashMap<VlanKey, VlanStats> = HashMap::new();
    let mut want_drops: HashMap<DropKey, u64> = HashMap::new();
    for (name, f) in frames {
        let want = model(f, untagged_drop, &ALLOWED);
        let got = fx.run(f);
        assert_eq!(got, want.verdict, "{name}: verdict (frame {:02x?})", &f[..f.len().min(24)]);
        let len = f.len() as u64;
        if let Some(r) = want.row {
            let s = want_rows.entry(r).or_default();
            s.rx_packets += 1;
            s.rx_bytes += len;
            if want.verdict == DROP {
                s.dropped_packets += 1;
                s.dropped_bytes += len;
            }
        }
        if let Some(reason) = want.reason {
            *want_drops.entry(DropKey { vlan: want.row.unwrap_or(untagged_row()), reason }).or_default() += 1;
        }
    }
    let (vlans_after, drops_after) = (fx.vlans(), fx.drops());
    let keys: std::collections::BTreeSet<VlanKey> = vlans_after.keys().chain(want_rows.keys()).copied().collect();
    for k in keys {
        let (a, b) = (vlans_after.get(&k).copied().unwrap_or_default(), vlans_before.get(&k).copied().unwrap_or_default());
        let delta = VlanStats {
            rx_packets: a.rx_packets - b.rx_packets,
            rx_bytes: a.rx_bytes - b.rx_bytes,
            dropped_packets: a.dropped_packets - b.dropped_packets,
            dropped_bytes: a.dropped_bytes - b.dropped_bytes,
        };
        assert_eq!(delta, want_rows.get(&k).copied().unwrap_or_default(), "counters of VLAN row {k:?}");
    }
    let keys: std::collections::BTreeSet<DropKey> = drops_after.keys().chain(want_drops.keys()).copied().collect();
    for k in keys {
        let delta = drops_after.get(&k).copied().unwrap_or(0) - drops_before.get(&k).copied().unwrap_or(0);
        assert_eq!(delta, want_drops.get(&k).copied().unwrap_or(0), "drops {k:?}");
    }
}

fn fixture_frames() -> Vec<(String, Vec<u8>)> {
    let ip = ipv4_packet(84);
    vec![
        ("untagged IPv4".into(), frame(&[], EtherTypes::Ipv4, &ip)),
        ("untagged ARP".into(), frame(&[], EtherTypes::Arp, &arp_request())),
        ("untagged IPv6".into(), frame(&[], EtherTypes::Ipv6, &ipv6_packet())),
        ("802.1Q VID 19 (allowed) IPv4".into(), frame(&[(0x8100, 19)], EtherTypes::Ipv4, &ip)),
        ("802.1Q VID 19 (allowed) ARP".into(), frame(&[(0x8100, 19)], EtherTypes::Arp, &arp_request())),
        ("802.1Q VID 4094 (allowed) IPv6".into(), frame(&[(0x8100, 4094)], EtherTypes::Ipv6, &ipv6_packet())),
        ("802.1Q VID 20 (denied)".into(), frame(&[(0x8100, 20)], EtherTypes::Ipv4, &ip)),
        ("802.1Q VID 0 (priority tag, denied)".into(), frame(&[(0x8100, 0)], EtherTypes::Ipv4, &ip)),
        ("802.1ad 100 over 802.1Q 5 (QinQ, allowed)".into(), frame(&[(0x88a8, 100), (0x8100, 5)], EtherTypes::Ipv4, &ip)),
        ("802.1ad 200 over 802.1Q 5 (QinQ, denied)".into(), frame(&[(0x88a8, 200), (0x8100, 5)], EtherTypes::Ipv4, &ip)),
        ("802.1Q 100 (the 802.1ad VID, wrong protocol)".into(), frame(&[(0x8100, 100)], EtherTypes::Ipv4, &ip)),
        ("truncated 802.1Q tag".into(), frame(&[], EtherType(0x8100), &[0x00, 0x13])),
        ("truncated QinQ inner tag".into(), frame(&[(0x88a8, 100)], EtherType(0x8100), &[0x00])),
        // BPF_PROG_TEST_RUN builds no skb from a truncated IP header: a non-IP runt instead.
        ("runt untagged frame".into(), frame(&[], ETHERTYPE_EXPERIMENTAL, &[0])),
        ("jumbo 802.1Q VID 19 (3000 bytes)".into(), frame(&[(0x8100, 19)], EtherTypes::Ipv4, &ipv4_packet(3000))),
        ("jumbo 802.1Q VID 20 (3000 bytes)".into(), frame(&[(0x8100, 20)], EtherTypes::Ipv4, &ipv4_packet(3000))),
    ]
}

#[test]
fn each_frame_kind_gets_its_verdict_and_counters_with_untagged_passing() {
    let fx = Fixture::new(false);
    let frames = fixture_frames();
    check(&fx, false, &frames);
    // And the model agrees with the hand-written expectations for the key cases.
    assert_eq!(fx.run(&frames[0].1), PASS);
    assert_eq!(fx.run(&frames[6].1), DROP);
    assert_eq!(fx.run(&frames[8].1), PASS);
    assert_eq!(fx.run(&frames[11].1), DROP);
    // The early drops are XDP's: denied VLANs and malformed frames never reach TC.
    assert_eq!(fx.run_xdp(&frames[6].1), XDP_DROP);
    assert_eq!(fx.run_xdp(&frames[11].1), XDP_DROP);
    assert_eq!(fx.run_xdp(&frames[3].1), XDP_PASS);
}

#[test]
fn tc_alone_enforces_the_same_policy_when_xdp_never_saw_the_tag() {
    // What TC does with frames XDP passed as untagged because their tag was offloaded cannot be
    // fed through BPF_PROG_TEST_RUN (it builds no VLAN metadata); with the tag in the bytes, TC
    // must still reach the same verdicts on its own.
    let fx = Fixture::new(false);
    for (name, f) in fixture_frames() {
        let want = model(&f, false, &ALLOWED).verdict;
        let got = match fx.run_tc(&f) {
            TC_ACT_UNSPEC => PASS,
            TC_ACT_SHOT => DROP,
            other => panic!("{name}: TC returned {other}"),
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn untagged_frames_are_dropped_when_the_trunk_says_so() {
    let fx = Fixture::new(true);
    check(&fx, true, &fixture_frames());
    let before = fx.drops();
    assert_eq!(fx.run(&frame(&[], EtherTypes::Arp, &arp_request())), DROP);
    let key = DropKey { vlan: untagged_row(), reason: DropReason::Untagged };
    assert_eq!(fx.drops()[&key] - before.get(&key).copied().unwrap_or(0), 1);
}

#[test]
fn frames_on_devices_without_a_policy_pass_untouched_and_uncounted() {
    let fx = Fixture::new(false);
    fx.table().clear(TRUNK_SLOT).unwrap();
    let before = fx.vlans();
    assert_eq!(fx.run(&frame(&[(0x8100, 20)], EtherTypes::Ipv4, &ipv4_packet(84))), PASS);
    assert_eq!(fx.vlans(), before);
}

/// Whether the policy in slot TRUNK_SLOT, as the kernel holds it, allows (tag protocol, VID).
fn allowed_in_kernel(fx: &Fixture, tpid: u16, vid: u16) -> bool {
    fx.table().slots().any(|(s, p)| s == TRUNK_SLOT && p.allows(tpid, vid))
}

#[test]
fn changing_the_allowed_set_keeps_the_counts_of_vlans_that_stay_and_of_vlans_that_leave() {
    let fx = Fixture::new(false);
    let tagged = |vid| frame(&[(0x8100, vid)], EtherTypes::Ipv4, &ipv4_packet(84));
    for _ in 0..3 {
        assert_eq!(fx.run(&tagged(19)), PASS);
    }
    assert_eq!(fx.run(&tagged(4094)), PASS);

    // 19 leaves, 20 comes: 19's counts stay, and its frames are now dropped and counted so.
    let allowed = [(0x8100, 20), (0x8100, 4094)].into_iter().collect();
    fx.table().set(TRUNK_SLOT, TRUNK, &TrunkVlans { allowed, untagged_drop: false }).unwrap();
    assert!(allowed_in_kernel(&fx, 0x8100, 4094) && allowed_in_kernel(&fx, 0x8100, 20) && !allowed_in_kernel(&fx, 0x8100, 19));
    assert_eq!(fx.vlans()[&row(0x8100, 19)].rx_packets, 3);
    assert_eq!(fx.run(&tagged(19)), DROP);
    assert_eq!(fx.run(&tagged(20)), PASS);
    let v = fx.vlans();
    assert_eq!((v[&row(0x8100, 19)].rx_packets, v[&row(0x8100, 19)].dropped_packets), (4, 1));
    assert_eq!((v[&row(0x8100, 20)].rx_packets, v[&row(0x8100, 4094)].rx_packets), (1, 1));
    assert_eq!(fx.drops()[&DropKey { vlan: row(0x8100, 19), reason: DropReason::VlanNotAllowed }], 1);

    // 19 comes back: its total goes on.
    let allowed: std::collections::BTreeSet<(u16, u16)> = [(0x8100, 19), (0x8100, 20), (0x8100, 4094)].into_iter().collect();
    fx.table().set(TRUNK_SLOT, TRUNK, &TrunkVlans { allowed: allowed.clone(), untagged_drop: false }).unwrap();
    assert_eq!(fx.run(&tagged(19)), PASS);
    assert_eq!(fx.vlans()[&row(0x8100, 19)].rx_packets, 5);

    // Cleared, the programs pass everything uncounted; a new trunk in the slot starts from zero.
    let mut table = fx.table();
    table.clear(TRUNK_SLOT).unwrap();
    assert_eq!(fx.run(&tagged(7)), PASS);
    assert!(fx.vlans().is_empty());
    let other = LinkId { netns_inum: INUM + 1, ifindex: LO };
    assert_eq!(table.slot_for(other).unwrap(), TRUNK_SLOT);
    table.set(TRUNK_SLOT, other, &TrunkVlans { allowed, untagged_drop: false }).unwrap();
    assert!(fx.vlans().values().all(|s| *s == VlanStats::default()));
}

#[test]
fn a_hundred_thousand_random_and_mangled_frames_get_only_the_specified_verdicts() {
    for untagged_drop in [false, true] {
        let fx = Fixture::new(untagged_drop);
        // A fixed seed: a failure names a frame that the same run reproduces.
        let mut rng = StdRng::seed_from_u64(0x5eed_0000_0000_0001 ^ untagged_drop as u64);
        let tpids = [0x8100u16, 0x88a8, 0x0800, 0x0806, 0x86dd, 0x9100];
        let vids = [0u16, 1, 5, 19, 20, 100, 200, 4094, 4095];
        let mut batch = Vec::with_capacity(1000);
        for i in 0..50_000u32 {
            // Mostly well-formed stacks of 0-2 tags, sometimes random bytes, cut at random lengths.
            let mut f: Vec<u8> = match rng.random_range(0..4) {
                0 => (0..rng.random_range(14..134)).map(|_| rng.random::<u8>()).collect(),
                _ => {
                    let tags: Vec<(u16, u16)> = (0..rng.random_range(0..3))
                        .map(|_| (tpids[rng.random_range(0..tpids.len())], vids[rng.random_range(0..vids.len())]))
                        .collect();
                    let ethertype = EtherType(tpids[rng.random_range(0..tpids.len())]);
                    frame(&tags, ethertype, &ipv4_packet(rng.random_range(0..200)))
                }
            };
            if rng.random_ratio(1, 5) {
                // BPF_PROG_TEST_RUN needs more than an Ethernet header's 14 bytes for a skb.
                f.truncate(rng.random_range(15..25));
            }
            while f.len() < 15 {
                f.push(0);
            }
            // BPF_PROG_TEST_RUN refuses to build a skb whose outer IPv4/IPv6 header is cut short
            // (the kernel's own receive path would not): give such runts a non-IP ethertype.
            let outer = u16::from_be_bytes([f[12], f[13]]);
            if (outer == 0x0800 && f.len() < 34) || (outer == 0x86dd && f.len() < 54) {
                f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            }
            batch.push((format!("random frame #{i}"), f));
            if batch.len() == 1000 {
                check(&fx, untagged_drop, &batch);
                batch.clear();
            }
        }
    }
}

/// The endpoint egress program with a spoof-check policy for (INUM, lo).
fn egress_fixture() -> Fixture {
    let fx = Fixture::new(false);
    let mut fx = fx;
    let tc: &mut SchedClassifier = fx.bpf.program_mut(names::EGRESS_PROGRAM).unwrap().try_into().unwrap();
    tc.load().unwrap();
    let mut policy: aya::maps::Array<_, vlan_common::EndpointPolicy> =
        aya::maps::Array::try_from(fx.bpf.map_mut(names::ENDPOINT_POLICY_MAP).unwrap()).unwrap();
    let p = endpoint_policy(true, Some(OWN_MAC.into()), Some("10.19.0.2".parse().unwrap()), Some("fd00::2".parse().unwrap()));
    policy.set(SLOT, p, 0).unwrap();
    fx
}

const OWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn run_egress(fx: &Fixture, f: &[u8]) -> u32 {
    let tc: &SchedClassifier = fx.bpf.program(names::EGRESS_PROGRAM).unwrap().try_into().unwrap();
    tc.test_run(TestRunOptions { data_in: Some(f), ..Default::default() }).unwrap().return_value
}

fn endpoint_drops(fx: &Fixture) -> vlan_common::EndpointDrops {
    let map: aya::maps::PerCpuArray<_, vlan_common::EndpointDrops> =
        aya::maps::PerCpuArray::try_from(fx.bpf.map(names::ENDPOINT_DROPS_MAP).unwrap()).unwrap();
    let mut sum = vlan_common::EndpointDrops::default();
    map.get(&SLOT, 0).unwrap().iter().for_each(|d| sum.add(d));
    sum
}

#[test]
fn spoof_check_drops_foreign_source_macs_and_ips_and_counts_them() {
    let fx = egress_fixture();
    let with_src = |mac: [u8; 6], ethertype: EtherType, payload: &[u8]| {
        let mut f = frame(&[], ethertype, payload);
        f[6..12].copy_from_slice(&mac);
        f
    };
    let own_ip = ipv4_packet(84);
    let mut foreign_ip = own_ip.clone();
    foreign_ip[12..16].copy_from_slice(&[10, 19, 0, 99]);
    let mut own_arp = arp_request();
    own_arp[8..14].copy_from_slice(&OWN_MAC);
    own_arp[14..18].copy_from_slice(&[10, 19, 0, 2]);
    let mut foreign_arp = own_arp.clone();
    foreign_arp[14..18].copy_from_slice(&[10, 19, 0, 1]); // claims the gateway's address
    let ipv6_from = |src: &str| {
        let mut p = ipv6_packet();
        p[8..24].copy_from_slice(&src.parse::<std::net::Ipv6Addr>().unwrap().octets());
        p
    };
    let cases = [
        ("own MAC and IPv4", with_src(OWN_MAC, EtherTypes::Ipv4, &own_ip), TC_ACT_UNSPEC),
        ("own ARP", with_src(OWN_MAC, EtherTypes::Arp, &own_arp), TC_ACT_UNSPEC),
        ("own IPv6", with_src(OWN_MAC, EtherTypes::Ipv6, &ipv6_packet()), TC_ACT_UNSPEC),
        ("IPv6 link-local", with_src(OWN_MAC, EtherTypes::Ipv6, &ipv6_from("fe80::1")), TC_ACT_UNSPEC),
        ("IPv6 link-local, top of fe80::/10", with_src(OWN_MAC, EtherTypes::Ipv6, &ipv6_from("febf::1")), TC_ACT_UNSPEC),
        ("IPv6 unspecified (DAD)", with_src(OWN_MAC, EtherTypes::Ipv6, &ipv6_from("::")), TC_ACT_UNSPEC),
        ("foreign MAC", with_src([0x02, 9, 9, 9, 9, 9], EtherTypes::Ipv4, &own_ip), TC_ACT_SHOT),
        ("foreign IPv4", with_src(OWN_MAC, EtherTypes::Ipv4, &foreign_ip), TC_ACT_SHOT),
        ("ARP for another address", with_src(OWN_MAC, EtherTypes::Arp, &foreign_arp), TC_ACT_SHOT),
        ("foreign IPv6", with_src(OWN_MAC, EtherTypes::Ipv6, &ipv6_from("fd00::99")), TC_ACT_SHOT),
        ("IPv6 just past fe80::/10", with_src(OWN_MAC, EtherTypes::Ipv6, &ipv6_from("fec0::1")), TC_ACT_SHOT),
    ];
    for (name, f, want) in &cases {
        assert_eq!(run_egress(&fx, f), *want, "{name}");
    }
    let drops = endpoint_drops(&fx);
    assert_eq!((drops.spoofed_mac, drops.spoofed_ip), (1, 4));
}

#[test]
fn a_9000_byte_jumbo_frame_is_counted_whole_by_the_frags_aware_xdp_program() {
    // Larger than a page: BPF_PROG_TEST_RUN hands it to the (frags-aware) XDP program in
    // fragments, as a driver with a 9000-byte MTU would; the count must be the whole frame.
    let fx = Fixture::new(false);
    let f = frame(&[(0x8100, 20)], EtherTypes::Ipv4, &ipv4_packet(9000));
    let key = row(0x8100, 20);
    let before = fx.vlans().get(&key).copied().unwrap_or_default();
    assert_eq!(fx.run_xdp(&f), XDP_DROP);
    let after = fx.vlans()[&key];
    assert_eq!((after.dropped_packets - before.dropped_packets, after.dropped_bytes - before.dropped_bytes), (1, f.len() as u64));
    assert_eq!(f.len(), 9018);
    // An allowed jumbo frame goes on to the stack (TC then counts it; BPF_PROG_TEST_RUN cannot
    // build a 9000-byte skb to show that part).
    assert_eq!(fx.run_xdp(&frame(&[(0x8100, 19)], EtherTypes::Ipv4, &ipv4_packet(9000))), XDP_PASS);
}

/// The parent program on fixture frames: what counts as claiming an endpoint's address from a
/// foreign MAC (and what does not), that every frame passes unchanged while the entry is
/// watch-only, and that a flood logs one aya-log event per endpoint per second.
mod conflicts {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use vlan_common::NeighEntry;
    use vland::ebpf::{insert_neighbours, neigh_key, read_conflicts};
    use vland_tests::frame::{arp_frame, arp_request_frame, neighbour_advertisement_frame, neighbour_solicitation_frame};

    const OWN: [u8; 6] = [0x02, 0x42, 0xac, 0x10, 0x0a, 0x14];
    const FOREIGN: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x01];
    const OTHER: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x02];
    const V4: Ipv4Addr = Ipv4Addr::new(172, 16, 10, 20);
    const V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x20);
    const XDP_TX: u32 = 3;

    /// Records the data plane's log events.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<String>>>);
    impl log::Log for Events {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn parent_fixture(flags: u8) -> (Fixture, aya_log::EbpfLogger<Events>, Events) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = PathBuf::from(format!("/sys/fs/bpf/vlt-fixtures-parent-{}-{n}", std::process::id()));
        ensure_bpffs(&dir).unwrap();
        let pins = Pins::new(&dir);
        let mut bpf = load_object(&pins, IFINDEX_BASE, 0).unwrap();
        let xdp: &mut Xdp = bpf.program_mut(names::PARENT_PROGRAM).unwrap().try_into().unwrap();
        xdp.load().unwrap();
        let events = Events::default();
        let logger = aya_log::EbpfLogger::init_with_logger(&mut bpf, events.clone()).unwrap();
        let entry = NeighEntry { slot: SLOT, mac: OWN, flags, _pad: 0 };
        insert_neighbours(&pins, &[(neigh_key(LO, IpAddr::V4(V4)), entry), (neigh_key(LO, IpAddr::V6(V6)), entry)]).unwrap();
        (Fixture { bpf, dir }, logger, events)
    }

    /// The verdict, and whether the frame came out as it went in.
    fn run(fx: &Fixture, frame: &[u8]) -> (u32, bool) {
        let xdp: &Xdp = fx.bpf.program(names::PARENT_PROGRAM).unwrap().try_into().unwrap();
        let mut out = vec![0u8; frame.len() + 64];
        let r = xdp.test_run(TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), ..Default::default() }).unwrap();
        (r.return_value, &out[..r.data_size_out as usize] == frame)
    }

    fn conflicts(fx: &Fixture) -> (u64, Option<(IpAddr, [u8; 6])>) {
        let (n, last) = read_conflicts(&Pins::new(&fx.dir), &[SLOT]).unwrap()[&SLOT];
        (n, last.map(|l| (l.address, l.mac.0)))
    }

    #[test]
    fn frames_claiming_an_endpoints_address_from_another_mac_are_counted_and_pass_unchanged() {
        let (fx, mut logger, events) = parent_fixture(NeighEntry::WATCH_ONLY);
        let other_host = Ipv4Addr::new(172, 16, 10, 99);
        // (what, frame, counted)
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("a request for the endpoint's address from another host", arp_request_frame(FOREIGN, other_host, V4), false),
            ("an ARP probe for it (sender 0.0.0.0)", arp_request_frame(FOREIGN, Ipv4Addr::UNSPECIFIED, V4), false),
            ("the endpoint's own gratuitous ARP", arp_frame(1, OWN, V4, V4), false),
            ("a gratuitous ARP for another address", arp_frame(1, FOREIGN, other_host, other_host), false),
            ("a gratuitous ARP request from a foreign MAC", arp_frame(1, FOREIGN, V4, V4), true),
            ("a gratuitous ARP reply from a foreign MAC", arp_frame(2, FOREIGN, V4, V4), true),
            ("an ARP reply whose sender is the endpoint's address", arp_frame(2, FOREIGN, V4, other_host), true),
            ("a request whose sender is the endpoint's address", arp_frame(1, FOREIGN, V4, other_host), true),
            ("a solicitation for the endpoint's address", neighbour_solicitation_frame(FOREIGN, "fd00::99".parse().unwrap(), V6), false),
            ("the endpoint's own advertisement", neighbour_advertisement_frame(OWN, V6, Some(OWN)), false),
            (
                "an advertisement for another address",
                neighbour_advertisement_frame(FOREIGN, "fd00::99".parse().unwrap(), Some(FOREIGN)),
                false,
            ),
            ("an unsolicited advertisement naming a foreign MAC", neighbour_advertisement_frame(OWN, V6, Some(FOREIGN)), true),
            ("an advertisement without the option, from a foreign MAC", neighbour_advertisement_frame(FOREIGN, V6, None), true),
        ];
        let mut expected = 0;
        for (what, frame, counted) in &cases {
            assert_eq!(run(&fx, frame), (XDP_PASS, true), "{what}: passes unchanged");
            expected += u64::from(*counted);
            assert_eq!(conflicts(&fx).0, expected, "{what}");
        }
        assert_eq!(conflicts(&fx).1, Some((IpAddr::V6(V6), FOREIGN)), "the last claim");
        // A router's advertisement (hop limit below 255) is no claim on the link.
        let mut routed = neighbour_advertisement_frame(OTHER, V6, Some(OTHER));
        routed[14 + 7] = 64;
        assert_eq!(run(&fx, &routed), (XDP_PASS, true));
        assert_eq!(conflicts(&fx), (expected, Some((IpAddr::V6(V6), FOREIGN))));
        let v4_claim = arp_frame(1, OTHER, V4, V4);
        run(&fx, &v4_claim);
        assert_eq!(conflicts(&fx), (expected + 1, Some((IpAddr::V4(V4), OTHER))));

        // All of that within a second: one log event. A flood adds none; a second later, one more.
        logger.flush();
        let logged = events.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("172.16.10.20 claimed by MAC 02:ee:00:00:00:01"), "{logged:?}");
        for _ in 0..1000 {
            run(&fx, &v4_claim);
        }
        logger.flush();
        assert_eq!(events.0.lock().unwrap().len(), 1);
        std::thread::sleep(Duration::from_millis(1100));
        run(&fx, &v4_claim);
        logger.flush();
        let logged = events.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(logged[1].contains("172.16.10.20 claimed by MAC 02:ee:00:00:00:02"), "{logged:?}");
        assert_eq!(conflicts(&fx).0, expected + 1002);
    }

    /// With the responder on, a question is still answered (and is no conflict); a claim still passes.
    #[test]
    fn an_answering_entry_still_answers_and_still_counts_claims() {
        let (fx, _logger, _events) = parent_fixture(0);
        assert_eq!(run(&fx, &arp_request_frame(FOREIGN, Ipv4Addr::new(172, 16, 10, 99), V4)).0, XDP_TX);
        assert_eq!(conflicts(&fx).0, 0);
        assert_eq!(run(&fx, &arp_frame(1, FOREIGN, V4, V4)), (XDP_PASS, true));
        assert_eq!(conflicts(&fx), (1, Some((IpAddr::V4(V4), FOREIGN))));
    }
}
