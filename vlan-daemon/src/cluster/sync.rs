//! The etcd side of cluster networks: this host's claims (blocks, static addresses, the
//! network's pool record) and the bookkeeping after an apply.
use super::blocks::{self, BlockOwner, PoolRecord, StaticOwner};
use super::client::Etcd;
use super::{ClusterError, Owned, Session, cluster_networks, demand, hosts, offline, usage};
use crate::config::{ClusterConfig, Config, Network};
use crate::state::State;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use tracing::{info, warn};

pub async fn claim_online(config: &Config, cc: &ClusterConfig, kept: &State, dry_run: bool) -> Result<Option<Session>, ClusterError> {
    let mut etcd = match Etcd::connect(cc).await {
        Ok(etcd) => etcd,
        Err(e) => {
            let reason = format!("{e:#}");
            warn!("etcd is unreachable ({reason}): allocating from the blocks this host owns");
            let owned = offline(config, cc, kept, &reason)?;
            return Ok(Some(Session { owned, etcd: None, config: cc.clone() }));
        }
    };
    if !dry_run {
        hosts::register(&mut etcd, cc, &hosts::identity(&config.daemon.state_dir)).await?;
    }
    let mut owned = Owned::default();
    for net in cluster_networks(config) {
        claim_network(&mut etcd, config, cc, kept, net, dry_run, &mut owned).await?;
    }
    Ok(Some(Session { owned, etcd: Some(etcd), config: cc.clone() }))
}

/// How many times a claim is retried after losing a race (another host took a block first).
const CLAIM_ATTEMPTS: usize = 50;

/// One network: reads its pool, blocks and statics in one range read, checks the pool agrees
/// with this host's config, and claims what is missing in one transaction that fails (and is
/// redone from a fresh read) if any block or static was taken meanwhile.
async fn claim_network(
    etcd: &mut Etcd,
    config: &Config,
    cc: &ClusterConfig,
    kept: &State,
    net: &Network,
    dry_run: bool,
    owned: &mut Owned,
) -> Result<(), ClusterError> {
    let mine_pool = PoolRecord::of(net);
    let pool_json = serde_json::to_string(&mine_pool).expect("serializable");
    let mut request = String::new();
    for attempt in 0..CLAIM_ATTEMPTS {
        let seen = Seen::read(etcd, &net.name).await?;
        if let Some(recorded) = &seen.pool {
            let differences = mine_pool.differences(recorded);
            if !differences.is_empty() {
                return Err(ClusterError::PoolMismatch { network: net.name.clone(), differences });
            }
        }
        if !request.is_empty() && seen.request_committed(&request) {
            info!(network = %net.name, "the earlier claim transaction had committed (its outcome was unknown)");
        }
        let mut txn_compares = Vec::new();
        let mut ops = Vec::new();
        request = format!("{}-{:016x}", cc.host, rand::random::<u64>());
        if seen.pool.is_none() {
            let key = blocks::pool_key(&net.name);
            txn_compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(key, pool_json.clone(), None));
        }
        let mut statics_wanted = BTreeSet::new();
        for v6 in [false, true] {
            let Some(ipam) = net.ipam(v6) else { continue };
            let owners: BTreeMap<IpNetwork, String> =
                seen.blocks.iter().filter(|(b, _)| b.is_ipv6() == v6).map(|(b, (o, _))| (*b, o.host.clone())).collect();
            let d = demand(config, kept, net, v6, ipam);
            statics_wanted.extend(d.statics.iter().cloned());
            let recorded: BTreeSet<IpAddr> = seen
                .statics
                .iter()
                .filter(|(ip, (o, _))| o.host == cc.host && d.statics.contains(&(**ip, o.endpoint.clone())))
                .map(|(ip, _)| *ip)
                .collect();
            let need = d.need(cc, ipam, v6, &owners, &recorded);
            let claims = need.claims().map_err(|source| ClusterError::Need { network: net.name.clone(), source })?;
            let mut mine = need.owned();
            let owner = serde_json::to_string(&BlockOwner { host: cc.host.clone(), request: request.clone() }).expect("serializable");
            for block in &claims.blocks {
                let key = blocks::block_key(&net.name, block);
                txn_compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                ops.push(TxnOp::put(key, owner.clone(), None));
                mine.insert(*block);
            }
            for (ip, endpoint) in &claims.statics {
                let key = blocks::static_key(&net.name, *ip);
                // Someone else's static there (even of this host, for another endpoint) stops it.
                if let Some((_, rev)) = seen.statics.get(ip) {
                    txn_compares.push(Compare::mod_revision(key.clone(), CompareOp::Equal, *rev));
                } else {
                    txn_compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                }
                // The block must still be this host's: checked in the same transaction.
                let block = blocks::block_of(&ipam.range, need.prefix, *ip);
                if let Some((_, rev)) = seen.blocks.get(&block) {
                    txn_compares.push(Compare::mod_revision(blocks::block_key(&net.name, &block), CompareOp::Equal, *rev));
                }
                let value = StaticOwner { host: cc.host.clone(), endpoint: endpoint.clone(), request: request.clone() };
                ops.push(TxnOp::put(key, serde_json::to_string(&value).expect("serializable"), None));
            }
            owned.blocks.insert((net.name.clone(), v6), mine);
        }
        // Statics this host recorded for endpoints it no longer has (or that moved) go.
        for (ip, (o, rev)) in &seen.statics {
            if o.host == cc.host && !statics_wanted.contains(&(*ip, o.endpoint.clone())) {
                let key = blocks::static_key(&net.name, *ip);
                txn_compares.push(Compare::mod_revision(key.clone(), CompareOp::Equal, *rev));
                ops.push(TxnOp::delete(key, None));
            }
        }
        if ops.is_empty() || dry_run {
            return Ok(());
        }
        let claimed = ops.len();
        match etcd.txn(Txn::new().when(txn_compares).and_then(ops)).await {
            Ok(r) if r.succeeded() => {
                info!(network = %net.name, writes = claimed, "claimed in etcd");
                return Ok(());
            }
            Ok(_) => {
                // Lost a race: read again and pick other blocks. A short random pause spreads
                // hosts that keep colliding.
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..=10 * (attempt as u64 + 1)))).await;
            }
            Err(e) => warn!(network = %net.name, "{e:#}: reading back to see whether it committed"),
        }
    }
    Err(ClusterError::Etcd(anyhow::anyhow!(
        "network `{}`: claims kept losing races with other hosts ({CLAIM_ATTEMPTS} attempts)",
        net.name
    )))
}

/// One network's keys as read from etcd, each with its mod revision.
struct Seen {
    pool: Option<PoolRecord>,
    blocks: BTreeMap<IpNetwork, (BlockOwner, i64)>,
    statics: BTreeMap<IpAddr, (StaticOwner, i64)>,
}

impl Seen {
    async fn read(etcd: &mut Etcd, network: &str) -> anyhow::Result<Seen> {
        let prefix = blocks::network_prefix(network);
        let mut seen = Seen { pool: None, blocks: BTreeMap::new(), statics: BTreeMap::new() };
        for kv in etcd.get_prefix(&prefix).await? {
            let key = kv.key_str()?.strip_prefix(&prefix).unwrap_or_default().to_string();
            let value = kv.value();
            let bad = |e| anyhow::anyhow!("etcd key {prefix}{key} is not vland's: {e}");
            if key == "pool" {
                seen.pool = Some(serde_json::from_slice(value).map_err(bad)?);
            } else if let Some(block) = key.strip_prefix("blocks/") {
                let block =
                    block.replacen('-', "/", 1).parse::<IpNetwork>().map_err(|e| bad(serde_json::Error::io(std::io::Error::other(e))))?;
                seen.blocks.insert(block, (serde_json::from_slice(value).map_err(bad)?, kv.mod_revision()));
            } else if let Some(ip) = key.strip_prefix("static/") {
                let ip = ip.parse::<IpAddr>().map_err(|e| bad(serde_json::Error::io(std::io::Error::other(e))))?;
                seen.statics.insert(ip, (serde_json::from_slice(value).map_err(bad)?, kv.mod_revision()));
            }
        }
        Ok(seen)
    }

    fn request_committed(&self, request: &str) -> bool {
        self.blocks.values().any(|(o, _)| o.request == request) || self.statics.values().any(|(o, _)| o.request == request)
    }
}

/// After a successful apply: records how full this host's blocks are (for `vland cluster
/// status`), and gives back blocks found empty by two applies in a row. Updates the state's
/// copy of the owned blocks.
pub async fn after_apply(session: &mut Session, state: &mut State) -> Result<(), ClusterError> {
    #[cfg_attr(not(feature = "etcd"), allow(unused_mut))]
    let mut by_network = session.owned.by_network();
    if let Some(etcd) = session.etcd.as_mut() {
        let used = usage(state, &by_network);
        let idle: BTreeSet<(String, IpNetwork)> =
            used.iter().flat_map(|(net, blocks)| blocks.iter().filter(|(_, n)| **n == 0).map(move |(b, _)| (net.clone(), *b))).collect();
        let mut still_idle = BTreeSet::new();
        for (net, block) in &idle {
            if !state.idle_blocks.contains(block) {
                still_idle.insert(*block);
                continue;
            }
            let released = hosts::release_block(etcd, net, block, &session.config.host).await;
            // Released, or perhaps (outcome unknown): the local copy forgets it at once, so an
            // apply while etcd is unreachable never allocates from a block another host may own.
            if !matches!(released, Ok(false)) {
                if let Some(set) = by_network.get_mut(net) {
                    set.remove(block);
                }
                state.cluster_blocks = by_network.clone();
            }
            if released? {
                info!(network = %net, %block, "gave back an address block found empty twice");
            }
        }
        state.idle_blocks = still_idle;
        let record = usage(state, &by_network);
        etcd.put(&blocks::usage_key(&session.config.host), serde_json::to_string(&record).expect("serializable")).await?;
    }
    state.cluster_blocks = by_network;
    Ok(())
}
