//! The trunk policies in the pinned maps: which TRUNKS slot each trunk has, what it allows, and
//! its counters (every VLAN of a trunk has a fixed place in VLAN_COUNTERS). The maps are the
//! record: a crash at any point leaves them describing what the programs enforce, and the next
//! apply rewrites them from the config.
use super::counters::per_cpu_zeros;
use super::pins::Pins;
use crate::config::TrunkVlans;
use anyhow::Context;
use aya::maps::{Array, Map, MapData, PerCpuArray};
use std::collections::BTreeMap;
use vlan_common::{
    ETH_P_8021AD, ETH_P_8021Q, LinkId, MAX_TRUNKS, TrunkPolicy, VID_COUNT, VLAN_CHUNKS_PER_TRUNK, VlanStats, VlanStatsChunk, names,
    vlan_counter_place,
};

/// One VLAN on one trunk: the outer tag's protocol (ETH_P_8021Q, ETH_P_8021AD; 0 = untagged) and
/// VID. Names a counter row; the maps themselves find it by position (see vlan_counter_place).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanKey {
    pub netns_inum: u32,
    pub ifindex: u32,
    pub tpid: u16,
    pub vid: u16,
}

/// One trunk's counters, summed over CPUs.
pub struct TrunkCounts {
    /// Every VLAN (tag protocol 0: untagged) that is allowed or saw frames.
    pub vlans: BTreeMap<VlanKey, VlanStats>,
    pub malformed: u64,
}

pub struct TrunkTable {
    trunks: Array<MapData, TrunkPolicy>,
    counters: PerCpuArray<MapData, VlanStatsChunk>,
    malformed: PerCpuArray<MapData, u64>,
    /// The enabled slots, as read when opened and kept in step with every write.
    policies: BTreeMap<u32, TrunkPolicy>,
}

impl TrunkTable {
    /// Opens the table; None if no object has created the maps yet (so no trunk exists). The
    /// first load pins them one by one: until all are there, no policy can have been written.
    pub fn open(pins: &Pins) -> anyhow::Result<Option<TrunkTable>> {
        let (Some(trunks), Some(counters), Some(malformed)) =
            (pins.open_map(names::TRUNKS_MAP)?, pins.open_map(names::VLAN_COUNTERS_MAP)?, pins.open_map(names::TRUNK_MALFORMED_MAP)?)
        else {
            return Ok(None);
        };
        let trunks: Array<_, TrunkPolicy> = Array::try_from(Map::Array(trunks))?;
        let counters = PerCpuArray::try_from(Map::PerCpuArray(counters))?;
        let malformed = PerCpuArray::try_from(Map::PerCpuArray(malformed))?;
        let mut policies = BTreeMap::new();
        for slot in 1..MAX_TRUNKS {
            let p = trunks.get(&slot, 0).with_context(|| format!("cannot read trunk slot {slot}"))?;
            if p.flags & TrunkPolicy::ENABLED != 0 {
                policies.insert(slot, p);
            }
        }
        Ok(Some(TrunkTable { trunks, counters, malformed, policies }))
    }

    /// Opens the table, creating the pinned maps first if this is the first trunk.
    pub fn open_or_create(pins: &Pins) -> anyhow::Result<TrunkTable> {
        if let Some(t) = Self::open(pins)? {
            return Ok(t);
        }
        drop(super::load_object(pins, 0, 0)?);
        Self::open(pins)?.context("loading the eBPF object did not pin the trunk maps")
    }

    /// The enabled slots and their policies.
    pub fn slots(&self) -> impl Iterator<Item = (u32, &TrunkPolicy)> {
        self.policies.iter().map(|(s, p)| (*s, p))
    }

    /// The slot `id` has, or a free one.
    pub fn slot_for(&self, id: LinkId) -> anyhow::Result<u32> {
        if let Some((slot, _)) = self.slots().find(|(_, p)| p.id() == id) {
            return Ok(slot);
        }
        (1..MAX_TRUNKS)
            .find(|s| !self.policies.contains_key(s))
            .with_context(|| format!("more than {} trunks: vland's trunk map is full", MAX_TRUNKS - 1))
    }

    /// Makes `slot` hold trunk `id` enforcing `vlans`. A slot taken by a new trunk starts from
    /// zeroed counters (cleared before the policy turns counting on); a trunk keeps its counters
    /// across changes.
    pub fn set(&mut self, slot: u32, id: LinkId, vlans: &TrunkVlans) -> anyhow::Result<()> {
        let new = policy_for(id, vlans)?;
        match self.policies.get(&slot) {
            Some(old) if *old == new => return Ok(()),
            Some(old) if old.id() == id => {}
            _ => self.zero_counters(slot)?,
        }
        self.trunks.set(slot, new, 0).with_context(|| format!("cannot write trunk slot {slot}"))?;
        self.policies.insert(slot, new);
        Ok(())
    }

    /// Whether trunk `id` holds a slot that enforces exactly `vlans`.
    pub fn enforces(&self, id: LinkId, vlans: &TrunkVlans) -> bool {
        policy_for(id, vlans).is_ok_and(|want| self.slots().any(|(_, p)| *p == want))
    }

    /// Turns `slot` off: its programs pass everything, uncounted.
    pub fn clear(&mut self, slot: u32) -> anyhow::Result<()> {
        if self.policies.remove(&slot).is_some() {
            self.trunks.set(slot, TrunkPolicy::EMPTY, 0).with_context(|| format!("cannot clear trunk slot {slot}"))?;
        }
        Ok(())
    }

    fn zero_counters(&mut self, slot: u32) -> anyhow::Result<()> {
        // Whole chunks: each holds counters of this slot only, and its programs are not attached.
        let first = slot * VLAN_CHUNKS_PER_TRUNK;
        for element in first..first + VLAN_CHUNKS_PER_TRUNK {
            self.counters.set(element, per_cpu_zeros::<VlanStatsChunk>()?, 0)?;
        }
        self.malformed.set(slot, per_cpu_zeros::<u64>()?, 0)?;
        Ok(())
    }

    /// The counters of the trunk in `slot`.
    pub fn counts(&self, slot: u32) -> anyhow::Result<TrunkCounts> {
        let policy = self.policies.get(&slot).copied().unwrap_or(TrunkPolicy::EMPTY);
        let mut vlans = BTreeMap::new();
        let tags = [ETH_P_8021Q, ETH_P_8021AD].into_iter().flat_map(|tpid| (0..VID_COUNT as u16).map(move |vid| (tpid, vid)));
        // Each chunk is read once (all CPUs' copies), then summed per VLAN.
        let first = slot * VLAN_CHUNKS_PER_TRUNK;
        let chunks: Vec<_> = (first..first + VLAN_CHUNKS_PER_TRUNK).map(|e| self.counters.get(&e, 0)).collect::<Result<_, _>>()?;
        for (tpid, vid) in std::iter::once((0, 0)).chain(tags) {
            let (element, index) = vlan_counter_place(slot, tpid, vid).expect("a known tag protocol");
            let mut sum = VlanStats::default();
            chunks[(element - first) as usize].iter().for_each(|c| sum.add(&c.vlans[index]));
            if sum != VlanStats::default() || tpid == 0 || policy.allows(tpid, vid) {
                vlans.insert(VlanKey { netns_inum: policy.netns_inum, ifindex: policy.ifindex, tpid, vid }, sum);
            }
        }
        let malformed = self.malformed.get(&slot, 0)?.iter().sum();
        Ok(TrunkCounts { vlans, malformed })
    }
}

/// The map value that makes trunk `id` enforce `vlans`.
fn policy_for(id: LinkId, vlans: &TrunkVlans) -> anyhow::Result<TrunkPolicy> {
    let mut policy = TrunkPolicy {
        flags: TrunkPolicy::ENABLED | if vlans.untagged_drop { TrunkPolicy::UNTAGGED_DROP } else { 0 },
        netns_inum: id.netns_inum,
        ifindex: id.ifindex,
        ..TrunkPolicy::EMPTY
    };
    for &(tpid, vid) in &vlans.allowed {
        anyhow::ensure!(policy.allow(tpid, vid), "tag protocol {tpid:#06x} is neither 802.1Q nor 802.1ad");
    }
    Ok(policy)
}
