//! Trunks in userspace: attaching the VLAN-enforcing programs to a trunk device (XDP, native
//! where the driver has it, for early drops; TC ingress for the rest), one program instance per
//! trunk with its TRUNKS slot patched in; removing trunks no longer configured; reading the
//! per-VLAN and per-reason counters.
use super::liveness;
use super::pins::Pins;
use super::trunk_table::{TrunkTable, VlanKey};
use crate::config::TrunkVlans;
use anyhow::Context;
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use std::collections::{HashMap, HashSet};
use vlan_common::{DropReason, LinkId, VlanStats, names};

/// Makes trunk `id` (named `ifname`) enforce `vlans`, then attaches its programs unless live
/// links are pinned. The policy goes first, so the programs never run without it. Must run in
/// the trunk's namespace (vland's own).
pub fn apply_trunk(pins: &Pins, id: LinkId, ifname: &str, vlans: &TrunkVlans) -> anyhow::Result<()> {
    let mut table = TrunkTable::open_or_create(pins)?;
    let slot = table.slot_for(id)?;
    table.set(slot, id, vlans)?;
    let xdp_pin = pins.trunk_link(id, "xdp");
    let tc_pin = pins.trunk_link(id, "tc");
    let tc_alive = !super::tc::has_tcx() || liveness::attached_to(&tc_pin, id.ifindex);
    if liveness::attached_to(&xdp_pin, id.ifindex) && tc_alive {
        return Ok(());
    }
    let _ = std::fs::remove_file(&xdp_pin);
    let _ = std::fs::remove_file(&tc_pin);
    let mut bpf = super::load_object(pins, 0, slot)?;
    let xdp: &mut Xdp = bpf.program_mut(names::TRUNK_PROGRAM).context("no trunk program in the eBPF object")?.try_into()?;
    xdp.load().context("the kernel rejected the trunk XDP program")?;
    // Native (driver) mode where the device has it, generic otherwise.
    let id = xdp.attach_to_if_index(id.ifindex, XdpMode::Default).context("XDP attach to the trunk")?;
    let link: FdLink = xdp.take_link(id)?.try_into().context("XDP attached without a bpf_link")?;
    link.pin(&xdp_pin).with_context(|| format!("cannot pin {}", xdp_pin.display()))?;
    let tc: &mut SchedClassifier =
        bpf.program_mut(names::TRUNK_TC_PROGRAM).context("no trunk TC program in the eBPF object")?.try_into()?;
    tc.load().context("the kernel rejected the trunk TC program")?;
    super::tc::attach(tc, names::TRUNK_TC_PROGRAM, ifname, TcAttachType::Ingress, &tc_pin)
}

/// Whether trunk `id` already enforces `vlans` with live programs (apply would change nothing).
pub fn trunk_in_place(pins: &Pins, id: LinkId, vlans: &TrunkVlans) -> anyhow::Result<bool> {
    let Some(table) = TrunkTable::open(pins)? else { return Ok(false) };
    let tc_alive = !super::tc::has_tcx() || liveness::attached_to(&pins.trunk_link(id, "tc"), id.ifindex);
    Ok(table.enforces(id, vlans) && tc_alive && liveness::attached_to(&pins.trunk_link(id, "xdp"), id.ifindex))
}

/// Detaches and forgets every trunk of `netns_inum` not in `keep`: links first, then the policy.
pub fn remove_other_trunks(pins: &Pins, netns_inum: u32, keep: &HashSet<LinkId>) -> anyhow::Result<()> {
    for (id, path) in pins.trunk_links() {
        if id.netns_inum == netns_inum && !keep.contains(&id) {
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
        }
    }
    // Without tcx the TC filter has no pin: with its slot cleared below it passes everything,
    // and it is replaced (not duplicated) if the trunk comes back. Its counters go with it.
    let Some(mut table) = TrunkTable::open(pins)? else { return Ok(()) };
    let gone: Vec<u32> = table.slots().filter(|(_, p)| p.netns_inum == netns_inum && !keep.contains(&p.id())).map(|(s, _)| s).collect();
    for slot in gone {
        table.clear(slot)?;
    }
    Ok(())
}

/// The TRUNKS slot of every trunk with a policy.
pub fn trunk_slots(pins: &Pins) -> anyhow::Result<HashMap<LinkId, u32>> {
    let Some(table) = TrunkTable::open(pins)? else { return Ok(HashMap::new()) };
    Ok(table.slots().map(|(s, p)| (p.id(), s)).collect())
}

/// Drop counters: per VLAN row and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    pub vlan: VlanKey,
    pub reason: DropReason,
}

/// Per-VLAN counters and per-reason drops of every trunk, summed over CPUs.
pub struct TrunkCounters {
    pub vlans: HashMap<VlanKey, VlanStats>,
    pub drops: HashMap<DropKey, u64>,
}

/// Reads every trunk's counters. Drop reasons follow from where a frame was counted: a tagged
/// frame is only ever dropped for its VLAN, an untagged one for being untagged; malformed frames
/// have counters of their own (reported on the untagged row).
/// With `expected` (trunks are recorded), missing maps are an error naming them, not zeros.
pub fn read_trunk_counters(pins: &Pins, expected: bool) -> anyhow::Result<TrunkCounters> {
    let mut out = TrunkCounters { vlans: HashMap::new(), drops: HashMap::new() };
    if expected {
        for name in [names::TRUNKS_MAP, names::VLAN_COUNTERS_MAP, names::TRUNK_MALFORMED_MAP] {
            pins.require_map(name)?;
        }
    }
    let Some(table) = TrunkTable::open(pins)? else { return Ok(out) };
    for (slot, policy) in table.slots() {
        let counts = table.counts(slot)?;
        for (key, stats) in counts.vlans {
            let reason = if key.tpid == 0 { DropReason::Untagged } else { DropReason::VlanNotAllowed };
            if stats.dropped_packets > 0 {
                out.drops.insert(DropKey { vlan: key, reason }, stats.dropped_packets);
            }
            out.vlans.insert(key, stats);
        }
        if counts.malformed > 0 {
            let untagged = VlanKey { netns_inum: policy.netns_inum, ifindex: policy.ifindex, tpid: 0, vid: 0 };
            out.drops.insert(DropKey { vlan: untagged, reason: DropReason::Malformed }, counts.malformed);
        }
    }
    Ok(out)
}
