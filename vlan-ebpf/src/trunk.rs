//! VLAN enforcement on trunks, in two hooks that count every frame exactly once:
//! - XDP sees frames whose tag is in their bytes and drops those of a VLAN the trunk does not
//!   carry (and malformed ones) before the stack sees them;
//! - TC ingress sees everything XDP passed, with the tag either still in the bytes or, when a
//!   device or a veth peer took it out (VLAN offload), in the skb's metadata: it decides the rest
//!   (untagged frames, offloaded tags) and counts what passes.
//!
//! Handles an 802.1ad outer tag (checked) over an 802.1Q inner tag (left to the customer), and
//! frames too short for the headers they announce.
use aya_ebpf::{
    Global,
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC, xdp_action},
    helpers::bpf_xdp_get_buff_len,
    macros::map,
    maps::{Array, PerCpuArray},
    programs::{TcContext, XdpContext},
};
use vlan_common::{
    ETH_P_8021AD, ETH_P_8021Q, MAX_TRUNKS, TrunkPolicy, VID_MASK, VLAN_CHUNKS_PER_TRUNK, VLAN_COUNTERS_PER_CHUNK, VlanStatsChunk,
    vlan_counter_place,
};

use crate::headers::{ETH_TYPE, INNER_VLAN_TYPE, VLAN_HLEN, VLAN_TCI, VLAN_TYPE};

/// Each trunk's policy, by slot (see TrunkPolicy).
#[map(name = "TRUNKS")]
static TRUNKS: Array<TrunkPolicy> = Array::pinned(MAX_TRUNKS, 0);

/// Every VLAN of every trunk, allowed or not, and its untagged frames (see vlan_counter_place).
#[map(name = "VLAN_COUNTERS")]
static VLAN_COUNTERS: PerCpuArray<VlanStatsChunk> = PerCpuArray::pinned(MAX_TRUNKS * VLAN_CHUNKS_PER_TRUNK, 0);

/// Frames too short for the headers they announce, by trunk slot.
#[map(name = "TRUNK_MALFORMED")]
static TRUNK_MALFORMED: PerCpuArray<u64> = PerCpuArray::pinned(MAX_TRUNKS, 0);

/// The trunk this program instance serves; userspace patches it at load time (0: none).
#[unsafe(no_mangle)]
static TRUNK_SLOT: Global<u32> = Global::new(0);

/// This instance's slot and policy, if its slot holds one.
#[inline(always)]
fn policy() -> Option<(u32, &'static TrunkPolicy)> {
    let slot = TRUNK_SLOT.load();
    if slot == 0 {
        return None;
    }
    let policy = TRUNKS.get(slot)?;
    (policy.flags & TrunkPolicy::ENABLED != 0).then_some((slot, policy))
}

/// Reads a big-endian u16 at `offset` of a frame spanning [start, end).
#[inline(always)]
fn read_be16(start: usize, end: usize, offset: usize) -> Option<u16> {
    if start + offset + 2 > end {
        return None;
    }
    // SAFETY: bounds checked just above, as the verifier requires.
    Some(u16::from_be(unsafe { core::ptr::read_unaligned((start + offset) as *const u16) }))
}

/// Counts a frame of (tag protocol, VID) on the trunk in `slot` (tag protocol 0: untagged).
#[inline(always)]
fn count(slot: u32, tpid: u16, vid: u16, len: u64, dropped: bool) {
    let Some((element, index)) = vlan_counter_place(slot, tpid, vid) else { return };
    if let Some(chunk) = VLAN_COUNTERS.get_ptr_mut(element) {
        // SAFETY: a per-CPU element: no other CPU writes it; the mask keeps the index in the chunk
        // where the verifier can see it.
        unsafe {
            let s = &mut (*chunk).vlans[index & (VLAN_COUNTERS_PER_CHUNK - 1)];
            s.rx_packets += 1;
            s.rx_bytes += len;
            if dropped {
                s.dropped_packets += 1;
                s.dropped_bytes += len;
            }
        }
    }
}

#[inline(always)]
fn count_malformed(slot: u32) {
    if let Some(n) = TRUNK_MALFORMED.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot: no other CPU writes it.
        unsafe { *n += 1 };
    }
}

/// What the frame's own bytes say about its outer tag.
enum InData {
    Untagged,
    Tagged { tpid: u16, vid: u16 },
    Malformed,
}

#[inline(always)]
fn parse(start: usize, end: usize) -> InData {
    let Some(ethertype) = read_be16(start, end, ETH_TYPE) else { return InData::Malformed };
    if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
        return InData::Untagged;
    }
    // The tag, and the ethertype after it, must be there.
    let (Some(tci), Some(inner)) = (read_be16(start, end, VLAN_TCI), read_be16(start, end, VLAN_TYPE)) else {
        return InData::Malformed;
    };
    // 802.1ad carrying an 802.1Q customer tag: the inner tag must be whole too.
    if ethertype == ETH_P_8021AD && inner == ETH_P_8021Q && read_be16(start, end, INNER_VLAN_TYPE).is_none() {
        return InData::Malformed;
    }
    InData::Tagged { tpid: ethertype, vid: tci & VID_MASK }
}

/// The VID, bounded where the verifier can see it. It goes through memory first: otherwise the
/// compiler moves its 12-bit mask before the tag's byte swap, and verifiers that do not track
/// bounds through a byte swap (6.1) reject the index as unbounded.
#[inline(always)]
fn bounded(vid: u16) -> u16 {
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&vid) & VID_MASK }
}

/// XDP: drops (and counts) denied and malformed frames early; passes the rest, uncounted, to TC.
#[inline(always)]
pub fn enforce_xdp(ctx: &XdpContext) -> u32 {
    let Some((slot, policy)) = policy() else {
        // Not (yet) a trunk with a policy: leave it alone.
        return xdp_action::XDP_PASS;
    };
    match parse(ctx.data(), ctx.data_end()) {
        InData::Malformed => {
            count_malformed(slot);
            xdp_action::XDP_DROP
        }
        InData::Tagged { tpid, vid } => {
            let vid = bounded(vid);
            if policy.allows(tpid, vid) {
                return xdp_action::XDP_PASS;
            }
            // The whole frame, jumbo frames in fragments included.
            count(slot, tpid, vid, unsafe { bpf_xdp_get_buff_len(ctx.ctx) }, true);
            xdp_action::XDP_DROP
        }
        // Its tag may have been taken out of the bytes (offload): TC sees the metadata. A trunk
        // that is also a parent answers for its endpoints here, unless untagged frames are
        // dropped (TC drops them).
        InData::Untagged if policy.flags & TrunkPolicy::UNTAGGED_DROP == 0 => crate::neighbour::respond(ctx),
        InData::Untagged => xdp_action::XDP_PASS,
    }
}

/// TC ingress: decides and counts everything XDP let through.
#[inline(always)]
pub fn enforce_tc(ctx: &TcContext) -> i32 {
    let Some((slot, policy)) = policy() else { return TC_ACT_UNSPEC };
    let skb = ctx.skb.skb;
    let (vlan_present, tci, proto) = unsafe { ((*skb).vlan_present, (*skb).vlan_tci, (*skb).vlan_proto) };
    let len = ctx.len() as u64;
    let (tpid, vid, len) = if vlan_present != 0 {
        // Offloaded: the tag is not in the bytes; count the frame as it was on the wire.
        (u16::from_be(proto as u16), tci as u16 & VID_MASK, len + VLAN_HLEN as u64)
    } else {
        match parse(ctx.data(), ctx.data_end()) {
            InData::Malformed => {
                count_malformed(slot);
                return TC_ACT_SHOT;
            }
            InData::Tagged { tpid, vid } => (tpid, vid, len),
            InData::Untagged => {
                let dropped = policy.flags & TrunkPolicy::UNTAGGED_DROP != 0;
                count(slot, 0, 0, len, dropped);
                return if dropped { TC_ACT_SHOT } else { TC_ACT_UNSPEC };
            }
        }
    };
    let vid = bounded(vid);
    let allowed = policy.allows(tpid, vid);
    count(slot, tpid, vid, len, !allowed);
    if allowed { TC_ACT_UNSPEC } else { TC_ACT_SHOT }
}
