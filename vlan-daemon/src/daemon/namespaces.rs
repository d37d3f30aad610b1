//! Following what happens inside the endpoint namespaces: a multicast netlink socket opened in
//! each (links, addresses, routes, TC), so that a child's XDP program detached, its egress
//! filter or clsact qdisc deleted, its MAC changed, its addresses flushed, its link set down or
//! the child moved away make the daemon re-apply (and the plan repair just that) at once.
use crate::config::{Config, NetnsRef};
use crate::netns;
use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::RouteAttribute;
use rtnetlink::MulticastGroup;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

const GROUPS: [MulticastGroup; 6] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
    MulticastGroup::Tc,
];

/// The endpoint namespaces being watched; each event names its namespace.
pub struct NamespaceEvents {
    tx: mpsc::UnboundedSender<NetnsRef>,
    rx: mpsc::UnboundedReceiver<NetnsRef>,
    watching: BTreeMap<NetnsRef, JoinHandle<()>>,
}

impl Drop for NamespaceEvents {
    fn drop(&mut self) {
        self.watching.values().for_each(JoinHandle::abort);
    }
}

impl NamespaceEvents {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        NamespaceEvents { tx, rx, watching: BTreeMap::new() }
    }

    /// Watches the namespaces `config`'s endpoints live in, and no others. One that does not
    /// exist (yet) is picked up by a later call, after the apply that creates it.
    pub fn follow(&mut self, config: &Config) {
        // vland's own namespace too, where `host_access` networks have their host children.
        let config = crate::reconcile::host_access::with_host_children(config);
        let wanted: BTreeSet<&NetnsRef> = config.endpoints.values().map(|e| &e.netns).collect();
        self.watching.retain(|ns_ref, task| {
            let keep = wanted.contains(ns_ref) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        // In vland's own namespace only what happens to vland's children counts (they are
        // numbered in this instance's block): the host's other links and routes change for
        // reasons of their own. Docker's staged children name it by path, not as `Own`.
        let base = crate::ebpf::Pins::new(&config.daemon.bpf_dir).ifindex_base();
        let children = base + 1..base + vlan_common::MAX_ENDPOINTS;
        for ns_ref in wanted {
            if self.watching.contains_key(ns_ref) || !netns::is_namespace(&ns_ref.path()) {
                continue;
            }
            let only = ns_ref.is_own().then(|| children.clone());
            match watch(ns_ref, only, self.tx.clone()) {
                Ok(task) => {
                    self.watching.insert(ns_ref.clone(), task);
                }
                Err(e) => warn!(netns = %ns_ref, "cannot follow events in the namespace: {e:#}"),
            }
        }
    }

    /// The next event's namespace.
    pub async fn next(&mut self) -> Option<NetnsRef> {
        self.rx.recv().await
    }
}

/// Opens the socket inside `ns_ref` (a socket stays in the namespace it was made in) and
/// forwards each of its events as the namespace's name; with `only`, just the events about links
/// numbered in that range.
fn watch(ns_ref: &NetnsRef, only: Option<Range<u32>>, tx: mpsc::UnboundedSender<NetnsRef>) -> anyhow::Result<JoinHandle<()>> {
    let ns = netns::open(&ns_ref.path())?;
    let rt = tokio::runtime::Handle::current();
    let (conn, handle, mut events) = netns::run_in(&ns, || {
        let _guard = rt.enter();
        Ok(rtnetlink::new_multicast_connection(&GROUPS)?)
    })?;
    let name = ns_ref.clone();
    Ok(tokio::spawn(async move {
        let connection = tokio::spawn(conn);
        // The handle keeps the connection open for as long as events are read.
        let _handle = handle;
        while let Some((msg, _)) = events.next().await {
            if only.as_ref().is_some_and(|range| !link_of(&msg).is_some_and(|i| range.contains(&i))) {
                continue;
            }
            if tx.send(name.clone()).is_err() {
                break;
            }
        }
        connection.abort();
    }))
}

/// The link an event is about: the link itself, an address's or a TC object's device, a route's
/// output device.
fn link_of(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<u32> {
    let NetlinkPayload::InnerMessage(inner) = &msg.payload else { return None };
    match inner {
        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => Some(l.header.index),
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => Some(a.header.index),
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        }),
        RouteNetlinkMessage::NewQueueDiscipline(t)
        | RouteNetlinkMessage::DelQueueDiscipline(t)
        | RouteNetlinkMessage::NewTrafficFilter(t)
        | RouteNetlinkMessage::DelTrafficFilter(t) => u32::try_from(t.header.index).ok(),
        _ => None,
    }
}
