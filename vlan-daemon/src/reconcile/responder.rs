//! The parents' ARP/ND responder (`arp_responder`): what the NEIGHBOURS table and the parents'
//! XDP hooks show (observe), the actions that make them answer for exactly the endpoints whose
//! children exist and are up (plan), and carrying those out (execute). With `detect_conflicts`
//! (and without `arp_responder`) the same program goes on the parent and its entries are
//! marked watch-only: it counts frames claiming the addresses and answers nothing. Entries of children the
//! apply creates, recreates or brings up are taken out before the children change and put back
//! after, so the parent never answers for a child that is not there.
use super::desired::Desired;
use super::observed::Observed;
use super::plan::{Action, Fix};
use crate::config::ParentKind;
use crate::ebpf::{self, Pins};
use crate::mac::Mac;
use crate::netlink::Netlink;
use crate::netns;
use anyhow::Context;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use tracing::{info, warn};
use vlan_common::{LinkId, NeighEntry, NeighKey};

/// The responder as the kernel shows it now.
#[derive(Debug, Default)]
pub struct ResponderView {
    pub entries: BTreeMap<NeighKey, NeighEntry>,
    /// Parent ifindexes (vland's namespace) with vland's responder link attached.
    pub attached: BTreeSet<u32>,
}

pub fn observe(pins: &Pins, own_inum: u32) -> anyhow::Result<ResponderView> {
    let attached = pins
        .parent_links()
        .into_iter()
        .filter(|(id, _)| id.netns_inum == own_inum && ebpf::responder_attached(pins, *id))
        .map(|(id, _)| id.ifindex)
        .collect();
    Ok(ResponderView { entries: ebpf::read_neighbours(pins)?, attached })
}

/// One address a parent answers for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub endpoint: String,
    pub address: IpAddr,
    /// The MAC answered: the child's; None for the parent's own (ipvlan), read when answering.
    pub mac: Option<Mac>,
    #[serde(skip)]
    pub slot: u32,
    /// Watched for conflicts, not answered (`detect_conflicts` without `arp_responder`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub watch_only: bool,
}

impl Answer {
    fn entry(&self, mac: Mac) -> NeighEntry {
        let flags = if self.watch_only { NeighEntry::WATCH_ONLY } else { 0 };
        NeighEntry { slot: self.slot, mac: mac.0, flags, _pad: 0 }
    }
}

/// The responder's actions, after the endpoints' in `actions`.
pub fn plan(desired: &Desired<'_>, observed: &Observed, actions: &[Action]) -> Vec<Action> {
    let mut out = Vec::new();
    // Children that are (re)created or brought up: not answered for until they are up again.
    let unsettled: BTreeSet<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateChild { endpoint, .. } => Some(endpoint.as_str()),
            Action::Correct { endpoint, fixes } if fixes.iter().any(|f| matches!(f, Fix::Up | Fix::Mac { .. })) => Some(endpoint.as_str()),
            _ => None,
        })
        .collect();
    let trunks = desired.config.trunk_vlans();
    let mut wanted: BTreeMap<&str, Vec<Answer>> = BTreeMap::new();
    for d in desired.endpoints.values() {
        let net = d.net;
        let watch_only = !net.arp_responder;
        if !(net.arp_responder || net.detect_conflicts) || !net.driver.parent_answers_neighbours() || net.parent.kind == ParentKind::Dummy {
            continue;
        }
        let mac =
            if net.driver.takes_parent_mac() { observed.host_links.get(&net.parent.name).and_then(|l| l.mac) } else { Some(d.alloc.mac) };
        let list = wanted.entry(net.parent.name.as_str()).or_default();
        for (address, _) in d.addresses.iter().flatten() {
            list.push(Answer { endpoint: d.ep.name.clone(), address: *address, mac, slot: d.alloc.slot, watch_only });
        }
    }
    let view = &observed.responder;
    let by_index: HashMap<u32, &str> = observed.host_links.values().map(|l| (l.index, l.name.as_str())).collect();
    let mut kept_keys = BTreeSet::new();
    let mut keep_attached = BTreeSet::new();
    for (parent, answers) in &wanted {
        let link = observed.host_links.get(*parent);
        let index = link.map(|l| l.index);
        let ours = index.is_some_and(|i| view.attached.contains(&i));
        let via_trunk = trunks.contains_key(*parent);
        if let Some(l) = link
            && !ours
            && !via_trunk
            && let Some(id) = l.xdp_program
        {
            out.push(Action::SkipResponder {
                parent: parent.to_string(),
                reason: format!("another XDP program (id {id}) is attached to it: vland leaves it there and the kernel answers"),
            });
            continue;
        }
        if ours && !via_trunk {
            keep_attached.insert(index.unwrap_or_default());
        }
        let mut add = Vec::new();
        for a in answers {
            let mac = a.mac.or_else(|| link.and_then(|l| l.mac));
            let entry = mac.map(|m| a.entry(m));
            let present = index.and_then(|i| view.entries.get(&ebpf::neigh_key(i, a.address)).map(|e| (i, e)));
            match present {
                Some((i, e)) if Some(*e) == entry && !unsettled.contains(a.endpoint.as_str()) => {
                    kept_keys.insert(ebpf::neigh_key(i, a.address));
                }
                _ => add.push(a.clone()),
            }
        }
        // This build's program on the parent (after an upgrade, swapped in place).
        let attach = !via_trunk && (!ours || observed.programs.is_none());
        if !add.is_empty() || attach {
            out.push(Action::Answer { parent: parent.to_string(), attach, via_trunk, add });
        }
    }
    // Entries not kept go before anything changes (re-added later where still wanted).
    let mut stop: BTreeMap<u32, Vec<IpAddr>> = BTreeMap::new();
    for key in view.entries.keys().filter(|k| !kept_keys.contains(*k)) {
        stop.entry(key.ifindex).or_default().push(ebpf::key_addr(key));
    }
    for (ifindex, addresses) in stop {
        let parent = by_index.get(&ifindex).map_or(format!("ifindex {ifindex}"), |n| n.to_string());
        out.insert(0, Action::StopAnswering { parent, ifindex, addresses });
    }
    for ifindex in view.attached.iter().filter(|i| !keep_attached.contains(*i)) {
        let wanted_here = by_index.get(ifindex).is_some_and(|n| wanted.contains_key(n) && !trunks.contains_key(*n));
        if !wanted_here {
            let parent = by_index.get(ifindex).map_or(format!("ifindex {ifindex}"), |n| n.to_string());
            out.insert(0, Action::DetachResponder { parent, ifindex: *ifindex });
        }
    }
    out
}

fn own_inum() -> anyhow::Result<u32> {
    netns::inum(&netns::open(std::path::Path::new("/proc/thread-self/ns/net"))?)
}

/// Before the endpoints change: entries out, vland's responder off parents that no longer want it.
pub fn execute_early(plan: &[Action], pins: &Pins) -> anyhow::Result<()> {
    let own = own_inum()?;
    for action in plan {
        match action {
            Action::StopAnswering { ifindex, addresses, .. } => {
                let keys: Vec<NeighKey> = addresses.iter().map(|a| ebpf::neigh_key(*ifindex, *a)).collect();
                ebpf::remove_neighbours(pins, &keys)?;
            }
            Action::DetachResponder { parent, ifindex } => {
                let _ = std::fs::remove_file(pins.parent_link(LinkId { netns_inum: own, ifindex: *ifindex }));
                info!(%parent, "vland's ARP/ND responder detached");
            }
            Action::SkipResponder { parent, reason } => warn!(%parent, "ARP/ND responder not attached: {reason}"),
            _ => {}
        }
    }
    Ok(())
}

/// After the endpoints' children are up: the responder attached, their entries in.
pub async fn execute_late(plan: &[Action], pins: &Pins, host: &Netlink) -> anyhow::Result<()> {
    let own = own_inum()?;
    for action in plan {
        let Action::Answer { parent, attach, add, .. } = action else { continue };
        let link = host.link_by_name(parent).await?.with_context(|| format!("parent {parent} does not exist"))?;
        if *attach {
            ebpf::attach_responder(pins, LinkId { netns_inum: own, ifindex: link.index })
                .with_context(|| format!("cannot attach the ARP/ND responder to {parent}"))?;
        }
        let entries: Vec<(NeighKey, NeighEntry)> = add
            .iter()
            .filter_map(|a| {
                let mac = a.mac.or(link.mac)?;
                Some((ebpf::neigh_key(link.index, a.address), a.entry(mac)))
            })
            .collect();
        ebpf::insert_neighbours(pins, &entries)?;
    }
    Ok(())
}

/// `down`: every responder link of vland's namespace detached, the table emptied.
pub fn remove_all(pins: &Pins) -> anyhow::Result<()> {
    ebpf::detach_other_responders(pins, own_inum()?, &Default::default())?;
    let keys: Vec<NeighKey> = ebpf::read_neighbours(pins)?.into_keys().collect();
    ebpf::remove_neighbours(pins, &keys)
}
