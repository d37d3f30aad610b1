//! What vland created, recorded in the state dir so that `down`, a restart or a repair after a
//! crash touch only vland's own objects. Every write is atomic (temp file, fsync, rename), and an
//! exclusive lock keeps two vland processes from applying (and allocating) at the same time.
use crate::config::{NetnsRef, VlanProtocol};
use crate::mac::Mac;
use crate::netlink::RouteSpec;
use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use vlan_common::LinkId;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub version: u32,
    /// Named namespaces vland made itself (and so may remove).
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceRecord>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// Parent links vland made itself (802.1Q sub-interfaces, dummies of internal networks).
    #[serde(default)]
    pub parents: BTreeMap<String, ParentRecord>,
    /// Trunks vland enforces a VLAN policy on, by name: what `stats` names their counters by.
    #[serde(default)]
    pub trunks: BTreeMap<String, LinkId>,
    /// The eBPF object (by its hash) the pinned links run: another one at start means an upgrade.
    #[serde(default)]
    pub ebpf_object: Option<String>,
    /// Links being created: written before the request, so a crash mid-way leaves a link to clean.
    #[serde(default)]
    pub pending_links: Vec<PendingLink>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamespaceRecord {}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ParentRecord {
    Vlan { base: String, vid: u16, protocol: VlanProtocol },
    Dummy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointRecord {
    pub network: String,
    /// The parent the child was made on: a changed parent means a new child.
    pub parent: String,
    pub netns: NetnsRef,
    pub ifname: String,
    /// The address this endpoint holds; recorded before the link exists, so it is never handed out
    /// twice, even across a crash.
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub mac: Option<Mac>,
    /// Set once the child link exists: where it is.
    pub link: Option<LinkId>,
    /// Its index in the eBPF endpoint arrays (counters, drops, policy); kept for its lifetime.
    #[serde(default)]
    pub slot: Option<u32>,
    /// Routes vland added through the child (default and extra), so it removes only its own.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

impl EndpointRecord {
    pub fn address(&self, v6: bool) -> Option<IpAddr> {
        if v6 { self.ip6.map(IpAddr::V6) } else { self.ip.map(IpAddr::V4) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingLink {
    pub netns: NetnsRef,
    /// The child's number in its namespace (see Pins::endpoint_ifindex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// Journals of earlier builds, which created children under a temporary name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_name: Option<String>,
}

/// The state dir, held under an exclusive lock for as long as this value lives.
pub struct StateStore {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl StateStore {
    pub fn open_locked(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create state dir {}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        Ok(Self { dir: dir.to_path_buf(), _lock: lock })
    }

    /// The link group of this vland instance's children: derived from the state dir, so two
    /// instances (two state dirs) never delete each other's links by group.
    pub fn link_group(&self) -> u32 {
        link_group_of(&self.dir)
    }

    pub fn load(&self) -> anyhow::Result<State> {
        read(&self.dir)
    }

    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(state)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
        // The rename itself must reach the disk before we act on the new state.
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// Existing installs have links in this group: the number must never change for a given dir.
fn link_group_of(dir: &Path) -> u32 {
    let hash = crate::fnv::fnv1a32(dir.to_string_lossy().as_bytes());
    // Group 0 is every link's default: never use it.
    hash.max(1)
}

/// Reads the state without the lock: for `stats`, which only looks.
pub fn read(dir: &Path) -> anyhow::Result<State> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let state: State = serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", path.display()))?;
            Ok(state)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State { version: STATE_VERSION, ..Default::default() }),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    /// Links of existing installs carry these groups: pinned so that no refactoring renumbers them.
    #[test]
    fn link_groups_of_known_state_dirs_stay_the_same() {
        assert_eq!(super::link_group_of("/var/lib/vland".as_ref()), 0xf60b_29cf);
        assert_eq!(super::link_group_of("/run/vland-test/state".as_ref()), 0x5a84_7450);
    }
}
