//! Where vland's objects are pinned under its bpf_dir, and the ifindex numbering that goes with
//! them (one bpf_dir is one vland instance).
use anyhow::Context;
use aya::maps::MapData;
use std::path::{Path, PathBuf};
use vlan_common::{LinkId, MAX_ENDPOINTS};

pub struct Pins {
    pub dir: PathBuf,
}

/// Endpoint ifindexes start at 2^30: the kernel numbers devices upwards from 1, one namespace at
/// a time, so it never comes near; each instance takes one of 2^16 blocks of MAX_ENDPOINTS above
/// it (by a hash of its bpf_dir), so two instances sharing a namespace do not collide.
const IFINDEX_BLOCKS_START: u32 = 1 << 30;
const IFINDEX_BLOCKS: u64 = 0xffff;

impl Pins {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// The ifindex of slot 0: endpoint `slot`'s child link gets `ifindex_base() + slot`.
    pub fn ifindex_base(&self) -> u32 {
        let block = crate::fnv::fnv1a64(self.dir.as_os_str().as_encoded_bytes()) % IFINDEX_BLOCKS;
        IFINDEX_BLOCKS_START + block as u32 * MAX_ENDPOINTS
    }

    pub fn endpoint_ifindex(&self, slot: u32) -> u32 {
        self.ifindex_base() + slot
    }

    /// Where the endpoint program `name` is pinned.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join("programs").join(name)
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The pinned map `name`; None if no object has pinned it yet.
    pub fn open_map(&self, name: &str) -> anyhow::Result<Option<MapData>> {
        let path = self.map(name);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(MapData::from_pin(&path).with_context(|| format!("cannot open pinned map {}", path.display()))?))
    }

    /// `hook` is "xdp" or "tc".
    pub fn trunk_link(&self, id: LinkId, hook: &str) -> PathBuf {
        self.dir.join("links").join(format!("trunk_{}_{}_{hook}", id.netns_inum, id.ifindex))
    }

    /// The responder's XDP link on a parent.
    pub fn parent_link(&self, id: LinkId) -> PathBuf {
        self.dir.join("links").join(format!("parent_{}_{}_xdp", id.netns_inum, id.ifindex))
    }

    /// Every responder link pin present, with its parent.
    pub fn parent_links(&self) -> Vec<(LinkId, PathBuf)> {
        self.links_named("parent_").into_iter().map(|(netns_inum, ifindex, p)| (LinkId { netns_inum, ifindex }, p)).collect()
    }

    /// Every link pin named `PREFIX_<netns inode>_<ifindex>_...`, with those two numbers.
    fn links_named(&self, prefix: &str) -> Vec<(u32, u32, PathBuf)> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("links")) else { return Vec::new() };
        dir.flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let mut parts = name.strip_prefix(prefix)?.split('_');
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, e.path()))
            })
            .collect()
    }

    /// Every trunk link pin present, with the trunk it belongs to.
    pub fn trunk_links(&self) -> Vec<(LinkId, PathBuf)> {
        self.links_named("trunk_").into_iter().map(|(netns_inum, ifindex, p)| (LinkId { netns_inum, ifindex }, p)).collect()
    }
}
