//! Attaching the counting programs to endpoint devices. One program instance is loaded per
//! namespace (its NETNS_INUM patched in), attached as XDP (ingress) and TC egress, and each
//! attachment outlives vland: bpf_links are pinned; on kernels before 6.6 (no tcx) the egress
//! program is a classic clsact filter, which the kernel keeps without any pin.
use super::liveness;
use super::pins::{Direction, Pins};
use crate::netns;
use anyhow::Context;
use aya::maps::{HashMap as BpfHashMap, PerCpuHashMap, PerCpuValues};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::Ebpf;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use vlan_common::{EndpointDropKey, EndpointKey, EndpointPolicy, Traffic, names};

pub struct EndpointDevice {
    pub ifindex: u32,
    pub ifname: String,
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

fn load(pins: &Pins, netns_inum: u32) -> anyhow::Result<Ebpf> {
    let mut bpf = super::load_object(pins, netns_inum)?;
    let xdp: &mut Xdp = program(&mut bpf, names::INGRESS_PROGRAM)?.try_into()?;
    xdp.load().context("the kernel rejected the XDP counting program")?;
    let tc: &mut SchedClassifier = program(&mut bpf, names::EGRESS_PROGRAM)?.try_into()?;
    tc.load().context("the kernel rejected the TC counting program")?;
    Ok(bpf)
}

fn program<'a>(bpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::programs::Program> {
    bpf.program_mut(name).with_context(|| format!("the eBPF object has no program {name}"))
}

/// Creates the endpoint's zeroed counter entry unless it exists (re-attaching keeps counts).
fn register(bpf: &mut Ebpf, key: EndpointKey) -> anyhow::Result<()> {
    let map = bpf.map_mut(names::ENDPOINT_TRAFFIC_MAP).context("the eBPF object has no traffic map")?;
    let mut map: PerCpuHashMap<_, EndpointKey, Traffic> = PerCpuHashMap::try_from(map)?;
    if map.get(&key, 0).is_err() {
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        map.insert(key, PerCpuValues::try_from(vec![Traffic::default(); cpus])?, 0)?;
    }
    Ok(())
}

/// Writes the endpoints' policies (before attaching, so no frame passes unchecked).
fn write_policies(pins: &Pins, netns_inum: u32, devices: &[EndpointDevice]) -> anyhow::Result<()> {
    let path = pins.map(names::ENDPOINT_POLICY_MAP);
    if !path.exists() {
        return Ok(());
    }
    let mut map: BpfHashMap<_, EndpointKey, EndpointPolicy> = BpfHashMap::try_from(aya::maps::Map::HashMap(aya::maps::MapData::from_pin(&path)?))?;
    for d in devices {
        let key = EndpointKey { netns_inum, ifindex: d.ifindex };
        if map.get(&key, 0).ok() != Some(d.policy) {
            map.insert(key, d.policy, 0)?;
        }
    }
    Ok(())
}

/// Attaches to every device in `devices` (all inside namespace `ns`) that is not attached yet,
/// and makes every device's policy what it should be.
pub fn attach_endpoints(pins: &Pins, ns: &File, netns_inum: u32, devices: &[EndpointDevice]) -> anyhow::Result<()> {
    write_policies(pins, netns_inum, devices)?;
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
        let mut bpf = load(pins, netns_inum)?;
        // The first load creates the pinned maps: the policies can be written now.
        write_policies(pins, netns_inum, devices)?;
        for dev in missing {
            let key = EndpointKey { netns_inum, ifindex: dev.ifindex };
            register(&mut bpf, key)?;
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

/// Unpins the endpoint's links (which detaches them) and drops its counters.
pub fn detach_endpoint(pins: &Pins, key: EndpointKey) -> anyhow::Result<()> {
    for dir in [Direction::Ingress, Direction::Egress] {
        let path = pins.endpoint_link(key, dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot unpin {}", path.display())),
        }
    }
    forget_endpoints(pins, |k| *k == key)
}

/// Drops every pin and counter of devices that are not `keep`: links that were recreated (new
/// ifindex), endpoints removed while vland was down, or halves left by an interrupted run.
pub fn collect_garbage(pins: &Pins, keep: &std::collections::HashSet<EndpointKey>) -> anyhow::Result<()> {
    for (key, path) in pins.endpoint_links() {
        if !keep.contains(&key) {
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
        }
    }
    forget_endpoints(pins, |k| !keep.contains(k))
}

/// Drops the counters, drops and policies of every endpoint `stale` says is gone.
fn forget_endpoints(pins: &Pins, stale: impl Fn(&EndpointKey) -> bool) -> anyhow::Result<()> {
    remove_per_cpu_keys::<EndpointKey, Traffic>(pins, names::ENDPOINT_TRAFFIC_MAP, |k| stale(k))?;
    remove_per_cpu_keys::<EndpointDropKey, u64>(pins, names::ENDPOINT_DROPS_MAP, |k| stale(&k.endpoint))?;
    let policy_path = pins.map(names::ENDPOINT_POLICY_MAP);
    if policy_path.exists() {
        let data = aya::maps::MapData::from_pin(&policy_path)?;
        let mut map: BpfHashMap<_, EndpointKey, EndpointPolicy> = BpfHashMap::try_from(aya::maps::Map::HashMap(data))?;
        let gone: Vec<EndpointKey> = map.keys().filter_map(Result::ok).filter(|k| stale(k)).collect();
        for key in gone {
            let _ = map.remove(&key);
        }
    }
    Ok(())
}

/// Removes the entries of a pinned per-CPU hash map whose key matches `stale`.
fn remove_per_cpu_keys<K: aya::Pod, V: aya::Pod>(pins: &Pins, map_name: &str, stale: impl Fn(&K) -> bool) -> anyhow::Result<()> {
    let path = pins.map(map_name);
    if !path.exists() {
        return Ok(());
    }
    let data = aya::maps::MapData::from_pin(&path)?;
    let mut map: PerCpuHashMap<_, K, V> = PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(data))?;
    let gone: Vec<K> = map.keys().filter_map(Result::ok).filter(|k| stale(k)).collect();
    for key in gone {
        let _ = map.remove(&key);
    }
    Ok(())
}
