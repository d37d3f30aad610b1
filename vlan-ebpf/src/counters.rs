//! Per-endpoint traffic counters (per-CPU, so no atomics on the hot path).
use aya_ebpf::{macros::map, maps::PerCpuHashMap};
use vlan_common::{EndpointKey, Traffic, MAX_ENDPOINTS};

/// Entries are created by userspace when it attaches an endpoint; frames on devices it never
/// registered are not counted, so the map cannot fill with strangers' ifindexes.
#[map(name = "ENDPOINT_TRAFFIC")]
static ENDPOINT_TRAFFIC: PerCpuHashMap<EndpointKey, Traffic> =
    PerCpuHashMap::pinned(MAX_ENDPOINTS, 0);

/// The namespace this program instance serves; userspace patches it at load time.
#[no_mangle]
static NETNS_INUM: u32 = 0;

/// The namespace this program instance serves.
#[inline(always)]
pub fn netns_inum() -> u32 {
    // Volatile read: without it the compiler folds the global to its initial 0.
    unsafe { core::ptr::read_volatile(&NETNS_INUM) }
}

#[inline(always)]
fn traffic(ifindex: u32) -> Option<*mut Traffic> {
    ENDPOINT_TRAFFIC.get_ptr_mut(&EndpointKey { netns_inum: netns_inum(), ifindex })
}

#[inline(always)]
pub fn count_rx(ifindex: u32, len: u64) {
    if let Some(t) = traffic(ifindex) {
        unsafe {
            (*t).rx_packets += 1;
            (*t).rx_bytes += len;
        }
    }
}

#[inline(always)]
pub fn count_tx(ifindex: u32, len: u64) {
    if let Some(t) = traffic(ifindex) {
        unsafe {
            (*t).tx_packets += 1;
            (*t).tx_bytes += len;
        }
    }
}
