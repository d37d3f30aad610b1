//! vland's eBPF programs. Endpoints share one instance, which finds an endpoint's slot in the
//! endpoint arrays from its device's ifindex (vland numbers the child links it creates); each
//! trunk gets an instance with its slot patched in. Either way the per-packet path indexes
//! arrays and never hashes.
#![no_std]
#![no_main]

mod counters;
mod headers;
mod spoof;
mod trunk;

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

/// Counts every frame an endpoint receives. Runs in generic (SKB) mode on macvlan/ipvlan children,
/// so it sees exactly what the endpoint's stack will see, including sibling-to-sibling traffic.
#[xdp]
pub fn vland_ingress(ctx: XdpContext) -> u32 {
    // SAFETY: the context the kernel passed in.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    counters::count_rx(counters::endpoint_slot(ifindex), (ctx.data_end() - ctx.data()) as u64);
    xdp_action::XDP_PASS
}

/// Counts what an endpoint receives, from TC ingress: only attached where another program holds
/// the endpoint's XDP hook (generic XDP sees the same frames, earlier and cheaper).
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
