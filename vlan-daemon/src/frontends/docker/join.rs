//! Following a Docker child from vland's namespace into the container's. After Join, Docker
//! moves the child into the sandbox, renames it `eth<n>`, sets its addresses, brings it up and
//! adds the routes of Join's reply. Once it has done so (so vland never races it to add an
//! address or route), the endpoint is recorded where the child now is: the fragment names the
//! sandbox and the new name, and the state record follows the link (the kernel keeps its
//! ifindex, which is its slot in the counters). From then on it is an endpoint like any other:
//! counted, watched, repaired on drift.
//!
//! vland never waits for Docker there: a child Docker is still configuring is looked at again
//! shortly (`Settled::configuring`), and the apply loop goes on answering meanwhile. Docker
//! configures a child while it starts its container, and under load that takes a while.
use crate::config::NetnsRef;
use crate::frontends::store::{self, DockerPhase, OWN_NAMESPACE, Origin};
use crate::netlink::{LinkFacts, Netlink};
use crate::netns;
use crate::reconcile::alias_for;
use crate::state::StateStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};
use vlan_common::LinkId;

/// How long Docker may take to configure a child it has moved; after that vland takes it over
/// as it is (Docker may have failed half-way: vland then repairs it).
const DOCKER_CONFIGURES_WITHIN: Duration = Duration::from_secs(2);
/// How soon a child Docker is configuring is looked at again.
pub const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// The children found in their sandboxes but not configured yet, and since when.
#[derive(Default)]
pub struct Configuring(HashMap<String, Instant>);

/// What a look at Docker's children found.
#[derive(Default)]
pub struct Settled {
    /// The endpoints recorded in their containers (or given back) by this look.
    pub moved: Vec<String>,
    /// Whether a child Docker is still configuring awaits another look.
    pub configuring: bool,
}

/// Records every staged child Docker has moved and configured since the last look (and forgets
/// every child Docker has given back).
pub async fn settle(state_dir: &Path, configuring: &mut Configuring) -> anyhow::Result<Settled> {
    let mut fragments = store::read(state_dir)?;
    // Joined children Docker gave back before their Leave was handled (vland was not answering,
    // or the Leave still waits in the queue): Docker is done with them, so they are deleted and
    // their endpoints wait for DeleteEndpoint without one (the Leave then has nothing to do).
    // Joining ones are followed into their sandboxes below.
    let mut joined = Vec::new();
    let mut joining = Vec::new();
    for (name, f) in &fragments.endpoints {
        match &f.origin {
            Origin::DockerEndpoint { phase: DockerPhase::Joined { src_name, .. }, .. } => {
                joined.push(GivenBack { endpoint: name.clone(), src_name: src_name.clone(), sandbox: None })
            }
            Origin::DockerEndpoint { phase: DockerPhase::Joining { sandbox, src_name, default_routes }, .. } => {
                joining.push((name.clone(), sandbox.clone(), src_name.clone(), *default_routes))
            }
            _ => {}
        }
    }
    configuring.0.retain(|name, _| joining.iter().any(|(n, ..)| n == name));
    if joined.is_empty() && joining.is_empty() {
        return Ok(Settled::default());
    }
    let own = own_links().await?;
    let mut settled = Settled { moved: delete_returned(&own, &joined).await?, configuring: false };
    for name in &settled.moved {
        if let Some(Origin::DockerEndpoint { phase, .. }) = fragments.endpoints.get_mut(name).map(|f| &mut f.origin) {
            *phase = DockerPhase::Created;
        }
    }
    let mut taken = Vec::new();
    for (name, sandbox, src_name, default_routes) in joining {
        if own.get(&src_name).is_some_and(|l| l.alias.as_deref() == Some(alias_for(&name).as_str())) {
            continue; // still staged: Docker has not moved it
        }
        // Docker mounts the container's namespace there before it moves the child: without it,
        // the child is not on its way yet (its own Join's apply, say, has yet to make it).
        if !netns::is_namespace(&sandbox) {
            continue;
        }
        let ns = netns::open(&sandbox)?;
        let (ns, link) = match in_sandbox(&Netlink::in_netns(&ns)?, &name, &src_name, default_routes).await? {
            InSandbox::Configured(link) => (ns, link),
            InSandbox::Configuring(link) if configuring.waited_enough(&name) => {
                warn!(endpoint = %name, ifname = %link.name, "Docker has not finished configuring the child: taken over as it is");
                (ns, link)
            }
            _ => {
                // On its way into the sandbox, or being configured there: looked at again soon,
                // for a while (a child deleted meanwhile is never found).
                settled.configuring |= !configuring.waited_enough(&name);
                continue;
            }
        };
        configuring.0.remove(&name);
        let link_id = LinkId { netns_inum: netns::inum(&ns)?, ifindex: link.index };
        taken.push(Taken { endpoint: name, sandbox, src_name, ifname: link.name, link_id });
    }
    if !taken.is_empty() {
        // The state records first, all in one save (under load, from containers started
        // together, each fsync took tens of ms): a crash before the fragments are saved leaves
        // records the next apply rebuilds from the kernel (adoption), never a child made twice.
        let store_ = StateStore::open_locked(state_dir)?;
        let mut state = store_.load()?;
        for t in &taken {
            if let Some(rec) = state.endpoints.get_mut(&t.endpoint) {
                rec.netns = NetnsRef::Path(t.sandbox.clone());
                rec.ifname = t.ifname.clone();
                rec.link = Some(t.link_id);
                // The routes there are Docker's, set from Join's reply: vland's own are recorded anew.
                rec.routes.clear();
            }
        }
        store_.save(&state)?;
    }
    for Taken { endpoint, sandbox, src_name, ifname, .. } in taken {
        info!(endpoint = %endpoint, sandbox = %sandbox.display(), ifname = %ifname, "Docker moved the child into its container");
        if let Some(Origin::DockerEndpoint { phase, .. }) = fragments.endpoints.get_mut(&endpoint).map(|f| &mut f.origin) {
            *phase = DockerPhase::Joined { sandbox, src_name, ifname };
        }
        settled.moved.push(endpoint);
    }
    if !settled.moved.is_empty() {
        store::save(state_dir, &fragments)?;
    }
    Ok(settled)
}

impl Configuring {
    /// Whether Docker has had its time with this child since vland first found it moved (the
    /// first call starts the clock).
    fn waited_enough(&mut self, endpoint: &str) -> bool {
        self.0.entry(endpoint.to_string()).or_insert_with(Instant::now).elapsed() >= DOCKER_CONFIGURES_WITHIN
    }
}

/// A child Docker has moved and configured, found in its sandbox.
struct Taken {
    endpoint: String,
    sandbox: PathBuf,
    src_name: String,
    ifname: String,
    link_id: LinkId,
}

/// Where Docker is with the endpoint's child in the sandbox.
enum InSandbox {
    /// Not there: on its way (it has left vland's namespace).
    Absent,
    /// There, but not yet renamed, up and with the default routes Join gave it.
    Configuring(LinkFacts),
    Configured(LinkFacts),
}

async fn in_sandbox(nl: &Netlink, name: &str, src_name: &str, default_routes: [bool; 2]) -> anyhow::Result<InSandbox> {
    let alias = alias_for(name);
    let Some(link) = nl.links().await?.into_iter().find(|l| l.alias.as_deref() == Some(alias.as_str())) else {
        return Ok(InSandbox::Absent);
    };
    if link.name == src_name || !link.up {
        return Ok(InSandbox::Configuring(link));
    }
    let routes = nl.routes_by_link().await?;
    let has_default = |v6: bool| routes.get(&link.index).is_some_and(|rs| rs.iter().any(|r| r.to.prefix() == 0 && r.to.is_ipv6() == v6));
    let done = [false, true].into_iter().all(|v6| !default_routes[v6 as usize] || has_default(v6));
    Ok(if done { InSandbox::Configured(link) } else { InSandbox::Configuring(link) })
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
    if children.is_empty() {
        return Ok(Vec::new());
    }
    delete_returned(&own_links().await?, children).await
}

/// vland's namespace's links by name: one listing, not a lookup per child (every apply looks for
/// the children of all running containers).
async fn own_links() -> anyhow::Result<HashMap<String, LinkFacts>> {
    Ok(Netlink::current()?.links().await?.into_iter().map(|l| (l.name.clone(), l)).collect())
}

/// `delete_returned_at_once`, with vland's namespace's links listed already.
async fn delete_returned(own: &HashMap<String, LinkFacts>, children: &[GivenBack]) -> anyhow::Result<Vec<String>> {
    let mut doomed = Vec::new();
    for c in children {
        let alias = alias_for(&c.endpoint);
        if let Some(link) = own.get(&c.src_name)
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
