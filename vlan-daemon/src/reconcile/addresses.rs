//! Which IPv4 address each endpoint gets: its static one, else the one it already holds (so an
//! address survives restarts), else the lowest free address of its network's range.
use crate::config::{Config, ConfigErrors};
use crate::ipam;
use crate::state::State;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub fn plan(config: &Config, state: &State, errors: &mut ConfigErrors) -> BTreeMap<String, Ipv4Addr> {
    let mut planned = BTreeMap::new();
    let mut taken: BTreeMap<&str, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    // Static addresses first: they win over anything allocated before.
    for (name, ep) in &config.endpoints {
        if let Some(ip) = ep.ip {
            taken.entry(&ep.network).or_default().insert(ip);
            planned.insert(name.clone(), ip);
        }
    }
    // Then addresses endpoints already hold and may keep.
    for (name, ep) in &config.endpoints {
        let Some(ipam) = &config.networks[&ep.network].ipam else { continue };
        if ep.ip.is_some() {
            continue;
        }
        if let Some(rec) = state.endpoints.get(name)
            && rec.network == ep.network
            && let Some(ip) = rec.ip
            && ipam::is_allocatable(ipam, ip)
            && ipam.range.contains(ip)
            && taken.entry(&ep.network).or_default().insert(ip)
        {
            planned.insert(name.clone(), ip);
        }
    }
    // Then new allocations, lowest free first.
    for (name, ep) in &config.endpoints {
        let Some(ipam) = &config.networks[&ep.network].ipam else { continue };
        if planned.contains_key(name) {
            continue;
        }
        let set = taken.entry(&ep.network).or_default();
        match ipam::allocate(ipam, set) {
            Some(ip) => {
                set.insert(ip);
                planned.insert(name.clone(), ip);
            }
            None => errors.push(
                format!("endpoints.{name}.network"),
                format!("no free address left in {} of network `{}`: widen ip_range or remove endpoints", ipam.range, ep.network),
            ),
        }
    }
    planned
}
