//! Trunks in userspace: attaching the VLAN-enforcing XDP program to a trunk device (native where
//! the driver has it), writing its policy and allowed (tag protocol, VID) set into the pinned
//! maps, removing trunks no longer configured, and reading the per-VLAN and per-reason counters.
use super::liveness;
use super::pins::Pins;
use anyhow::Context;
use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuHashMap};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use std::collections::{BTreeSet, HashMap, HashSet};
use vlan_common::{DropKey, TrunkId, TrunkPolicy, VlanKey, VlanStats, names};

/// What one trunk should enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    pub id: TrunkId,
    pub ifname: String,
    /// (tag protocol, VID) pairs the trunk carries.
    pub allowed: BTreeSet<(u16, u16)>,
    pub untagged_drop: bool,
}

fn open_map(pins: &Pins, name: &str) -> anyhow::Result<MapData> {
    let path = pins.map(name);
    MapData::from_pin(&path).with_context(|| format!("cannot open pinned map {}", path.display()))
}

/// Attaches the trunk programs to `spec.id` (unless live links are pinned: XDP for early drops,
/// TC ingress for the rest) and makes the maps say exactly what the spec says. The maps are
/// written first, so the programs never run without the policy. Must run in the trunk's
/// namespace (vland's own).
pub fn apply_trunk(pins: &Pins, spec: &TrunkSpec) -> anyhow::Result<()> {
    let xdp_pin = pins.trunk_link(spec.id, "xdp");
    let tc_pin = pins.trunk_link(spec.id, "tc");
    let tc_alive = !super::tc::has_tcx() || liveness::attached_to(&tc_pin, spec.id.ifindex);
    if !liveness::attached_to(&xdp_pin, spec.id.ifindex) || !tc_alive {
        let _ = std::fs::remove_file(&xdp_pin);
        let _ = std::fs::remove_file(&tc_pin);
        let mut bpf = super::load_object(pins, spec.id.netns_inum, 0)?;
        write_policy(pins, spec)?;
        let xdp: &mut Xdp = bpf.program_mut(names::TRUNK_PROGRAM).context("no trunk program in the eBPF object")?.try_into()?;
        xdp.load().context("the kernel rejected the trunk XDP program")?;
        // Native (driver) mode where the device has it, generic otherwise.
        let id = xdp.attach_to_if_index(spec.id.ifindex, XdpMode::Default).context("XDP attach to the trunk")?;
        let link: FdLink = xdp.take_link(id)?.try_into().context("XDP attached without a bpf_link")?;
        link.pin(&xdp_pin).with_context(|| format!("cannot pin {}", xdp_pin.display()))?;
        let tc: &mut SchedClassifier =
            bpf.program_mut(names::TRUNK_TC_PROGRAM).context("no trunk TC program in the eBPF object")?.try_into()?;
        tc.load().context("the kernel rejected the trunk TC program")?;
        super::tc::attach(tc, names::TRUNK_TC_PROGRAM, &spec.ifname, TcAttachType::Ingress, &tc_pin)?;
        return Ok(());
    }
    write_policy(pins, spec)
}

fn write_policy(pins: &Pins, spec: &TrunkSpec) -> anyhow::Result<()> {
    let mut policy: BpfHashMap<_, TrunkId, TrunkPolicy> = BpfHashMap::try_from(Map::HashMap(open_map(pins, names::TRUNK_POLICY_MAP)?))?;
    let mut allowed: BpfHashMap<_, VlanKey, u32> = BpfHashMap::try_from(Map::HashMap(open_map(pins, names::ALLOWED_VLANS_MAP)?))?;
    let want: HashSet<VlanKey> = spec
        .allowed
        .iter()
        .map(|(tpid, vid)| VlanKey { netns_inum: spec.id.netns_inum, ifindex: spec.id.ifindex, tpid: *tpid, vid: *vid })
        .collect();
    // Add before removing: a VLAN that stays allowed is never dropped in between.
    for key in &want {
        allowed.insert(key, 1, 0)?;
    }
    let stale: Vec<VlanKey> = allowed
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.netns_inum == spec.id.netns_inum && k.ifindex == spec.id.ifindex && !want.contains(k))
        .collect();
    for key in stale {
        let _ = allowed.remove(&key);
    }
    policy.insert(spec.id, TrunkPolicy { untagged_drop: spec.untagged_drop as u32 }, 0)?;
    Ok(())
}

/// Detaches and forgets every trunk of `netns_inum` not in `keep` (policy, allowed set, pin).
pub fn remove_other_trunks(pins: &Pins, netns_inum: u32, keep: &HashSet<TrunkId>) -> anyhow::Result<()> {
    for (id, path) in pins.trunk_links() {
        if id.netns_inum == netns_inum && !keep.contains(&id) {
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
        }
    }
    // Without tcx the TC filter has no pin: with the policy gone below it passes everything,
    // and it is replaced (not duplicated) if the trunk comes back.
    if !pins.map(names::TRUNK_POLICY_MAP).exists() {
        return Ok(());
    }
    let mut policy: BpfHashMap<_, TrunkId, TrunkPolicy> = BpfHashMap::try_from(Map::HashMap(open_map(pins, names::TRUNK_POLICY_MAP)?))?;
    let gone: Vec<TrunkId> = policy.keys().filter_map(Result::ok).filter(|id| id.netns_inum == netns_inum && !keep.contains(id)).collect();
    for id in &gone {
        let _ = policy.remove(id);
    }
    let mut allowed: BpfHashMap<_, VlanKey, u32> = BpfHashMap::try_from(Map::HashMap(open_map(pins, names::ALLOWED_VLANS_MAP)?))?;
    let stale: Vec<VlanKey> = allowed
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.netns_inum == netns_inum && !keep.contains(&TrunkId { netns_inum: k.netns_inum, ifindex: k.ifindex }))
        .collect();
    for key in stale {
        let _ = allowed.remove(&key);
    }
    Ok(())
}

/// Per-VLAN counters and per-reason drops of every trunk, summed over CPUs.
pub struct TrunkCounters {
    pub vlans: HashMap<VlanKey, VlanStats>,
    pub drops: HashMap<DropKey, u64>,
}

pub fn read_trunk_counters(pins: &Pins) -> anyhow::Result<TrunkCounters> {
    let mut out = TrunkCounters { vlans: HashMap::new(), drops: HashMap::new() };
    if pins.map(names::VLAN_STATS_MAP).exists() {
        let map: PerCpuHashMap<_, VlanKey, VlanStats> =
            PerCpuHashMap::try_from(Map::PerCpuHashMap(open_map(pins, names::VLAN_STATS_MAP)?))?;
        for entry in map.iter() {
            let (key, per_cpu) = entry?;
            let mut sum = VlanStats::default();
            per_cpu.iter().for_each(|s| sum.add(s));
            out.vlans.insert(key, sum);
        }
    }
    if pins.map(names::DROPS_MAP).exists() {
        let map: PerCpuHashMap<_, DropKey, u64> = PerCpuHashMap::try_from(Map::PerCpuHashMap(open_map(pins, names::DROPS_MAP)?))?;
        for entry in map.iter() {
            let (key, per_cpu) = entry?;
            out.drops.insert(key, per_cpu.iter().sum());
        }
    }
    Ok(out)
}
