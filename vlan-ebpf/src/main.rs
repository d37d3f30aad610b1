//! vland's eBPF programs. One instance is loaded per endpoint and per trunk, with its slot in
//! the endpoint or trunk arrays patched in at load time, so the per-packet path indexes arrays.
#![no_std]
#![no_main]

mod counters;
mod spoof;
mod trunk;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_SHOT, TC_ACT_UNSPEC},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

/// Counts every frame an endpoint receives. Runs in generic (SKB) mode on macvlan/ipvlan children,
/// so it sees exactly what the endpoint's stack will see, including sibling-to-sibling traffic.
#[xdp]
pub fn vland_ingress(ctx: XdpContext) -> u32 {
    counters::count_rx((ctx.data_end() - ctx.data()) as u64);
    xdp_action::XDP_PASS
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
/// it. Returns "unspecified" so other tcx programs on the device still run and the kernel's
/// default action applies.
#[classifier]
pub fn vland_egress(ctx: TcContext) -> i32 {
    let slot = counters::endpoint_slot();
    if slot == 0 {
        return TC_ACT_UNSPEC;
    }
    if spoof::check(&ctx, slot).is_some() {
        return TC_ACT_SHOT as i32;
    }
    counters::count_tx(ctx.len() as u64);
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
