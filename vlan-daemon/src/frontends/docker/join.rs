//! Following a Docker child from vland's namespace into the container's. After Join, Docker
//! moves the child into the sandbox, renames it `eth<n>`, sets its addresses, brings it up and
//! adds the routes of Join's reply. Once it has done so (so vland never races it to add an
//! address or route), the endpoint is recorded where the child now is: the fragment names the
//! sandbox and the new name, and the state record follows the link (the kernel keeps its
//! ifindex, which is its slot in the counters). From then on it is an endpoint like any other:
//! counted, watched, repaired on drift.
use crate::config::NetnsRef;
use crate::frontends::store::{self, DockerPhase, OWN_NAMESPACE, Origin};
use crate::netlink::Netlink;
use crate::netns;
use crate::reconcile::alias_for;
use crate::state::StateStore;
use std::path::{Path, PathBuf};
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
    // Children Docker gave back before their Leave was handled (vland was not answering, or the
    // Leave still waits in the queue): Docker is done with them, so they are deleted and their
    // endpoints wait for DeleteEndpoint without one (the Leave then has nothing to do).
    let joined = fragments.endpoints.iter().filter_map(|(name, f)| match &f.origin {
        Origin::DockerEndpoint { phase: DockerPhase::Joined { src_name, .. }, .. } => {
            Some(GivenBack { endpoint: name.clone(), src_name: src_name.clone(), sandbox: None })
        }
        _ => None,
    });
    let mut moved = delete_returned_at_once(&joined.collect::<Vec<_>>()).await?;
    for name in &moved {
        if let Some(Origin::DockerEndpoint { phase, .. }) = fragments.endpoints.get_mut(name).map(|f| &mut f.origin) {
            *phase = DockerPhase::Created;
        }
    }
    for (name, f) in fragments.endpoints.iter_mut() {
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

/// A Docker child to delete: the one of `endpoint`, back in vland's namespace under `src_name`,
/// or, if Docker has not moved it back yet, still in `sandbox` (Docker moves a container's
/// children back only when it destroys the sandbox, after Leave, if vland has not yet followed
/// the child there).
pub struct GivenBack {
    pub endpoint: String,
    pub src_name: String,
    pub sandbox: Option<PathBuf>,
}

/// Deletes the children, each only if it carries its endpoint's tag, all at once; returns the
/// endpoints whose child was deleted.
pub async fn delete_returned_at_once(children: &[GivenBack]) -> anyhow::Result<Vec<String>> {
    let own = Netlink::current()?;
    let mut doomed = Vec::new();
    for c in children {
        let alias = alias_for(&c.endpoint);
        if let Some(link) = own.link_by_name(&c.src_name).await?
            && link.alias.as_deref() == Some(alias.as_str())
        {
            doomed.push((c.endpoint.clone(), netns::open(Path::new(OWN_NAMESPACE))?, link.index));
        } else if let Some(sandbox) = c.sandbox.as_ref().filter(|s| netns::is_namespace(s)) {
            let ns = netns::open(sandbox)?;
            let found = Netlink::in_netns(&ns)?.links().await?.into_iter().find(|l| l.alias.as_deref() == Some(alias.as_str()));
            if let Some(link) = found {
                doomed.push((c.endpoint.clone(), ns, link.index));
            }
        }
    }
    crate::reconcile::delete_links_at_once(&doomed)?;
    for (name, _, _) in &doomed {
        info!(endpoint = %name, "removed the child Docker gave back");
    }
    Ok(doomed.into_iter().map(|(name, _, _)| name).collect())
}
