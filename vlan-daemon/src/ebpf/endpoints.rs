//! The endpoint programs in userspace. Two TC programs (ingress and egress) serve every
//! endpoint of a vland instance: they are loaded once, with the instance's ifindex base patched
//! in, and pinned under `programs/`, so each apply attaches the same programs and can tell its
//! own attachments by program id. The attachments themselves are netlink ones (see
//! reconcile::namespace): the kernel keeps them with the device and drops them with it.
use super::counters::per_cpu_zeros;
use super::pins::Pins;
use anyhow::Context;
use aya::Pod;
use aya::maps::{Array, Map, PerCpuArray};
use aya::programs::{ProgramFd, ProgramInfo, SchedClassifier};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use vlan_common::{EndpointDrops, EndpointPolicy, Traffic, names};

/// A loaded program: what netlink attaches (its fd) and how the kernel reports it (its id).
pub struct LoadedProgram {
    fd: ProgramFd,
    pub id: u32,
}

impl LoadedProgram {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn from_pin(path: &std::path::Path) -> anyhow::Result<Self> {
        let info = ProgramInfo::from_pin(path).with_context(|| format!("cannot open pinned program {}", path.display()))?;
        Ok(Self { fd: info.fd()?, id: info.id() })
    }
}

/// How the kernel names the endpoint programs (program ids), to tell vland's attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramIds {
    pub ingress: u32,
    pub egress: u32,
}

/// The ids of the pinned endpoint programs, if both and the maps they use are pinned.
pub fn pinned_program_ids(pins: &Pins) -> Option<ProgramIds> {
    if !names::ALL_MAPS.iter().all(|m| pins.map(m).exists()) {
        return None;
    }
    let id = |name| ProgramInfo::from_pin(pins.program(name)).ok().map(|i| i.id());
    Some(ProgramIds { ingress: id(names::INGRESS_PROGRAM)?, egress: id(names::EGRESS_PROGRAM)? })
}

pub struct EndpointPrograms {
    pub ingress: LoadedProgram,
    pub egress: LoadedProgram,
}

impl EndpointPrograms {
    pub fn ids(&self) -> ProgramIds {
        ProgramIds { ingress: self.ingress.id, egress: self.egress.id }
    }

    /// This build's endpoint programs: the pinned ones when `pinned_are_current` (and the maps
    /// they use are still pinned, where `stats` reads them), else loaded now and pinned in place
    /// of any older ones (attachments of those are replaced as each apply finds them). Loading
    /// creates the pinned maps, too.
    pub fn open_or_load(pins: &Pins, pinned_are_current: bool) -> anyhow::Result<Self> {
        let (ingress, egress) = (pins.program(names::INGRESS_PROGRAM), pins.program(names::EGRESS_PROGRAM));
        let maps_pinned = names::ALL_MAPS.iter().all(|m| pins.map(m).exists());
        if pinned_are_current
            && maps_pinned
            && let (Ok(ingress), Ok(egress)) = (LoadedProgram::from_pin(&ingress), LoadedProgram::from_pin(&egress))
        {
            return Ok(Self { ingress, egress });
        }
        let mut bpf = super::load_object(pins, pins.ifindex_base(), 0)?;
        let ingress = load_classifier(&mut bpf, names::INGRESS_PROGRAM, &ingress)?;
        let egress = load_classifier(&mut bpf, names::EGRESS_PROGRAM, &egress)?;
        // An older build's XDP counter stays loaded while children still carry it (apply
        // removes it from each); its pin is no use to anyone.
        let _ = std::fs::remove_file(pins.program(names::LEGACY_INGRESS_XDP_PROGRAM));
        Ok(Self { ingress, egress })
    }
}

fn load_classifier(bpf: &mut aya::Ebpf, name: &str, pin: &std::path::Path) -> anyhow::Result<LoadedProgram> {
    let tc: &mut SchedClassifier = bpf.program_mut(name).with_context(|| format!("no program {name} in the eBPF object"))?.try_into()?;
    tc.load().with_context(|| format!("the kernel rejected the TC counting program {name}"))?;
    repin(pin, |p| tc.pin(p))?;
    Ok(LoadedProgram { fd: tc.fd()?.try_clone()?, id: tc.info()?.id() })
}

/// Pins a program at `path`, in place of whatever was pinned there.
fn repin(path: &std::path::Path, pin: impl FnOnce(&std::path::Path) -> Result<(), aya::pin::PinError>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot unpin {}", path.display())),
    }
    pin(path).with_context(|| format!("cannot pin {}", path.display()))
}

/// What the egress program enforces for an endpoint (nothing unless `spoof_check`).
pub fn endpoint_policy(spoof_check: bool, mac: Option<crate::mac::Mac>, ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> EndpointPolicy {
    let mut p = EndpointPolicy::default();
    if !spoof_check {
        // Nothing to enforce: the empty policy, which a fresh slot already has.
        return p;
    }
    p.flags |= EndpointPolicy::SPOOF_CHECK;
    if let Some(m) = mac {
        p.mac[..6].copy_from_slice(&m.octets());
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

fn zero_per_cpu<V: Pod + Default>(pins: &Pins, name: &str, slots: &[u32]) -> anyhow::Result<()> {
    let Some(data) = pins.open_map(name)? else { return Ok(()) };
    let mut map: PerCpuArray<_, V> = PerCpuArray::try_from(Map::PerCpuArray(data))?;
    for slot in slots {
        map.set(*slot, per_cpu_zeros::<V>()?, 0)?;
    }
    Ok(())
}

/// Clears what a slot may hold from an earlier endpoint: counters, drops, answers, conflicts and policy. Called for
/// slots given to new endpoints (arrays cannot delete entries, only overwrite them).
pub fn reset_slots(pins: &Pins, slots: &[u32]) -> anyhow::Result<()> {
    zero_per_cpu::<Traffic>(pins, names::ENDPOINT_TRAFFIC_MAP, slots)?;
    zero_per_cpu::<EndpointDrops>(pins, names::ENDPOINT_DROPS_MAP, slots)?;
    zero_per_cpu::<vlan_common::NeighCounters>(pins, names::ENDPOINT_NEIGH_MAP, slots)?;
    zero_per_cpu::<vlan_common::ConflictCounters>(pins, names::ENDPOINT_CONFLICTS_MAP, slots)?;
    super::conflicts::reset(pins, slots)?;
    if let Some(data) = pins.open_map(names::ENDPOINT_POLICY_MAP)? {
        let mut map: Array<_, EndpointPolicy> = Array::try_from(Map::Array(data))?;
        for slot in slots {
            map.set(*slot, EndpointPolicy::default(), 0)?;
        }
    }
    Ok(())
}

/// Writes the policies of the endpoints in these slots (before their egress filter is
/// attached, so no frame passes unchecked).
pub fn write_policies(pins: &Pins, policies: &[(u32, EndpointPolicy)]) -> anyhow::Result<()> {
    let data = pins.open_map(names::ENDPOINT_POLICY_MAP)?.context("the endpoint policy map is not pinned")?;
    let mut map: Array<_, EndpointPolicy> = Array::try_from(Map::Array(data))?;
    for (slot, policy) in policies {
        if map.get(slot, 0).ok() != Some(*policy) {
            map.set(*slot, *policy, 0)?;
        }
    }
    Ok(())
}

/// The policies now in the slots given (none before the map exists).
pub fn read_policies(pins: &Pins, slots: impl Iterator<Item = u32>) -> anyhow::Result<std::collections::HashMap<u32, EndpointPolicy>> {
    let Some(data) = pins.open_map(names::ENDPOINT_POLICY_MAP)? else { return Ok(Default::default()) };
    let map: Array<_, EndpointPolicy> = Array::try_from(Map::Array(data))?;
    slots.map(|slot| Ok((slot, map.get(&slot, 0)?))).collect()
}

/// Whether program `id` is the generic-XDP counter older builds attached to children, which
/// apply removes; anything else on an endpoint's XDP hook is someone else's and stays.
pub fn is_legacy_ingress_xdp(id: u32) -> bool {
    super::prog_info::program_name(id).is_some_and(|n| names::LEGACY_INGRESS_XDP_PROGRAM.starts_with(&n) && !n.is_empty())
}
