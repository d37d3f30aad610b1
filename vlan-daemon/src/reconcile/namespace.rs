//! Carrying out the plan for all endpoints of one network namespace together: the namespace is
//! opened once, new children are created (with vland's tag and XDP counter in one request),
//! policies and sysctls are written from one place, then every child's corrections run side by
//! side, so requests to the kernel are in flight together instead of one round trip at a time.
use super::desired::{Desired, DesiredEndpoint};
use super::endpoint;
use super::observed::NamespaceView;
use super::plan::{Action, Fix};
use super::sysctls;
use crate::config::NetnsRef;
use crate::ebpf::{self, EndpointPrograms, Pins};
use crate::netlink::tcx::{self, TcxHook};
use crate::netlink::{Hook, LinkFacts, Netlink, PresentAddress};
use crate::netns;
use crate::state::{State, StateStore};
use anyhow::Context;
use std::collections::HashMap;
use std::os::fd::AsFd;
use tracing::info;
use vlan_common::{LinkId, names};

/// What carrying out a namespace's plan needs besides the endpoints.
pub struct Shared<'a> {
    pub host: &'a Netlink,
    pub store: &'a StateStore,
    pub pins: &'a Pins,
    pub programs: &'a EndpointPrograms,
    /// Each configured network's parent ifindex.
    pub parent_index: &'a HashMap<String, u32>,
}

/// Carries out `actions` (each endpoint's CreateChild or Correct, if any) for the endpoints
/// `names` of namespace `ns_ref`; state changes are in memory, the caller saves them.
pub async fn execute(
    shared: &Shared<'_>,
    state: &mut State,
    desired: &Desired<'_>,
    ns_ref: &NetnsRef,
    mut view: NamespaceView,
    actions: &HashMap<&str, &Action>,
) -> anyhow::Result<()> {
    let names = &desired.by_netns[ns_ref];
    let (ns, nl) = match view.handle.take() {
        Some(handle) => handle,
        None => {
            let NetnsRef::Named(name) = ns_ref else { anyhow::bail!("namespace {ns_ref} does not exist") };
            netns::create(name)?;
            info!(netns = %name, "created namespace");
            let ns = netns::open(&ns_ref.path())?;
            let nl = Netlink::in_netns(&ns)?;
            nl.set_up_by_name("lo").await?;
            // The tag that lets a run without the state file know this namespace is vland's.
            nl.set_alias_by_name("lo", &super::adopt::namespace_tag(shared.store.link_group())).await?;
            sysctls::set_namespace_defaults(&ns, desired.new_namespace_defaults(ns_ref))?;
            (ns, nl)
        }
    };
    let inum = netns::inum(&ns)?;

    // New children first, then what each endpoint's child is now.
    let mut links: HashMap<String, LinkFacts> = HashMap::new();
    let mut read_back = false;
    for name in names {
        let d = &desired.endpoints[name];
        match actions.get(name.as_str()) {
            Some(Action::CreateChild { delete_first, .. }) => {
                for index in delete_first {
                    nl.delete_link(*index).await?;
                }
                let parent_index = shared.parent_index[&d.net.name];
                endpoint::create_child(shared.host, state, shared.store, d.ep, d.net, &ns, parent_index, d.ifindex)
                    .await
                    .with_context(|| format!("endpoint {name}"))?;
                nl.tag(d.ifindex, &d.alias).await?;
                info!(endpoint = %name, netns = %ns_ref, ifname = %d.ep.ifname, network = %d.net.name, "created child link");
                // What a new child is follows from how it was made, unless the kernel chose its MAC.
                let mac = state.endpoints[name].mac.filter(|_| !d.net.driver.takes_parent_mac());
                read_back |= mac.is_none();
                let facts = LinkFacts {
                    index: d.ifindex,
                    name: d.ep.ifname.clone(),
                    alias: Some(d.alias.clone()),
                    mtu: d.net.mtu,
                    mac,
                    ..LinkFacts::default()
                };
                links.insert(d.ep.ifname.clone(), facts);
            }
            _ => {
                let link =
                    view.links.remove(&d.ep.ifname).with_context(|| format!("endpoint {name}: its child {} vanished", d.ep.ifname))?;
                links.insert(d.ep.ifname.clone(), link);
            }
        }
    }
    if read_back {
        for link in nl.links().await? {
            if let Some(entry) = links.get_mut(&link.name) {
                entry.mac = link.mac;
            }
        }
    }
    let fixes_of = |name: &str| -> &[Fix] {
        match actions.get(name) {
            Some(Action::CreateChild { setup, .. }) => setup,
            Some(Action::Correct { fixes, .. }) => fixes,
            _ => &[],
        }
    };

    // Policies before any egress filter, so no frame passes unchecked; sysctls before link up.
    let mut policies = Vec::new();
    let mut settings = Vec::new();
    for name in names {
        let d = &desired.endpoints[name];
        for fix in fixes_of(name) {
            match fix {
                Fix::Policy => policies.push((d.alloc.slot, d.policy(links[&d.ep.ifname].mac))),
                Fix::Sysctls { set } => settings.extend(set.iter().cloned()),
                _ => {}
            }
        }
    }
    if !policies.is_empty() {
        ebpf::write_policies(shared.pins, &policies)?;
    }
    sysctls::write(&ns, settings)?;

    // tcx counters first (each attach blocks for an RCU grace period: one thread in the namespace
    // does them all); a switch from tc removes the filters only after this, in `correct`.
    let tcx_attach: Vec<(u32, TcxHook, Option<u32>)> = names
        .iter()
        .flat_map(|name| {
            let index = links[&desired.endpoints[name].ep.ifname].index;
            fixes_of(name).iter().filter_map(move |fix| match fix {
                Fix::TcxIngress { replace } => Some((index, TcxHook::Ingress, *replace)),
                Fix::TcxEgress { replace } => Some((index, TcxHook::Egress, *replace)),
                _ => None,
            })
        })
        .collect();
    if !tcx_attach.is_empty() {
        let programs = shared.programs;
        netns::run_in(&ns, || {
            for (index, hook, replace) in tcx_attach {
                let prog = match hook {
                    TcxHook::Ingress => programs.ingress.fd(),
                    TcxHook::Egress => programs.egress.fd(),
                };
                let old = replace.map(tcx::program_fd).transpose()?;
                tcx::attach(index, hook, prog, old.as_ref().map(|fd| fd.as_fd()))?;
            }
            Ok(())
        })?;
    }

    let mut steps = Vec::new();
    for name in names {
        let d = &desired.endpoints[name];
        let link = &links[&d.ep.ifname];
        // A recreated child keeps its number but not the old one's addresses.
        let fresh = matches!(actions.get(name.as_str()), Some(Action::CreateChild { .. }));
        let present = [false, true].map(|v6| if fresh { Vec::new() } else { view.addresses.remove(&(link.index, v6)).unwrap_or_default() });
        let (nl, programs) = (&nl, shared.programs);
        let fixes = fixes_of(name);
        steps.push(async move { correct(nl, programs, d, link.index, fixes, present).await.with_context(|| format!("endpoint {name}")) });
    }
    futures::future::try_join_all(steps).await?;
    // A switch to tc: the tcx counters go once the filters are in.
    let tcx_detach: Vec<(u32, TcxHook, u32)> = names
        .iter()
        .flat_map(|name| {
            let index = links[&desired.endpoints[name].ep.ifname].index;
            fixes_of(name).iter().flat_map(move |fix| match fix {
                Fix::RemoveTcx { ingress, egress } => {
                    [ingress.map(|id| (index, TcxHook::Ingress, id)), egress.map(|id| (index, TcxHook::Egress, id))]
                }
                _ => [None, None],
            })
        })
        .flatten()
        .collect();
    if !tcx_detach.is_empty() {
        netns::run_in(&ns, || {
            for (index, hook, id) in tcx_detach {
                match tcx::program_fd(id) {
                    Ok(fd) => tcx::detach(index, hook, fd.as_fd())?,
                    // Unloaded since it was seen: it is attached nowhere.
                    Err(e) if e.root_cause().downcast_ref::<std::io::Error>().and_then(|e| e.raw_os_error()) == Some(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })?;
    }
    for name in names {
        let d = &desired.endpoints[name];
        let rec = state.endpoints.get_mut(name).expect("recorded before execute");
        rec.link = Some(LinkId { netns_inum: inum, ifindex: links[&d.ep.ifname].index });
        rec.routes = d.routes.clone();
    }
    Ok(())
}

/// One child's corrections (sysctls and policies are written before, for all children at once).
async fn correct(
    nl: &Netlink,
    programs: &EndpointPrograms,
    d: &DesiredEndpoint<'_>,
    index: u32,
    fixes: &[Fix],
    present: [Vec<PresentAddress>; 2],
) -> anyhow::Result<()> {
    let mut present = present.map(Some);
    for fix in fixes {
        match fix {
            Fix::Mtu { to, .. } => nl.set_mtu(index, *to).await?,
            Fix::Mac { to, .. } => nl.set_mac(index, *to).await?,
            Fix::Addresses { family, .. } => {
                let v6 = *family == "ipv6";
                let have = present[v6 as usize].take().unwrap_or_default();
                nl.set_only_addresses(index, d.addresses[v6 as usize], have).await?;
            }
            Fix::Up => nl.set_up(index).await?,
            Fix::Routes { remove, add } => {
                for route in remove {
                    nl.delete_route(index, route).await?;
                }
                for route in add {
                    nl.replace_route(index, route).await?;
                }
            }
            Fix::Ingress => {
                nl.ensure_clsact(index).await?;
                nl.replace_filter(index, Hook::Ingress, programs.ingress.fd(), names::INGRESS_PROGRAM).await?;
            }
            Fix::RemoveLegacyXdp => {
                nl.detach_xdp(index).await?;
                info!(endpoint = %d.ep.name, "removed an older vland's XDP counter (vland counts in TC ingress now)");
            }
            Fix::Egress => {
                nl.ensure_clsact(index).await?;
                nl.replace_filter(index, Hook::Egress, programs.egress.fd(), names::EGRESS_PROGRAM).await?;
            }
            Fix::RemoveTcFilters => {
                nl.delete_filter(index, Hook::Ingress).await?;
                nl.delete_filter(index, Hook::Egress).await?;
            }
            // Done for all children at once, before (attach) and after (detach) these steps.
            Fix::TcxIngress { .. } | Fix::TcxEgress { .. } | Fix::RemoveTcx { .. } => {}
            Fix::Sysctls { .. } | Fix::Policy => {}
        }
    }
    Ok(())
}
