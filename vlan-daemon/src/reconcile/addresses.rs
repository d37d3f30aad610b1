//! Which address of each family each endpoint gets: its static one, else the one it already
//! holds (so an address survives restarts), else the lowest free address of its network's range.
use crate::config::{Config, ConfigErrors};
use crate::ipam;
use crate::state::State;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Planned addresses: (endpoint, is_v6) -> address.
pub type Plan = BTreeMap<(String, bool), IpAddr>;

pub fn plan(config: &Config, state: &State, errors: &mut ConfigErrors) -> Plan {
    let mut planned = Plan::new();
    for v6 in [false, true] {
        plan_family(config, state, v6, &mut planned, errors);
    }
    planned
}

fn plan_family(config: &Config, state: &State, v6: bool, planned: &mut Plan, errors: &mut ConfigErrors) {
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
        match ipam::allocate(ipam, set) {
            Some(ip) => {
                set.insert(ip);
                planned.insert((name.clone(), v6), ip);
            }
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
