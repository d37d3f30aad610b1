//! Address conflicts seen on a parent: a frame from the segment that claims an endpoint's address
//! (ARP sender, neighbour advertisement target) with a MAC that is not the endpoint's. Counted
//! per endpoint, the last one kept, and logged through aya-log at most once a second per
//! endpoint, so a flood of such frames costs a counter and a timestamp each, never a log event.
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use vlan_common::{ConflictCounters, LastConflict, MAX_ENDPOINTS};

/// Conflicts per endpoint, by slot.
#[map(name = "ENDPOINT_CONFLICTS")]
static ENDPOINT_CONFLICTS: PerCpuArray<ConflictCounters> = PerCpuArray::pinned(MAX_ENDPOINTS, 0);

/// The last conflict per endpoint, by slot (shared by all CPUs: the last writer wins).
#[map(name = "LAST_CONFLICT")]
static LAST_CONFLICT: Array<LastConflict> = Array::pinned(MAX_ENDPOINTS, 0);

const LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Records that `mac` claimed the endpoint in `slot`'s address `addr` (family 4 or 6).
#[inline(always)]
pub fn record(ctx: &XdpContext, slot: u32, family: u8, addr: [u8; 16], mac: [u8; 6]) {
    if let Some(c) = ENDPOINT_CONFLICTS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot: no other CPU writes it.
        unsafe { (*c).address_conflicts += 1 };
    }
    let Some(last) = LAST_CONFLICT.get_ptr_mut(slot) else { return };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a map element; CPUs racing here only mix fields of two conflicts of one slot.
    let due = unsafe {
        (*last).at_ns = now;
        (*last).addr = addr;
        (*last).mac = mac;
        (*last).family = family;
        let due = now.wrapping_sub((*last).logged_ns) >= LOG_INTERVAL_NS;
        if due {
            (*last).logged_ns = now;
        }
        due
    };
    if !due {
        return;
    }
    if family == 4 {
        let v4 = [addr[0], addr[1], addr[2], addr[3]];
        warn!(ctx, "address conflict: endpoint slot {} address {:i} claimed by MAC {:mac}", slot, v4, mac);
    } else {
        warn!(ctx, "address conflict: endpoint slot {} address {:i} claimed by MAC {:mac}", slot, addr, mac);
    }
}
