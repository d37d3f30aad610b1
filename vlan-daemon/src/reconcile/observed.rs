//! The observed state: what the kernel shows now and what the state file records as vland's.
//! Each endpoint namespace is read once (links, addresses, routes, vland's TC filters, the
//! sysctls vland sets); nothing here changes anything, so `vland plan` can run it.
use super::sysctls::{self, Defaults, DeviceSysctls};
use crate::config::{Config, NetnsRef};
use crate::ebpf::{self, Pins, ProgramIds};
use crate::netlink::tcx::{self, TcxHook};
use crate::netlink::{Hook, LinkFacts, Netlink, PresentAddress, RouteSpec};
use crate::netns;
use crate::state::State;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use vlan_common::{EndpointPolicy, names};

/// The ids of vland's programs on a child's two hooks of one kind: (ingress, egress).
pub type HookPrograms = (Option<u32>, Option<u32>);

/// One endpoint namespace as it is now.
pub struct NamespaceView {
    pub exists: bool,
    /// The namespace's inode number, when it exists.
    pub inum: Option<u32>,
    /// The open namespace and a netlink handle inside it, when it exists (not in tests).
    pub handle: Option<(File, Netlink)>,
    pub links: HashMap<String, LinkFacts>,
    /// Global addresses by (link, is IPv6).
    pub addresses: HashMap<(u32, bool), Vec<PresentAddress>>,
    pub routes: HashMap<u32, Vec<RouteSpec>>,
    /// Program ids in vland's TC filters on vland's children: (ingress, egress).
    pub filters: HashMap<u32, HookPrograms>,
    /// vland's counting programs (this build's or an older one's) attached through tcx on
    /// vland's children: (ingress, egress). Empty where the kernel has no tcx.
    pub tcx: HashMap<u32, HookPrograms>,
    /// Whether the XDP program on a child is one of vland's (this build's or an older one).
    pub xdp_is_legacy: HashMap<u32, bool>,
    /// What a child created now inherits, and the current values of the sysctls vland sets.
    pub defaults: Option<Defaults>,
    pub sysctls: BTreeMap<String, bool>,
    /// Links an interrupted run left half made (journaled numbers, vland's group, no tag yet).
    pub leftovers: Vec<LinkFacts>,
}

impl NamespaceView {
    fn absent() -> Self {
        NamespaceView {
            exists: false,
            inum: None,
            handle: None,
            links: HashMap::new(),
            addresses: HashMap::new(),
            routes: HashMap::new(),
            filters: HashMap::new(),
            tcx: HashMap::new(),
            xdp_is_legacy: HashMap::new(),
            defaults: None,
            sysctls: BTreeMap::new(),
            leftovers: Vec::new(),
        }
    }
}

pub struct Observed {
    /// What vland recorded as its own.
    pub state: State,
    /// Links of vland's own namespace (parents, trunks), by name.
    pub host_links: HashMap<String, LinkFacts>,
    pub namespaces: BTreeMap<NetnsRef, NamespaceView>,
    /// This build's endpoint programs, when they are pinned (None: they must be loaded).
    pub programs: Option<ProgramIds>,
    /// The endpoint policies in the slots of the desired endpoints.
    pub policies: HashMap<u32, EndpointPolicy>,
    /// The desired trunks whose programs and policy are already as wanted.
    pub trunks_in_place: Vec<String>,
    /// The parents' ARP/ND responder: its table and where vland's program is attached.
    pub responder: super::responder::ResponderView,
    /// A scoped apply's namespaces: only these were read, and only their endpoints are planned
    /// (None: every namespace of the config).
    pub scope: Option<BTreeSet<NetnsRef>>,
}

/// Reads the kernel where `config` puts endpoints (with `scope`, only in those namespaces), plus
/// the records in `state`. (The endpoint policies are read once the slots are known: see
/// `read_policies`.)
pub async fn observe(
    config: &Config,
    state: State,
    host: &Netlink,
    pins: &Pins,
    link_group: u32,
    scope: Option<BTreeSet<NetnsRef>>,
) -> anyhow::Result<Observed> {
    let host_links: HashMap<String, LinkFacts> = host.links().await?.into_iter().map(|l| (l.name.clone(), l)).collect();
    let same_build = state.ebpf_object.as_deref() == Some(ebpf::object_id().as_str());
    let programs = if same_build { ebpf::pinned_program_ids(pins) } else { None };
    // Per namespace, the sysctl keys to read and the children set aside: staged children an
    // engine is about to move (`desired::is_moving`) are neither planned nor touched, so their
    // hooks and sysctls are not read either (every Docker Join's apply reads vland's namespace,
    // where all children being started are staged).
    let mut reads_by_netns: BTreeMap<&NetnsRef, (Vec<String>, BTreeSet<&str>)> = BTreeMap::new();
    for (name, ep) in config.endpoints.iter().filter(|(_, ep)| scope.as_ref().is_none_or(|s| s.contains(&ep.netns))) {
        let (keys, aside) = reads_by_netns.entry(&ep.netns).or_default();
        if super::desired::is_moving(ep, state.endpoints.get(name)) {
            aside.insert(ep.ifname.as_str());
        } else {
            let wanted = DeviceSysctls::for_network(&ep.ifname, &config.networks[&ep.network]).wanted(sysctls::has_ipv6());
            keys.extend(wanted.into_iter().map(|(k, _)| k));
        }
    }
    let mut namespaces = BTreeMap::new();
    for (ns_ref, (keys, aside)) in reads_by_netns {
        let pending: Vec<u32> = state.pending_links.iter().filter(|p| &p.netns == ns_ref).map(|p| p.ifindex).collect();
        let view =
            view(ns_ref, keys, &aside, &pending, link_group, programs).await.map_err(|e| e.context(format!("namespace {ns_ref}")))?;
        namespaces.insert(ns_ref.clone(), view);
    }
    let own_inum = netns::inum(&netns::open(std::path::Path::new("/proc/thread-self/ns/net"))?)?;
    let mut trunks_in_place = Vec::new();
    for (name, vlans) in config.trunk_vlans() {
        if let Some(link) = host_links.get(&name)
            && state.trunks.get(&name).is_some_and(|id| id.ifindex == link.index && id.netns_inum == own_inum)
            && ebpf::trunk_in_place(pins, vlan_common::LinkId { netns_inum: own_inum, ifindex: link.index }, &vlans)?
        {
            trunks_in_place.push(name);
        }
    }
    let responder = super::responder::observe(pins, own_inum)?;
    Ok(Observed { state, host_links, namespaces, programs, policies: HashMap::new(), trunks_in_place, responder, scope })
}

impl Observed {
    /// Reads the endpoint policies in `slots` (before the maps exist: none).
    pub fn read_policies(&mut self, pins: &Pins, slots: impl Iterator<Item = u32>) -> anyhow::Result<()> {
        self.policies = ebpf::read_policies(pins, slots)?;
        Ok(())
    }
}

async fn view(
    ns_ref: &NetnsRef,
    sysctl_keys: Vec<String>,
    set_aside: &BTreeSet<&str>,
    pending: &[u32],
    link_group: u32,
    programs: Option<ProgramIds>,
) -> anyhow::Result<NamespaceView> {
    if !netns::is_namespace(&ns_ref.path()) {
        return Ok(NamespaceView::absent());
    }
    let ns = netns::open(&ns_ref.path())?;
    let (nl, (defaults, sysctls)) = Netlink::in_netns_with(&ns, || Ok(sysctls::read_here(sysctl_keys)))?;
    let mut links = HashMap::new();
    let mut leftovers = Vec::new();
    for link in nl.links().await? {
        let tagged = link.alias.as_deref().is_some_and(super::endpoint::is_vland_alias);
        if pending.contains(&link.index) && link.group == Some(link_group) && !tagged {
            leftovers.push(link);
        } else {
            links.insert(link.name.clone(), link);
        }
    }
    let mut filters = HashMap::new();
    let mut xdp_is_legacy = HashMap::new();
    let counted = |l: &&LinkFacts| l.alias.as_deref().is_some_and(super::endpoint::is_vland_alias) && !set_aside.contains(l.name.as_str());
    for link in links.values().filter(counted) {
        let hooks = (nl.filter_program(link.index, Hook::Ingress).await?, nl.filter_program(link.index, Hook::Egress).await?);
        filters.insert(link.index, hooks);
        // An older build's generic-XDP counter (apply removes it), or someone else's program.
        if let Some(id) = link.xdp_program {
            xdp_is_legacy.insert(link.index, ebpf::is_legacy_ingress_xdp(id));
        }
    }
    // tcx attachments make no netlink objects: asked of bpf(2), inside the namespace.
    let tcx = if tcx::supported() && !filters.is_empty() {
        let children: Vec<u32> = filters.keys().copied().collect();
        netns::run_in(&ns, || tcx_counters(&children, programs))?
    } else {
        HashMap::new()
    };
    Ok(NamespaceView {
        exists: true,
        inum: Some(netns::inum(&ns)?),
        addresses: nl.addresses_by_link().await?,
        routes: nl.routes_by_link().await?,
        handle: Some((ns, nl)),
        links,
        filters,
        tcx,
        xdp_is_legacy,
        defaults: Some(defaults),
        sysctls,
        leftovers,
    })
}

/// vland's counting programs on the tcx hooks of `children` (run inside their namespace): this
/// build's (by id) or an older build's (by name); other programs there are someone else's.
fn tcx_counters(children: &[u32], programs: Option<ProgramIds>) -> anyhow::Result<HashMap<u32, HookPrograms>> {
    let ours = |index: u32, hook: TcxHook, current: Option<u32>, name: &str| -> anyhow::Result<Option<u32>> {
        let ids = match tcx::query(index, hook) {
            Ok(ids) => ids,
            // Gone since it was listed: nothing attached.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("query the tcx {hook:?} programs of link {index}"))),
        };
        Ok(ids.into_iter().find(|id| Some(*id) == current || ebpf::program_name(*id).is_some_and(|n| n == name)))
    };
    let mut out = HashMap::new();
    for &index in children {
        let ingress = ours(index, TcxHook::Ingress, programs.map(|p| p.ingress), names::INGRESS_PROGRAM)?;
        let egress = ours(index, TcxHook::Egress, programs.map(|p| p.egress), names::EGRESS_PROGRAM)?;
        if ingress.is_some() || egress.is_some() {
            out.insert(index, (ingress, egress));
        }
    }
    Ok(out)
}
