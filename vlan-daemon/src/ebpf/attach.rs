//! Attaching the counting programs to endpoint devices. Each endpoint gets its own program
//! instance, loaded with its namespace and its slot in the endpoint arrays patched in (so the
//! per-packet path indexes an array instead of hashing a key), attached as XDP (ingress) and TC
//! egress. Each attachment outlives vland: bpf_links are pinned; on kernels before 6.6 (no tcx)
//! the egress program is a classic clsact filter, which the kernel keeps without any pin.
use super::counters::per_cpu_zeros;
use super::liveness;
use super::pins::{Direction, Pins};
use crate::netns;
use anyhow::Context;
use aya::maps::{Array, Map, PerCpuArray};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, Pod};
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use vlan_common::{EndpointDrops, EndpointKey, EndpointPolicy, Traffic, names};

pub struct EndpointDevice {
    pub ifindex: u32,
    pub ifname: String,
    /// The endpoint's index in the endpoint arrays (1 and up), recorded in vland's state.
    pub slot: u32,
    pub policy: EndpointPolicy,
}

/// What the egress program enforces for an endpoint (nothing unless `spoof_check`).
pub fn endpoint_policy(spoof_check: bool, mac: Option<[u8; 6]>, ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> EndpointPolicy {
    let mut p = EndpointPolicy::default();
    if spoof_check {
        p.flags |= EndpointPolicy::SPOOF_CHECK;
    }
    if let Some(m) = mac {
        p.mac[..6].copy_from_slice(&m);
    }
    if let Some(a) = ipv4 {
        p.flags |= EndpointPolicy::HAS_IPV4;
        p.ipv4 = a.octets();
    }
    if let Some(a) = ipv6 {
        p.flags |= EndpointPolicy::HAS_IPV6;
        p.ipv6 = a.octets();
    }
    p
}

fn load(pins: &Pins, slot: u32) -> anyhow::Result<Ebpf> {
    let mut bpf = super::load_object(pins, slot, 0)?;
    let xdp: &mut Xdp = program(&mut bpf, names::INGRESS_PROGRAM)?.try_into()?;
    xdp.load().context("the kernel rejected the XDP counting program")?;
    let tc: &mut SchedClassifier = program(&mut bpf, names::EGRESS_PROGRAM)?.try_into()?;
    tc.load().context("the kernel rejected the TC counting program")?;
    Ok(bpf)
}

fn program<'a>(bpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::programs::Program> {
    bpf.program_mut(name).with_context(|| format!("the eBPF object has no program {name}"))
}

fn zero_per_cpu<V: Pod + Default>(pins: &Pins, name: &str, slots: &[u32]) -> anyhow::Result<()> {
    let Some(data) = pins.open_map(name)? else { return Ok(()) };
    let mut map: PerCpuArray<_, V> = PerCpuArray::try_from(Map::PerCpuArray(data))?;
    for slot in slots {
        map.set(*slot, per_cpu_zeros::<V>()?, 0)?;
    }
    Ok(())
}

/// Clears what a slot may hold from an earlier endpoint: counters, drops and policy. Called for
/// slots given to new endpoints (arrays cannot delete entries, only overwrite them).
pub fn reset_slots(pins: &Pins, slots: &[u32]) -> anyhow::Result<()> {
    zero_per_cpu::<Traffic>(pins, names::ENDPOINT_TRAFFIC_MAP, slots)?;
    zero_per_cpu::<EndpointDrops>(pins, names::ENDPOINT_DROPS_MAP, slots)?;
    if let Some(data) = pins.open_map(names::ENDPOINT_POLICY_MAP)? {
        let mut map: Array<_, EndpointPolicy> = Array::try_from(Map::Array(data))?;
        for slot in slots {
            map.set(*slot, EndpointPolicy::default(), 0)?;
        }
    }
    Ok(())
}

/// Writes the endpoints' policies (before attaching, so no frame passes unchecked).
fn write_policies(pins: &Pins, devices: &[EndpointDevice]) -> anyhow::Result<()> {
    let Some(data) = pins.open_map(names::ENDPOINT_POLICY_MAP)? else { return Ok(()) };
    let mut map: Array<_, EndpointPolicy> = Array::try_from(Map::Array(data))?;
    for d in devices {
        if map.get(&d.slot, 0).ok() != Some(d.policy) {
            map.set(d.slot, d.policy, 0)?;
        }
    }
    Ok(())
}

/// Attaches to every device in `devices` (all inside namespace `ns`) that is not attached yet,
/// and makes every device's policy what it should be.
pub fn attach_endpoints(pins: &Pins, ns: &File, netns_inum: u32, devices: &[EndpointDevice]) -> anyhow::Result<()> {
    write_policies(pins, devices)?;
    let tcx = super::tc::has_tcx();
    let missing: Vec<&EndpointDevice> = devices
        .iter()
        .filter(|d| {
            let key = EndpointKey { netns_inum, ifindex: d.ifindex };
            // Without tcx there is no pin that proves the egress filter is there: redo it.
            !(liveness::attached_to(&pins.endpoint_link(key, Direction::Ingress), d.ifindex)
                && (!tcx || liveness::attached_to(&pins.endpoint_link(key, Direction::Egress), d.ifindex)))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Attaching resolves ifindexes in the caller's namespace, so it runs on a thread inside `ns`.
    netns::run_in(ns, || {
        for dev in missing {
            let mut bpf = load(pins, dev.slot)?;
            // The first load creates the pinned maps: the policy can be written now.
            write_policies(pins, std::slice::from_ref(dev))?;
            let key = EndpointKey { netns_inum, ifindex: dev.ifindex };
            attach_one(&mut bpf, pins, key, dev).with_context(|| format!("cannot attach counters to {}", dev.ifname))?;
        }
        Ok(())
    })
}

fn attach_one(bpf: &mut Ebpf, pins: &Pins, key: EndpointKey, dev: &EndpointDevice) -> anyhow::Result<()> {
    let ingress = pins.endpoint_link(key, Direction::Ingress);
    let egress = pins.endpoint_link(key, Direction::Egress);
    // A half-attached device (crash between the two pins) is redone from scratch.
    let _ = std::fs::remove_file(&ingress);
    let _ = std::fs::remove_file(&egress);

    let xdp: &mut Xdp = program(bpf, names::INGRESS_PROGRAM)?.try_into()?;
    // Native where the driver has it, generic (SKB) otherwise: macvlan/ipvlan/vlan are generic-only.
    let id = xdp.attach_to_if_index(dev.ifindex, XdpMode::Default).context("XDP attach")?;
    let link: FdLink = xdp.take_link(id)?.try_into().context("XDP attached without a bpf_link (kernel < 5.9?)")?;
    link.pin(&ingress).with_context(|| format!("cannot pin {}", ingress.display()))?;

    let tc: &mut SchedClassifier = program(bpf, names::EGRESS_PROGRAM)?.try_into()?;
    super::tc::attach(tc, names::EGRESS_PROGRAM, &dev.ifname, TcAttachType::Egress, &egress)
}

/// Unpins the endpoint's links (which detaches them).
pub fn detach_endpoint(pins: &Pins, key: EndpointKey) -> anyhow::Result<()> {
    for dir in [Direction::Ingress, Direction::Egress] {
        let path = pins.endpoint_link(key, dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot unpin {}", path.display())),
        }
    }
    Ok(())
}

/// Unpins the links of devices that are not `keep`: links that were recreated (new ifindex),
/// endpoints removed while vland was down, or halves left by an interrupted run. (Their slots'
/// contents are cleared when the slots are given out again.)
pub fn collect_garbage(pins: &Pins, keep: &std::collections::HashSet<EndpointKey>) -> anyhow::Result<()> {
    for (key, path) in pins.endpoint_links() {
        if !keep.contains(&key) {
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
        }
    }
    Ok(())
}
