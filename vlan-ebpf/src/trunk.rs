//! VLAN enforcement on trunks: frames tagged with a VLAN the trunk does not carry are dropped
//! before the stack sees them, and every frame is counted per (tag protocol, VID), with drops
//! counted per reason. Handles an 802.1ad outer tag (checked) over an 802.1Q inner tag (left to
//! the customer), and frames too short for the headers they announce.
use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    helpers::bpf_xdp_get_buff_len,
    macros::map,
    maps::{HashMap, PerCpuHashMap},
    programs::XdpContext,
};
use vlan_common::{
    DropKey, DropReason, TrunkId, TrunkPolicy, VlanKey, VlanStats, ETH_P_8021AD, ETH_P_8021Q, MAX_TRUNKS, MAX_VLAN_KEYS,
};

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

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    let start = ctx.data();
    if start + offset + 2 > ctx.data_end() {
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
    let first = VlanStats {
        rx_packets: 1,
        rx_bytes: len,
        dropped_packets: dropped as u64,
        dropped_bytes: if dropped { len } else { 0 },
    };
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
fn drop_frame(vlan: VlanKey, reason: DropReason) -> u32 {
    let key = DropKey { vlan, reason: reason as u32 };
    match DROPS.get_ptr_mut(&key) {
        Some(n) => unsafe { *n += 1 },
        None => {
            if DROPS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                if let Some(n) = DROPS.get_ptr_mut(&key) {
                    unsafe { *n += 1 }
                }
            }
        }
    }
    xdp_action::XDP_DROP
}

#[inline(always)]
pub fn enforce(ctx: &XdpContext, netns_inum: u32) -> u32 {
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let Some(policy) = (unsafe { TRUNK_POLICY.get(&TrunkId { netns_inum, ifindex }) }) else {
        // Not a trunk vland manages (or not yet configured): leave it alone.
        return xdp_action::XDP_PASS;
    };
    // The whole frame, jumbo frames in fragments included.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    let untagged = VlanKey { netns_inum, ifindex, tpid: 0, vid: 0 };
    let Some(ethertype) = read_be16(ctx, 12) else {
        return drop_frame(untagged, DropReason::Malformed);
    };
    if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
        let dropped = policy.untagged_drop != 0;
        count(&untagged, len, dropped);
        return if dropped { drop_frame(untagged, DropReason::Untagged) } else { xdp_action::XDP_PASS };
    }
    // The tag, and the ethertype after it, must be there.
    let (Some(tci), Some(inner)) = (read_be16(ctx, ETH_HLEN), read_be16(ctx, ETH_HLEN + 2)) else {
        return drop_frame(untagged, DropReason::Malformed);
    };
    // 802.1ad carrying an 802.1Q customer tag: the inner tag must be whole too.
    if ethertype == ETH_P_8021AD && inner == ETH_P_8021Q && read_be16(ctx, ETH_HLEN + VLAN_HLEN + 2).is_none() {
        return drop_frame(untagged, DropReason::Malformed);
    }
    let key = VlanKey { netns_inum, ifindex, tpid: ethertype, vid: tci & 0x0fff };
    if unsafe { ALLOWED_VLANS.get(&key) }.is_some() {
        count(&key, len, false);
        xdp_action::XDP_PASS
    } else {
        count(&key, len, true);
        drop_frame(key, DropReason::VlanNotAllowed)
    }
}
