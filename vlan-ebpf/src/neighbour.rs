//! ARP requests and IPv6 neighbour solicitations for endpoint addresses, answered on the parent
//! (XDP) instead of being cloned to every child: macvlan and ipvlan hand each broadcast from the
//! wire to all their children, so with N children one ARP request costs N skbs, while vland
//! knows the answer. The request is turned into the reply in place and sent back out of the
//! parent (XDP_TX); anything else, and questions about addresses not in NEIGHBOURS, pass
//! untouched.
//!
//! The same table says which MAC may claim each endpoint address on the segment: an ARP request
//! or reply (gratuitous too) whose sender, or a neighbour advertisement (unsolicited too) whose
//! target, is an endpoint address, from another MAC, is an address conflict (see conflict.rs).
//! Those frames pass untouched. A question about an endpoint's address is not a claim.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_xdp_adjust_tail,
    macros::map,
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use vlan_common::{MAX_ENDPOINTS, MAX_NEIGHBOURS, NeighCounters, NeighEntry, NeighKey};

use crate::headers::{ETH_P_ARP, ETH_P_IPV6, ETH_TYPE};

/// The addresses of the endpoints whose children exist and are up, per parent (userspace keeps
/// it so).
#[map(name = "NEIGHBOURS")]
static NEIGHBOURS: HashMap<NeighKey, NeighEntry> = HashMap::pinned(MAX_NEIGHBOURS, 0);

/// What was answered for each endpoint, by slot.
#[map(name = "ENDPOINT_NEIGH")]
static ENDPOINT_NEIGH: PerCpuArray<NeighCounters> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

/// Ethernet/IPv4 ARP header (hardware type 1, protocol 0x0800, lengths 6 and 4), then the op.
const ARP_ETH_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];
const ARP_OP_REQUEST: [u8; 2] = [0, 1];
const ARP_OP_REPLY: [u8; 2] = [0, 2];
// Offsets from the start of the frame.
const ARP_OP: usize = 20;
const ARP_SHA: usize = 22;
const ARP_SPA: usize = 28;
const ARP_THA: usize = 32;
const ARP_TPA: usize = 38;
const ARP_END: usize = 42;
const IP6: usize = 14;
const IP6_NEXT: usize = IP6 + 6;
const IP6_SRC: usize = IP6 + 8;
const IP6_DST: usize = IP6 + 24;
const ICMP6: usize = IP6 + 40;
const ND_TARGET: usize = ICMP6 + 8;
/// An NS/NA: ICMPv6 header, flags, target; the NA adds a target link-layer address option.
const NS_END: usize = ND_TARGET + 16;
const NA_LEN: usize = 32;
const NA_END: usize = ICMP6 + NA_LEN;
const IPPROTO_ICMPV6: u8 = 58;
const NEIGHBOUR_SOLICITATION: u8 = 135;
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Solicited and Override: the answer of the address's owner (RFC 4861 7.2.4).
const NA_FLAGS: [u8; 4] = [0x60, 0, 0, 0];
const OPT_TARGET_LLADDR: u8 = 2;

#[inline(always)]
fn load<const N: usize>(start: usize, end: usize, offset: usize) -> Option<[u8; N]> {
    if start + offset + N > end {
        return None;
    }
    // SAFETY: bounds checked above.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const [u8; N]) })
}

/// Writes `bytes` at `offset` of a frame whose first `len` bytes the caller has bounds-checked.
#[inline(always)]
unsafe fn store<const N: usize>(start: usize, offset: usize, bytes: [u8; N]) {
    unsafe { core::ptr::write_unaligned((start + offset) as *mut [u8; N], bytes) };
}

#[inline(always)]
fn lookup(ctx: &XdpContext, family: u32, addr: [u8; 16]) -> Option<NeighEntry> {
    let key = NeighKey { ifindex: ctx.ingress_ifindex() as u32, family, addr };
    // SAFETY: the value is copied out at once.
    unsafe { NEIGHBOURS.get(key) }.copied()
}

#[inline(always)]
fn count(slot: u32, nd: bool) {
    if let Some(c) = ENDPOINT_NEIGH.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot: no other CPU writes it.
        unsafe { if nd { (*c).nd_answered += 1 } else { (*c).arp_answered += 1 } }
    }
}

/// XDP_TX with the answer in place of a question vland can answer; XDP_PASS otherwise.
#[inline(always)]
pub fn respond(ctx: &XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    let Some(ethertype) = load::<2>(start, end, ETH_TYPE) else { return xdp_action::XDP_PASS };
    let answered = match u16::from_be_bytes(ethertype) {
        ETH_P_ARP => arp(ctx),
        ETH_P_IPV6 => nd(ctx),
        _ => None,
    };
    if answered.is_some() { xdp_action::XDP_TX } else { xdp_action::XDP_PASS }
}

fn arp(ctx: &XdpContext) -> Option<()> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + ARP_END > end || load::<6>(start, end, 14)? != ARP_ETH_IPV4 {
        return None;
    }
    let op: [u8; 2] = load(start, end, ARP_OP)?;
    if op != ARP_OP_REQUEST && op != ARP_OP_REPLY {
        return None;
    }
    let sha: [u8; 6] = load(start, end, ARP_SHA)?;
    let spa: [u8; 4] = load(start, end, ARP_SPA)?;
    let tpa: [u8; 4] = load(start, end, ARP_TPA)?;
    // The sender claims its address (a probe, sender 0.0.0.0, claims nothing).
    if spa != [0; 4] {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&spa);
        if let Some(e) = lookup(ctx, 4, addr)
            && e.mac != sha
        {
            crate::conflict::record(ctx, e.slot, 4, addr, sha);
        }
    }
    // A gratuitous ARP announces the sender; it asks nothing.
    if op != ARP_OP_REQUEST || spa == tpa {
        return None;
    }
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&tpa);
    let e = lookup(ctx, 4, addr)?;
    if e.flags & NeighEntry::WATCH_ONLY != 0 {
        return None;
    }
    let (slot, mac) = (e.slot, e.mac);
    let asker: [u8; 6] = load(start, end, 6)?;
    // SAFETY: the frame holds ARP_END bytes (checked above).
    unsafe {
        store(start, 0, asker);
        store(start, 6, mac);
        store(start, ARP_OP, ARP_OP_REPLY);
        store(start, ARP_SHA, mac);
        store(start, ARP_SPA, tpa);
        store(start, ARP_THA, sha);
        store(start, ARP_TPA, spa);
    }
    count(slot, false);
    Some(())
}

#[inline(always)]
fn add_words(mut sum: u32, bytes: &[u8; 16]) -> u32 {
    let mut i = 0;
    while i < 16 {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum
}

fn nd(ctx: &XdpContext) -> Option<()> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + NS_END > end {
        return None;
    }
    let [next, hops] = load::<2>(start, end, IP6_NEXT)?;
    let [kind, code] = load::<2>(start, end, ICMP6)?;
    // RFC 4861 7.1.1 and 7.1.2: a hop limit below 255 came through a router.
    if next != IPPROTO_ICMPV6 || hops != 255 || code != 0 {
        return None;
    }
    if kind == NEIGHBOUR_ADVERTISEMENT {
        advertised(ctx);
        return None;
    }
    if kind != NEIGHBOUR_SOLICITATION {
        return None;
    }
    let asker_ip: [u8; 16] = load(start, end, IP6_SRC)?;
    // Duplicate address detection (unspecified source) is left to the kernel.
    if asker_ip == [0; 16] {
        return None;
    }
    let target: [u8; 16] = load(start, end, ND_TARGET)?;
    let e = lookup(ctx, 6, target)?;
    if e.flags & NeighEntry::WATCH_ONLY != 0 {
        return None;
    }
    let (slot, mac) = (e.slot, e.mac);
    let asker: [u8; 6] = load(start, end, 6)?;
    // The answer is exactly NA_END bytes long: the solicitation may carry other options.
    let delta = NA_END as i32 - (end - start) as i32;
    // SAFETY: a helper on the context the kernel passed in; the frame's pointers are read anew.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return None;
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + NA_END > end {
        return None;
    }
    let mut na = [0u8; 16];
    na[0] = NEIGHBOUR_ADVERTISEMENT;
    na[4..8].copy_from_slice(&NA_FLAGS);
    let mut option = [0u8; 16];
    option[0] = OPT_TARGET_LLADDR;
    option[1] = 1;
    option[2..8].copy_from_slice(&mac);
    // Checksum over the pseudo-header (source, destination, length, next header) and the message
    // (its first 8 bytes, the target, the option: na's tail and option's tail are zeros).
    let mut sum = add_words(0, &target);
    sum = add_words(sum, &asker_ip);
    sum += NA_LEN as u32 + u32::from(IPPROTO_ICMPV6);
    sum = add_words(sum, &na);
    sum = add_words(sum, &target);
    sum = add_words(sum, &option);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let csum = !(sum as u16);
    // SAFETY: the frame holds NA_END bytes (checked above).
    unsafe {
        store(start, 0, asker);
        store(start, 6, mac);
        store(start, IP6, [0x60u8, 0, 0, 0, 0, NA_LEN as u8, IPPROTO_ICMPV6, 255]);
        store(start, IP6_SRC, target);
        store(start, IP6_DST, asker_ip);
        store(start, ICMP6, [NEIGHBOUR_ADVERTISEMENT, 0, (csum >> 8) as u8, csum as u8]);
        store(start, ICMP6 + 4, NA_FLAGS);
        store(start, ND_TARGET, target);
        let opt: [u8; 8] = [OPT_TARGET_LLADDR, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]];
        store(start, NS_END, opt);
    }
    count(slot, true);
    Some(())
}

/// A neighbour advertisement for an endpoint's address: the MAC it gives (its target link-layer
/// address option when it comes first, as Linux sends it, else the frame's source) must be the
/// endpoint's.
#[inline(always)]
fn advertised(ctx: &XdpContext) -> Option<()> {
    let (start, end) = (ctx.data(), ctx.data_end());
    let target: [u8; 16] = load(start, end, ND_TARGET)?;
    let e = lookup(ctx, 6, target)?;
    let claimed: [u8; 6] = match load::<8>(start, end, NS_END) {
        Some([OPT_TARGET_LLADDR, 1, a, b, c, d, e, f]) => [a, b, c, d, e, f],
        _ => load(start, end, 6)?,
    };
    if claimed != e.mac {
        crate::conflict::record(ctx, e.slot, 6, target, claimed);
    }
    Some(())
}
