//! The plan: the ordered actions that take the observed state to the desired one, each with its
//! reason, computed without touching the kernel. `vland plan` prints it; apply carries it out.
use super::desired::{Desired, DesiredEndpoint};
use super::endpoint::same_placement;
use super::observed::{NamespaceView, Observed};
use super::sysctls::{self, Defaults, Setting};
use crate::config::{ConfigErrors, CounterHook, NetnsRef, ParentKind};
use crate::ebpf::ProgramIds;
use crate::mac::Mac;
use crate::netlink::{LinkFacts, RouteSpec};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// One change to the kernel (or to vland's pins), with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A child an interrupted run created but did not finish.
    RemoveLeftover {
        netns: String,
        link: String,
    },
    LoadPrograms {
        reason: String,
    },
    RemoveEndpoint {
        endpoint: String,
        reason: String,
    },
    RemoveNamespace {
        netns: String,
    },
    RemoveParent {
        parent: String,
    },
    CreateParent {
        parent: String,
        network: String,
    },
    BringUpParent {
        parent: String,
    },
    CreateNamespace {
        netns: String,
    },
    /// A new child, or one recreated because it drifted in a way only recreation fixes; `setup`
    /// is what the fresh child then gets.
    CreateChild {
        endpoint: String,
        reason: String,
        setup: Vec<Fix>,
        /// vland's own links to delete first (the drifted child, or one renamed by hand).
        #[serde(skip)]
        delete_first: Vec<u32>,
    },
    /// An existing child corrected in place.
    Correct {
        endpoint: String,
        fixes: Vec<Fix>,
    },
    ConfigureTrunk {
        trunk: String,
    },
    RemoveTrunk {
        trunk: String,
    },
    /// A parent stops answering ARP/ND for these addresses, before any child changes (answered
    /// again after, where still wanted).
    StopAnswering {
        parent: String,
        #[serde(skip)]
        ifindex: u32,
        addresses: Vec<std::net::IpAddr>,
    },
    /// vland's responder leaves a parent that no longer wants it (or that became a trunk, whose
    /// program answers instead).
    DetachResponder {
        parent: String,
        #[serde(skip)]
        ifindex: u32,
    },
    /// A parent answers ARP/ND for these addresses once their children are up; `attach`: vland's
    /// responder goes on the parent first.
    Answer {
        parent: String,
        attach: bool,
        via_trunk: bool,
        add: Vec<super::responder::Answer>,
    },
    /// The responder cannot go on this parent.
    SkipResponder {
        parent: String,
        reason: String,
    },
}

/// One correction of a child, in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fix", rename_all = "snake_case")]
pub enum Fix {
    Mtu {
        from: Option<u32>,
        to: u32,
    },
    Mac {
        from: Option<Mac>,
        to: Mac,
    },
    Addresses {
        family: &'static str,
        remove: Vec<String>,
        add: Option<String>,
    },
    Sysctls {
        set: Vec<Setting>,
    },
    Up,
    Routes {
        remove: Vec<RouteSpec>,
        add: Vec<RouteSpec>,
    },
    /// vland's ingress counter (a TC filter) attached, or swapped for this build's.
    Ingress,
    Egress,
    /// The same counters attached through tcx (`counter_hook = "tcx"`), in the place of an older
    /// build's program there (`replace`, by id) in one step.
    TcxIngress {
        replace: Option<u32>,
    },
    TcxEgress {
        replace: Option<u32>,
    },
    /// vland's TC filters removed, once the tcx counters are in (a switch to tcx).
    RemoveTcFilters,
    /// vland's tcx counters (these program ids) detached, once the TC filters are in (a switch to tc).
    RemoveTcx {
        ingress: Option<u32>,
        egress: Option<u32>,
    },
    /// An older build's generic-XDP counter removed (after the ingress filter is in).
    RemoveLegacyXdp,
    Policy,
}

#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Computes the plan; a conflict vland must not resolve itself (a link it did not make where
/// its child belongs) is an error naming the endpoint, all of them at once.
pub fn plan(desired: &Desired<'_>, observed: &Observed, source_name: &str) -> Result<Plan, ConfigErrors> {
    let mut errors = ConfigErrors { source_name: source_name.to_string(), errors: Vec::new() };
    let mut actions = Vec::new();
    let state = &observed.state;
    for (ns_ref, view) in &observed.namespaces {
        actions.extend(view.leftovers.iter().map(|l| Action::RemoveLeftover { netns: ns_ref.to_string(), link: l.name.clone() }));
    }
    if observed.programs.is_none() {
        let reason = match &state.ebpf_object {
            None => "first apply: load and pin vland's programs",
            Some(id) if *id != crate::ebpf::object_id() => {
                "vland was upgraded: this build's programs replace the earlier ones (counters kept)"
            }
            Some(_) => "the pinned programs or maps are missing: load them again",
        };
        actions.push(Action::LoadPrograms { reason: reason.into() });
    }

    let config = desired.config;
    let mut removed = BTreeSet::new();
    // A scoped apply plans the endpoints of its namespaces only (the others were not read).
    let in_scope = |ns_ref: &NetnsRef| observed.scope.as_ref().is_none_or(|s| s.contains(ns_ref));
    for (name, rec) in state.endpoints.iter().filter(|(_, rec)| in_scope(&rec.netns)) {
        let reason = match config.endpoints.get(name) {
            None => "not in the config".to_string(),
            Some(ep) if !same_placement(ep, rec, config) => format!(
                "moved ({} {} on {} -> {} {} on {}): recreate",
                rec.netns, rec.ifname, rec.parent, ep.netns, ep.ifname, config.networks[&ep.network].parent.name
            ),
            Some(_) => continue,
        };
        removed.insert(super::endpoint::alias_for(name));
        actions.push(Action::RemoveEndpoint { endpoint: name.clone(), reason });
    }
    for name in &state.namespaces {
        let ns_ref = NetnsRef::Named(name.clone());
        if !config.endpoints.values().any(|e| e.netns == ns_ref) {
            actions.push(Action::RemoveNamespace { netns: name.clone() });
        }
    }
    for name in state.parents.keys() {
        if !config.networks.values().any(|n| &n.parent.name == name) {
            actions.push(Action::RemoveParent { parent: name.clone() });
        }
    }
    let mut parents = BTreeSet::new();
    for net in config.networks.values().filter(|n| parents.insert(&n.parent.name)) {
        match observed.host_links.get(&net.parent.name) {
            Some(link) if !link.up && state.parents.contains_key(&net.parent.name) => {
                actions.push(Action::BringUpParent { parent: net.parent.name.clone() })
            }
            Some(_) => {}
            None if net.parent.kind != ParentKind::Existing => {
                actions.push(Action::CreateParent { parent: net.parent.name.clone(), network: net.name.clone() })
            }
            // Preflight has said so already.
            None => errors.push(format!("networks.{}.parent", net.name), format!("interface {} does not exist", net.parent.name)),
        }
    }
    for (ns_ref, names) in &desired.by_netns {
        let view = &observed.namespaces[ns_ref];
        if !view.exists {
            match ns_ref {
                NetnsRef::Named(n) => actions.push(Action::CreateNamespace { netns: n.clone() }),
                NetnsRef::Path(p) => {
                    for name in names {
                        errors.push(format!("endpoints.{name}.netns_path"), format!("{} is not a network namespace", p.display()));
                    }
                    continue;
                }
                NetnsRef::Own => {
                    for name in names {
                        errors.push(format!("endpoints.{name}"), "vland's own network namespace could not be read".to_string());
                    }
                    continue;
                }
            }
        }
        // A child created now inherits the namespace's defaults; a new namespace gets, as its
        // defaults, what most of its children want.
        let defaults = view.defaults.unwrap_or_else(|| desired.new_namespace_defaults(ns_ref));
        for name in names {
            match plan_endpoint(&desired.endpoints[name], view, defaults, &removed, observed, ns_ref) {
                Ok(Some(action)) => actions.push(action),
                Ok(None) => {}
                Err((key, msg)) => errors.push(format!("endpoints.{name}.{key}"), msg),
            }
        }
    }
    for (name, _) in config.trunk_vlans() {
        if !observed.trunks_in_place.contains(&name) {
            actions.push(Action::ConfigureTrunk { trunk: name });
        }
    }
    let wanted_trunks = config.trunk_vlans();
    for name in state.trunks.keys().filter(|t| !wanted_trunks.contains_key(*t)) {
        actions.push(Action::RemoveTrunk { trunk: name.clone() });
    }
    // The responder lets go before any endpoint changes (where apply carries it out) and
    // answers once the children are up.
    let (early, late): (Vec<Action>, Vec<Action>) = super::responder::plan(desired, observed, &actions)
        .into_iter()
        .partition(|a| matches!(a, Action::StopAnswering { .. } | Action::DetachResponder { .. } | Action::SkipResponder { .. }));
    let at =
        actions.iter().position(|a| !matches!(a, Action::RemoveLeftover { .. } | Action::LoadPrograms { .. })).unwrap_or(actions.len());
    actions.splice(at..at, early);
    actions.extend(late);
    if errors.is_empty() { Ok(Plan { actions }) } else { Err(errors) }
}

/// The action one endpoint's child needs, if any.
fn plan_endpoint(
    d: &DesiredEndpoint<'_>,
    view: &NamespaceView,
    defaults: Defaults,
    removed: &BTreeSet<String>,
    observed: &Observed,
    ns_ref: &NetnsRef,
) -> Result<Option<Action>, (&'static str, String)> {
    let name = d.ep.name.clone();
    // A child of an endpoint being removed goes first: its name and number are free then.
    let present = |l: &&LinkFacts| !l.alias.as_ref().is_some_and(|a| removed.contains(a));
    let mut delete_first = Vec::new();
    let reason = match view.links.get(&d.ep.ifname).filter(present) {
        Some(link) if link.alias.as_deref() != Some(d.alias.as_str()) => {
            return Err((
                "ifname",
                format!(
                    "namespace {ns_ref} already has an interface {} that vland did not create: set another ifname or remove it",
                    d.ep.ifname
                ),
            ));
        }
        Some(link) => {
            let mut drift = d.net.driver.link_drift(link);
            if link.index != d.ifindex {
                drift.push(format!("ifindex {} -> {}", link.index, d.ifindex));
            }
            if drift.is_empty() {
                let fixes = corrections(d, link, view, observed);
                return Ok((!fixes.is_empty()).then_some(Action::Correct { endpoint: name, fixes }));
            }
            delete_first.push(link.index);
            format!("{}: recreate", drift.join(", "))
        }
        None => "missing".to_string(),
    };
    // The number may be held by vland's own child under another name (renamed by hand).
    if let Some(link) = view.links.values().filter(present).find(|l| l.index == d.ifindex && l.name != d.ep.ifname) {
        if link.alias.as_deref() != Some(d.alias.as_str()) {
            return Err((
                "ifname",
                format!(
                    "namespace {ns_ref} has a link {} with ifindex {}, the number vland gives this endpoint's child: remove that link",
                    link.name, d.ifindex
                ),
            ));
        }
        delete_first.push(link.index);
    }
    Ok(Some(Action::CreateChild { endpoint: name, reason, setup: setup(d, defaults, observed), delete_first }))
}

/// What a child created now needs after its creation request (which already sets its kind,
/// mode, MAC, MTU, number, tag and XDP counter).
fn setup(d: &DesiredEndpoint<'_>, defaults: Defaults, observed: &Observed) -> Vec<Fix> {
    let mut fixes = Vec::new();
    // A staged child goes to its engine as it was made: down and bare. The move into the
    // container drops its programs and per-device sysctls (they are set there, once vland
    // follows it), and moving a link that is up costs the engine ~15 ms more (the kernel closes
    // it first); the engine brings it up in the container.
    if !d.ep.staged {
        for v6 in [false, true] {
            if let Some((addr, prefix)) = d.addresses[v6 as usize] {
                fixes.push(Fix::Addresses { family: family(v6), remove: Vec::new(), add: Some(format!("{addr}/{prefix}")) });
            }
        }
        let set = sysctls::differences(d.sysctls.wanted(sysctls::has_ipv6()), &d.sysctls.inherited(defaults));
        if !set.is_empty() {
            fixes.push(Fix::Sysctls { set });
        }
        // Programs before the link goes up, so the child counts (and checks) its first frame.
        match d.net.counter_hook {
            CounterHook::Tc => fixes.extend([Fix::Ingress, Fix::Egress]),
            CounterHook::Tcx => fixes.extend([Fix::TcxIngress { replace: None }, Fix::TcxEgress { replace: None }]),
        }
        fixes.push(Fix::Up);
        if !d.routes.is_empty() {
            fixes.push(Fix::Routes { remove: Vec::new(), add: d.routes.clone() });
        }
    }
    let had = if d.alloc.new_slot { None } else { observed.policies.get(&d.alloc.slot).copied() };
    if had.unwrap_or_default() != d.policy(None) {
        fixes.push(Fix::Policy);
    }
    fixes
}

fn family(v6: bool) -> &'static str {
    if v6 { "ipv6" } else { "ipv4" }
}

/// What an existing child of the right kind needs corrected in place.
fn corrections(d: &DesiredEndpoint<'_>, link: &LinkFacts, view: &NamespaceView, observed: &Observed) -> Vec<Fix> {
    let mut fixes = Vec::new();
    if let Some(mtu) = d.net.mtu
        && link.mtu != Some(mtu)
    {
        fixes.push(Fix::Mtu { from: link.mtu, to: mtu });
    }
    if let Some(mac) = d.assigned_mac()
        && link.mac != Some(mac)
    {
        fixes.push(Fix::Mac { from: link.mac, to: mac });
    }
    for v6 in [false, true] {
        let wanted = d.addresses[v6 as usize];
        let present: Vec<(std::net::IpAddr, u8)> =
            view.addresses.get(&(link.index, v6)).map(|p| p.iter().map(|a| (a.addr, a.prefix)).collect()).unwrap_or_default();
        let remove: Vec<String> = present.iter().filter(|p| Some(**p) != wanted).map(|(a, p)| format!("{a}/{p}")).collect();
        let add = wanted.filter(|w| !present.contains(w)).map(|(a, p)| format!("{a}/{p}"));
        if !remove.is_empty() || add.is_some() {
            fixes.push(Fix::Addresses { family: family(v6), remove, add });
        }
    }
    let set = sysctls::differences(d.sysctls.wanted(sysctls::has_ipv6()), &view.sysctls);
    if !set.is_empty() {
        fixes.push(Fix::Sysctls { set });
    }
    fixes.extend(program_fixes(link, view, observed.programs, d.net.counter_hook));
    if !link.up {
        fixes.push(Fix::Up);
    }
    let present_routes = view.routes.get(&link.index).map(Vec::as_slice).unwrap_or_default();
    let recorded = observed.state.endpoints.get(&d.ep.name).map(|r| r.routes.as_slice()).unwrap_or_default();
    let add: Vec<RouteSpec> = d.routes.iter().filter(|r| !present_routes.iter().any(|p| r.matches(p))).cloned().collect();
    let remove: Vec<RouteSpec> =
        recorded.iter().filter(|r| !d.routes.contains(r) && present_routes.iter().any(|p| r.matches(p))).cloned().collect();
    if !add.is_empty() || !remove.is_empty() {
        fixes.push(Fix::Routes { remove, add });
    }
    if observed.policies.get(&d.alloc.slot).copied().unwrap_or_default() != d.policy(link.mac) {
        fixes.push(Fix::Policy);
    }
    fixes
}

/// The counting programs on one existing child: vland's programs on ingress and egress, through
/// the network's `counter_hook`, attached where missing or not this build's; then what vland has
/// on the other hook kind goes (after, so that no frame passes uncounted). An older build's
/// generic-XDP counter goes; someone else's XDP program stays (vland counts what it lets through).
fn program_fixes(link: &LinkFacts, view: &NamespaceView, programs: Option<ProgramIds>, hook: CounterHook) -> Vec<Fix> {
    let mut fixes = Vec::new();
    let current = |have: Option<u32>, want: Option<u32>| have.is_some() && have == want;
    let (ingress, egress) = view.filters.get(&link.index).copied().unwrap_or_default();
    let (tcx_ingress, tcx_egress) = view.tcx.get(&link.index).copied().unwrap_or_default();
    match hook {
        CounterHook::Tc => {
            if !current(ingress, programs.map(|p| p.ingress)) {
                fixes.push(Fix::Ingress);
            }
            if !current(egress, programs.map(|p| p.egress)) {
                fixes.push(Fix::Egress);
            }
            if tcx_ingress.is_some() || tcx_egress.is_some() {
                fixes.push(Fix::RemoveTcx { ingress: tcx_ingress, egress: tcx_egress });
            }
        }
        CounterHook::Tcx => {
            if !current(tcx_ingress, programs.map(|p| p.ingress)) {
                fixes.push(Fix::TcxIngress { replace: tcx_ingress });
            }
            if !current(tcx_egress, programs.map(|p| p.egress)) {
                fixes.push(Fix::TcxEgress { replace: tcx_egress });
            }
            if ingress.is_some() || egress.is_some() {
                fixes.push(Fix::RemoveTcFilters);
            }
        }
    }
    if link.xdp_program.is_some() && view.xdp_is_legacy.get(&link.index).copied().unwrap_or(false) {
        fixes.push(Fix::RemoveLegacyXdp);
    }
    fixes
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        match self {
            Fix::Mtu { from, to } => write!(f, "mtu {} -> {to}", from.map_or("none".into(), |m| m.to_string())),
            Fix::Mac { from, to } => write!(f, "mac {} -> {to}", from.map_or("none".into(), |m| m.to_string())),
            Fix::Addresses { family, remove, add } => {
                write!(f, "{family} address {} -> {}", if remove.is_empty() { "none".into() } else { remove.join(",") }, opt(add))
            }
            Fix::Sysctls { set } => {
                let list: Vec<String> = set.iter().map(|(k, v)| format!("{}={}", k.replace('/', "."), *v as u8)).collect();
                write!(f, "sysctl {}", list.join(" "))
            }
            Fix::Up => f.write_str("link down -> up"),
            Fix::Routes { remove, add } => {
                let list = |r: &[RouteSpec]| r.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                match (remove.is_empty(), add.is_empty()) {
                    (true, _) => write!(f, "add route {}", list(add)),
                    (_, true) => write!(f, "remove route {}", list(remove)),
                    _ => write!(f, "remove route {}; add route {}", list(remove), list(add)),
                }
            }
            Fix::Ingress => f.write_str("attach the ingress counter"),
            Fix::RemoveLegacyXdp => f.write_str("remove an older vland's XDP counter (vland counts in TC ingress now)"),
            Fix::Egress => f.write_str("attach the egress counter"),
            Fix::TcxIngress { replace: None } => f.write_str("attach the ingress counter (tcx)"),
            Fix::TcxIngress { replace: Some(id) } => write!(f, "replace program {id} with this build's ingress counter (tcx)"),
            Fix::TcxEgress { replace: None } => f.write_str("attach the egress counter (tcx)"),
            Fix::TcxEgress { replace: Some(id) } => write!(f, "replace program {id} with this build's egress counter (tcx)"),
            Fix::RemoveTcFilters => f.write_str("remove the TC filter counters (counter_hook is tcx)"),
            Fix::RemoveTcx { .. } => f.write_str("remove the tcx counters (counter_hook is tc)"),
            Fix::Policy => f.write_str("write the anti-spoofing policy"),
        }
    }
}

impl Action {
    /// The endpoint an action is about, if it is about one (CNI CHECK asks this).
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Action::RemoveEndpoint { endpoint, .. } | Action::CreateChild { endpoint, .. } | Action::Correct { endpoint, .. } => {
                Some(endpoint)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fixes = |fixes: &[Fix]| fixes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        match self {
            Action::RemoveLeftover { netns, link } => write!(f, "remove {link} in {netns}: left half made by an interrupted run"),
            Action::LoadPrograms { reason } => write!(f, "load vland's eBPF programs: {reason}"),
            Action::RemoveEndpoint { endpoint, reason } => write!(f, "remove endpoint {endpoint}: {reason}"),
            Action::RemoveNamespace { netns } => write!(f, "remove namespace {netns}: no endpoint uses it"),
            Action::RemoveParent { parent } => write!(f, "remove parent {parent}: vland made it and no network uses it"),
            Action::CreateParent { parent, network } => write!(f, "create parent {parent} for network {network}"),
            Action::BringUpParent { parent } => write!(f, "bring parent {parent} up"),
            Action::CreateNamespace { netns } => write!(f, "create namespace {netns}"),
            Action::CreateChild { endpoint, reason, .. } => write!(f, "create the child of endpoint {endpoint}: {reason}"),
            Action::Correct { endpoint, fixes: list } => write!(f, "endpoint {endpoint}: {}", fixes(list)),
            Action::ConfigureTrunk { trunk } => write!(f, "enforce the VLAN policy of trunk {trunk}"),
            Action::RemoveTrunk { trunk } => write!(f, "remove the VLAN policy of trunk {trunk}: no longer configured"),
            Action::StopAnswering { parent, addresses, .. } => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                write!(f, "{parent} stops answering ARP/ND for {} (until their children are up and current)", list.join(", "))
            }
            Action::DetachResponder { parent, .. } => write!(f, "detach vland's ARP/ND responder from {parent}: no longer wanted there"),
            Action::Answer { parent, attach, via_trunk, add } => {
                let how = match (attach, via_trunk) {
                    (true, _) => "attach vland's ARP/ND responder to",
                    (false, true) => "the trunk program answers on",
                    (false, false) => "the responder answers on",
                };
                let list = |watch_only: bool| -> Vec<String> {
                    add.iter().filter(|a| a.watch_only == watch_only).map(|a| format!("{} ({})", a.address, a.endpoint)).collect()
                };
                write!(f, "{how} {parent}")?;
                let (answer, watch) = (list(false), list(true));
                if !answer.is_empty() {
                    write!(f, "; answer for {}", answer.join(", "))?;
                }
                if !watch.is_empty() {
                    write!(f, "; watch for address conflicts {}", watch.join(", "))?;
                }
                Ok(())
            }
            Action::SkipResponder { parent, reason } => write!(f, "no ARP/ND responder on {parent}: {reason}"),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            return writeln!(f, "nothing to do: the kernel matches the config");
        }
        for action in &self.actions {
            writeln!(f, "  - {action}")?;
        }
        writeln!(f, "{} change{}", self.actions.len(), if self.actions.len() == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests;
