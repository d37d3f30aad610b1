//! Which host link events call for a whole apply: those about a parent, a VLAN parent's base or a
//! trunk that change something about the link. The kernel announces a parent again each time a
//! child is made on it, moved or removed (its upper devices and promiscuity changed): those
//! announcements say nothing new about the parent, and acting on them would make every container
//! a front-end starts cost a whole apply.
use crate::config::{Config, ParentKind};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct WatchedLinks {
    names: BTreeSet<String>,
    /// What each watched link last looked like, as `facts` has it.
    seen: BTreeMap<String, String>,
}

impl WatchedLinks {
    /// Watches the links `config` depends on (and forgets the others).
    pub fn follow(&mut self, config: &Config) {
        let mut names: BTreeSet<String> = config.trunks.keys().cloned().collect();
        for net in config.networks.values() {
            names.insert(net.parent.name.clone());
            if let ParentKind::Vlan { base, .. } = &net.parent.kind {
                names.insert(base.clone());
            }
        }
        self.seen.retain(|name, _| names.contains(name));
        self.names = names;
    }

    /// The name of the watched link `msg` is about, if it appeared, went or changed.
    pub fn changed(&mut self, msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<String> {
        let (link, gone) = match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => (l, false),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => (l, true),
            _ => return None,
        };
        let name = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })?;
        if !self.names.contains(&name) {
            return None;
        }
        if gone {
            self.seen.remove(&name);
            return Some(name);
        }
        let facts = facts(&link);
        (self.seen.insert(name.clone(), facts.clone()).as_ref() != Some(&facts)).then_some(name)
    }
}

/// The link as vland depends on it: everything the kernel reports but its counters, its
/// promiscuity and all-multicast counts (children change those) and the event's own type.
fn facts(link: &LinkMessage) -> String {
    let kept: Vec<&LinkAttribute> = link
        .attributes
        .iter()
        .filter(|a| {
            !matches!(
                a,
                LinkAttribute::Stats(_)
                    | LinkAttribute::Stats64(_)
                    | LinkAttribute::Promiscuity(_)
                    | LinkAttribute::AllMulticast(_)
                    | LinkAttribute::Event(_)
                    // Per-family details, with their traffic counters.
                    | LinkAttribute::AfSpecUnspec(_)
                    | LinkAttribute::AfSpecBridge(_)
                    | LinkAttribute::AfSpecUnknown(_)
                    | LinkAttribute::ProtoInfoInet6(_)
            )
        })
        .collect();
    format!("{:?} {kept:?}", link.header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, extra: Vec<LinkAttribute>) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.attributes.push(LinkAttribute::IfName(name.into()));
        link.attributes.extend(extra);
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(link))
    }

    #[test]
    fn only_changes_to_watched_links_count() {
        let config = crate::config::parse_str("[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"", "test").unwrap();
        let mut watched = WatchedLinks::default();
        watched.follow(&config);
        assert_eq!(watched.changed(event("eth0", vec![LinkAttribute::Mtu(1500)])), Some("eth0".into()), "first sight");
        // A child made or moved: the same link, another promiscuity count.
        let again = vec![LinkAttribute::Mtu(1500), LinkAttribute::Promiscuity(1)];
        assert_eq!(watched.changed(event("eth0", again)), None);
        assert_eq!(watched.changed(event("eth0", vec![LinkAttribute::Mtu(9000)])), Some("eth0".into()));
        assert_eq!(watched.changed(event("eth1", vec![LinkAttribute::Mtu(9000)])), None, "not watched");
        let mut gone = LinkMessage::default();
        gone.attributes.push(LinkAttribute::IfName("eth0".into()));
        assert_eq!(watched.changed(NetlinkMessage::from(RouteNetlinkMessage::DelLink(gone))), Some("eth0".into()));
        assert_eq!(watched.changed(event("eth0", vec![LinkAttribute::Mtu(9000)])), Some("eth0".into()), "back");
    }
}
