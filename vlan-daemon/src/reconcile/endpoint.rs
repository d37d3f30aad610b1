//! One endpoint: its namespace, its child link (created in place under a temporary name, then
//! renamed and tagged as vland's), its address, sysctls and default route.
use crate::config::{Config, Endpoint, NetnsRef, Network};
use crate::drivers::{self, ChildSpec};
use crate::ebpf::{self, Pins};
use crate::netlink::Netlink;
use crate::netns;
use crate::state::{EndpointRecord, LinkRecord, NamespaceRecord, PendingLink, State, StateStore};
use anyhow::{Context, bail};
use std::os::fd::AsRawFd;
use tracing::{info, warn};
use vlan_common::EndpointKey;

pub enum Outcome {
    Created,
    Repaired,
    Unchanged,
}

/// The kernel-side ownership tag (IFLA_IFALIAS) on every child link vland creates: together
/// with the state record, it is how vland knows a link is its own to change or delete.
pub fn alias_for(endpoint: &str) -> String {
    format!("vland:{endpoint}")
}

pub fn random_mac() -> [u8; 6] {
    let mut mac: [u8; 6] = rand::random();
    // Locally administered (bit 1 set), unicast (bit 0 clear).
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Whether the recorded endpoint still sits where the config wants it; if not, it is rebuilt.
pub fn same_placement(ep: &Endpoint, rec: &EndpointRecord, config: &Config) -> bool {
    let net = &config.networks[&ep.network];
    rec.network == ep.network
        && rec.parent == net.parent
        && rec.netns == ep.netns
        && rec.ifname == ep.ifname
        && ep.mac.is_none_or(|m| rec.mac.as_deref() == Some(format_mac(m).as_str()))
}

fn open_netns(ns: &NetnsRef) -> anyhow::Result<Option<std::fs::File>> {
    let path = ns.path();
    if netns::is_namespace(&path) { Ok(Some(netns::open(&path)?)) } else { Ok(None) }
}

/// Deletes links a crashed run left under temporary names.
pub async fn clean_pending(store: &StateStore, state: &mut State) -> anyhow::Result<()> {
    if state.pending_links.is_empty() {
        return Ok(());
    }
    for pending in std::mem::take(&mut state.pending_links) {
        if let Some(ns) = open_netns(&pending.netns)? {
            let nl = Netlink::in_netns(&ns)?;
            if let Some(link) = nl.link_by_name(&pending.temp_name).await? {
                nl.delete_link(link.index).await?;
                info!(netns = %pending.netns, link = %pending.temp_name, "removed a half-created link left by an interrupted run");
            }
        }
    }
    store.save(state)
}

pub async fn ensure(host: &Netlink, store: &StateStore, state: &mut State, ep: &Endpoint, net: &Network) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Unchanged;
    if let NetnsRef::Named(name) = &ep.netns
        && !netns::is_namespace(&ep.netns.path())
    {
        state.namespaces.insert(name.clone(), NamespaceRecord {});
        store.save(state)?;
        netns::create(name)?;
        info!(netns = %name, "created namespace");
        let ns = netns::open(&ep.netns.path())?;
        Netlink::in_netns(&ns)?.set_up_by_name("lo").await?;
    }
    let ns = netns::open(&ep.netns.path()).with_context(|| format!("namespace {}", ep.netns))?;
    let inum = netns::inum(&ns)?;
    let nl = Netlink::in_netns(&ns)?;
    let alias = alias_for(&ep.name);

    let mut existing = nl.link_by_name(&ep.ifname).await?;
    if let Some(link) = &existing {
        if link.alias.as_deref() != Some(alias.as_str()) {
            bail!(
                "namespace {} already has an interface {} that vland did not create: set another ifname or remove it",
                ep.netns,
                ep.ifname
            );
        }
        if !drivers::link_matches(link, net) {
            warn!(endpoint = %ep.name, kind = ?link.kind, mode = ?link.mode, "child link drifted from its network; recreating it");
            nl.delete_link(link.index).await?;
            existing = None;
            outcome = Outcome::Repaired;
        }
    }

    let link = match existing {
        Some(link) => link,
        None => {
            let mac = state.endpoints[&ep.name].mac.as_deref().map(crate::config::parse_mac).transpose().map_err(anyhow::Error::msg)?;
            create_child(host, &nl, store, state, ep, net, &ns, mac.unwrap_or_else(random_mac)).await?;
            if matches!(outcome, Outcome::Unchanged) {
                outcome = Outcome::Created;
            }
            nl.link_by_name(&ep.ifname).await?.context("the new child link vanished")?
        }
    };

    configure(&nl, &ns, &link.name, link.index, state.endpoints[&ep.name].ip, net).await?;
    if let Some(mtu) = net.mtu
        && link.mtu != Some(mtu)
        && !matches!(outcome, Outcome::Created)
    {
        bail!("{} has MTU {:?} but the network asks for {mtu}; recreate the endpoint to change it", ep.ifname, link.mtu);
    }
    let rec = state.endpoints.get_mut(&ep.name).expect("reserved before ensure");
    let new_link = Some(LinkRecord { netns_inum: inum, ifindex: link.index });
    if rec.link != new_link {
        rec.link = new_link;
        store.save(state)?;
    }
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
async fn create_child(
    host: &Netlink,
    nl: &Netlink,
    store: &StateStore,
    state: &mut State,
    ep: &Endpoint,
    net: &Network,
    ns: &std::fs::File,
    mac: [u8; 6],
) -> anyhow::Result<()> {
    let parent = host.link_by_name(&net.parent).await?.with_context(|| format!("parent {} disappeared", net.parent))?;
    let temp_name = format!("vl{:08x}", rand::random::<u32>());
    // Recorded first: if vland dies between the request and the rename, the next run deletes it.
    state.pending_links.push(PendingLink { netns: ep.netns.clone(), temp_name: temp_name.clone() });
    store.save(state)?;
    let spec = ChildSpec { network: net, parent_index: parent.index, temp_name: &temp_name, mac, target_netns: ns.as_raw_fd() };
    host.add_link(drivers::child_link_message(&spec), &format!("create {} child of {}", net.driver.kind(), net.parent)).await?;
    let created = nl.link_by_name(&temp_name).await?.context("the kernel accepted the child link but it is not in the namespace")?;
    nl.rename_and_tag(created.index, &ep.ifname, &alias_for(&ep.name)).await?;
    state.pending_links.retain(|p| p.temp_name != temp_name);
    store.save(state)?;
    info!(endpoint = %ep.name, netns = %ep.netns, ifname = %ep.ifname, network = %net.name, "created child link");
    Ok(())
}

/// Sysctls, address, link up, default route. Idempotent: run on every apply to undo drift.
async fn configure(nl: &Netlink, ns: &std::fs::File, ifname: &str, index: u32, ip: Option<std::net::Ipv4Addr>, net: &Network) -> anyhow::Result<()> {
    let ifname_owned = ifname.to_string();
    netns::run_in(ns, move || {
        // IPv6 is off on the child until networks carry IPv6 settings: no SLAAC, DAD or MLD
        // surprises (a common complaint about Docker). Must precede link up.
        netns::write_sysctl(&format!("ipv6/conf/{ifname_owned}/disable_ipv6"), "1").ok();
        // Announce the new MAC/IP to the segment when the link comes up (as CNI does).
        netns::write_sysctl(&format!("ipv4/conf/{ifname_owned}/arp_notify"), "1")
    })?;
    if let (Some(ip), Some(ipam)) = (ip, &net.ipam) {
        nl.set_only_ipv4(index, ip, ipam.subnet.prefix()).await?;
    }
    nl.set_up(index).await?;
    if let Some(gw) = net.default_gateway() {
        nl.replace_default_route_via(index, gw, net.metric).await?;
    } else if net.driver.routes_by_device() && !net.internal {
        nl.replace_default_route_dev(index, net.metric).await?;
    }
    Ok(())
}

/// Removes an endpoint vland created: counters and pinned programs, then its child link (only
/// when the link still carries vland's tag). Anything already gone is fine.
pub async fn teardown(pins: &Pins, name: &str, rec: &EndpointRecord) -> anyhow::Result<()> {
    if let Some(link) = rec.link {
        ebpf::detach_endpoint(pins, EndpointKey { netns_inum: link.netns_inum, ifindex: link.ifindex })?;
    }
    if let Some(ns) = open_netns(&rec.netns)? {
        let nl = Netlink::in_netns(&ns)?;
        if let Some(link) = nl.link_by_name(&rec.ifname).await?
            && link.alias.as_deref() == Some(alias_for(name).as_str())
        {
            nl.delete_link(link.index).await?;
        }
    }
    info!(endpoint = %name, "removed endpoint");
    Ok(())
}
