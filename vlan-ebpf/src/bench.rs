//! Programs for `cargo xtask bench`, not part of vland: empty programs of each type vland uses
//! (the baselines its per-packet cost is measured against) and a traffic generator.
#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    bindings::{TC_ACT_UNSPEC, xdp_action},
    helpers::bpf_redirect,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use network_types::{eth::EthHdr, vlan::VlanHdr};

#[xdp]
pub fn empty_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn empty_tc(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// The device the generator sends through; patched at load time.
#[unsafe(no_mangle)]
static GENERATOR_IFINDEX: Global<u32> = Global::new(0);

/// The first bytes of the generated frame (Ethernet header and VLAN tag); patched at load time.
pub const GENERATOR_HEADER_LEN: usize = EthHdr::LEN + VlanHdr::LEN;
#[unsafe(no_mangle)]
static GENERATOR_HEADER: Global<[u8; GENERATOR_HEADER_LEN]> = Global::new([0; GENERATOR_HEADER_LEN]);

/// A traffic generator: run through BPF_PROG_TEST_RUN in live-frames mode, it sends its input
/// frame out of GENERATOR_IFINDEX once per repetition (as xdp-trafficgen does), with no socket or
/// skb on the sending side, so the receiver is what limits the rate.
#[xdp]
pub fn generator(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + GENERATOR_HEADER_LEN > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    // The test run reuses a frame's page once the receiver frees it, without restoring its bytes,
    // and the stack moves the header when it takes the VLAN tag out: write it anew every time.
    let header = GENERATOR_HEADER.load();
    // SAFETY: the frame holds GENERATOR_HEADER_LEN bytes (checked above).
    unsafe { core::ptr::copy_nonoverlapping(header.as_ptr(), start as *mut u8, GENERATOR_HEADER_LEN) };
    // SAFETY: a helper call with plain integer arguments.
    unsafe { bpf_redirect(GENERATOR_IFINDEX.load(), 0) as u32 }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// A stand-in for the generic-XDP counter builds of vland before TC ingress counting attached to
/// children (same name, so vland takes it for its own): the tests check that apply removes it.
#[xdp]
pub fn vland_ingress(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
