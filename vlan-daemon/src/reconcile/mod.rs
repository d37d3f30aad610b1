//! Making the kernel match the config, in three steps, each a module: the desired state
//! (`allocate`, `desired`: from the config and the allocations, what the kernel should show),
//! the observed state (`observed`: what the kernel shows and what the state file records), and
//! the plan (`plan`: the actions between them, with reasons, computed without touching the
//! kernel). `apply` then carries the plan out (here, `namespace`, `endpoint`, `parents`,
//! `trunks`): state is saved before every step that creates something, so a crash at any point
//! leaves records that the next run repairs from; `vland plan` stops before it.
mod adopt;
mod allocate;
mod deletion;
mod desired;
mod endpoint;
mod error;
pub(crate) mod host_access;
mod namespace;
mod observed;
mod parents;
mod plan;
pub(crate) mod responder;
mod sysctls;
mod trunks;

use crate::config::{Config, ConfigErrors, NetnsRef};
use crate::ebpf::{self, EndpointPrograms, Pins};
use crate::netlink::Netlink;
use crate::netns;
use crate::state::{EndpointRecord, State, StateStore};
use anyhow::Context;
use desired::Desired;
use observed::Observed;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tracing::info;

pub use deletion::delete_links_at_once;
pub use endpoint::alias_for;
pub use error::ApplyError;
pub use plan::{Action, Fix, Plan};

/// What one apply did, for logs, tests and `vland status`.
#[derive(Debug, Default)]
pub struct Summary {
    pub created: Vec<String>,
    pub repaired: Vec<String>,
    pub removed: Vec<String>,
    /// The plan it carried out, one line per action.
    pub actions: Vec<String>,
}

impl Summary {
    fn of(plan: &Plan) -> Self {
        let mut s = Summary { actions: plan.actions.iter().map(ToString::to_string).collect(), ..Summary::default() };
        for action in &plan.actions {
            match action {
                Action::CreateChild { endpoint, reason, .. } if reason == "missing" => s.created.push(endpoint.clone()),
                Action::CreateChild { endpoint, .. } | Action::Correct { endpoint, .. } => s.repaired.push(endpoint.clone()),
                Action::RemoveEndpoint { endpoint, .. } => s.removed.push(endpoint.clone()),
                _ => {}
            }
        }
        s
    }
}

/// Where an apply or a plan starts: the config checked against the kernel, the desired state
/// and the observed one, with the state dir locked.
struct Prepared<'c> {
    host: Netlink,
    store: StateStore,
    pins: Pins,
    desired: Desired<'c>,
    observed: Observed,
    /// Cluster networks: the blocks this host owns, and the etcd connection.
    cluster: Option<crate::cluster::Session>,
    /// A scoped preparation found changes outside its scope: prepare the whole apply instead.
    whole_needed: bool,
}

/// What an apply reads and changes: everything (the config file, parent events, retries), or
/// only some namespaces: those of some endpoints (a front-end call about them) and those an event
/// came from. A scoped apply validates and allocates across the whole effective config as a full
/// one does, but reads and plans only its namespaces: the kernel reads are what grow with the
/// number of endpoints.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    #[default]
    All,
    Only {
        /// These endpoints, as the config places them and as vland recorded them.
        endpoints: BTreeSet<String>,
        /// Every endpoint in these namespaces.
        namespaces: BTreeSet<NetnsRef>,
    },
}

impl Scope {
    pub fn endpoints(names: impl IntoIterator<Item = String>) -> Self {
        Scope::Only { endpoints: names.into_iter().collect(), namespaces: BTreeSet::new() }
    }

    pub fn namespaces(namespaces: impl IntoIterator<Item = NetnsRef>) -> Self {
        Scope::Only { endpoints: BTreeSet::new(), namespaces: namespaces.into_iter().collect() }
    }

    /// This scope and these endpoints too.
    pub fn with_endpoints(self, more: impl IntoIterator<Item = String>) -> Self {
        match self {
            Scope::All => Scope::All,
            Scope::Only { mut endpoints, namespaces } => {
                endpoints.extend(more);
                Scope::Only { endpoints, namespaces }
            }
        }
    }

    /// The namespaces to read and plan; None: all of them. The ARP/ND responder keeps one table
    /// for every endpoint of a parent, so a config that uses it is always applied whole.
    fn read_only(&self, config: &Config, state: &State) -> Option<BTreeSet<NetnsRef>> {
        let Scope::Only { endpoints: names, namespaces } = self else { return None };
        if config.networks.values().any(|n| n.arp_responder) {
            return None;
        }
        let placed = names.iter().filter_map(|n| config.endpoints.get(n).map(|e| e.netns.clone()));
        let recorded = names.iter().filter_map(|n| state.endpoints.get(n).map(|r| r.netns.clone()));
        // A host child carries a route to every endpoint of its network: it is planned too.
        let host = config.networks.values().any(|n| n.host_access.is_some()).then_some(NetnsRef::Own);
        Some(placed.chain(recorded).chain(namespaces.iter().cloned()).chain(host).collect())
    }
}

async fn prepare<'c>(config: &'c Config, source_name: &str, dry_run: bool, scope: &Scope) -> Result<Prepared<'c>, ApplyError> {
    let host = Netlink::current()?;
    let store = StateStore::open_locked(&config.daemon.state_dir)?;
    let state = store.load()?;
    let only = scope.read_only(config, &state);
    let mut errors = ConfigErrors { source_name: source_name.to_string(), errors: Vec::new() };
    crate::preflight::check(config, &state, &host, only.as_ref(), &mut errors).await?;
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let pins = Pins::new(&config.daemon.bpf_dir);
    pins.check_owner(&config.daemon.state_dir)?;
    let mut observed = observed::observe(config, state, &host, &pins, store.link_group(), only.clone()).await?;
    // What the kernel shows as vland's but the state file has lost is vland's again.
    for adopted in adopt::adopt(config, &mut observed, &pins, store.link_group()) {
        info!("{adopted}");
    }
    // Endpoints that move are removed first: what they held is free for the allocation.
    let mut kept = observed.state.clone();
    kept.endpoints.retain(|name, rec| config.endpoints.get(name).is_some_and(|ep| endpoint::same_placement(ep, rec, config)));
    // Cluster networks: this host owns enough blocks in etcd before the allocation draws from them.
    let cluster = crate::cluster::claim(config, &kept, dry_run).await?;
    let owned = cluster.as_ref().map(|c| c.owned.clone()).unwrap_or_default();
    let allocations = allocate::allocate_in(config, &kept, &owned, source_name)?;
    // A scoped apply is exact only if nothing outside its namespaces changes: an endpoint there
    // without a record, or whose address, MAC or slot the allocation moved (a static MAC taken
    // from its holder, say), needs the whole apply.
    let whole_needed = only.as_ref().is_some_and(|only| {
        allocations.iter().any(|(name, a)| {
            !only.contains(&config.endpoints[name].netns)
                && kept.endpoints.get(name).is_none_or(|r| (r.ip, r.ip6, r.mac, r.slot) != (a.ip, a.ip6, Some(a.mac), Some(a.slot)))
        })
    });
    let mut desired = desired::desired(config, allocations, &pins);
    if let Some(only) = &only {
        desired.by_netns.retain(|ns_ref, _| only.contains(ns_ref));
        desired.endpoints.retain(|_, d| only.contains(&d.ep.netns));
    }
    for name in desired.set_aside_moving(&observed) {
        info!(endpoint = %name, "its staged child is handed over to its engine: left as it is until taken over");
    }
    observed.read_policies(&pins, desired.endpoints.values().map(|d| d.alloc.slot))?;
    Ok(Prepared { host, store, pins, desired, observed, cluster, whole_needed })
}

/// What `apply` would do now, without doing it.
pub async fn plan(config: &Config, source_name: &str) -> Result<Plan, ApplyError> {
    let config = host_access::with_host_children(config);
    let p = prepare(&config, source_name, true, &Scope::All).await?;
    Ok(plan::plan(&p.desired, &p.observed, source_name)?)
}

/// Makes the kernel match `config` (read from `source_name`): computes the plan, logs it and
/// carries it out. Blocks its thread at times (the state lock, namespace threads, file writes):
/// see daemon.rs for where the daemon runs it.
pub async fn apply(config: &Config, source_name: &str) -> Result<Summary, ApplyError> {
    apply_scoped(config, source_name, &Scope::All).await
}

/// `apply`, reading and changing only what `scope` concerns.
pub async fn apply_scoped(config: &Config, source_name: &str, scope: &Scope) -> Result<Summary, ApplyError> {
    // The host children of `host_access` networks are endpoints from here on.
    let config = host_access::with_host_children(config);
    let mut prepared = prepare(&config, source_name, false, scope).await?;
    if prepared.whole_needed {
        // The state lock is let go first: prepare takes it again.
        drop(prepared);
        prepared = prepare(&config, source_name, false, &Scope::All).await?;
    }
    let Prepared { host, store, pins, desired, observed, mut cluster, .. } = prepared;
    let plan = plan::plan(&desired, &observed, source_name)?;
    for action in &plan.actions {
        info!("plan: {action}");
    }
    let summary = Summary::of(&plan);
    let mut state = execute(&plan, &desired, observed, &host, &store, &pins, cluster.as_ref().map(|c| &c.owned)).await?;
    if let Some(session) = cluster.as_mut() {
        // Bookkeeping only (usage for `cluster status`, giving back idle blocks): the kernel
        // already matches the config, so an etcd failure here does not fail the apply.
        if let Err(e) = crate::cluster::after_apply(session, &mut state).await {
            tracing::warn!("cluster bookkeeping after the apply: {e}");
        }
        store.save(&state)?;
    }
    info!(created = summary.created.len(), repaired = summary.repaired.len(), removed = summary.removed.len(), "apply done");
    Ok(summary)
}

/// Carries out `plan`, in the order that keeps every step safe: leftovers and stale objects go
/// first (freeing names, numbers and addresses), parents come before children, every
/// allocation and intent is journaled in one write before any endpoint is touched.
async fn execute(
    plan: &Plan,
    desired: &Desired<'_>,
    mut observed: Observed,
    host: &Netlink,
    store: &StateStore,
    pins: &Pins,
    owned: Option<&crate::cluster::Owned>,
) -> anyhow::Result<State> {
    let config = desired.config;
    let mut state = std::mem::take(&mut observed.state);
    ebpf::ensure_bpffs(&config.daemon.bpf_dir)?;
    pins.claim(&config.daemon.state_dir)?;
    endpoint::clean_pending(store, &mut state).await?;
    // Maps created now are all zeros: no slot needs clearing.
    let maps_existed = pins.map(vlan_common::names::ENDPOINT_TRAFFIC_MAP).exists();
    let programs = upgrade_programs(store, &mut state, pins)?;
    responder::execute_early(&plan.actions, pins)?;

    let removed: Vec<(String, EndpointRecord)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RemoveEndpoint { endpoint: name, .. } => Some((name.clone(), state.endpoints[name].clone())),
            _ => None,
        })
        .collect();
    endpoint::teardown_all(&removed).await?;
    for (name, _) in &removed {
        state.endpoints.remove(name);
    }
    remove_unused_namespaces(config, store, &mut state)?;
    parents::remove_unused(host, store, &mut state, config).await?;
    let mut parent_index = HashMap::new();
    for net in config.networks.values() {
        let index = parents::ensure(host, store, &mut state, net).await.with_context(|| format!("network {}", net.name))?;
        parent_index.insert(net.name.clone(), index);
    }

    // One write before any endpoint is touched: allocations recorded, intents journaled.
    for (name, d) in &desired.endpoints {
        let rec = state.endpoints.entry(name.clone()).or_insert_with(|| EndpointRecord {
            network: d.ep.network.clone(),
            parent: d.net.parent.name.clone(),
            netns: d.ep.netns.clone(),
            ifname: d.ep.ifname.clone(),
            ip: None,
            ip6: None,
            mac: None,
            link: None,
            slot: None,
            routes: Vec::new(),
        });
        (rec.ip, rec.ip6, rec.mac, rec.slot) = (d.alloc.ip, d.alloc.ip6, Some(d.alloc.mac), Some(d.alloc.slot));
    }
    endpoint::journal_intents(plan, desired, &mut state);
    // The blocks claimed for these allocations are recorded with them (etcd stays the authority).
    if let Some(owned) = owned {
        state.cluster_blocks = owned.by_network();
    }
    store.save(&state)?;
    // A slot may have served an endpoint removed earlier: it starts from zero.
    if maps_existed {
        let new_slots: Vec<u32> = desired.endpoints.values().filter(|d| d.alloc.new_slot).map(|d| d.alloc.slot).collect();
        ebpf::reset_slots(pins, &new_slots)?;
    }

    let by_endpoint: HashMap<&str, &Action> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateChild { endpoint, .. } | Action::Correct { endpoint, .. } => Some((endpoint.as_str(), a)),
            _ => None,
        })
        .collect();
    let shared = namespace::Shared { host, store, pins, programs: &programs, parent_index: &parent_index };
    // A MAC that passes from one endpoint to another (a static `mac` now given to one while
    // another child holds it): the holder lets go first, whichever namespace comes first.
    for (name, action) in &by_endpoint {
        let Action::Correct { fixes, .. } = action else { continue };
        let Some(to) = fixes.iter().find_map(|f| match f {
            Fix::Mac { to, .. } => Some(*to),
            _ => None,
        }) else {
            continue;
        };
        let d = &desired.endpoints[*name];
        if let Some(view) = observed.namespaces.get(&d.ep.netns)
            && let (Some((_, nl)), Some(link)) = (&view.handle, view.links.get(&d.ep.ifname))
        {
            nl.set_mac(link.index, to).await.with_context(|| format!("endpoint {name}"))?;
        }
    }
    // A namespace that fails does not stop the others: each is carried out, then the failures
    // are reported together (their journal entries stay, for the next run to clean up).
    let mut failed = Vec::new();
    for ns_ref in desired.by_netns.keys() {
        let view = observed.namespaces.remove(ns_ref).expect("every desired namespace is observed");
        if let Err(e) = namespace::execute(&shared, &mut state, desired, ns_ref, view, &by_endpoint).await {
            tracing::error!(netns = %ns_ref, "{e:#}");
            failed.push((ns_ref.clone(), e));
        }
    }
    state.pending_links.retain(|p| failed.iter().any(|(ns_ref, _)| *ns_ref == p.netns));
    store.save(&state)?;
    responder::execute_late(&plan.actions, pins, host).await?;
    trunks::apply(host, store, &mut state, config, pins).await?;
    if !failed.is_empty() {
        let list: Vec<String> = failed.iter().map(|(ns_ref, e)| format!("namespace {ns_ref}: {e:#}")).collect();
        anyhow::bail!("{} of {} namespaces failed (the others were applied): {}", failed.len(), desired.by_netns.len(), list.join("; "));
    }
    Ok(state)
}

/// This build's endpoint programs. After an upgrade of vland they replace the earlier ones: the
/// pinned trunk links get this build's programs in place, and each apply swaps the endpoint
/// programs on the children it finds running older ones.
fn upgrade_programs(store: &StateStore, state: &mut State, pins: &Pins) -> anyhow::Result<EndpointPrograms> {
    let current = ebpf::object_id();
    let same_build = state.ebpf_object.as_deref() == Some(current.as_str());
    // Pins deleted behind vland's back: loading pins the missing maps anew (their counters
    // restart from zero), and the attached programs are replaced by ones that use them.
    let missing = if state.ebpf_object.is_some() { pins.missing_maps()? } else { Vec::new() };
    if !missing.is_empty() {
        tracing::warn!(maps = ?missing, "pinned maps were missing: re-created them, their counters restart from zero");
        if same_build {
            ebpf::replace_trunk_programs(pins).context("cannot re-attach the trunk programs to the re-created maps")?;
        }
    }
    if !same_build && state.ebpf_object.is_some() {
        let trunks = ebpf::replace_trunk_programs(pins).context("cannot upgrade the attached eBPF programs")?;
        info!(trunk_links = trunks, "replacing the earlier build's eBPF programs with this build's (counters kept)");
    }
    let programs = EndpointPrograms::open_or_load(pins, same_build && missing.is_empty())?;
    if !same_build {
        state.ebpf_object = Some(current);
        store.save(state)?;
    }
    Ok(programs)
}

/// Removes named namespaces vland created that no configured endpoint uses any more.
fn remove_unused_namespaces(config: &Config, store: &StateStore, state: &mut State) -> anyhow::Result<()> {
    let unused: Vec<String> =
        state.namespaces.iter().filter(|n| !config.endpoints.values().any(|e| e.netns == NetnsRef::Named((*n).clone()))).cloned().collect();
    for name in &unused {
        netns::remove(name)?;
        state.namespaces.remove(name);
        info!(netns = %name, "removed namespace");
    }
    if !unused.is_empty() {
        store.save(state)?;
    }
    Ok(())
}

/// In each namespace (all vland's own), deletes vland's children in one request; the requests
/// for all namespaces run at once, each from a thread inside its namespace.
fn delete_groups_in_parallel<'a>(namespaces: impl Iterator<Item = &'a NetnsRef>, group: u32) -> anyhow::Result<()> {
    let files: Vec<(&NetnsRef, std::fs::File)> = namespaces
        .filter(|ns_ref| netns::is_namespace(&ns_ref.path()))
        .map(|ns_ref| Ok((ns_ref, netns::open(&ns_ref.path())?)))
        .collect::<anyhow::Result<_>>()?;
    // A bounded number at a time: thousands of namespaces need not mean thousands of threads.
    for batch in files.chunks(DELETION_THREADS) {
        std::thread::scope(|s| {
            let threads: Vec<_> = batch
                .iter()
                .map(|(ns_ref, file)| {
                    s.spawn(move || {
                        netns::run_in(file, || crate::netlink::delete_group_blocking(group)).with_context(|| format!("namespace {ns_ref}"))
                    })
                })
                .collect();
            threads.into_iter().try_for_each(|t| t.join().map_err(|_| anyhow::anyhow!("a link deletion thread panicked"))?)
        })?;
    }
    Ok(())
}

/// How many namespaces `down` empties at once.
const DELETION_THREADS: usize = 64;

/// Removes everything vland recorded as its own for this state dir, and nothing else. In bulk:
/// in the namespaces vland created, all children of each go in one request, all namespaces at
/// once (deleting links one by one costs a ~20 ms RCU wait each); elsewhere each child is
/// deleted after its ownership tag is checked.
pub async fn down(state_dir: &std::path::Path, bpf_dir: &std::path::Path) -> anyhow::Result<Summary> {
    let host = Netlink::current()?;
    let store = StateStore::open_locked(state_dir)?;
    let mut state = store.load()?;
    let pins = Pins::new(bpf_dir);
    if bpf_dir.exists() {
        crate::secure_fs::check_trusted_dir(bpf_dir, "bpf_dir")?;
    }
    pins.check_owner(state_dir)?;
    let mut summary = Summary::default();
    endpoint::clean_pending(&store, &mut state).await?;
    // The parents stop answering for the endpoints before their children go.
    responder::remove_all(&pins)?;
    let mut by_netns: BTreeMap<NetnsRef, Vec<String>> = BTreeMap::new();
    for (name, rec) in &state.endpoints {
        by_netns.entry(rec.netns.clone()).or_default().push(name.clone());
    }
    let (vland_made, others): (Vec<_>, Vec<_>) =
        by_netns.into_iter().partition(|(ns_ref, _)| matches!(ns_ref, NetnsRef::Named(n) if state.namespaces.contains(n)));
    delete_groups_in_parallel(vland_made.iter().map(|(ns_ref, _)| ns_ref), store.link_group())?;
    for (_, names) in &others {
        for name in names {
            endpoint::teardown(name, &state.endpoints[name]).await?;
        }
    }
    for (_, names) in vland_made.into_iter().chain(others) {
        for name in &names {
            state.endpoints.remove(name);
        }
        summary.removed.extend(names);
    }
    store.save(&state)?;
    let empty = Config::default();
    trunks::apply(&host, &store, &mut state, &empty, &pins).await?;
    remove_unused_namespaces(&empty, &store, &mut state)?;
    parents::remove_unused(&host, &store, &mut state, &empty).await?;
    remove_strays(store.link_group()).await?;
    remove_empty_pins(bpf_dir);
    info!(removed = summary.removed.len(), "down done");
    Ok(summary)
}

/// Deletes children of this vland that were moved out of their namespace by hand: wherever vland
/// can look (its own namespace and every named one), found by vland's tag and this instance's
/// link group.
async fn remove_strays(group: u32) -> anyhow::Result<()> {
    let mut handles = vec![("vland's namespace".to_string(), Netlink::current()?)];
    for entry in std::fs::read_dir(netns::RUN_DIR).into_iter().flatten().flatten() {
        let path = entry.path();
        // Namespaces come and go meanwhile (other programs'): one that cannot be read is passed.
        if let Ok(ns) = netns::open(&path)
            && let Ok(nl) = Netlink::in_netns(&ns)
        {
            handles.push((entry.file_name().to_string_lossy().into_owned(), nl));
        }
    }
    for (where_, nl) in handles {
        let Ok(links) = nl.links().await else { continue };
        for link in links {
            if link.group == Some(group) && link.alias.as_deref().is_some_and(endpoint::is_vland_alias) {
                nl.delete_link(link.index).await?;
                info!(netns = %where_, link = %link.name, "removed a child of vland's that had been moved out of its namespace");
            }
        }
    }
    Ok(())
}

/// With no endpoint or trunk left, the shared maps and programs and the pin directory go too.
fn remove_empty_pins(bpf_dir: &std::path::Path) {
    let links = bpf_dir.join("links");
    let no_links = std::fs::read_dir(&links).map(|mut d| d.next().is_none()).unwrap_or(true);
    if no_links {
        let _ = std::fs::remove_dir(&links);
        let pins = Pins::new(bpf_dir);
        for map in vlan_common::names::ALL_MAPS {
            let _ = std::fs::remove_file(pins.map(map));
        }
        for program in vlan_common::names::ENDPOINT_PROGRAMS.into_iter().chain([vlan_common::names::LEGACY_INGRESS_XDP_PROGRAM]) {
            let _ = std::fs::remove_file(pins.program(program));
        }
        let _ = std::fs::remove_dir(bpf_dir.join("programs"));
        pins.release();
        let _ = std::fs::remove_dir(bpf_dir);
    }
}
