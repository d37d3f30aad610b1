//! Incrementing a per-CPU counter that may not exist yet.
use aya_ebpf::{bindings::BPF_NOEXIST, maps::PerCpuHashMap};

/// Adds one to `map[key]`, creating the entry on first use. If another CPU creates it at the
/// same moment, the insert fails and the count goes into the entry that won.
#[inline(always)]
pub fn bump<K>(map: &PerCpuHashMap<K, u64>, key: &K) {
    if let Some(n) = map.get_ptr_mut(key) {
        // SAFETY: a per-CPU slot: no other CPU writes it.
        unsafe { *n += 1 };
        return;
    }
    if map.insert(key, &1, BPF_NOEXIST as u64).is_err() {
        if let Some(n) = map.get_ptr_mut(key) {
            unsafe { *n += 1 };
        }
    }
}
