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

/// In the bpf dir: a symlink to the state dir it belongs to.
const OWNER_LINK: &str = "owner";

impl Pins {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// The symlink (never followed, only read) naming the state dir this bpf dir serves.
    fn owner_link(&self) -> PathBuf {
        self.dir.join(OWNER_LINK)
    }

    /// The state dir this bpf dir serves, if it records one.
    fn owner(&self) -> anyhow::Result<Option<PathBuf>> {
        match std::fs::read_link(self.owner_link()) {
            Ok(p) => Ok(Some(p)),
            // Not root: what it may not look at, it cannot use either (opening a map says why).
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.owner_link().display())),
        }
    }

    /// Refuses when this bpf dir serves a state dir other than `state_dir`: two instances on one
    /// bpf dir would share slots (and counters) and remove each other's pins.
    pub fn check_owner(&self, state_dir: &Path) -> anyhow::Result<()> {
        let ours = crate::secure_fs::canonical(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        match self.owner()? {
            Some(owner) if owner != ours => crate::secure_fs::refuse!(
                "bpf_dir {} belongs to state dir {} (see its `{OWNER_LINK}` link), not {}: give each state dir its own bpf_dir",
                self.dir.display(),
                owner.display(),
                ours.display()
            ),
            _ => Ok(()),
        }
    }

    /// Records that this bpf dir serves `state_dir` (which exists), or refuses as [`Pins::check_owner`].
    pub fn claim(&self, state_dir: &Path) -> anyhow::Result<()> {
        self.check_owner(state_dir)?;
        if self.owner()?.is_none() {
            let ours = crate::secure_fs::canonical(state_dir)?;
            match std::os::unix::fs::symlink(&ours, self.owner_link()) {
                Ok(()) => {}
                // Another apply claimed it just now: it must be ours.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.check_owner(state_dir)?,
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", self.owner_link().display())),
            }
        }
        Ok(())
    }

    /// Removes the ownership record, with the last pins.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.owner_link());
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

    /// The pinned map `name`; None if no object has pinned it yet. A map that is there but
    /// cannot be looked at (bpffs is root's) is an error naming it, never a missing map.
    pub fn open_map(&self, name: &str) -> anyhow::Result<Option<MapData>> {
        let path = self.map(name);
        let unreadable = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!("cannot open pinned map {name} ({}): {e}: the counters are root's, run vland as root", path.display())
        };
        match path.try_exists() {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return Err(unreadable(&e)),
        }
        Ok(Some(MapData::from_pin(&path).map_err(|e| unreadable(&e))?))
    }

    /// The pinned map `name`, which must be there: its counters are read or written now.
    pub fn require_map(&self, name: &str) -> anyhow::Result<MapData> {
        self.open_map(name)?.with_context(|| {
            format!(
                "pinned map {name} ({}) is missing (deleted?): its counters cannot be read; run `vland apply` to re-create it",
                self.map(name).display()
            )
        })
    }

    /// The shared maps that are not pinned (any more).
    pub fn missing_maps(&self) -> anyhow::Result<Vec<&'static str>> {
        let mut missing = Vec::new();
        for name in vlan_common::names::ALL_MAPS {
            if self.open_map(name)?.is_none() {
                missing.push(name);
            }
        }
        Ok(missing)
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
