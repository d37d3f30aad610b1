//! Per-endpoint traffic counters (per-CPU, so no atomics on the hot path).
use aya_ebpf::{macros::map, maps::PerCpuArray};
use vlan_common::{Traffic, MAX_ENDPOINTS};

/// Indexed by the endpoint's slot (see MAX_ENDPOINTS).
#[map(name = "ENDPOINT_TRAFFIC")]
static ENDPOINT_TRAFFIC: PerCpuArray<Traffic> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

/// The endpoint this program instance serves; userspace patches it at load time.
#[no_mangle]
static ENDPOINT_SLOT: u32 = 0;

/// The endpoint slot of this program instance (0: none).
#[inline(always)]
pub fn endpoint_slot() -> u32 {
    // Volatile read: without it the compiler folds the global to its initial 0.
    unsafe { core::ptr::read_volatile(&ENDPOINT_SLOT) }
}

#[inline(always)]
fn traffic() -> Option<*mut Traffic> {
    match endpoint_slot() {
        0 => None,
        slot => ENDPOINT_TRAFFIC.get_ptr_mut(slot),
    }
}

#[inline(always)]
pub fn count_rx(len: u64) {
    if let Some(t) = traffic() {
        unsafe {
            (*t).rx_packets += 1;
            (*t).rx_bytes += len;
        }
    }
}

#[inline(always)]
pub fn count_tx(len: u64) {
    if let Some(t) = traffic() {
        unsafe {
            (*t).tx_packets += 1;
            (*t).tx_bytes += len;
        }
    }
}
