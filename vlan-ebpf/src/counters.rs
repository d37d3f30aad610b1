//! Per-endpoint traffic counters (per-CPU, so no atomics on the hot path).
use aya_ebpf::{Global, macros::map, maps::PerCpuArray};
use vlan_common::{MAX_ENDPOINTS, Traffic};

/// Indexed by the endpoint's slot (see MAX_ENDPOINTS).
#[map(name = "ENDPOINT_TRAFFIC")]
static ENDPOINT_TRAFFIC: PerCpuArray<Traffic> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

/// The ifindex of slot 0 in this vland instance's numbering; userspace patches it at load time
/// (`Global` reads it volatile, so the compiler does not fold it to its initial 0).
#[unsafe(no_mangle)]
static ENDPOINT_IFINDEX_BASE: Global<u32> = Global::new(0);

/// The endpoint slot of device `ifindex` (0: not an endpoint of this vland).
#[inline(always)]
pub fn endpoint_slot(ifindex: u32) -> u32 {
    vlan_common::endpoint_slot(ifindex, ENDPOINT_IFINDEX_BASE.load())
}

#[inline(always)]
fn traffic(slot: u32) -> Option<*mut Traffic> {
    match slot {
        0 => None,
        slot => ENDPOINT_TRAFFIC.get_ptr_mut(slot),
    }
}

#[inline(always)]
pub fn count_rx(slot: u32, len: u64) {
    if let Some(t) = traffic(slot) {
        unsafe {
            (*t).rx_packets += 1;
            (*t).rx_bytes += len;
        }
    }
}

#[inline(always)]
pub fn count_tx(slot: u32, len: u64) {
    if let Some(t) = traffic(slot) {
        unsafe {
            (*t).tx_packets += 1;
            (*t).tx_bytes += len;
        }
    }
}
