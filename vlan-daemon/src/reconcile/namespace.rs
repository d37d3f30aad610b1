//! All endpoints of one network namespace, brought to the config together: the namespace's
//! links and addresses are read once, sysctls are written from one thread inside it, and each
//! child gets its counting programs as plain netlink attachments (XDP in the request that tags
//! the child; a cls_bpf filter on egress), which the kernel keeps with the device.
use super::endpoint::{self, Outcome, alias_for};
use super::sysctls::{self, DeviceSysctls};
use crate::config::{Endpoint, NetnsRef, Network};
use crate::ebpf::{self, EndpointPrograms, Pins};
use crate::netlink::{Hook, LinkFacts, Netlink, PresentAddress, RouteSpec};
use crate::netns;
use crate::state::{EndpointRecord, State, StateStore};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::fs::File;
use tracing::{info, warn};
use vlan_common::LinkId;
use vlan_common::names;

/// One configured endpoint of the namespace, with what apply decided for it.
pub struct Planned<'a> {
    pub ep: &'a Endpoint,
    pub net: &'a Network,
    pub parent_index: u32,
    /// Whether this endpoint carries the namespace's default route, per family.
    pub owns_default: [bool; 2],
}

/// What reconciling a namespace needs besides the endpoints.
pub struct Shared<'a> {
    pub host: &'a Netlink,
    pub store: &'a StateStore,
    pub pins: &'a Pins,
    pub programs: &'a EndpointPrograms,
}

/// Creates the namespace if it is a named one that does not exist (vland's from then on); true
/// if it did.
fn ensure_exists(ns: &NetnsRef, state: &mut State) -> anyhow::Result<bool> {
    if let NetnsRef::Named(name) = ns
        && !netns::is_namespace(&ns.path())
    {
        state.namespaces.insert(name.clone());
        netns::create(name)?;
        info!(netns = %name, "created namespace");
        return Ok(true);
    }
    Ok(false)
}

/// Brings every endpoint in `planned` (all in namespace `ns_ref`) to the config; returns what
/// happened to each. State changes are in memory: the caller saves them.
pub async fn ensure(
    shared: &Shared<'_>,
    state: &mut State,
    ns_ref: &NetnsRef,
    planned: &[Planned<'_>],
) -> anyhow::Result<Vec<(String, Outcome)>> {
    let new_namespace = ensure_exists(ns_ref, state)?;
    let ns = netns::open(&ns_ref.path()).with_context(|| format!("namespace {ns_ref}"))?;
    let inum = netns::inum(&ns)?;
    let nl = Netlink::in_netns(&ns)?;
    let wanted: Vec<DeviceSysctls> = planned.iter().map(|p| DeviceSysctls::for_network(&p.ep.ifname, p.net)).collect();
    if new_namespace {
        nl.set_up_by_name("lo").await?;
        sysctls::set_namespace_defaults(&ns, &wanted)?;
    }

    // Children first: existing ones checked, missing or drifted ones (re)created.
    let mut links: HashMap<String, LinkFacts> = nl.links().await?.into_iter().map(|l| (l.name.clone(), l)).collect();
    let mut outcomes = Vec::new();
    let mut created = Vec::new();
    for p in planned {
        let outcome = ensure_child(shared, &nl, state, &ns, ns_ref, &links, p).await.with_context(|| format!("endpoint {}", p.ep.name))?;
        if !matches!(outcome, Outcome::Unchanged) {
            created.push(p.ep.name.clone());
        }
        outcomes.push((p.ep.name.clone(), outcome));
    }
    // What new children are follows from how they were made, unless the kernel chose their MAC
    // (ipvlan, passthru): only then are they read back.
    let new_macs: Vec<Option<crate::mac::Mac>> =
        created.iter().map(|name| endpoint::assigned_mac(planned_endpoint(planned, name).net, &state.endpoints[name])).collect();
    if new_macs.iter().any(Option::is_none) {
        links = nl.links().await?.into_iter().map(|l| (l.name.clone(), l)).collect();
    } else {
        for (name, mac) in created.iter().zip(new_macs) {
            let p = planned_endpoint(planned, name);
            let index = shared.pins.endpoint_ifindex(state.endpoints[name].slot.expect("assigned before ensure"));
            let facts = LinkFacts {
                index,
                name: p.ep.ifname.clone(),
                alias: Some(alias_for(name)),
                mtu: p.net.mtu,
                mac,
                xdp_program: Some(shared.programs.ingress.id),
                group: Some(shared.store.link_group()),
                ..LinkFacts::default()
            };
            links.insert(p.ep.ifname.clone(), facts);
        }
    }
    let facts = |p: &Planned<'_>| -> anyhow::Result<LinkFacts> {
        links.get(&p.ep.ifname).cloned().with_context(|| format!("endpoint {}: its child link {} vanished", p.ep.name, p.ep.ifname))
    };

    // Policies before any egress filter, so no frame passes unchecked.
    let mut policies = Vec::new();
    for p in planned {
        let rec = &state.endpoints[&p.ep.name];
        let slot = rec.slot.expect("assigned before ensure");
        // The MAC vland gives the child (set back below if it drifted), else the one it has.
        let mac = endpoint::assigned_mac(p.net, rec).or(facts(p)?.mac);
        policies.push((slot, ebpf::endpoint_policy(p.net.spoof_check, mac, rec.ip, rec.ip6)));
    }
    ebpf::write_policies(shared.pins, &policies)?;

    let devices = planned.iter().zip(wanted).map(|(p, d)| (d, created.contains(&p.ep.name))).collect();
    sysctls::write(&ns, devices)?;
    // Children created just now have no addresses yet.
    let mut addresses = if created.len() == planned.len() { HashMap::new() } else { nl.addresses_by_link().await? };
    // Each child's steps run in order; the children's run side by side, so requests to the
    // kernel are in flight together instead of one round trip at a time.
    let mut steps = Vec::new();
    for p in planned {
        let link = facts(p)?;
        let present = [false, true].map(|v6| addresses.remove(&(link.index, v6)).unwrap_or_default());
        let rec = &state.endpoints[&p.ep.name];
        let just_created = created.contains(&p.ep.name);
        let (nl, programs) = (&nl, shared.programs);
        steps.push(async move {
            let routes =
                configure(nl, programs, p, rec, &link, present, just_created).await.with_context(|| format!("endpoint {}", p.ep.name))?;
            anyhow::Ok((p.ep.name.clone(), link.index, routes))
        });
    }
    for (name, index, routes) in futures::future::try_join_all(steps).await? {
        let rec = state.endpoints.get_mut(&name).expect("reserved before ensure");
        rec.link = Some(LinkId { netns_inum: inum, ifindex: index });
        rec.routes = routes;
    }
    Ok(outcomes)
}

/// One child's MTU, MAC, addresses, link state, routes and programs, each corrected where it is
/// not what the config says; returns the routes it has now.
async fn configure(
    nl: &Netlink,
    programs: &EndpointPrograms,
    p: &Planned<'_>,
    rec: &EndpointRecord,
    link: &LinkFacts,
    present: [Vec<PresentAddress>; 2],
    just_created: bool,
) -> anyhow::Result<Vec<RouteSpec>> {
    if let Some(mtu) = p.net.mtu
        && link.mtu != Some(mtu)
    {
        nl.set_mtu(link.index, mtu).await?;
    }
    if let Some(mac) = endpoint::assigned_mac(p.net, rec)
        && link.mac != Some(mac)
    {
        warn!(endpoint = %p.ep.name, "child MAC drifted; setting it back");
        nl.set_mac(link.index, mac).await?;
    }
    for (v6, present) in [false, true].into_iter().zip(present) {
        let wanted = match (rec.address(v6), p.net.ipam(v6)) {
            (Some(ip), Some(ipam)) => Some((ip, ipam.subnet.prefix())),
            // The network no longer has this family: what vland had put there goes.
            _ => None,
        };
        nl.set_only_addresses(link.index, wanted, present).await?;
    }
    if !link.up {
        nl.set_up(link.index).await?;
    }
    let desired = desired_routes(p.ep, p.net, p.owns_default);
    for old in rec.routes.iter().filter(|r| !desired.contains(r)) {
        nl.delete_route(link.index, old).await?;
    }
    for route in &desired {
        nl.replace_route(link.index, route).await?;
    }
    attach_programs(programs, nl, link, just_created).await?;
    Ok(desired)
}

/// The planned endpoint named `endpoint`.
fn planned_endpoint<'a, 'b>(planned: &'a [Planned<'b>], endpoint: &str) -> &'a Planned<'b> {
    planned.iter().find(|p| p.ep.name == endpoint).expect("created endpoints are planned")
}

/// Makes sure the endpoint's child exists under its name with vland's tag and number, with the
/// kind and mode its network asks for; creates or recreates it otherwise.
async fn ensure_child(
    shared: &Shared<'_>,
    nl: &Netlink,
    state: &mut State,
    ns: &File,
    ns_ref: &NetnsRef,
    links: &HashMap<String, LinkFacts>,
    p: &Planned<'_>,
) -> anyhow::Result<Outcome> {
    let alias = alias_for(&p.ep.name);
    let slot = state.endpoints[&p.ep.name].slot.expect("assigned before ensure");
    let ifindex = shared.pins.endpoint_ifindex(slot);
    let mut outcome = Outcome::Created;
    if let Some(link) = links.get(&p.ep.ifname) {
        if link.alias.as_deref() != Some(alias.as_str()) {
            bail!("namespace {ns_ref} already has an interface {} that vland did not create: set another ifname or remove it", p.ep.ifname);
        }
        let mut drift = p.net.driver.link_drift(link);
        if link.index != ifindex {
            drift.push(format!("ifindex {} -> {ifindex}", link.index));
        }
        if drift.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        // The wrong number is drift too: the endpoint programs find the slot by the ifindex.
        warn!(endpoint = %p.ep.name, drift = %drift.join(", "), "child link drifted from its network; recreating it");
        nl.delete_link(link.index).await?;
        outcome = Outcome::Repaired;
    }
    // The number may be held by vland's own child under another name (renamed by hand).
    if let Some(link) = links.values().find(|l| l.index == ifindex && l.name != p.ep.ifname) {
        if link.alias.as_deref() != Some(alias.as_str()) {
            bail!(
                "namespace {ns_ref} has a link {} with ifindex {ifindex}, the number vland gives this endpoint's child: remove that link",
                link.name
            );
        }
        nl.delete_link(link.index).await?;
    }
    endpoint::create_child(shared.host, state, shared.store, p.ep, p.net, ns, p.parent_index, ifindex).await?;
    nl.tag_and_attach(ifindex, &alias, shared.programs.ingress.fd()).await?;
    info!(endpoint = %p.ep.name, netns = %ns_ref, ifname = %p.ep.ifname, network = %p.net.name, "created child link");
    Ok(outcome)
}

/// The counting programs on one child: XDP on ingress, vland's filter on egress. A new child has
/// its XDP program from the request that tagged it. An older vland program is replaced in place.
/// Someone else's XDP program is left alone: then a TC ingress filter counts what the child
/// receives instead (and goes again once vland's XDP program is back, so nothing counts twice).
async fn attach_programs(programs: &EndpointPrograms, nl: &Netlink, link: &LinkFacts, just_created: bool) -> anyhow::Result<()> {
    let xdp_is_ours = match link.xdp_program {
        Some(id) if id == programs.ingress.id => true,
        None => {
            nl.attach_xdp(link.index, programs.ingress.fd(), false).await?;
            true
        }
        Some(id) if ebpf::is_vland_ingress(id) => {
            nl.attach_xdp(link.index, programs.ingress.fd(), true).await?;
            true
        }
        Some(id) => {
            warn!(ifname = %link.name, program = id, "another XDP program holds this child's XDP hook: vland counts what it receives in TC ingress");
            false
        }
    };
    if !just_created {
        let fallback = nl.filter_program(link.index, Hook::Ingress).await?;
        if xdp_is_ours && fallback.is_some() {
            nl.delete_filter(link.index, Hook::Ingress).await?;
        } else if !xdp_is_ours && fallback != Some(programs.ingress_tc.id) {
            nl.ensure_clsact(link.index).await?;
            nl.replace_filter(link.index, Hook::Ingress, programs.ingress_tc.fd(), names::INGRESS_TC_PROGRAM).await?;
        }
    }
    if just_created || nl.filter_program(link.index, Hook::Egress).await? != Some(programs.egress.id) {
        nl.ensure_clsact(link.index).await?;
        nl.replace_filter(link.index, Hook::Egress, programs.egress.fd(), names::EGRESS_PROGRAM).await?;
    }
    Ok(())
}

/// The routes an endpoint should have through its child: default routes of each family (via the
/// gateway; `dev` for ipvlan l3/l3s; none for internal networks), then its extra routes.
fn desired_routes(ep: &Endpoint, net: &Network, owns_default: [bool; 2]) -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    for v6 in [false, true] {
        if net.internal || net.ipam(v6).is_none() || !owns_default[v6 as usize] {
            continue;
        }
        let default: ipnetwork::IpNetwork = if v6 { "::/0".parse().unwrap() } else { "0.0.0.0/0".parse().unwrap() };
        if let Some(gw) = net.default_gateway(v6) {
            routes.push(RouteSpec { to: default, via: Some(gw), metric: net.metric });
        } else if net.driver.routes_by_device() {
            routes.push(RouteSpec { to: default, via: None, metric: net.metric });
        }
    }
    routes.extend(ep.routes.iter().map(|r| RouteSpec { to: r.to, via: r.via, metric: r.metric }));
    routes
}
