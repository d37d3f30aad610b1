//! One endpoint: its child link (created in place under its name and number, then tagged as
//! vland's), the journal that makes creating it crash-safe, and its removal.
use super::desired::Desired;
use super::plan::{Action, Plan};
use crate::config::{Config, Endpoint, NetnsRef, Network};
use crate::drivers::ChildSpec;
use crate::mac::Mac;
use crate::netlink::{Netlink, errno};
use crate::netns;
use crate::state::{EndpointRecord, PendingLink, State, StateStore};
use anyhow::bail;
use std::os::fd::AsRawFd;
use tracing::info;

/// The kernel-side ownership tag (IFLA_IFALIAS) on every child link vland creates: together
/// with the state record, it is how vland knows a link is its own to change or delete.
pub fn alias_for(endpoint: &str) -> String {
    format!("{ALIAS_PREFIX}{endpoint}")
}

const ALIAS_PREFIX: &str = "vland:";

/// Whether a link's alias says vland made it (for some endpoint).
pub fn is_vland_alias(alias: &str) -> bool {
    alias.starts_with(ALIAS_PREFIX)
}

/// Whether the recorded endpoint still sits where the config wants it; if not, it is rebuilt.
pub fn same_placement(ep: &Endpoint, rec: &EndpointRecord, config: &Config) -> bool {
    let net = &config.networks[&ep.network];
    rec.network == ep.network
        && rec.parent == net.parent.name
        && rec.netns == ep.netns
        && rec.ifname == ep.ifname
        && ep.mac.is_none_or(|m| rec.mac == Some(m))
}

/// The namespace an endpoint was recorded in, if it is still a network namespace. One that is
/// gone, or that a path now names something else, holds nothing of vland's to remove: it is
/// passed over, so a bad record can never block `down` or the other endpoints.
fn open_netns(ns: &NetnsRef) -> anyhow::Result<Option<std::fs::File>> {
    let path = ns.path();
    if !netns::is_namespace(&path) {
        return Ok(None);
    }
    match netns::open(&path) {
        Ok(file) => Ok(Some(file)),
        Err(e) => {
            tracing::warn!(netns = %ns, "passed over: {e:#}");
            Ok(None)
        }
    }
}

/// Deletes children a crashed run created but did not finish: a journaled number held by a link
/// of vland's link group that does not carry vland's tag yet. Finished children stay, and apply
/// adopts them.
pub async fn clean_pending(store: &StateStore, state: &mut State) -> anyhow::Result<()> {
    if state.pending_links.is_empty() {
        return Ok(());
    }
    for pending in std::mem::take(&mut state.pending_links) {
        let Some(ns) = open_netns(&pending.netns)? else { continue };
        let nl = Netlink::in_netns(&ns)?;
        let unfinished = nl
            .link_by_index(pending.ifindex)
            .await?
            .filter(|l| l.group == Some(store.link_group()) && !l.alias.as_deref().is_some_and(is_vland_alias));
        if let Some(link) = unfinished {
            nl.delete_link(link.index).await?;
            info!(netns = %pending.netns, link = %link.name, "removed a half-created link left by an interrupted run");
        }
    }
    store.save(state)
}

/// What apply journals, in one write, before it touches any endpoint: the namespaces it is about
/// to create and the number of every child it is about to create. After a crash, the next run
/// removes exactly the unfinished ones (and nothing else), whichever step the crash hit.
pub fn journal_intents(plan: &Plan, desired: &Desired<'_>, state: &mut State) {
    for action in &plan.actions {
        match action {
            Action::CreateNamespace { netns } => {
                state.namespaces.insert(netns.clone());
            }
            Action::CreateChild { endpoint, .. } => {
                let d = &desired.endpoints[endpoint];
                state.pending_links.push(PendingLink { netns: d.ep.netns.clone(), ifindex: d.ifindex });
            }
            _ => {}
        }
    }
}

/// Creates the endpoint's child in namespace `ns` under its name, numbered `ifindex` (from which
/// the endpoint programs find its slot). Draws another random MAC if one collides.
#[allow(clippy::too_many_arguments)]
pub async fn create_child(
    host: &Netlink,
    state: &mut State,
    store: &StateStore,
    ep: &Endpoint,
    net: &Network,
    ns: &std::fs::File,
    parent_index: u32,
    ifindex: u32,
) -> anyhow::Result<()> {
    let mut mac = state.endpoints[&ep.name].mac.unwrap_or_else(Mac::random);
    for attempt in 0.. {
        let spec = ChildSpec {
            mtu: net.mtu,
            parent_index,
            name: &ep.ifname,
            ifindex,
            mac,
            target_netns: ns.as_raw_fd(),
            link_group: store.link_group(),
        };
        match host.try_add_link(net.driver.create_request(&spec)).await {
            Ok(()) => break,
            // Another child of this parent has the MAC: a random one is drawn again.
            Err(e) if errno(&e) == Some(libc::EADDRINUSE) && ep.mac.is_none() && attempt < 5 => {
                mac = Mac::random();
                state.endpoints.get_mut(&ep.name).expect("reserved").mac = Some(mac);
            }
            Err(e) if errno(&e) == Some(libc::EADDRINUSE) => {
                bail!("MAC {mac} is already used by another child of parent {}: pick another `mac`", net.parent.name)
            }
            Err(e) if errno(&e) == Some(libc::EBUSY) => bail!("{}", net.driver.busy_explanation(&net.parent.name)),
            Err(e) => return Err(crate::netlink::nl_err(&format!("create {} child of {}", net.driver.kind(), net.parent.name))(e)),
        }
    }
    Ok(())
}

/// Removes an endpoint vland created: its child link (only when the link still carries vland's
/// tag), and with it the programs attached to it. Anything already gone is fine.
pub async fn teardown(name: &str, rec: &EndpointRecord) -> anyhow::Result<()> {
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

/// Removes several endpoints as `teardown` does, their children's deletions at once.
pub async fn teardown_all(endpoints: &[(String, EndpointRecord)]) -> anyhow::Result<()> {
    let mut doomed = Vec::new();
    for (name, rec) in endpoints {
        let Some(ns) = open_netns(&rec.netns)? else { continue };
        let nl = Netlink::in_netns(&ns)?;
        if let Some(link) = nl.link_by_name(&rec.ifname).await?
            && link.alias.as_deref() == Some(alias_for(name).as_str())
        {
            doomed.push((name.clone(), ns, link.index));
        }
    }
    super::deletion::delete_links_at_once(&doomed)?;
    for (name, _) in endpoints {
        info!(endpoint = %name, "removed endpoint");
    }
    Ok(())
}
