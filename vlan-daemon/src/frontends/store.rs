//! The front-ends' fragments: networks and endpoints that CNI calls (and later Docker) created,
//! in the shape of the config file's tables, each with where it came from. The daemon owns the
//! file (`frontends.json` in the state dir) and writes it atomically (temp file, fsync, rename),
//! so a crash leaves the old or the new version, never half of one; `vland apply` reads it too.
use crate::config::{ConfigErrors, NetnsRef, RawEndpoint, RawNetwork};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "frontends.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragments {
    pub version: u32,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkFragment>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointFragment>,
    /// Docker's IPAM pools (by pool ID) and the addresses handed out from them: Docker asks
    /// for these before it creates the network, and never asks again after a restart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_pools: BTreeMap<String, DockerPool>,
}

/// One pool Docker requested (`--subnet`, `--ip-range`) and what it took from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerPool {
    pub subnet: String,
    /// `--ip-range`: where addresses without a request are drawn from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Addresses handed out, each with what it is for: `gateway`, `aux` or `endpoint`.
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
}

/// Where a Docker endpoint's child is, between Docker's Join and Leave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum DockerPhase {
    /// CreateEndpoint: the address is held, no child yet.
    #[default]
    Created,
    /// Join answered: the child is made in vland's namespace as `src_name`, for Docker to move
    /// into `sandbox` (and rename).
    Joining {
        sandbox: PathBuf,
        src_name: String,
        /// Whether Join gave Docker a default route for IPv4 / IPv6 to set (it must be there
        /// before vland takes the child over, or the two would race to add it).
        #[serde(default)]
        default_routes: [bool; 2],
    },
    /// Docker moved it: it is `ifname` in `sandbox`.
    Joined { sandbox: PathBuf, src_name: String, ifname: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFragment {
    pub config: RawNetwork,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFragment {
    pub config: RawEndpoint,
    pub origin: Origin,
}

/// Which front-end made a fragment, and what it calls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "frontend", rename_all = "snake_case", deny_unknown_fields)]
pub enum Origin {
    /// A network defined inline in a CNI network config, by the config's `name`.
    CniNetwork { name: String },
    /// One CNI attachment: the container ID and interface name identify it (CNI spec).
    CniAttachment {
        /// The CNI network config's `name`.
        network: String,
        container_id: String,
        ifname: String,
        netns: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod_namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod_name: Option<String>,
    },
    /// A network Docker created (`docker network create -d vland`), by Docker's network ID.
    DockerNetwork { network_id: String },
    /// A Docker endpoint (one container on one network), by Docker's IDs.
    DockerEndpoint {
        network_id: String,
        endpoint_id: String,
        #[serde(default)]
        phase: DockerPhase,
    },
}

/// vland's own namespace, where a Docker child is made before Docker moves it.
pub const OWN_NAMESPACE: &str = "/proc/self/ns/net";

/// Whether `ns` is where Docker's children are staged (vland's own namespace, by that path).
pub fn is_staging(ns: &NetnsRef) -> bool {
    matches!(ns, NetnsRef::Path(p) if p == Path::new(OWN_NAMESPACE))
}

impl Origin {
    /// How `vland stats` shows the owner: the pod when Kubernetes named one, else the container.
    pub fn owner(&self) -> Option<String> {
        match self {
            Origin::CniNetwork { .. } | Origin::DockerNetwork { .. } => None,
            // The Docker names (`docker ps`) are looked up where stats are shown.
            Origin::DockerEndpoint { endpoint_id, .. } => Some(format!("docker endpoint {}", &endpoint_id[..endpoint_id.len().min(12)])),
            Origin::CniAttachment { container_id, pod_namespace, pod_name, .. } => {
                let short = &container_id[..container_id.len().min(12)];
                Some(match (pod_namespace, pod_name) {
                    (Some(ns), Some(pod)) => format!("pod {ns}/{pod} (container {short})"),
                    _ => format!("container {short}"),
                })
            }
        }
    }
}

impl Fragments {
    /// Adds the fragments to the config file's tables. A name both define is an error (the
    /// front-ends' names carry a prefix, so only a config written to clash does). An endpoint
    /// whose namespace is gone (a container that ended without CNI DEL) is left out, so its
    /// child and address are released, while its fragment waits for DEL or GC.
    pub fn merge_into(
        &self,
        networks: &mut BTreeMap<String, RawNetwork>,
        endpoints: &mut BTreeMap<String, RawEndpoint>,
        errors: &mut ConfigErrors,
    ) {
        for (name, f) in &self.networks {
            if networks.insert(name.clone(), f.config.clone()).is_some() {
                errors.push(format!("networks.{name}"), "a front-end (CNI or Docker) made a network of this name: rename the config's");
            }
        }
        for (name, f) in &self.endpoints {
            let Some(config) = f.effective() else { continue };
            if let Some(path) = &config.netns_path
                && !crate::netns::is_namespace(path)
            {
                tracing::debug!(endpoint = %name, netns = %path.display(), "front-end endpoint's namespace is gone; left out");
                continue;
            }
            if endpoints.insert(name.clone(), config).is_some() {
                errors.push(format!("endpoints.{name}"), "a front-end (CNI or Docker) made an endpoint of this name: rename the config's");
            }
        }
    }

    /// Drops the CNI networks no endpoint fragment uses any more (Docker's live until
    /// DeleteNetwork).
    pub fn remove_unused_networks(&mut self) {
        let endpoints = &self.endpoints;
        self.networks.retain(|name, f| {
            matches!(f.origin, Origin::DockerNetwork { .. })
                || endpoints.values().any(|e| e.config.network.as_deref() == Some(name.as_str()))
        });
    }
}

impl EndpointFragment {
    /// The endpoint as the effective config has it, if it has a child now: a Docker endpoint
    /// only between Join and Leave, first in vland's namespace (staged), then in the sandbox.
    pub fn effective(&self) -> Option<RawEndpoint> {
        let mut config = self.config.clone();
        match &self.origin {
            Origin::DockerEndpoint { phase, .. } => match phase {
                DockerPhase::Created => return None,
                DockerPhase::Joining { src_name, .. } => {
                    config.netns_path = Some(PathBuf::from(OWN_NAMESPACE));
                    config.ifname = Some(src_name.clone());
                    config.staged = true;
                }
                DockerPhase::Joined { sandbox, ifname, .. } => {
                    config.netns_path = Some(sandbox.clone());
                    config.ifname = Some(ifname.clone());
                }
            },
            Origin::CniNetwork { .. } | Origin::CniAttachment { .. } | Origin::DockerNetwork { .. } => {}
        }
        Some(config)
    }
}

/// The fragments saved in `state_dir`; none when the file does not exist.
pub fn read(state_dir: &Path) -> anyhow::Result<Fragments> {
    let path = state_dir.join(FILE);
    LAST_READ.read_through(&path, || read_file(&path))
}

/// The fragments as last read or written (see file_cache.rs).
static LAST_READ: crate::file_cache::FileCache<Fragments> = crate::file_cache::FileCache::new();

fn read_file(path: &Path) -> anyhow::Result<Fragments> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Fragments { version: VERSION, ..Fragments::default() }),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let fragments: Fragments = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a front-end fragments file this vland reads; it was left as it is", path.display()))?;
    anyhow::ensure!(
        fragments.version <= VERSION,
        "{} was written by a newer vland (version {}; this one reads up to {VERSION})",
        path.display(),
        fragments.version
    );
    Ok(fragments)
}

/// Replaces the saved fragments: temp file, fsync, rename, fsync of the directory.
pub fn save(state_dir: &Path, fragments: &Fragments) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create state dir {}", state_dir.display()))?;
    let path = state_dir.join(FILE);
    let mut doc = fragments.clone();
    doc.version = VERSION;
    if LAST_READ.still_holds(&path, &doc) {
        return Ok(());
    }
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(&doc)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    std::fs::File::open(state_dir)?.sync_all()?;
    LAST_READ.wrote(&path, &doc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(id: &str) -> EndpointFragment {
        EndpointFragment {
            config: RawEndpoint { network: Some("cni-lan".into()), netns: Some("x".into()), ..RawEndpoint::default() },
            origin: Origin::CniAttachment {
                network: "lan".into(),
                container_id: id.into(),
                ifname: "eth0".into(),
                netns: "/run/netns/x".into(),
                pod_namespace: None,
                pod_name: None,
            },
        }
    }

    #[test]
    fn saved_fragments_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("vland-fragments-{}", std::process::id()));
        let mut f = Fragments::default();
        f.networks.insert(
            "cni-lan".into(),
            NetworkFragment {
                config: RawNetwork { parent: Some("eth0".into()), subnet: Some("10.0.0.0/24".into()), ..RawNetwork::default() },
                origin: Origin::CniNetwork { name: "lan".into() },
            },
        );
        f.endpoints.insert("cni-0123-eth0".into(), attachment("0123"));
        save(&dir, &f).unwrap();
        let back = read(&dir).unwrap();
        assert_eq!(back.networks, f.networks);
        assert_eq!(back.endpoints, f.endpoints);
        // Only set keys are written: the file reads like the TOML's tables.
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(!text.contains("null"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_name_in_both_is_an_error_and_unused_networks_go() {
        let mut f = Fragments::default();
        f.networks
            .insert("lan".into(), NetworkFragment { config: RawNetwork::default(), origin: Origin::CniNetwork { name: "lan".into() } });
        f.networks
            .insert("cni-lan".into(), NetworkFragment { config: RawNetwork::default(), origin: Origin::CniNetwork { name: "x".into() } });
        let mut networks = BTreeMap::from([("lan".to_string(), RawNetwork::default())]);
        let mut errors = ConfigErrors::default();
        f.merge_into(&mut networks, &mut BTreeMap::new(), &mut errors);
        assert_eq!(errors.errors.len(), 1);
        assert_eq!(errors.errors[0].key, "networks.lan");
        f.endpoints.insert("e".into(), attachment("1"));
        f.remove_unused_networks();
        assert_eq!(f.networks.keys().collect::<Vec<_>>(), ["cni-lan"]);
    }
}
