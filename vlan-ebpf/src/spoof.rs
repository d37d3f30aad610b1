//! Anti-spoofing on an endpoint's egress: with `spoof_check`, frames whose source MAC, source IP
//! or ARP sender is not the endpoint's own are dropped and counted per reason.
use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
    programs::TcContext,
};
use core::net::Ipv6Addr;
use vlan_common::{DropReason, EndpointDrops, EndpointPolicy, MAX_ENDPOINTS};

use crate::headers::{ARP_SENDER_IP, ARP_SENDER_MAC, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ETH_SRC, ETH_TYPE, IPV4_SRC, IPV6_SRC};

/// Both indexed by the endpoint's slot.
#[map(name = "ENDPOINT_POLICY")]
static ENDPOINT_POLICY: Array<EndpointPolicy> = Array::pinned(MAX_ENDPOINTS, 0);

#[map(name = "ENDPOINT_DROPS")]
static ENDPOINT_DROPS: PerCpuArray<EndpointDrops> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

#[inline(always)]
fn bytes<const N: usize>(ctx: &TcContext, offset: usize) -> Option<[u8; N]> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + offset + N > end {
        return None;
    }
    // SAFETY: bounds checked above.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const [u8; N]) })
}

#[inline(always)]
fn count(slot: u32, reason: DropReason) {
    if let Some(d) = ENDPOINT_DROPS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot: no other CPU writes it.
        unsafe {
            match reason {
                DropReason::SpoofedMac => (*d).spoofed_mac += 1,
                _ => (*d).spoofed_ip += 1,
            }
        }
    }
}

/// The reason to drop this frame, if any (already counted).
#[inline(always)]
pub fn check(ctx: &TcContext, slot: u32) -> Option<DropReason> {
    let policy = ENDPOINT_POLICY.get(slot)?;
    if policy.flags & EndpointPolicy::SPOOF_CHECK == 0 {
        return None;
    }
    let reason = spoofed(ctx, policy)?;
    count(slot, reason);
    Some(reason)
}

#[inline(always)]
fn spoofed(ctx: &TcContext, p: &EndpointPolicy) -> Option<DropReason> {
    let Some(src) = bytes(ctx, ETH_SRC) else { return Some(DropReason::SpoofedMac) };
    if src != [p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4], p.mac[5]] {
        return Some(DropReason::SpoofedMac);
    }
    let ethertype = u16::from_be_bytes(bytes(ctx, ETH_TYPE)?);
    let own_v4 = |a: [u8; 4]| (p.flags & EndpointPolicy::HAS_IPV4 != 0 && a == p.ipv4) || a == [0; 4];
    match ethertype {
        ETH_P_IP => {
            let src = bytes(ctx, IPV4_SRC)?;
            (!own_v4(src)).then_some(DropReason::SpoofedIp)
        }
        ETH_P_ARP => {
            // Ethernet/IPv4 ARP (the sender IP is 0.0.0.0 in probes).
            let sha = bytes(ctx, ARP_SENDER_MAC)?;
            if sha != [p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4], p.mac[5]] {
                return Some(DropReason::SpoofedMac);
            }
            let spa = bytes(ctx, ARP_SENDER_IP)?;
            (!own_v4(spa)).then_some(DropReason::SpoofedIp)
        }
        ETH_P_IPV6 => {
            let src = bytes(ctx, IPV6_SRC)?;
            let addr = Ipv6Addr::from(src);
            let own = p.flags & EndpointPolicy::HAS_IPV6 != 0 && src == p.ipv6;
            (!(own || addr.is_unicast_link_local() || addr.is_unspecified())).then_some(DropReason::SpoofedIp)
        }
        _ => None,
    }
}
