//! Making the kernel match the config: compare config, recorded state and what the kernel has,
//! then change only the difference. State is saved before every step that creates something,
//! so a crash at any point leaves records that the next run repairs from.
mod addresses;
mod endpoint;
mod parents;
mod trunks;

use crate::config::{Config, ConfigErrors, NetnsRef};
use crate::ebpf::{self, EndpointDevice, Pins};
use crate::netlink::Netlink;
use crate::netns;
use crate::state::{EndpointRecord, State, StateStore};
use anyhow::Context;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use tracing::info;
use vlan_common::EndpointKey;

/// What one apply did, for logs and tests.
#[derive(Debug, Default)]
pub struct Summary {
    pub created: Vec<String>,
    pub repaired: Vec<String>,
    pub removed: Vec<String>,
}

pub async fn apply(config: &Config, source_name: &str) -> anyhow::Result<Summary> {
    let host = Netlink::current()?;
    let store = StateStore::open_locked(&config.daemon.state_dir)?;
    let mut state = store.load()?;
    let mut errors = ConfigErrors { source_name: source_name.to_string(), errors: Vec::new() };
    crate::preflight::check(config, &state, &host, &mut errors).await?;
    let planned = addresses::plan(config, &state, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    ebpf::ensure_bpffs(&config.daemon.bpf_dir)?;
    let pins = Pins::new(&config.daemon.bpf_dir);
    let mut summary = Summary::default();

    endpoint::clean_pending(&store, &mut state).await?;
    upgrade_programs(&store, &mut state, &pins)?;

    // Endpoints that left the config, or whose placement changed, go first (frees names and IPs).
    let stale: Vec<String> = state
        .endpoints
        .iter()
        .filter(|(name, rec)| !config.endpoints.get(*name).is_some_and(|ep| endpoint::same_placement(ep, rec, config)))
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        let rec = state.endpoints[&name].clone();
        endpoint::teardown(&pins, &name, &rec).await?;
        state.endpoints.remove(&name);
        summary.removed.push(name);
    }
    remove_unused_namespaces(config, &store, &mut state)?;
    parents::remove_unused(&host, &store, &mut state, config).await?;

    let mut parent_index = BTreeMap::new();
    for net in config.networks.values() {
        let index = parents::ensure(&host, &store, &mut state, net).await.with_context(|| format!("network {}", net.name))?;
        parent_index.insert(net.name.clone(), index);
    }

    // Reserve every address before touching the endpoints.
    for (name, ep) in &config.endpoints {
        let net = &config.networks[&ep.network];
        let rec = state.endpoints.entry(name.clone()).or_insert_with(|| EndpointRecord {
            network: ep.network.clone(),
            parent: net.parent.name.clone(),
            netns: ep.netns.clone(),
            ifname: ep.ifname.clone(),
            ip: None,
            ip6: None,
            mac: None,
            link: None,
            slot: None,
            routes: Vec::new(),
        });
        rec.ip = match planned.get(&(name.clone(), false)) {
            Some(IpAddr::V4(a)) => Some(*a),
            _ => None,
        };
        rec.ip6 = match planned.get(&(name.clone(), true)) {
            Some(IpAddr::V6(a)) => Some(*a),
            _ => None,
        };
        if rec.mac.is_none() {
            rec.mac = Some(endpoint::format_mac(ep.mac.unwrap_or_else(endpoint::random_mac)));
        }
    }
    let new_slots = assign_slots(config, &mut state)?;
    // One write before any endpoint is touched: addresses and slots reserved, intents journaled.
    let temp_names = endpoint::journal_intents(config, &mut state);
    store.save(&state)?;
    // A slot may have served an endpoint removed earlier: it starts from zero.
    ebpf::reset_slots(&pins, &new_slots)?;

    let mut by_netns: BTreeMap<NetnsRef, Vec<EndpointDevice>> = BTreeMap::new();
    for (name, ep) in &config.endpoints {
        let net = &config.networks[&ep.network];
        let owns_default = [false, true].map(|v6| config.default_route_owner(&ep.netns, v6) == Some(name.as_str()));
        let (outcome, link_facts) =
            endpoint::ensure(&host, &store, &mut state, ep, net, parent_index[&ep.network], owns_default, &temp_names[name])
                .await
                .with_context(|| format!("endpoint {name}"))?;
        match outcome {
            endpoint::Outcome::Created => summary.created.push(name.clone()),
            endpoint::Outcome::Repaired => summary.repaired.push(name.clone()),
            endpoint::Outcome::Unchanged => {}
        }
        let rec = &state.endpoints[name];
        let link = rec.link.expect("ensure records the link");
        let policy = ebpf::endpoint_policy(net.spoof_check, link_facts.mac, rec.ip, rec.ip6);
        let slot = rec.slot.expect("assigned before ensure");
        by_netns.entry(ep.netns.clone()).or_default().push(EndpointDevice {
            ifindex: link.ifindex,
            ifname: ep.ifname.clone(),
            slot,
            policy,
        });
    }

    // Every child exists under its final name now: the journal's temporary names are done.
    state.pending_links.clear();
    store.save(&state)?;

    for (ns_ref, devices) in &by_netns {
        let ns = netns::open(&ns_ref.path())?;
        let inum = netns::inum(&ns)?;
        ebpf::attach_endpoints(&pins, &ns, inum, devices).with_context(|| format!("namespace {ns_ref}"))?;
    }
    ebpf::collect_garbage(&pins, &recorded_keys(&state))?;
    trunks::apply(&host, &store, &mut state, config, &pins).await?;
    info!(created = summary.created.len(), repaired = summary.repaired.len(), removed = summary.removed.len(), "apply done");
    Ok(summary)
}

/// Gives every configured endpoint without a slot the lowest free one; returns the new slots.
fn assign_slots(config: &Config, state: &mut State) -> anyhow::Result<Vec<u32>> {
    let mut used: std::collections::BTreeSet<u32> = state.endpoints.values().filter_map(|r| r.slot).collect();
    let mut new = Vec::new();
    for name in config.endpoints.keys() {
        let rec = state.endpoints.get_mut(name).expect("recorded above");
        if rec.slot.is_none() {
            let slot = (1..vlan_common::MAX_ENDPOINTS)
                .find(|s| !used.contains(s))
                .with_context(|| format!("more than {} endpoints: vland's eBPF maps are full", vlan_common::MAX_ENDPOINTS - 1))?;
            used.insert(slot);
            rec.slot = Some(slot);
            new.push(slot);
        }
    }
    Ok(new)
}

/// After an upgrade of vland, the pinned links get this build's programs, in place.
fn upgrade_programs(store: &StateStore, state: &mut State, pins: &Pins) -> anyhow::Result<()> {
    let current = ebpf::object_id();
    if state.ebpf_object.as_deref() == Some(current.as_str()) {
        return Ok(());
    }
    if state.ebpf_object.is_some() {
        let slots: std::collections::HashMap<EndpointKey, u32> = state
            .endpoints
            .values()
            .filter_map(|r| Some((EndpointKey { netns_inum: r.link?.netns_inum, ifindex: r.link?.ifindex }, r.slot?)))
            .collect();
        let n = ebpf::replace_programs(pins, &slots).context("cannot upgrade the attached eBPF programs")?;
        info!(links = n, "replaced the programs of the pinned links with this build's (counters kept)");
    }
    state.ebpf_object = Some(current);
    store.save(state)
}

fn recorded_keys(state: &State) -> HashSet<EndpointKey> {
    state.endpoints.values().filter_map(|r| r.link).map(|l| EndpointKey { netns_inum: l.netns_inum, ifindex: l.ifindex }).collect()
}

/// Removes named namespaces vland created that no configured endpoint uses any more.
fn remove_unused_namespaces(config: &Config, store: &StateStore, state: &mut State) -> anyhow::Result<()> {
    let unused: Vec<String> =
        state.namespaces.keys().filter(|n| !config.endpoints.values().any(|e| e.netns == NetnsRef::Named((*n).clone()))).cloned().collect();
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

/// Removes everything vland recorded as its own for this state dir, and nothing else. In bulk:
/// in a namespace vland created, all its children go in one request (deleting links one by one
/// costs ~16 ms each); elsewhere each child is deleted after its ownership tag is checked.
pub async fn down(state_dir: &std::path::Path, bpf_dir: &std::path::Path) -> anyhow::Result<Summary> {
    let host = Netlink::current()?;
    let store = StateStore::open_locked(state_dir)?;
    let mut state = store.load()?;
    let pins = Pins::new(bpf_dir);
    let mut summary = Summary::default();
    endpoint::clean_pending(&store, &mut state).await?;
    // Counters and programs first: unpinning detaches them.
    ebpf::collect_garbage(&pins, &HashSet::new())?;
    let mut by_netns: BTreeMap<NetnsRef, Vec<String>> = BTreeMap::new();
    for (name, rec) in &state.endpoints {
        by_netns.entry(rec.netns.clone()).or_default().push(name.clone());
    }
    for (ns_ref, names) in by_netns {
        let vland_made = matches!(&ns_ref, NetnsRef::Named(n) if state.namespaces.contains_key(n));
        if vland_made {
            if netns::is_namespace(&ns_ref.path()) {
                let ns = netns::open(&ns_ref.path())?;
                Netlink::in_netns(&ns)?.delete_group(store.link_group()).await?;
            }
        } else {
            for name in &names {
                endpoint::teardown(&pins, name, &state.endpoints[name]).await?;
            }
        }
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
    remove_empty_pins(bpf_dir);
    info!(removed = summary.removed.len(), "down done");
    Ok(summary)
}

/// Maps earlier builds pinned (trunk policy and counters in hash maps), removed with the rest.
const RETIRED_MAPS: [&str; 4] = ["TRUNK_POLICY", "ALLOWED_VLANS", "VLAN_STATS", "DROPS"];

/// With nothing attached any more, the shared maps and the pin directory go too.
fn remove_empty_pins(bpf_dir: &std::path::Path) {
    let links = bpf_dir.join("links");
    let no_links = std::fs::read_dir(&links).map(|mut d| d.next().is_none()).unwrap_or(true);
    if no_links {
        let _ = std::fs::remove_dir(&links);
        let pins = Pins::new(bpf_dir);
        for map in vlan_common::names::ALL_MAPS.into_iter().chain(RETIRED_MAPS) {
            let _ = std::fs::remove_file(pins.map(map));
        }
        let _ = std::fs::remove_dir(bpf_dir);
    }
}
