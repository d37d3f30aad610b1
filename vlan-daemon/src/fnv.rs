//! FNV-1a: a small hash that is stable across Rust versions and machines (unlike std's), for
//! names and identifiers vland derives and records.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}
