//! vland's eBPF programs. Endpoints share one instance, which finds an endpoint's slot in the
//! endpoint arrays from its device's ifindex (vland numbers the child links it creates); each
//! trunk gets an instance with its slot patched in. Either way the per-packet path indexes
//! arrays and never hashes.
#![no_std]
#![no_main]

mod conflict;
mod counters;
mod headers;
mod neighbour;
mod spoof;
mod trunk;

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

/// Counts every frame an endpoint receives, on its child's TC ingress hook: it sees exactly what
/// the endpoint's stack will see, sibling-to-sibling traffic included. Not XDP: macvlan, ipvlan
/// and VLAN devices only have generic XDP, which costs an skb reallocation per frame when the skb
/// lacks XDP's 256 bytes of headroom (sibling frames do), while TC runs on the skb as it is.
/// (skb->len includes the Ethernet header here: cls_bpf pushes it back for the program.)
#[classifier]
pub fn vland_rx_tc(ctx: TcContext) -> i32 {
    // SAFETY: the context the kernel passed in.
    let slot = counters::endpoint_slot(unsafe { (*ctx.skb.skb).ifindex });
    counters::count_rx(slot, ctx.len() as u64);
    TC_ACT_UNSPEC
}

/// Enforces a trunk's VLAN set early (see trunk.rs). Frags-aware, so it also attaches in native
/// mode to devices with a jumbo MTU.
#[xdp(frags)]
pub fn vland_trunk(ctx: XdpContext) -> u32 {
    trunk::enforce_xdp(&ctx)
}

/// Answers ARP and neighbour solicitations for endpoint addresses on a parent, and notices frames
/// that claim them from foreign MACs (see neighbour.rs); a parent that is also a trunk gets this
/// from `vland_trunk` instead.
#[xdp(frags)]
pub fn vland_parent(ctx: XdpContext) -> u32 {
    neighbour::respond(&ctx)
}

/// Enforces and counts what the XDP hook let through, offloaded VLAN tags included.
#[classifier]
pub fn vland_trunk_tc(ctx: TcContext) -> i32 {
    trunk::enforce_tc(&ctx)
}

/// Counts every frame an endpoint sends, after dropping spoofed ones where the network asks for
/// it. Returns "unspecified" so other filters on the device still run and the kernel's default
/// action applies.
#[classifier]
pub fn vland_egress(ctx: TcContext) -> i32 {
    // SAFETY: the context the kernel passed in.
    let slot = counters::endpoint_slot(unsafe { (*ctx.skb.skb).ifindex });
    if slot == 0 {
        return TC_ACT_UNSPEC;
    }
    if spoof::check(&ctx, slot).is_some() {
        return TC_ACT_SHOT;
    }
    counters::count_tx(slot, ctx.len() as u64);
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
