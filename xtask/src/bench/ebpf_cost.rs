//! eBPF cost per packet through BPF_PROG_TEST_RUN (repeated in the kernel, which reports the mean
//! time per run): vland's trunk and endpoint programs against empty programs of the same type,
//! on the same frames, in the same run.
use super::report::{Measurement, Target};
use crate::paths::target_dir;
use anyhow::Context;
use aya::Ebpf;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};

use std::path::PathBuf;
use vlan_common::{EndpointPolicy, TrunkPolicy, names};
use vland::ebpf::{Pins, load_object_from};
use vland_tests::frame::{EtherTypes, Frame, TPID_8021AD, TPID_8021Q, arp_request, ipv4_packet};

const INUM: u32 = 7;
/// BPF_PROG_TEST_RUN runs programs as if on the loopback device.
const LO: u32 = 1;

fn kinds() -> Vec<(&'static str, Vec<u8>)> {
    let ipv4 = |tags: &[(u16, u16)]| Frame::new(EtherTypes::Ipv4).tags(tags).payload(&ipv4_packet(84)).build();
    vec![
        ("untagged", ipv4(&[])),
        ("802.1Q", ipv4(&[(TPID_8021Q, 19)])),
        ("QinQ", ipv4(&[(TPID_8021AD, 100), (TPID_8021Q, 5)])),
        ("ARP", Frame::new(EtherTypes::Arp).payload(&arp_request()).build()),
    ]
}

struct Objects {
    vland: Ebpf,
    empty: Ebpf,
    pin_dir: PathBuf,
}

impl Drop for Objects {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

fn load() -> anyhow::Result<Objects> {
    let dir = target_dir().join("bpfel-unknown-none/release");
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/vlt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&pin_dir).context("cannot create a bpffs dir for the benchmark (is bpffs mounted?)")?;
    // The object just built (not the one embedded in this xtask's copy of the library). Test runs
    // run on the loopback device: numbered as the endpoint in slot 1, serving trunk slot 1.
    let object = std::fs::read(dir.join("vlan-ebpf")).context("cannot read the eBPF object (cargo xtask build-ebpf)")?;
    let mut vland = load_object_from(&object, &Pins::new(&pin_dir), LO - 1, 1)?;
    let mut empty = Ebpf::load_file(dir.join("vlan-ebpf-bench"))?;
    let p: &mut Xdp = vland.program_mut(names::TRUNK_PROGRAM).unwrap().try_into()?;
    p.load()?;
    for name in [names::TRUNK_TC_PROGRAM, names::INGRESS_PROGRAM, names::EGRESS_PROGRAM] {
        let p: &mut SchedClassifier = vland.program_mut(name).unwrap().try_into()?;
        p.load()?;
    }
    let p: &mut Xdp = empty.program_mut("empty_xdp").unwrap().try_into()?;
    p.load()?;
    let p: &mut SchedClassifier = empty.program_mut("empty_tc").unwrap().try_into()?;
    p.load()?;

    // The trunk allows 802.1Q 19 and 802.1ad 100, so every frame kind takes the pass path that
    // real traffic takes; the endpoint is registered, with spoof_check on.
    let mut policy = TrunkPolicy { flags: TrunkPolicy::ENABLED, netns_inum: INUM, ifindex: LO, ..TrunkPolicy::EMPTY };
    policy.allow(0x8100, 19);
    policy.allow(0x88a8, 100);
    let mut trunks: aya::maps::Array<_, TrunkPolicy> = aya::maps::Array::try_from(vland.map_mut(names::TRUNKS_MAP).unwrap())?;
    trunks.set(1, policy, 0)?;
    // The endpoint programs serve slot 1, with spoof_check on.
    let mut ep: aya::maps::Array<_, EndpointPolicy> = aya::maps::Array::try_from(vland.map_mut(names::ENDPOINT_POLICY_MAP).unwrap())?;
    let mut p = EndpointPolicy { flags: EndpointPolicy::SPOOF_CHECK | EndpointPolicy::HAS_IPV4, ..Default::default() };
    p.mac[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    ep.set(1, p, 0)?;
    Ok(Objects { vland, empty, pin_dir })
}

fn ns_per_run<P: TestRun<Opts<'static> = TestRunOptions<'static>, Result = aya::programs::TestRunResult>>(
    prog: &P,
    frame: &'static [u8],
    repeat: u32,
) -> anyhow::Result<f64> {
    // The best of three: the machine is shared and noisy; the minimum is the program's cost.
    let mut best = f64::MAX;
    for _ in 0..3 {
        let r = prog.test_run(TestRunOptions { data_in: Some(frame), repeat, ..Default::default() })?;
        best = best.min(r.duration.as_nanos() as f64);
    }
    Ok(best)
}

pub fn run(quick: bool) -> anyhow::Result<Vec<Measurement>> {
    let repeat = if quick { 200_000 } else { 1_000_000 };
    let objects = load()?;
    let mut out = Vec::new();
    for (kind, f) in kinds() {
        let f: &'static [u8] = Box::leak(f.into_boxed_slice());
        let cases: [(&str, &str, bool); 4] = [
            ("trunk XDP", names::TRUNK_PROGRAM, true),
            ("trunk TC", names::TRUNK_TC_PROGRAM, false),
            ("endpoint TC ingress", names::INGRESS_PROGRAM, false),
            ("endpoint TC egress", names::EGRESS_PROGRAM, false),
        ];
        for (label, name, xdp) in cases {
            let (value, baseline) = if xdp {
                let p: &Xdp = objects.vland.program(name).unwrap().try_into()?;
                let e: &Xdp = objects.empty.program("empty_xdp").unwrap().try_into()?;
                (ns_per_run(p, f, repeat)?, ns_per_run(e, f, repeat)?)
            } else {
                let p: &SchedClassifier = objects.vland.program(name).unwrap().try_into()?;
                let e: &SchedClassifier = objects.empty.program("empty_tc").unwrap().try_into()?;
                (ns_per_run(p, f, repeat)?, ns_per_run(e, f, repeat)?)
            };
            let base = if xdp { "empty XDP program" } else { "empty TC program" };
            out.push(Measurement::new(&format!("ebpf {label}, {kind}"), value, "ns/pkt", base, baseline, Target::AtMost(1.5)));
        }
    }
    Ok(out)
}
