//! FNV-1a: a small hash that is stable across Rust versions and machines (unlike std's), for
//! names and identifiers vland derives and records.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    /// The published FNV-1a vectors, and values existing installs depend on (ifindex blocks of
    /// their bpf dir, network MAC prefixes): pinned so that no refactoring changes them.
    #[test]
    fn hashes_stay_the_same() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(b"/sys/fs/bpf/vland"), 0x895d_3b16_cb78_f3ac);
        assert_eq!(fnv1a64(b"lan"), 0x1265_8a19_1dc1_d750);
    }
}
