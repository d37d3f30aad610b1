//! The desired state: from the validated config and the allocations, what the kernel should show
//! for each endpoint (its child, addresses, routes, sysctls, counting programs). Pure.
use super::allocate::Allocation;
use super::endpoint::alias_for;
use super::host_access;
use super::observed::Observed;
use super::sysctls::{Defaults, DeviceSysctls};
use crate::config::{Config, Endpoint, NetnsRef, Network};
use crate::ebpf::{Pins, endpoint_policy};
use crate::mac::Mac;
use crate::netlink::RouteSpec;
use crate::state::EndpointRecord;
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::net::IpAddr;
use vlan_common::EndpointPolicy;

/// One endpoint as the kernel should show it.
pub struct DesiredEndpoint<'c> {
    pub ep: &'c Endpoint,
    pub net: &'c Network,
    pub alloc: Allocation,
    /// The child's number: the endpoint programs find the slot from it.
    pub ifindex: u32,
    /// vland's ownership tag on the child.
    pub alias: String,
    /// Per family (IPv4, IPv6): the address and prefix length.
    pub addresses: [Option<(IpAddr, u8)>; 2],
    pub routes: Vec<RouteSpec>,
    pub sysctls: DeviceSysctls,
}

impl DesiredEndpoint<'_> {
    /// The MAC vland gives the child; None where the child takes its parent's.
    pub fn assigned_mac(&self) -> Option<Mac> {
        (!self.net.driver.takes_parent_mac()).then_some(self.alloc.mac)
    }

    /// What the egress program enforces, given the MAC the child has.
    pub fn policy(&self, link_mac: Option<Mac>) -> EndpointPolicy {
        endpoint_policy(self.net.spoof_check, self.assigned_mac().or(link_mac), self.alloc.ip, self.alloc.ip6)
    }
}

pub struct Desired<'c> {
    pub config: &'c Config,
    pub endpoints: BTreeMap<String, DesiredEndpoint<'c>>,
    /// The endpoints of each namespace, which are handled together.
    pub by_netns: BTreeMap<NetnsRef, Vec<String>>,
}

impl Desired<'_> {
    /// Sets aside the staged children an engine is taking over: made (recorded with a link)
    /// and handed over, so the engine may move them into its sandbox at any moment until vland
    /// follows them there (Docker moves the child after Join's reply; vland takes it over at its
    /// next call). Such a child is moving, not missing, and not vland's to correct meanwhile: a
    /// copy made now would carry its MAC and clash with it on the parent, and a correction would
    /// race the move ("No such device"). Returns their names; this apply neither plans nor
    /// touches them.
    pub fn set_aside_moving(&mut self, observed: &Observed) -> Vec<String> {
        let moving: Vec<String> = self
            .endpoints
            .iter()
            .filter(|(name, d)| is_moving(d.ep, observed.state.endpoints.get(*name)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &moving {
            let d = self.endpoints.remove(name).expect("listed above");
            if let Some(names) = self.by_netns.get_mut(&d.ep.netns) {
                names.retain(|n| n != name);
            }
        }
        moving
    }

    /// The sysctl defaults vland gives a namespace it creates: what most of its children want.
    pub fn new_namespace_defaults(&self, ns_ref: &NetnsRef) -> Defaults {
        let devices: Vec<&DeviceSysctls> = self.by_netns[ns_ref].iter().map(|n| &self.endpoints[n].sysctls).collect();
        super::sysctls::majority_defaults(&devices, super::sysctls::has_ipv6())
    }
}

/// Whether `ep` is a staged child its engine is about to move: made, and recorded (`record`)
/// where it was staged.
pub fn is_moving(ep: &Endpoint, record: Option<&EndpointRecord>) -> bool {
    ep.staged && record.is_some_and(|r| r.link.is_some() && r.netns == ep.netns)
}

pub fn desired<'c>(config: &'c Config, allocations: BTreeMap<String, Allocation>, pins: &Pins) -> Desired<'c> {
    let mut endpoints = BTreeMap::new();
    let mut by_netns: BTreeMap<NetnsRef, Vec<String>> = BTreeMap::new();
    // Each network's endpoint addresses, for its host child's routes.
    let mut by_network: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for (name, alloc) in &allocations {
        let ep = &config.endpoints[name];
        if !host_access::is_host_child(ep) {
            by_network.entry(ep.network.as_str()).or_default().extend([alloc.address(false), alloc.address(true)].into_iter().flatten());
        }
    }
    let default_owners = config.default_route_owners();
    for (name, alloc) in allocations {
        let ep = &config.endpoints[&name];
        let net = &config.networks[&ep.network];
        let host_child = host_access::is_host_child(ep);
        let owners = default_owners.get(&ep.netns).copied().unwrap_or_default();
        let owns_default = owners.map(|owner| owner == Some(name.as_str()));
        // A staged child gets its addresses where the engine moves it (Docker sets them there).
        let addresses = [false, true].map(|v6| {
            let addr = alloc.address(v6).filter(|_| !ep.staged)?;
            Some((addr, if host_child { host_access::prefix(addr) } else { net.ipam(v6)?.subnet.prefix() }))
        });
        let routes = if host_child {
            host_access::routes(by_network.get(ep.network.as_str()).into_iter().flatten())
        } else {
            routes(ep, net, owns_default)
        };
        by_netns.entry(ep.netns.clone()).or_default().push(name.clone());
        endpoints.insert(
            name.clone(),
            DesiredEndpoint {
                ep,
                net,
                ifindex: pins.endpoint_ifindex(alloc.slot),
                alias: alias_for(&name),
                alloc,
                addresses,
                routes,
                sysctls: DeviceSysctls::for_network(&ep.ifname, net),
            },
        );
    }
    Desired { config, endpoints, by_netns }
}

/// The routes an endpoint should have through its child: default routes of each family (via the
/// gateway; `dev` for ipvlan l3/l3s; none for internal networks), then its extra routes.
fn routes(ep: &Endpoint, net: &Network, owns_default: [bool; 2]) -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    if ep.staged {
        return routes;
    }
    for v6 in [false, true] {
        if net.internal || net.ipam(v6).is_none() || !owns_default[v6 as usize] {
            continue;
        }
        let default: IpNetwork = if v6 { "::/0".parse().unwrap() } else { "0.0.0.0/0".parse().unwrap() };
        if let Some(gw) = net.default_gateway(v6) {
            routes.push(RouteSpec { to: default, via: Some(gw), metric: net.metric });
        } else if net.driver.routes_by_device() {
            routes.push(RouteSpec { to: default, via: None, metric: net.metric });
        }
    }
    routes.extend(ep.routes.iter().map(|r| RouteSpec { to: r.to, via: r.via, metric: r.metric }));
    routes
}
