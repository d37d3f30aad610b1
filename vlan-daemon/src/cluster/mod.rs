//! Cluster networks (`scope = "cluster"`): one address pool shared by several hosts through
//! etcd. Before the (pure) allocation, an apply makes sure this host owns enough address blocks
//! of each cluster network (`claim`); the allocation then draws only from owned blocks, lowest
//! free first, from local state. etcd sees one range read per network and apply, and one
//! transaction when blocks or static addresses must be claimed.
//!
//! etcd is the authority on who owns which block: every apply reads it, so blocks claimed by a
//! run that died before recording them locally are found again. The state file keeps a copy, so
//! an apply while etcd is unreachable still serves from the blocks this host owns.
pub mod blocks;
#[cfg(feature = "etcd")]
pub mod client;
#[cfg(feature = "etcd")]
pub mod hosts;
#[cfg(feature = "etcd")]
mod sync;

use crate::config::{ClusterConfig, Config, Ipam, Network, PoolScope};
use crate::ipam;
use crate::state::State;
use blocks::{Need, NeedError};
#[cfg(feature = "etcd")]
use client::Etcd;
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
#[cfg(feature = "etcd")]
pub use sync::after_apply;

/// Why the cluster side of an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("network `{network}`: {source}")]
    Need {
        network: String,
        #[source]
        source: NeedError,
    },
    #[error(
        "network `{network}` differs from what the cluster recorded for it (the first host's config): {}; \
         make every host's config of this network the same",
        differences.join("; ")
    )]
    PoolMismatch { network: String, differences: Vec<String> },
    #[error(
        "etcd is unreachable ({reason}), and network `{network}` needs a new address block: this host's blocks \
         ({owned}) cannot hold its endpoints. Applies that fit in them keep working; this one will when etcd is back"
    )]
    Unreachable { network: String, owned: String, reason: String },
    #[error(
        "etcd is unreachable ({reason}), and the static address {ip} of endpoint `{endpoint}` is not yet recorded \
         in the cluster: it will be when etcd is back"
    )]
    UnreachableStatic { endpoint: String, ip: IpAddr, reason: String },
    #[error("host name `{host}` is in use by another vland ({other}) whose lease is alive: give this one another [cluster] host")]
    HostTaken { host: String, other: String },
    #[error("etcd: {0:#}")]
    Etcd(anyhow::Error),
}

impl ClusterError {
    /// Whether trying again cannot help until a config changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ClusterError::PoolMismatch { .. }
                | ClusterError::HostTaken { .. }
                | ClusterError::Need { source: NeedError::StaticInOthersBlock { .. }, .. }
        )
    }
}

impl From<anyhow::Error> for ClusterError {
    fn from(e: anyhow::Error) -> Self {
        ClusterError::Etcd(e)
    }
}

/// The blocks this host owns, per cluster network and family (false: IPv4, true: IPv6).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owned {
    pub blocks: BTreeMap<(String, bool), BTreeSet<IpNetwork>>,
}

impl Owned {
    /// None for a local network (allocation from its whole range).
    pub fn of(&self, network: &str, v6: bool) -> Option<&BTreeSet<IpNetwork>> {
        self.blocks.get(&(network.to_string(), v6))
    }

    /// Per network, as the state file records them.
    pub fn by_network(&self) -> BTreeMap<String, BTreeSet<IpNetwork>> {
        let mut out: BTreeMap<String, BTreeSet<IpNetwork>> = BTreeMap::new();
        for ((net, _), blocks) in &self.blocks {
            out.entry(net.clone()).or_default().extend(blocks);
        }
        out
    }
}

/// The cluster side of one apply: what this host owns, and the etcd connection when there is
/// one (kept for the after-apply bookkeeping).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub struct Session {
    pub owned: Owned,
    #[cfg(feature = "etcd")]
    pub etcd: Option<Etcd>,
    pub config: ClusterConfig,
}

fn cluster_networks(config: &Config) -> impl Iterator<Item = &Network> {
    config.networks.values().filter(|n| n.scope == PoolScope::Cluster)
}

/// What one family of one network needs, from the config and the kept records.
struct Demand {
    kept: BTreeSet<IpAddr>,
    statics: Vec<(IpAddr, String)>,
    new_endpoints: usize,
}

impl Demand {
    /// What this host must own of the family's pool, given every host's blocks (`owners`) and
    /// the static addresses already recorded as this host's.
    fn need<'a>(
        &'a self,
        cc: &'a ClusterConfig,
        ipam: &'a Ipam,
        v6: bool,
        owners: &'a BTreeMap<IpNetwork, String>,
        recorded_statics: &'a BTreeSet<IpAddr>,
    ) -> Need<'a> {
        Need {
            ipam,
            prefix: block_prefix(cc, ipam, v6),
            host: &cc.host,
            owners,
            kept: &self.kept,
            statics: &self.statics,
            recorded_statics,
            new_endpoints: self.new_endpoints,
        }
    }
}

fn demand(config: &Config, kept: &State, net: &Network, v6: bool, ipam: &Ipam) -> Demand {
    let mut d = Demand { kept: BTreeSet::new(), statics: Vec::new(), new_endpoints: 0 };
    for (name, ep) in config.endpoints.iter().filter(|(_, e)| e.network == net.name) {
        // As the allocation keeps them: an address of this network's range, held by one endpoint.
        let held = kept
            .endpoints
            .get(name)
            .filter(|r| r.network == net.name)
            .and_then(|r| r.address(v6))
            .filter(|ip| ipam::is_allocatable(ipam, *ip) && ipam.range.contains(*ip));
        match (ep.static_ip(v6), held) {
            (Some(ip), _) => d.statics.push((ip, name.clone())),
            (None, Some(ip)) if d.kept.insert(ip) => {}
            _ => d.new_endpoints += 1,
        }
    }
    d
}

fn block_prefix(cc: &ClusterConfig, ipam: &Ipam, v6: bool) -> u8 {
    blocks::block_prefix(&ipam.range, if v6 { cc.block_size6 } else { cc.block_size })
}

/// Makes sure this host owns enough blocks of every cluster network for the endpoints `config`
/// gives it (`kept`: the records of endpoints that stay), claiming what is missing in etcd.
/// With `dry_run` (`vland plan`) nothing is written: the blocks it would claim count as owned.
pub async fn claim(config: &Config, kept: &State, dry_run: bool) -> Result<Option<Session>, ClusterError> {
    let Some(cc) = &config.cluster else { return Ok(None) };
    if cluster_networks(config).next().is_none() {
        return Ok(None);
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = (cc, kept, dry_run);
        Err(ClusterError::Etcd(anyhow::anyhow!(
            "this vland was built without etcd (cargo feature `etcd`): it cannot serve cluster networks"
        )))
    }
    #[cfg(feature = "etcd")]
    sync::claim_online(config, cc, kept, dry_run).await
}

/// Without etcd support nothing is claimed, so nothing is recorded after an apply.
#[cfg(not(feature = "etcd"))]
pub async fn after_apply(_session: &mut Session, _state: &mut State) -> Result<(), ClusterError> {
    Ok(())
}

/// Without etcd: the blocks recorded locally must hold every endpoint.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) fn offline(config: &Config, cc: &ClusterConfig, kept: &State, reason: &str) -> Result<Owned, ClusterError> {
    let mut owned = Owned::default();
    for net in cluster_networks(config) {
        for v6 in [false, true] {
            let Some(ipam) = net.ipam(v6) else { continue };
            let mine: BTreeSet<IpNetwork> =
                kept.cluster_blocks.get(&net.name).into_iter().flatten().filter(|b| b.is_ipv6() == v6).copied().collect();
            let owners = mine.iter().map(|b| (*b, cc.host.clone())).collect();
            let d = demand(config, kept, net, v6, ipam);
            // A static address already held by its endpoint was recorded when it was applied.
            let recorded: BTreeSet<IpAddr> = d
                .statics
                .iter()
                .filter(|(ip, name)| kept.endpoints.get(name).and_then(|r| r.address(v6)) == Some(*ip))
                .map(|(ip, _)| *ip)
                .collect();
            let need = d.need(cc, ipam, v6, &owners, &recorded);
            let unreachable = || ClusterError::Unreachable {
                network: net.name.clone(),
                owned: if mine.is_empty() { "none".into() } else { mine.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") },
                reason: reason.to_string(),
            };
            let claims = need.claims().map_err(|_| unreachable())?;
            if !claims.blocks.is_empty() {
                return Err(unreachable());
            }
            if let Some((ip, endpoint)) = claims.statics.into_iter().next() {
                return Err(ClusterError::UnreachableStatic { endpoint, ip, reason: reason.to_string() });
            }
            owned.blocks.insert((net.name.clone(), v6), mine);
        }
    }
    Ok(owned)
}

/// Addresses in use per owned block, per network.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn usage(state: &State, owned: &BTreeMap<String, BTreeSet<IpNetwork>>) -> BTreeMap<String, BTreeMap<IpNetwork, usize>> {
    owned
        .iter()
        .map(|(net, blocks)| {
            let counts = blocks
                .iter()
                .map(|b| {
                    let n = state
                        .endpoints
                        .values()
                        .filter(|r| &r.network == net)
                        .flat_map(|r| [r.address(false), r.address(true)])
                        .flatten()
                        .filter(|a| b.contains(*a))
                        .count();
                    (*b, n)
                })
                .collect();
            (net.clone(), counts)
        })
        .collect()
}
