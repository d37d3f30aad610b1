//! VLAN enforcement on trunks, in two hooks that count every frame exactly once:
//! - XDP sees frames whose tag is in their bytes and drops those of a VLAN the trunk does not
//!   carry (and malformed ones) before the stack sees them;
//! - TC ingress sees everything XDP passed, with the tag either still in the bytes or, when a
//!   device or a veth peer took it out (VLAN offload), in the skb's metadata: it decides the rest
//!   (untagged frames, offloaded tags) and counts what passes.
//! Handles an 802.1ad outer tag (checked) over an 802.1Q inner tag (left to the customer), and
//! frames too short for the headers they announce.
use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::bpf_xdp_get_buff_len,
    macros::map,
    maps::{HashMap, PerCpuHashMap},
    programs::{TcContext, XdpContext},
};
use vlan_common::{DropKey, DropReason, TrunkId, TrunkPolicy, VlanKey, VlanStats, ETH_P_8021AD, ETH_P_8021Q, MAX_TRUNKS, MAX_VLAN_KEYS};

#[map(name = "TRUNK_POLICY")]
static TRUNK_POLICY: HashMap<TrunkId, TrunkPolicy> = HashMap::pinned(MAX_TRUNKS, 0);

/// The (tag protocol, VID) pairs each trunk carries; the value is unused.
#[map(name = "ALLOWED_VLANS")]
static ALLOWED_VLANS: HashMap<VlanKey, u32> = HashMap::pinned(MAX_VLAN_KEYS, 0);

#[map(name = "VLAN_STATS")]
static VLAN_STATS: PerCpuHashMap<VlanKey, VlanStats> = PerCpuHashMap::pinned(MAX_VLAN_KEYS, 0);

#[map(name = "DROPS")]
static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::pinned(MAX_VLAN_KEYS, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;

/// Reads a big-endian u16 at `offset` of a frame spanning [start, end).
#[inline(always)]
fn read_be16(start: usize, end: usize, offset: usize) -> Option<u16> {
    if start + offset + 2 > end {
        return None;
    }
    // SAFETY: bounds checked just above, as the verifier requires.
    Some(u16::from_be(unsafe { core::ptr::read_unaligned((start + offset) as *const u16) }))
}

#[inline(always)]
fn count(key: &VlanKey, len: u64, dropped: bool) {
    if let Some(s) = VLAN_STATS.get_ptr_mut(key) {
        // SAFETY: a per-CPU slot: no other CPU writes it.
        unsafe {
            (*s).rx_packets += 1;
            (*s).rx_bytes += len;
            if dropped {
                (*s).dropped_packets += 1;
                (*s).dropped_bytes += len;
            }
        }
        return;
    }
    let first = VlanStats { rx_packets: 1, rx_bytes: len, dropped_packets: dropped as u64, dropped_bytes: if dropped { len } else { 0 } };
    // Another CPU may create the entry at the same moment: then count into it.
    if VLAN_STATS.insert(key, &first, BPF_NOEXIST as u64).is_err() {
        if let Some(s) = VLAN_STATS.get_ptr_mut(key) {
            unsafe {
                (*s).rx_packets += 1;
                (*s).rx_bytes += len;
                (*s).dropped_packets += dropped as u64;
                (*s).dropped_bytes += if dropped { len } else { 0 };
            }
        }
    }
}

#[inline(always)]
fn count_drop(vlan: VlanKey, reason: DropReason) {
    crate::percpu::bump(&DROPS, &DropKey { vlan, reason: reason as u32 });
}

/// What the frame's own bytes say about its outer tag.
enum InData {
    Untagged,
    Tagged { tpid: u16, vid: u16 },
    Malformed,
}

#[inline(always)]
fn parse(start: usize, end: usize) -> InData {
    let Some(ethertype) = read_be16(start, end, 12) else { return InData::Malformed };
    if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
        return InData::Untagged;
    }
    // The tag, and the ethertype after it, must be there.
    let (Some(tci), Some(inner)) = (read_be16(start, end, ETH_HLEN), read_be16(start, end, ETH_HLEN + 2)) else {
        return InData::Malformed;
    };
    // 802.1ad carrying an 802.1Q customer tag: the inner tag must be whole too.
    if ethertype == ETH_P_8021AD && inner == ETH_P_8021Q && read_be16(start, end, ETH_HLEN + VLAN_HLEN + 2).is_none() {
        return InData::Malformed;
    }
    InData::Tagged { tpid: ethertype, vid: tci & 0x0fff }
}

#[inline(always)]
fn is_allowed(key: &VlanKey) -> bool {
    unsafe { ALLOWED_VLANS.get(key) }.is_some()
}

/// XDP: drops (and counts) denied and malformed frames early; passes the rest, uncounted, to TC.
#[inline(always)]
pub fn enforce_xdp(ctx: &XdpContext, netns_inum: u32) -> u32 {
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if unsafe { TRUNK_POLICY.get(&TrunkId { netns_inum, ifindex }) }.is_none() {
        // Not a trunk vland manages (or not yet configured): leave it alone.
        return xdp_action::XDP_PASS;
    }
    let untagged = VlanKey { netns_inum, ifindex, tpid: 0, vid: 0 };
    match parse(ctx.data(), ctx.data_end()) {
        InData::Malformed => {
            count_drop(untagged, DropReason::Malformed);
            xdp_action::XDP_DROP
        }
        InData::Tagged { tpid, vid } => {
            let key = VlanKey { netns_inum, ifindex, tpid, vid };
            if is_allowed(&key) {
                return xdp_action::XDP_PASS;
            }
            // The whole frame, jumbo frames in fragments included.
            count(&key, unsafe { bpf_xdp_get_buff_len(ctx.ctx) }, true);
            count_drop(key, DropReason::VlanNotAllowed);
            xdp_action::XDP_DROP
        }
        // Its tag may have been taken out of the bytes (offload): TC sees the metadata.
        InData::Untagged => xdp_action::XDP_PASS,
    }
}

const VLAN_HLEN_U64: u64 = VLAN_HLEN as u64;

/// TC ingress: decides and counts everything XDP let through.
#[inline(always)]
pub fn enforce_tc(ctx: &TcContext, netns_inum: u32) -> i32 {
    let skb = ctx.skb.skb;
    let ifindex = unsafe { (*skb).ifindex };
    let Some(policy) = (unsafe { TRUNK_POLICY.get(&TrunkId { netns_inum, ifindex }) }) else {
        return TC_ACT_UNSPEC;
    };
    let untagged = VlanKey { netns_inum, ifindex, tpid: 0, vid: 0 };
    let (vlan_present, tci, proto) = unsafe { ((*skb).vlan_present, (*skb).vlan_tci, (*skb).vlan_proto) };
    let len = ctx.len() as u64;
    let (tpid, vid, len) = if vlan_present != 0 {
        // Offloaded: the tag is not in the bytes; count the frame as it was on the wire.
        (u16::from_be(proto as u16), (tci & 0x0fff) as u16, len + VLAN_HLEN_U64)
    } else {
        match parse(ctx.data(), ctx.data_end()) {
            InData::Malformed => {
                count_drop(untagged, DropReason::Malformed);
                return TC_ACT_SHOT as i32;
            }
            InData::Tagged { tpid, vid } => (tpid, vid, len),
            InData::Untagged => {
                let dropped = policy.untagged_drop != 0;
                count(&untagged, len, dropped);
                if dropped {
                    count_drop(untagged, DropReason::Untagged);
                    return TC_ACT_SHOT as i32;
                }
                return TC_ACT_UNSPEC;
            }
        }
    };
    let key = VlanKey { netns_inum, ifindex, tpid, vid };
    if is_allowed(&key) {
        count(&key, len, false);
        TC_ACT_UNSPEC
    } else {
        count(&key, len, true);
        count_drop(key, DropReason::VlanNotAllowed);
        TC_ACT_SHOT as i32
    }
}
