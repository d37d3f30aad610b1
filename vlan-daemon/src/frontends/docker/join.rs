//! Following a Docker child from vland's namespace into the container's. After Join, Docker
//! moves the child into the sandbox, renames it `eth<n>`, sets its addresses, brings it up and
//! adds the routes of Join's reply. Once it has done so (so vland never races it to add an
//! address or route), the endpoint is recorded where the child now is: the fragment names the
//! sandbox and the new name, and the state record follows the link (the kernel keeps its
//! ifindex, which is its slot in the counters). From then on it is an endpoint like any other:
//! counted, watched, repaired on drift.
use crate::config::NetnsRef;
use crate::frontends::store::{self, DockerPhase, Origin};
use crate::netlink::Netlink;
use crate::netns;
use crate::reconcile::alias_for;
use crate::state::StateStore;
use std::path::Path;
use std::time::Duration;
use tracing::info;
use vlan_common::LinkId;

/// How long vland waits for Docker to finish configuring a child it has moved.
const DOCKER_CONFIGURES_WITHIN: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// Records every staged child Docker has moved since the last look (and forgets every child
/// Docker has given back); returns their endpoints.
pub async fn settle(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut fragments = store::read(state_dir)?;
    let mut moved = Vec::new();
    let own = Netlink::current()?;
    for (name, f) in fragments.endpoints.iter_mut() {
        // A child Docker gave back while vland was not answering (its Leave failed): Docker is
        // done with it, so it is deleted and the endpoint waits for DeleteEndpoint without one.
        if let Origin::DockerEndpoint { phase: phase @ DockerPhase::Joined { .. }, .. } = &mut f.origin
            && let DockerPhase::Joined { src_name, .. } = &*phase
            && own.link_by_name(src_name).await?.is_some_and(|l| l.alias.as_deref() == Some(alias_for(name).as_str()))
        {
            delete_returned(name, src_name).await?;
            *phase = DockerPhase::Created;
            moved.push(name.clone());
            continue;
        }
        let Origin::DockerEndpoint { phase: DockerPhase::Joining { sandbox, src_name, default_routes }, .. } = &f.origin else {
            continue;
        };
        let (sandbox, src_name, default_routes) = (sandbox.clone(), src_name.clone(), *default_routes);
        if !netns::is_namespace(&sandbox) {
            continue;
        }
        let ns = netns::open(&sandbox)?;
        let nl = Netlink::in_netns(&ns)?;
        let Some(link) = configured(&nl, name, &src_name, default_routes).await? else { continue };
        let inum = netns::inum(&ns)?;
        // The state record first: a crash before the fragment is saved leaves a record the
        // next apply rebuilds from the kernel (adoption), never a child made twice.
        let store_ = StateStore::open_locked(state_dir)?;
        let mut state = store_.load()?;
        if let Some(rec) = state.endpoints.get_mut(name) {
            rec.netns = NetnsRef::Path(sandbox.clone());
            rec.ifname = link.name.clone();
            rec.link = Some(LinkId { netns_inum: inum, ifindex: link.index });
            // The routes there are Docker's, set from Join's reply: vland's own are recorded anew.
            rec.routes.clear();
        }
        store_.save(&state)?;
        drop(store_);
        info!(endpoint = %name, sandbox = %sandbox.display(), ifname = %link.name, "Docker moved the child into its container");
        if let Origin::DockerEndpoint { phase, .. } = &mut f.origin {
            *phase = DockerPhase::Joined { sandbox, src_name, ifname: link.name.clone() };
        }
        moved.push(name.clone());
    }
    if !moved.is_empty() {
        store::save(state_dir, &fragments)?;
    }
    Ok(moved)
}

/// The endpoint's child in the sandbox once Docker is done with it: renamed, up, with the
/// default routes Join gave it. None if it is not there (not moved yet); after a wait, as it
/// is (Docker may have failed half-way; vland then repairs it).
async fn configured(
    nl: &Netlink,
    name: &str,
    src_name: &str,
    default_routes: [bool; 2],
) -> anyhow::Result<Option<crate::netlink::LinkFacts>> {
    let alias = alias_for(name);
    let deadline = tokio::time::Instant::now() + DOCKER_CONFIGURES_WITHIN;
    loop {
        let Some(link) = nl.links().await?.into_iter().find(|l| l.alias.as_deref() == Some(alias.as_str())) else {
            return Ok(None);
        };
        let routes = nl.routes_by_link().await?;
        let has_default =
            |v6: bool| routes.get(&link.index).is_some_and(|rs| rs.iter().any(|r| r.to.prefix() == 0 && r.to.is_ipv6() == v6));
        let done = link.name != src_name && link.up && [false, true].into_iter().all(|v6| !default_routes[v6 as usize] || has_default(v6));
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(Some(link));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// After Leave: Docker has moved the child back into vland's namespace under `src_name`. It is
/// deleted only if it carries this endpoint's tag.
pub async fn delete_returned(name: &str, src_name: &str) -> anyhow::Result<()> {
    let nl = Netlink::current()?;
    if let Some(link) = nl.link_by_name(src_name).await?
        && link.alias.as_deref() == Some(alias_for(name).as_str())
    {
        nl.delete_link(link.index).await?;
        info!(endpoint = %name, link = %src_name, "removed the child Docker gave back");
    }
    Ok(())
}
