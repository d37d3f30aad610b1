//! Following what happens inside the endpoint namespaces: a multicast netlink socket opened in
//! each (links, addresses, routes, TC), so that a child's XDP program detached, its egress
//! filter or clsact qdisc deleted, its MAC changed, its addresses flushed, its link set down or
//! the child moved away make the daemon re-apply (and the plan repair just that) at once.
use crate::config::{Config, NetnsRef};
use crate::netns;
use futures::StreamExt;
use rtnetlink::MulticastGroup;
use std::collections::{BTreeMap, BTreeSet};
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
    tx: mpsc::UnboundedSender<String>,
    rx: mpsc::UnboundedReceiver<String>,
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
        for ns_ref in wanted {
            if self.watching.contains_key(ns_ref) || !netns::is_namespace(&ns_ref.path()) {
                continue;
            }
            match watch(ns_ref, self.tx.clone()) {
                Ok(task) => {
                    self.watching.insert(ns_ref.clone(), task);
                }
                Err(e) => warn!(netns = %ns_ref, "cannot follow events in the namespace: {e:#}"),
            }
        }
    }

    /// The next event's namespace.
    pub async fn next(&mut self) -> Option<String> {
        self.rx.recv().await
    }
}

/// Opens the socket inside `ns_ref` (a socket stays in the namespace it was made in) and
/// forwards each of its events as the namespace's name.
fn watch(ns_ref: &NetnsRef, tx: mpsc::UnboundedSender<String>) -> anyhow::Result<JoinHandle<()>> {
    let ns = netns::open(&ns_ref.path())?;
    let rt = tokio::runtime::Handle::current();
    let (conn, handle, mut events) = netns::run_in(&ns, || {
        let _guard = rt.enter();
        Ok(rtnetlink::new_multicast_connection(&GROUPS)?)
    })?;
    let name = ns_ref.to_string();
    Ok(tokio::spawn(async move {
        let connection = tokio::spawn(conn);
        // The handle keeps the connection open for as long as events are read.
        let _handle = handle;
        while events.next().await.is_some() {
            if tx.send(name.clone()).is_err() {
                break;
            }
        }
        connection.abort();
    }))
}
