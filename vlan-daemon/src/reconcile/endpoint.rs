//! One endpoint: its namespace, its child link (created in place under a temporary name, then
//! renamed and tagged as vland's), its addresses, sysctls and routes.
use crate::config::{Config, Endpoint, NetnsRef, Network, parse_mac};
use crate::drivers::{self, ChildSpec};
use crate::ebpf::{self, Pins};
use crate::netlink::{LinkFacts, Netlink, RouteSpec, errno};
use crate::netns;
use crate::state::{EndpointRecord, LinkRecord, NamespaceRecord, PendingLink, State, StateStore};
use anyhow::{Context, bail};
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use tracing::{info, warn};
use vlan_common::EndpointKey;

pub enum Outcome {
    Created,
    Repaired,
    Unchanged,
}

/// The MAC a child should have, when vland chooses it (macvlan, not passthru: those take the
/// parent's MAC, as ipvlan children do).
fn assigned_mac(net: &Network, rec: &EndpointRecord) -> Option<[u8; 6]> {
    use crate::config::{Driver, MacvlanMode};
    match net.driver {
        Driver::Macvlan(MacvlanMode::Passthru) | Driver::Ipvlan(..) => None,
        Driver::Macvlan(_) => rec.mac.as_deref().and_then(|m| parse_mac(m).ok()),
    }
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
        && rec.parent == net.parent.name
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

/// What apply journals, in one write, before it touches any endpoint: the namespaces it is about
/// to create and a temporary name for every child it may create. After a crash, the next run
/// removes exactly these (and nothing else), whichever step the crash hit.
pub fn journal_intents(config: &Config, state: &mut State) -> BTreeMap<String, String> {
    let mut temp_names = BTreeMap::new();
    for (name, ep) in &config.endpoints {
        if let NetnsRef::Named(ns) = &ep.netns
            && !netns::is_namespace(&ep.netns.path())
        {
            state.namespaces.insert(ns.clone(), NamespaceRecord {});
        }
        let temp_name = format!("vl{:08x}", rand::random::<u32>());
        state.pending_links.push(PendingLink { netns: ep.netns.clone(), temp_name: temp_name.clone() });
        temp_names.insert(name.clone(), temp_name);
    }
    temp_names
}

/// Brings one endpoint to what the config says. Changes to `state` are in memory: the caller
/// saves them (the journal written before makes that safe).
#[allow(clippy::too_many_arguments)]
pub async fn ensure(
    host: &Netlink,
    store: &StateStore,
    state: &mut State,
    ep: &Endpoint,
    net: &Network,
    parent_index: u32,
    owns_default: [bool; 2],
    temp_name: &str,
) -> anyhow::Result<(Outcome, LinkFacts)> {
    let mut outcome = Outcome::Unchanged;
    if let NetnsRef::Named(name) = &ep.netns
        && !netns::is_namespace(&ep.netns.path())
    {
        state.namespaces.insert(name.clone(), NamespaceRecord {});
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
            create_child(host, &nl, store, state, ep, net, &ns, parent_index, temp_name).await?;
            if matches!(outcome, Outcome::Unchanged) {
                outcome = Outcome::Created;
            }
            nl.link_by_name(&ep.ifname).await?.context("the new child link vanished")?
        }
    };
    if let Some(mtu) = net.mtu
        && link.mtu != Some(mtu)
    {
        nl.set_mtu(link.index, mtu).await?;
    }
    let mut link = link;
    if let Some(mac) = assigned_mac(net, &state.endpoints[&ep.name])
        && link.mac != Some(mac)
    {
        warn!(endpoint = %ep.name, "child MAC drifted; setting it back");
        nl.set_mac(link.index, mac).await?;
        link.mac = Some(mac);
    }

    let routes = configure(&nl, &ns, &link, state.endpoints.get(&ep.name).expect("reserved before ensure"), ep, net, owns_default).await?;
    let rec = state.endpoints.get_mut(&ep.name).expect("reserved before ensure");
    let new_link = Some(LinkRecord { netns_inum: inum, ifindex: link.index });
    rec.link = new_link;
    rec.routes = routes;
    Ok((outcome, link))
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
    parent_index: u32,
    temp_name: &str,
) -> anyhow::Result<()> {
    let recorded_mac = state.endpoints[&ep.name].mac.as_deref().map(parse_mac).transpose().map_err(anyhow::Error::msg)?;
    let mut mac = recorded_mac.unwrap_or_else(random_mac);
    for attempt in 0.. {
        let spec = ChildSpec { network: net, parent_index, temp_name, mac, target_netns: ns.as_raw_fd(), link_group: store.link_group() };
        match host.try_add_link(drivers::child_link_message(&spec)).await {
            Ok(()) => break,
            // Another child of this parent has the MAC: a random one is drawn again.
            Err(e) if errno(&e) == Some(libc::EADDRINUSE) && ep.mac.is_none() && attempt < 5 => {
                mac = random_mac();
                state.endpoints.get_mut(&ep.name).expect("reserved").mac = Some(format_mac(mac));
            }
            Err(e) if errno(&e) == Some(libc::EADDRINUSE) => {
                bail!("MAC {} is already used by another child of parent {}: pick another `mac`", format_mac(mac), net.parent.name)
            }
            Err(e) if errno(&e) == Some(libc::EBUSY) => bail!(
                "parent {} refused a {} child (busy): it already carries {} children or is enslaved to a bridge or bond; \
                 macvlan and ipvlan cannot share a parent, and passthru must be alone on it",
                net.parent.name,
                net.driver.kind(),
                if net.driver.kind() == "macvlan" { "ipvlan (or passthru)" } else { "macvlan" }
            ),
            Err(e) => return Err(crate::netlink::nl_err(&format!("create {} child of {}", net.driver.kind(), net.parent.name))(e)),
        }
    }
    let created = nl.link_by_name(temp_name).await?.context("the kernel accepted the child link but it is not in the namespace")?;
    nl.rename_and_tag(created.index, &ep.ifname, &alias_for(&ep.name)).await?;
    info!(endpoint = %ep.name, netns = %ep.netns, ifname = %ep.ifname, network = %net.name, "created child link");
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

/// Sysctls, addresses, link up, routes. Idempotent: run on every apply to undo drift.
async fn configure(
    nl: &Netlink,
    ns: &std::fs::File,
    link: &LinkFacts,
    rec: &EndpointRecord,
    ep: &Endpoint,
    net: &Network,
    owns_default: [bool; 2],
) -> anyhow::Result<Vec<RouteSpec>> {
    let ifname = link.name.clone();
    let ipv6 = net.ipam6.is_some() || net.ipv6_autoconf;
    let autoconf = if net.ipv6_autoconf { "1" } else { "0" };
    netns::run_in(ns, move || {
        // Without IPv6 settings the child has no IPv6 at all: no SLAAC, DAD or MLD surprises (a
        // common complaint about Docker). With them, autoconf stays off unless asked for. These
        // must precede link up. A kernel without IPv6 has no such files: nothing to turn off.
        let v6 = |key: &str, value: &str| {
            let path = format!("ipv6/conf/{ifname}/{key}");
            if std::path::Path::new("/proc/sys/net").join(&path).exists() { netns::write_sysctl(&path, value) } else { Ok(()) }
        };
        v6("disable_ipv6", if ipv6 { "0" } else { "1" })?;
        if ipv6 {
            v6("accept_ra", autoconf)?;
            v6("autoconf", autoconf)?;
            v6("ndisc_notify", "1")?;
        }
        // Announce the new MAC/IP to the segment when the link comes up (as CNI does).
        netns::write_sysctl(&format!("ipv4/conf/{ifname}/arp_notify"), "1")
    })?;
    for v6 in [false, true] {
        match (rec.address(v6), net.ipam(v6)) {
            (Some(ip), Some(ipam)) => nl.set_only_address(link.index, ip, ipam.subnet.prefix()).await?,
            _ => {
                // The network no longer has this family: drop what vland had put there.
                for (_, _, msg) in nl.global_addresses(link.index, v6).await? {
                    nl.handle.address().del(msg).execute().await.map_err(crate::netlink::nl_err("remove address"))?;
                }
            }
        }
    }
    if !link.up {
        nl.set_up(link.index).await?;
    }
    let desired = desired_routes(ep, net, owns_default);
    for old in rec.routes.iter().filter(|r| !desired.contains(r)) {
        nl.delete_route(link.index, old).await?;
    }
    for route in &desired {
        nl.replace_route(link.index, route).await?;
    }
    Ok(desired)
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
