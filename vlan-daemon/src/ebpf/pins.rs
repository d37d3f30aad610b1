//! Where vland's objects are pinned under its bpf_dir.
use anyhow::Context;
use aya::maps::MapData;
use std::path::{Path, PathBuf};
use vlan_common::{EndpointKey, TrunkId};

pub struct Pins {
    pub dir: PathBuf,
}

#[derive(Clone, Copy)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Pins {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    pub fn endpoint_link(&self, key: EndpointKey, dir: Direction) -> PathBuf {
        let suffix = match dir {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        self.dir.join("links").join(format!("ep_{}_{}_{suffix}", key.netns_inum, key.ifindex))
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
    pub fn trunk_link(&self, id: TrunkId, hook: &str) -> PathBuf {
        self.dir.join("links").join(format!("trunk_{}_{}_{hook}", id.netns_inum, id.ifindex))
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
    pub fn trunk_links(&self) -> Vec<(TrunkId, PathBuf)> {
        self.links_named("trunk_").into_iter().map(|(netns_inum, ifindex, p)| (TrunkId { netns_inum, ifindex }, p)).collect()
    }

    /// Every endpoint link pin present, with the key it belongs to.
    pub fn endpoint_links(&self) -> Vec<(EndpointKey, PathBuf)> {
        self.links_named("ep_").into_iter().map(|(netns_inum, ifindex, p)| (EndpointKey { netns_inum, ifindex }, p)).collect()
    }
}
