//! What each endpoint holds for its lifetime, decided before anything changes and recorded in
//! the state before the kernel is touched: its addresses (its static one, else the one it
//! already holds, so an address survives restarts, else the lowest free one of its network's
//! range, or for a cluster network of the blocks this host owns), its MAC and its slot in the
//! eBPF arrays. Pure: no kernel, no etcd.
use super::ApplyError;
use crate::cluster::Owned;
use crate::config::{Config, ConfigErrors};
use crate::ipam;
use crate::mac::Mac;
use crate::state::State;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One endpoint's allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    /// The MAC vland gives the child (unused where children take the parent's).
    pub mac: Mac,
    pub slot: u32,
    /// The slot was free until now: its counters are cleared before use.
    pub new_slot: bool,
}

impl Allocation {
    pub fn address(&self, v6: bool) -> Option<IpAddr> {
        if v6 { self.ip6.map(IpAddr::V6) } else { self.ip.map(IpAddr::V4) }
    }
}

/// Allocations for every configured endpoint. `kept` holds the records of endpoints that stay
/// where they are (the others are removed first, and what they held is free again).
#[cfg(test)]
pub fn allocate(config: &Config, kept: &State, source_name: &str) -> Result<BTreeMap<String, Allocation>, ApplyError> {
    allocate_in(config, kept, &Owned::default(), source_name)
}

/// As `allocate`; `owned`: for cluster networks, the blocks this host owns (new addresses come
/// only from them).
pub fn allocate_in(config: &Config, kept: &State, owned: &Owned, source_name: &str) -> Result<BTreeMap<String, Allocation>, ApplyError> {
    let mut errors = ConfigErrors { source_name: source_name.to_string(), errors: Vec::new() };
    let mut addresses = Planned::new();
    for v6 in [false, true] {
        plan_family(config, kept, owned, v6, &mut addresses, &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let max = vlan_common::MAX_ENDPOINTS - 1;
    let mut used: BTreeSet<u32> = kept.endpoints.values().filter_map(|r| r.slot).collect();
    // MACs: a static one wins; a recorded one is kept unless another endpoint now claims it
    // (statically, or kept it first); else a random one nobody holds. Children that take their
    // parent's MAC keep what is recorded: vland gives them none.
    let mut taken_macs: BTreeSet<Mac> = config.endpoints.values().filter_map(|e| e.mac).collect();
    let mut out = BTreeMap::new();
    for (name, ep) in &config.endpoints {
        let rec = kept.endpoints.get(name);
        let (slot, new_slot) = match rec.and_then(|r| r.slot) {
            Some(slot) => (slot, false),
            None => {
                let slot = (1..=max)
                    .find(|s| !used.contains(s))
                    .ok_or(ApplyError::TooManyEndpoints { configured: config.endpoints.len(), max })?;
                used.insert(slot);
                (slot, true)
            }
        };
        let address = |v6| addresses.get(&(name.clone(), v6)).copied();
        // Cluster networks: the MAC follows the address, unique across hosts as it is.
        let cluster_mac =
            owned.of(&ep.network, false).or(owned.of(&ep.network, true)).and(address(false).or(address(true))).map(Mac::from_address);
        out.insert(
            name.clone(),
            Allocation {
                ip: match address(false) {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                },
                ip6: match address(true) {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                },
                mac: match cluster_mac {
                    Some(derived) => ep.mac.unwrap_or(derived),
                    None => mac_for(ep, rec.and_then(|r| r.mac), config, &mut taken_macs),
                },
                slot,
                new_slot,
            },
        );
    }
    Ok(out)
}

fn mac_for(ep: &crate::config::Endpoint, recorded: Option<Mac>, config: &Config, taken: &mut BTreeSet<Mac>) -> Mac {
    if config.networks[&ep.network].driver.takes_parent_mac() {
        return recorded.or(ep.mac).unwrap_or_else(Mac::random);
    }
    if let Some(mac) = ep.mac {
        return mac;
    }
    let mac = recorded
        .filter(|m| !taken.contains(m))
        .unwrap_or_else(|| std::iter::repeat_with(Mac::random).find(|m| !taken.contains(m)).expect("2^46 MACs"));
    taken.insert(mac);
    mac
}

/// Planned addresses: (endpoint, is_v6) -> address.
type Planned = BTreeMap<(String, bool), IpAddr>;

fn plan_family(config: &Config, state: &State, owned: &Owned, v6: bool, planned: &mut Planned, errors: &mut ConfigErrors) {
    let mut taken: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    let with_ipam = || config.endpoints.iter().filter_map(|(name, ep)| config.networks[&ep.network].ipam(v6).map(|i| (name, ep, i)));
    // Static addresses first: they win over anything allocated before.
    for (name, ep, _) in with_ipam() {
        if let Some(ip) = ep.static_ip(v6) {
            taken.entry(&ep.network).or_default().insert(ip);
            planned.insert((name.clone(), v6), ip);
        }
    }
    // Then addresses endpoints already hold and may keep.
    for (name, ep, ipam) in with_ipam() {
        if ep.static_ip(v6).is_some() {
            continue;
        }
        if let Some(rec) = state.endpoints.get(name)
            && rec.network == ep.network
            && let Some(ip) = rec.address(v6)
            && ipam::is_allocatable(ipam, ip)
            && ipam.range.contains(ip)
            && owned.of(&ep.network, v6).is_none_or(|blocks| blocks.iter().any(|b| b.contains(ip)))
            && taken.entry(&ep.network).or_default().insert(ip)
        {
            planned.insert((name.clone(), v6), ip);
        }
    }
    // Then new allocations, lowest free first.
    for (name, ep, ipam) in with_ipam() {
        if planned.contains_key(&(name.clone(), v6)) {
            continue;
        }
        let set = taken.entry(&ep.network).or_default();
        let blocks = owned.of(&ep.network, v6);
        let found = match blocks {
            Some(blocks) => ipam::allocate_in(ipam, blocks, set),
            None => ipam::allocate(ipam, set),
        };
        match found {
            Some(ip) => {
                set.insert(ip);
                planned.insert((name.clone(), v6), ip);
            }
            None if blocks.is_some() => errors.push(
                format!("endpoints.{name}.network"),
                format!("pool exhausted: no free address left in the blocks this host owns of cluster network `{}`", ep.network),
            ),
            None => errors.push(
                format!("endpoints.{name}.network"),
                format!(
                    "no free address left in {} of network `{}`: widen ip_range{} or remove endpoints",
                    ipam.range,
                    ep.network,
                    if v6 { "6" } else { "" }
                ),
            ),
        }
    }
}
