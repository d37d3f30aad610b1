//! `host_access`: the host reaches its own children. macvlan (and ipvlan) never deliver between a
//! parent and its children, so the host cannot reach them through the parent; vland gives the
//! host a child of its own on the same parent, in vland's own namespace, and treats it as one
//! more endpoint of the network, named `NETWORK/host`: allocated a slot (counted like any
//! endpoint), tagged, created, repaired on drift and removed by `down` by the same code. What
//! differs is decided here: where it lives, its name, and what it carries. It holds only
//! `host_address/32` (`/128`), so the kernel adds no subnet route and the host's own route to the
//! subnet through the parent (to the gateway and the other hosts) stays as it is; plus one
//! host route per endpoint address of the network through it, so the host reaches exactly its
//! children that way. The endpoints reach the host at `host_address` through their subnet route.
use crate::config::{Config, Endpoint, NetnsRef, Network};
use crate::netlink::RouteSpec;
use ipnetwork::IpNetwork;
use std::borrow::Cow;
use std::net::IpAddr;

const SUFFIX: &str = "/host";
/// IFNAMSIZ less the NUL.
const MAX_IFNAME: usize = 15;

/// The endpoint name of a network's host child.
pub fn endpoint_name(network: &str) -> String {
    format!("{network}{SUFFIX}")
}

/// The network whose host child `endpoint` names, if it names one. (`/` is in no configured
/// endpoint's name, so the names never collide.)
pub fn network_of(endpoint: &str) -> Option<&str> {
    endpoint.strip_suffix(SUFFIX).filter(|n| !n.is_empty() && !n.contains('/'))
}

/// The host child's interface name: `vh-NETWORK`, or for a network name too long for that, `vh-`
/// and a stable hash of it (interface names hold 15 bytes).
pub fn ifname(network: &str) -> String {
    let name = format!("vh-{network}");
    if name.len() <= MAX_IFNAME { name } else { format!("vh-{:08x}", crate::fnv::fnv1a32(network.as_bytes())) }
}

/// Whether `ep` is a host child.
pub fn is_host_child(ep: &Endpoint) -> bool {
    ep.netns == NetnsRef::Own
}

/// `config` with the host child of every `host_access` network as an endpoint; borrowed as is
/// when no network asks for one.
pub fn with_host_children(config: &Config) -> Cow<'_, Config> {
    let wanted: Vec<&Network> = config.networks.values().filter(|n| n.host_access.is_some()).collect();
    if wanted.is_empty() {
        return Cow::Borrowed(config);
    }
    let mut config = config.clone();
    for net in wanted {
        let host = net.host_access.as_ref().expect("filtered");
        let name = endpoint_name(&net.name);
        config.endpoints.insert(
            name.clone(),
            Endpoint {
                name,
                network: net.name.clone(),
                netns: NetnsRef::Own,
                ip: host.ip,
                ip6: host.ip6,
                mac: None,
                ifname: ifname(&net.name),
                routes: Vec::new(),
                staged: false,
            },
        );
    }
    Cow::Owned(config)
}

/// The host routes a host child carries: one per address of each other endpoint of its network,
/// through the child (on-link), in the order given.
pub fn routes<'a>(endpoint_addresses: impl Iterator<Item = &'a IpAddr>) -> Vec<RouteSpec> {
    endpoint_addresses
        .map(|a| RouteSpec {
            to: IpNetwork::new(*a, if a.is_ipv6() { 128 } else { 32 }).expect("full-length prefix"),
            via: None,
            metric: None,
        })
        .collect()
}

/// The prefix length of the host child's address: the address alone, so no subnet route.
pub fn prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv6() { 128 } else { 32 }
}

#[cfg(test)]
mod tests;
