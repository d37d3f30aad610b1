//! Programs for `cargo xtask bench`, not part of vland: empty programs of each type vland uses
//! (the baselines its per-packet cost is measured against) and a traffic generator.
#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    bindings::{TC_ACT_UNSPEC, xdp_action},
    helpers::bpf_redirect,
    macros::{classifier, map, xdp},
    maps::{Array, PerCpuArray},
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

/// Frames the ARP generator takes turns with (userspace fills the first ARP_FRAME_COUNT).
pub const ARP_FRAME_LEN: usize = 42;
pub const ARP_FRAMES_MAX: u32 = 1024;
#[map(name = "ARP_FRAMES")]
static ARP_FRAMES: Array<[u8; ARP_FRAME_LEN]> = Array::with_max_entries(ARP_FRAMES_MAX, 0);
#[map(name = "ARP_NEXT")]
static ARP_NEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
#[unsafe(no_mangle)]
static ARP_FRAME_COUNT: Global<u32> = Global::new(1);

/// Like `generator`, sending ARP requests for ARP_FRAME_COUNT addresses in turn: each frame is
/// written whole every time, since an XDP_TX answer turns the page's bytes into a reply.
#[xdp]
pub fn arp_generator(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + ARP_FRAME_LEN > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    let Some(next) = ARP_NEXT.get_ptr_mut(0) else { return xdp_action::XDP_ABORTED };
    // SAFETY: a per-CPU counter: no other CPU writes it.
    let n = unsafe {
        let n = *next;
        *next = if n + 1 >= ARP_FRAME_COUNT.load() { 0 } else { n + 1 };
        n
    };
    let Some(frame) = ARP_FRAMES.get(n) else { return xdp_action::XDP_ABORTED };
    // SAFETY: the frame holds ARP_FRAME_LEN bytes (checked above).
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), start as *mut u8, ARP_FRAME_LEN) };
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
