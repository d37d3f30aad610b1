//! FNV-1a: a small hash that is stable across Rust versions and machines (unlike std's), for
//! names and identifiers vland derives and records. The one home of it in vland: the numbers it
//! gives are on existing installs (link groups, ifindex blocks, MAC prefixes), so they never change.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const_fnv1a_hash::fnv1a_hash_64(bytes, None)
}

pub fn fnv1a32(bytes: &[u8]) -> u32 {
    const_fnv1a_hash::fnv1a_hash_32(bytes, None)
}

#[cfg(test)]
mod tests {
    use super::{fnv1a32, fnv1a64};

    /// The published FNV-1a vectors, and values existing installs depend on (ifindex blocks of
    /// their bpf dir, network MAC prefixes): pinned so that no refactoring changes them.
    #[test]
    fn hashes_stay_the_same() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(b"/sys/fs/bpf/vland"), 0x895d_3b16_cb78_f3ac);
        assert_eq!(fnv1a64(b"lan"), 0x1265_8a19_1dc1_d750);
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }
}
