//! Hosts of the cluster: each running vland keeps a lease (TTL 30 s) on its host key, which is
//! how others know it is alive; `vland cluster status` shows hosts and blocks, and `vland
//! cluster release-host` frees a dead host's blocks, refusing while its lease lives.
use super::ClusterError;
use super::blocks::{self, BlockOwner, PoolRecord, StaticOwner};
use super::client::Etcd;
use crate::config::{ClusterConfig, Ipam};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tracing::{info, warn};

/// What the host key records: who holds the name (two machines must not both call themselves
/// `docker1`: they would allocate from the same blocks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host: String,
    pub identity: String,
}

/// This machine and state dir: one vland, whether daemon or one-shot apply.
pub fn identity(state_dir: &Path) -> String {
    let machine = std::fs::read_to_string("/etc/machine-id").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into());
    format!("machine {machine}, state dir {}", state_dir.display())
}

/// Makes sure this host's key exists under a live lease, renewing it once; returns the lease.
pub async fn register(etcd: &mut Etcd, cc: &ClusterConfig, identity: &str) -> Result<i64, ClusterError> {
    let key = blocks::host_key(&cc.host);
    let me = HostRecord { host: cc.host.clone(), identity: identity.to_string() };
    for _ in 0..5 {
        // No key yet; or the key of a lease that just expired (etcd deletes it a moment later).
        let mut unchanged = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
        if let Some(kv) = etcd.get(&key).await? {
            let held: HostRecord = serde_json::from_slice(kv.value()).map_err(|e| anyhow::anyhow!("etcd key {key} is not vland's: {e}"))?;
            if held.identity != me.identity {
                // Another vland's name, while its lease lives (checked without renewing it).
                if etcd.time_to_live(kv.lease()).await?.is_some() {
                    return Err(ClusterError::HostTaken { host: cc.host.clone(), other: held.identity });
                }
            } else if etcd.keep_alive_once(kv.lease()).await? {
                return Ok(kv.lease());
            }
            unchanged = Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision());
        }
        let lease = etcd.grant(i64::from(cc.lease_ttl)).await?;
        let txn = Txn::new().when([unchanged]).and_then([TxnOp::put(
            key.clone(),
            serde_json::to_string(&me).expect("serializable"),
            Some(PutOptions::new().with_lease(lease)),
        )]);
        match etcd.txn(txn).await {
            Ok(r) if r.succeeded() => {
                info!(host = %cc.host, lease, "registered in the cluster");
                return Ok(lease);
            }
            // Someone registered first (this host's daemon, or another vland): look again.
            Ok(_) => {}
            Err(e) => warn!("{e:#}: reading back the host key"),
        }
    }
    Err(ClusterError::Etcd(anyhow::anyhow!("could not register host `{}` in etcd", cc.host)))
}

/// Keeps this host's lease alive while the daemon runs, registering again after it lapsed
/// (etcd down for longer than the TTL).
pub async fn keep_alive(cc: ClusterConfig, identity: String) {
    loop {
        match Etcd::connect(&cc).await {
            Ok(mut etcd) => match register(&mut etcd, &cc, &identity).await {
                Ok(lease) => loop {
                    // A third of the TTL: two renewals may fail before the lease lapses.
                    tokio::time::sleep(Duration::from_secs(u64::from(cc.lease_ttl / 3).max(1))).await;
                    match etcd.keep_alive_once(lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            warn!("this host's lease expired: registering again");
                            break;
                        }
                        Err(e) => {
                            warn!("cannot renew this host's lease: {e:#}");
                            break;
                        }
                    }
                },
                Err(e) => warn!("cannot register this host in the cluster: {e}"),
            },
            Err(e) => warn!("cannot reach etcd to keep this host's lease: {e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Deletes one of this host's blocks if it is still this host's and unchanged. Ok(false): it
/// was not (left as it is); an error: the outcome may be unknown.
pub async fn release_block(etcd: &mut Etcd, network: &str, block: &IpNetwork, host: &str) -> Result<bool, ClusterError> {
    let key = blocks::block_key(network, block);
    let Some(kv) = etcd.get(&key).await? else { return Ok(false) };
    let owner: BlockOwner = serde_json::from_slice(kv.value()).map_err(|e| anyhow::anyhow!("etcd key {key} is not vland's: {e}"))?;
    if owner.host != host {
        return Ok(false);
    }
    let txn =
        Txn::new().when([Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision())]).and_then([TxnOp::delete(key, None)]);
    Ok(etcd.txn(txn).await?.succeeded())
}

/// The cluster as `vland cluster status` shows it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub hosts: Vec<HostStatus>,
    pub networks: Vec<NetworkStatus>,
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub host: String,
    /// Seconds left on its lease; None: not running (no live lease).
    pub lease_ttl: Option<i64>,
    pub blocks: usize,
}

#[derive(Debug, Serialize)]
pub struct NetworkStatus {
    pub network: String,
    pub pool: Option<PoolRecord>,
    pub blocks: Vec<BlockStatus>,
}

#[derive(Debug, Serialize)]
pub struct BlockStatus {
    pub block: IpNetwork,
    pub host: String,
    /// Addresses in use, as its host last reported.
    pub used: Option<usize>,
    /// Addresses an endpoint may get in it.
    pub capacity: usize,
}

type Usage = BTreeMap<String, BTreeMap<IpNetwork, usize>>;

pub async fn status(etcd: &mut Etcd) -> anyhow::Result<Status> {
    let mut hosts: BTreeMap<String, HostStatus> = BTreeMap::new();
    for kv in etcd.get_prefix(&blocks::hosts_prefix()).await? {
        let record: HostRecord = serde_json::from_slice(kv.value())?;
        let ttl = etcd.time_to_live(kv.lease()).await?;
        hosts.insert(record.host.clone(), HostStatus { host: record.host, lease_ttl: ttl, blocks: 0 });
    }
    let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
    for kv in etcd.get_prefix(&blocks::usage_prefix()).await? {
        let host = kv.key_str()?.rsplit('/').next().unwrap_or_default().to_string();
        usage.insert(host, serde_json::from_slice(kv.value())?);
    }
    let mut networks: BTreeMap<String, NetworkStatus> = BTreeMap::new();
    let prefix = blocks::networks_prefix();
    for kv in etcd.get_prefix(&prefix).await? {
        let key = kv.key_str()?.strip_prefix(&prefix).unwrap_or_default();
        let Some((network, rest)) = key.split_once('/') else { continue };
        let entry = networks.entry(network.to_string()).or_insert_with(|| NetworkStatus {
            network: network.to_string(),
            pool: None,
            blocks: Vec::new(),
        });
        if rest == "pool" {
            entry.pool = Some(serde_json::from_slice(kv.value())?);
        } else if let Some(block) = rest.strip_prefix("blocks/") {
            let block: IpNetwork = block.replacen('-', "/", 1).parse()?;
            let owner: BlockOwner = serde_json::from_slice(kv.value())?;
            let used = usage.get(&owner.host).and_then(|u| u.get(network)).and_then(|b| b.get(&block)).copied();
            hosts
                .entry(owner.host.clone())
                .or_insert_with(|| HostStatus { host: owner.host.clone(), lease_ttl: None, blocks: 0 })
                .blocks += 1;
            entry.blocks.push(BlockStatus { block, host: owner.host, used, capacity: 0 });
        }
    }
    for net in networks.values_mut() {
        for b in &mut net.blocks {
            b.capacity =
                net.pool.as_ref().and_then(|p| ipam_of(p, b.block.is_ipv6())).map_or(0, |i| blocks::allocatable(&i, &b.block).count());
        }
    }
    Ok(Status { hosts: hosts.into_values().collect(), networks: networks.into_values().collect() })
}

fn ipam_of(p: &PoolRecord, v6: bool) -> Option<Ipam> {
    let (subnet, range, gateway) = if v6 { (p.subnet6?, p.ip_range6, p.gateway6) } else { (p.subnet?, p.ip_range, p.gateway) };
    let reserved = p.aux_addresses.iter().filter(|(_, a)| a.is_ipv6() == v6).map(|(k, a)| (k.clone(), *a)).collect();
    Some(Ipam { subnet, range: range.unwrap_or(subnet), gateway, reserved })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "hosts:")?;
        for h in &self.hosts {
            let lease = match h.lease_ttl {
                Some(ttl) => format!("alive (lease {ttl} s left)"),
                None => format!("not running (no lease): `vland cluster release-host {}` frees its blocks", h.host),
            };
            writeln!(f, "  {:<20} {} block(s), {lease}", h.host, h.blocks)?;
        }
        for n in &self.networks {
            let range = n.pool.as_ref().and_then(|p| p.ip_range.or(p.ip_range6)).map_or(String::new(), |r| format!(" ({r})"));
            writeln!(f, "network {}{range}:", n.network)?;
            for b in &n.blocks {
                let used = b.used.map_or("?".to_string(), |u| u.to_string());
                writeln!(f, "  {:<22} {:<20} {used}/{} used", b.block.to_string(), b.host, b.capacity)?;
            }
        }
        Ok(())
    }
}

/// What `release-host` freed.
#[derive(Debug, Default, Serialize)]
pub struct Released {
    pub blocks: usize,
    pub statics: usize,
}

/// Frees every block and static address of `host`, whose lease must have expired: in one
/// transaction that also checks the host key is still absent and each key unchanged.
pub async fn release_host(etcd: &mut Etcd, host: &str) -> anyhow::Result<Released> {
    let host_key = blocks::host_key(host);
    for _ in 0..5 {
        let mut compares = vec![Compare::create_revision(host_key.clone(), CompareOp::Equal, 0)];
        let mut ops = vec![TxnOp::delete(blocks::usage_key(host), None)];
        if let Some(kv) = etcd.get(&host_key).await? {
            // An expired lease's keys go a moment after it expires: expired is dead.
            if let Some(ttl) = etcd.time_to_live(kv.lease()).await? {
                anyhow::bail!(
                    "host `{host}` is alive (its lease has {ttl} s left): its blocks are in use. Stop vland there, \
                     or wait until its lease expires (its [cluster] lease_ttl after it stopped), then release it"
                );
            }
            compares = vec![Compare::mod_revision(host_key.clone(), CompareOp::Equal, kv.mod_revision())];
            ops.push(TxnOp::delete(host_key.clone(), None));
        }
        let prefix = blocks::networks_prefix();
        let mut released = Released::default();
        for kv in etcd.get_prefix(&prefix).await? {
            let key = kv.key_str()?.to_string();
            let owner = if key.contains("/blocks/") {
                serde_json::from_slice::<BlockOwner>(kv.value()).ok().map(|o| o.host)
            } else if key.contains("/static/") {
                serde_json::from_slice::<StaticOwner>(kv.value()).ok().map(|o| o.host)
            } else {
                None
            };
            if owner.as_deref() == Some(host) {
                if key.contains("/blocks/") {
                    released.blocks += 1;
                } else {
                    released.statics += 1;
                }
                compares.push(Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision()));
                ops.push(TxnOp::delete(key, None));
            }
        }
        match etcd.txn(Txn::new().when(compares).and_then(ops)).await {
            Ok(r) if r.succeeded() => return Ok(released),
            Ok(_) => {}
            Err(e) => warn!("{e:#}: reading again"),
        }
    }
    anyhow::bail!("could not release host `{host}`: its keys kept changing")
}
