//! What vland created, recorded in the state dir so that `down`, a restart or a repair after a
//! crash touch only vland's own objects. Every write is atomic (temp file, fsync, rename), and an
//! exclusive lock keeps two vland processes from applying (and allocating) at the same time.
//! The state dir must be root's alone (see secure_fs), and every name read back is checked like
//! the config's before vland deletes or writes anything by it.
//!
//! A state file vland cannot fully understand (a newer version, another program's file, a field
//! it does not know) is refused rather than read in part: rewriting it would drop what it does not
//! know, and acting on half of it could remove what is not vland's.
use crate::config::{NetnsRef, VlanProtocol};
use crate::mac::Mac;
use crate::netlink::RouteSpec;
use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use tracing::info;
use vlan_common::LinkId;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// 2: `namespaces` is a list of names (version 1 wrote a map of empty records; still read).
pub const STATE_VERSION: u32 = 2;

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "{} was written by a newer vland (state version {found}; this vland reads versions up to {STATE_VERSION}): \
         run the newer vland (or its `vland down`) instead",
        path.display()
    )]
    Newer { path: PathBuf, found: u64 },
    #[error(
        "{} is not a state file this vland can use ({reason}); it was left as it is. If another program owns it, \
         give vland a [daemon] state_dir of its own; if it is vland's and damaged, move it aside and apply again",
        path.display()
    )]
    Refused { path: PathBuf, reason: String },
    #[error("cannot read {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    /// Whether trying again cannot help: the file has to change first.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, StateError::Unreadable { .. })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// Named namespaces vland made itself (and so may remove).
    #[serde(default, deserialize_with = "namespace_names")]
    pub namespaces: BTreeSet<String>,
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
    /// Cluster networks: the address blocks this host owned in etcd at the last apply, so that
    /// an apply while etcd is unreachable still allocates from them. etcd stays the authority.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_blocks: BTreeMap<String, BTreeSet<ipnetwork::IpNetwork>>,
    /// Owned blocks the last apply found empty: found empty again, they are given back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub idle_blocks: BTreeSet<ipnetwork::IpNetwork>,
}

/// The namespace names, as a list (version 2) or as a map of empty records (version 1).
fn namespace_names<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeSet<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a list of namespace names (or, in version 1, a map of them to {})")]
    enum Names {
        List(BTreeSet<String>),
        Records(BTreeMap<String, Empty>),
    }
    Ok(match Names::deserialize(de)? {
        Names::List(names) => names,
        Names::Records(records) => records.into_keys().collect(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParentRecord {
    Vlan {
        base: String,
        vid: u16,
        protocol: VlanProtocol,
    },
    /// A struct variant, so that unknown fields are refused here too.
    Dummy {},
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct PendingLink {
    pub netns: NetnsRef,
    /// The child's number in its namespace (see Pins::endpoint_ifindex).
    pub ifindex: u32,
}

/// The state dir, held under an exclusive lock for as long as this value lives.
pub struct StateStore {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl StateStore {
    /// Takes the state dir's lock, waiting (and saying so) while another vland holds it. This
    /// blocks the calling thread: the daemon applies on a thread of its own (see daemon.rs).
    pub fn open_locked(dir: &Path) -> anyhow::Result<Self> {
        crate::secure_fs::ensure_trusted_dir(dir, "state dir")?;
        let lock_path = dir.join(LOCK_FILE);
        let file = crate::secure_fs::open_nofollow(&lock_path)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                info!(lock = %lock_path.display(), "another vland holds the state lock; waiting for it to finish");
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, e)| e)
                    .with_context(|| format!("cannot lock {}", lock_path.display()))?
            }
            Err((_, e)) => return Err(e).with_context(|| format!("cannot lock {}", lock_path.display())),
        };
        Ok(Self { dir: dir.to_path_buf(), _lock: lock })
    }

    /// The link group of this vland instance's children: derived from the state dir, so two
    /// instances (two state dirs) never delete each other's links by group.
    pub fn link_group(&self) -> u32 {
        link_group_of(&self.dir)
    }

    pub fn load(&self) -> Result<State, StateError> {
        read(&self.dir)
    }

    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let path = self.dir.join(STATE_FILE);
        // An apply with nothing to do saves what the file already holds: two fsyncs saved.
        let remembered = State { version: STATE_VERSION, ..state.clone() };
        if state.version == STATE_VERSION && LAST_READ.still_holds(&path, &remembered) {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        crate::secure_fs::write_new(&tmp, &serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
        // The rename itself must reach the disk before we act on the new state.
        File::open(&self.dir)?.sync_all()?;
        // Remembered as `read` would return it (a state it would refuse is read, and refused).
        if (1..=STATE_VERSION).contains(&state.version) && state.check_names().is_ok() {
            LAST_READ.wrote(&path, &remembered);
        }
        Ok(())
    }
}

const DAEMON_PID_FILE: &str = "daemon.pid";

/// The one daemon of a state dir: a lock on `daemon.pid` (holding its PID) for the daemon's
/// lifetime. Two daemons on one state dir would undo each other's applies endlessly, whatever
/// sockets they listen on.
pub struct DaemonLock {
    _lock: Flock<File>,
}

impl DaemonLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        crate::secure_fs::ensure_trusted_dir(dir, "state dir")?;
        let path = dir.join(DAEMON_PID_FILE);
        let file = crate::secure_fs::open_nofollow(&path)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = File::open(&path).and_then(|mut f| f.read_to_string(&mut pid)).or_else(|_| file.read_to_string(&mut pid));
                anyhow::bail!(
                    "another vland daemon (PID {}) runs on state dir {}: stop it, or give this config its own state_dir",
                    pid.trim(),
                    dir.display()
                );
            }
            Err((_, e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
        };
        lock.set_len(0)?;
        lock.rewind()?;
        writeln!(lock, "{}", std::process::id())?;
        Ok(Self { _lock: lock })
    }
}

impl State {
    /// Every name in the state, checked as the config's are: vland deletes namespaces, links and
    /// records by these names, so one like `../../x` must never reach a path or a request.
    fn check_names(&self) -> Result<(), String> {
        use crate::config::{check_ifname, check_name};
        let mut bad = Vec::new();
        let mut check = |key: String, result: Result<(), String>| {
            if let Err(e) = result {
                bad.push(format!("{key}: {e}"));
            }
        };
        let netns = |n: &NetnsRef| match n {
            NetnsRef::Named(name) => check_name(name),
            NetnsRef::Path(p) if p.is_absolute() && p.components().all(|c| !matches!(c, std::path::Component::ParentDir)) => Ok(()),
            NetnsRef::Path(p) => Err(format!("namespace path `{}` is not absolute and plain", p.display())),
            NetnsRef::Own => Ok(()),
        };
        for name in self.namespaces.iter() {
            check(format!("namespaces.{}", name.escape_debug()), check_name(name));
        }
        for (name, rec) in &self.endpoints {
            let key = format!("endpoints.{}", name.escape_debug());
            // A host child (`host_access`) is recorded as `NETWORK/host`.
            let endpoint_name = crate::reconcile::host_access::network_of(name).unwrap_or(name);
            check(key.clone(), check_name(endpoint_name));
            check(format!("{key}.network"), check_name(&rec.network));
            check(format!("{key}.parent"), check_ifname(&rec.parent));
            check(format!("{key}.netns"), netns(&rec.netns));
            check(format!("{key}.ifname"), check_ifname(&rec.ifname));
        }
        for (name, rec) in &self.parents {
            check(format!("parents.{}", name.escape_debug()), check_ifname(name));
            if let ParentRecord::Vlan { base, .. } = rec {
                check(format!("parents.{}.base", name.escape_debug()), check_ifname(base));
            }
        }
        for name in self.trunks.keys() {
            check(format!("trunks.{}", name.escape_debug()), check_ifname(name));
        }
        for (i, p) in self.pending_links.iter().enumerate() {
            check(format!("pending_links[{i}].netns"), netns(&p.netns));
        }
        if bad.is_empty() { Ok(()) } else { Err(bad.join("; ")) }
    }
}

/// Existing installs have links in this group: the number must never change for a given dir.
fn link_group_of(dir: &Path) -> u32 {
    let hash = crate::fnv::fnv1a32(dir.to_string_lossy().as_bytes());
    // Group 0 is every link's default: never use it.
    hash.max(1)
}

/// The largest state file vland reads: 4095 endpoints take well under 4 MiB.
const MAX_STATE_BYTES: u64 = 64 << 20;

/// The state file of state dir `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Reads the state without the lock: for `stats`, which only looks.
pub fn read(dir: &Path) -> Result<State, StateError> {
    let path = path(dir);
    LAST_READ.read_through(&path, || match crate::secure_fs::read_regular(&path, MAX_STATE_BYTES) {
        Ok(Some(bytes)) => parse(&bytes, &path),
        Ok(None) => Ok(State { version: STATE_VERSION, ..Default::default() }),
        Err(source) => Err(StateError::Unreadable { path: path.clone(), source }),
    })
}

/// The state as last read or written (see file_cache.rs).
static LAST_READ: crate::file_cache::FileCache<State> = crate::file_cache::FileCache::new();

/// The state in `bytes` (read from `path`), if it is vland's, of a version this vland knows, with
/// nothing in it this vland does not know.
fn parse(bytes: &[u8], path: &Path) -> Result<State, StateError> {
    let refused = |reason: String| StateError::Refused { path: path.to_path_buf(), reason };
    // Straight from the bytes when it is this vland's kind of state (every apply reads it);
    // otherwise step by step, for an error that says what is wrong.
    let mut state = match serde_json::from_slice::<State>(bytes) {
        Ok(state) if (1..=STATE_VERSION).contains(&state.version) && bytes.trim_ascii_start().starts_with(b"{") => state,
        _ => {
            let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| refused(format!("not JSON: {e}")))?;
            let version = value.get("version").ok_or_else(|| refused("it has no `version`".to_string()))?;
            let version = version.as_u64().filter(|v| *v >= 1).ok_or_else(|| refused(format!("its `version` is {version}")))?;
            if version > u64::from(STATE_VERSION) {
                return Err(StateError::Newer { path: path.to_path_buf(), found: version });
            }
            serde_json::from_value(value).map_err(|e| refused(e.to_string()))?
        }
    };
    state.check_names().map_err(|e| refused(format!("it has been tampered with: {e}")))?;
    // Read in an older format, written in this one.
    state.version = STATE_VERSION;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_dir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("vland-state-").tempdir_in("/tmp").unwrap()
    }

    /// D1: a state dir others can write to is refused before anything is read or written.
    #[test]
    fn a_world_writable_state_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = root_dir();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", StateStore::open_locked(d.path()).err().expect("refused"));
        assert!(err.contains("writable by group or others"), "{err}");
    }

    /// D1: a symlink planted at the temp file's name is replaced, not written through.
    #[test]
    fn save_never_writes_through_a_symlink() {
        let d = root_dir();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("state.json.tmp")).unwrap();
        let store = StateStore::open_locked(d.path()).unwrap();
        store.save(&State { version: STATE_VERSION, ..Default::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(store.load().unwrap().version, STATE_VERSION);
    }

    /// D1: every name the state file gives is checked like the config's before vland acts on it.
    #[test]
    fn crafted_names_in_the_state_are_refused() {
        let cases = [
            r#"{"version":2,"namespaces":["../../etc/x"]}"#,
            r#"{"version":1,"namespaces":{"a\nb":{}}}"#,
            r#"{"version":1,"parents":{"eth0/../x":{"kind":"dummy"}}}"#,
            r#"{"version":1,"trunks":{"a b":{"netns_inum":1,"ifindex":2}}}"#,
            r#"{"version":1,"endpoints":{"e":{"network":"n","parent":"p","netns":{"named":"../x"},"ifname":"eth0","ip":null,"ip6":null,"mac":null,"link":null}}}"#,
            r#"{"version":1,"endpoints":{"e":{"network":"n","parent":"p","netns":{"path":"relative/ns"},"ifname":"eth0","ip":null,"ip6":null,"mac":null,"link":null}}}"#,
            r#"{"version":1,"endpoints":{"e":{"network":"n","parent":"p","netns":{"named":"a"},"ifname":"../x","ip":null,"ip6":null,"mac":null,"link":null}}}"#,
            r#"{"version":1,"endpoints":{"e\n":{"network":"n","parent":"p","netns":{"named":"a"},"ifname":"eth0","ip":null,"ip6":null,"mac":null,"link":null}}}"#,
            r#"{"version":2,"pending_links":[{"netns":{"named":"../../x"},"ifindex":1}]}"#,
        ];
        for json in cases {
            let d = root_dir();
            std::fs::write(d.path().join("state.json"), json).unwrap();
            let err = read(d.path()).err().unwrap_or_else(|| panic!("accepted {json}"));
            assert!(format!("{err:#}").contains("tampered"), "{json}: {err:#}");
        }
    }

    /// D9: while one daemon holds the state dir, a second is refused with the first's PID.
    #[test]
    fn a_second_daemon_lock_names_the_first_pid() {
        let d = root_dir();
        let first = DaemonLock::acquire(d.path()).unwrap();
        let err = format!("{:#}", DaemonLock::acquire(d.path()).err().expect("refused"));
        assert!(err.contains(&format!("PID {}", std::process::id())), "{err}");
        drop(first);
        DaemonLock::acquire(d.path()).unwrap();
    }

    /// The names vland writes itself pass the same checks.
    #[test]
    fn a_sane_state_reads_back() {
        let json = r#"{"version":1,"namespaces":{"web1":{}},"parents":{"eth1.19":{"kind":"vlan","base":"eth1","vid":19,"protocol":"802.1Q"}},"endpoints":{"e":{"network":"n","parent":"eth1.19","netns":{"path":"/proc/1/ns/net"},"ifname":"eth0","ip":null,"ip6":null,"mac":null,"link":null}}}"#;
        let d = root_dir();
        std::fs::write(d.path().join("state.json"), json).unwrap();
        read(d.path()).unwrap();
    }

    /// A state file as vland wrote it with state version 1 (namespaces as a map of empty records).
    const VERSION_1: &str = r#"{
  "version": 1,
  "namespaces": { "vlt-web1": {} },
  "endpoints": {
    "web1": {
      "network": "lan", "parent": "eth0", "netns": { "named": "vlt-web1" }, "ifname": "eth0",
      "ip": "172.16.10.2", "ip6": null, "mac": "02:11:22:33:44:55",
      "link": { "netns_inum": 4026532300, "ifindex": 1073807361 },
      "slot": 1,
      "routes": [ { "to": "0.0.0.0/0", "via": "172.16.10.1", "metric": null } ]
    }
  },
  "parents": { "eth0.19": { "kind": "vlan", "base": "eth0", "vid": 19, "protocol": "802.1Q" }, "vland-int": { "kind": "dummy" } },
  "trunks": {},
  "ebpf_object": "00112233aabbccdd",
  "pending_links": [ { "netns": { "named": "vlt-web1" }, "ifindex": 1073807361 } ]
}"#;

    fn path() -> PathBuf {
        PathBuf::from("/var/lib/vland/state.json")
    }

    fn refusal(text: &str) -> String {
        let e = parse(text.as_bytes(), &path()).expect_err("refused");
        assert!(e.is_permanent(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("/var/lib/vland/state.json"), "the message names the file: {msg}");
        msg
    }

    #[test]
    fn reads_a_version_1_file_and_writes_it_back_in_the_current_format() {
        let state = parse(VERSION_1.as_bytes(), &path()).unwrap();
        assert_eq!(state.version, STATE_VERSION);
        assert_eq!(state.namespaces, BTreeSet::from(["vlt-web1".to_string()]));
        let web1 = &state.endpoints["web1"];
        assert_eq!(
            (web1.slot, web1.ip, web1.mac.map(|m| m.to_string()).as_deref()),
            (Some(1), Some(Ipv4Addr::new(172, 16, 10, 2)), Some("02:11:22:33:44:55"))
        );
        assert_eq!(web1.routes.len(), 1);
        assert_eq!(state.parents["eth0.19"], ParentRecord::Vlan { base: "eth0".into(), vid: 19, protocol: VlanProtocol::Dot1Q });
        assert_eq!(state.pending_links, vec![PendingLink { netns: NetnsRef::Named("vlt-web1".into()), ifindex: 1_073_807_361 }]);

        let written = serde_json::to_value(&state).unwrap();
        assert_eq!(written["version"], STATE_VERSION);
        assert_eq!(written["namespaces"], serde_json::json!(["vlt-web1"]));
        assert_eq!(written["parents"]["vland-int"], serde_json::json!({ "kind": "dummy" }));
        // What is written reads back the same.
        assert_eq!(parse(&serde_json::to_vec(&state).unwrap(), &path()).unwrap(), state);
    }

    #[test]
    fn a_newer_version_is_refused() {
        let text = VERSION_1.replacen("\"version\": 1", &format!("\"version\": {}", STATE_VERSION + 1), 1);
        let msg = refusal(&text);
        assert!(msg.contains("newer vland") && msg.contains(&format!("state version {}", STATE_VERSION + 1)), "{msg}");
    }

    #[test]
    fn a_file_without_a_version_is_refused() {
        let msg = refusal(r#"{ "containers": { "abc": { "pid": 42 } } }"#);
        assert!(msg.contains("no `version`") && msg.contains("state_dir"), "{msg}");
    }

    #[test]
    fn a_version_that_is_no_number_is_refused() {
        let msg = refusal(r#"{ "version": "1.0", "endpoints": {} }"#);
        assert!(msg.contains("`version` is \"1.0\""), "{msg}");
    }

    #[test]
    fn another_programs_json_of_another_shape_is_refused() {
        let msg = refusal(r#"{ "version": 1, "endpoints": ["web1"] }"#);
        assert!(msg.contains("expected a map"), "{msg}");
        let msg = refusal("[1, 2, 3]");
        assert!(msg.contains("no `version`"), "{msg}");
        let msg = refusal("version = 1\n");
        assert!(msg.contains("not JSON"), "{msg}");
    }

    #[test]
    fn unknown_fields_are_refused_not_dropped() {
        let top = VERSION_1.replacen("\"trunks\": {},", "\"trunks\": {}, \"policies\": {},", 1);
        assert!(refusal(&top).contains("unknown field `policies`"));
        let endpoint = VERSION_1.replacen("\"slot\": 1,", "\"slot\": 1, \"qos\": 3,", 1);
        assert!(refusal(&endpoint).contains("unknown field `qos`"));
        // The journal of pre-release builds, which named children by a temporary name.
        let pending = VERSION_1.replacen("\"ifindex\": 1073807361 } ]", "\"ifindex\": 1073807361, \"temp_name\": \"vl0a1b2c3d\" } ]", 1);
        assert!(refusal(&pending).contains("unknown field `temp_name`"));
        let parent = VERSION_1.replacen("{ \"kind\": \"dummy\" }", "{ \"kind\": \"dummy\", \"mtu\": 9000 }", 1);
        assert!(refusal(&parent).contains("unknown field `mtu`"));
        let namespace = VERSION_1.replacen("\"vlt-web1\": {}", "\"vlt-web1\": { \"owner\": \"x\" }", 1);
        assert!(refusal(&namespace).contains("a list of namespace names"));
    }

    #[test]
    fn an_unreadable_file_is_worth_retrying() {
        let e = StateError::Unreadable { path: path(), source: std::io::Error::from(std::io::ErrorKind::PermissionDenied) };
        assert!(!e.is_permanent());
    }

    #[test]
    fn no_file_is_an_empty_state() {
        let dir = std::env::temp_dir().join(format!("vland-state-test-{}", std::process::id()));
        assert_eq!(read(&dir).unwrap(), State { version: STATE_VERSION, ..Default::default() });
    }
}

#[cfg(test)]
mod link_group_tests {
    /// Links of existing installs carry these groups: pinned so that no refactoring renumbers them.
    #[test]
    fn link_groups_of_known_state_dirs_stay_the_same() {
        assert_eq!(super::link_group_of("/var/lib/vland".as_ref()), 0xf60b_29cf);
        assert_eq!(super::link_group_of("/run/vland-test/state".as_ref()), 0x5a84_7450);
    }
}
