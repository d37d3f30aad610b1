//! The link drivers, one module each (netavark's shape). A driver owns everything that depends on
//! the kind of child: reading its options from a network table, which networks may share a parent
//! with it, the netlink request that creates a child, how an existing child differs from what it
//! would make (drift), and what the kernel's refusals mean. The rest of vland asks a network's
//! `driver` through the `ChildDriver` trait and never matches on modes itself.
mod ipvlan;
mod macvlan;
mod modes;

pub use ipvlan::{Ipvlan, IpvlanFlag, IpvlanMode};
pub use macvlan::{Macvlan, MacvlanMode};

use crate::mac::Mac;
use crate::netlink::LinkFacts;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use std::os::fd::RawFd;

/// What every driver answers about its children.
pub trait ChildDriver {
    /// The kernel's link kind ("macvlan", "ipvlan").
    fn kind(&self) -> &'static str;
    /// Children carry the parent's MAC, so an endpoint cannot choose one.
    fn takes_parent_mac(&self) -> bool;
    /// The parent may answer ARP and neighbour solicitations for the children (the request
    /// would otherwise be cloned to every child): children that answer on the wire with a MAC
    /// of their own or the parent's. Not passthru (one child, the parent's MAC) or source mode
    /// (children answer only some senders), nor ipvlan l3/l3s (the host routes for them).
    fn parent_answers_neighbours(&self) -> bool;
    /// Children route everything out of their own device: no gateway, `default dev` routes.
    fn routes_by_device(&self) -> bool;
    /// How many endpoints one network of this driver can hold when the kernel limits it, and why.
    fn max_endpoints(&self) -> Option<(usize, &'static str)>;
    /// Why a network of this driver cannot share its parent with network `other_name` of driver
    /// `other` (the same kind): the config key to blame and the message; None when they can.
    fn parent_conflict(&self, other: &Driver, other_name: &str, parent: &str) -> Option<(&'static str, String)>;
    /// The create request for one child, without the parts common to all drivers.
    fn child_message(&self, spec: &ChildSpec<'_>) -> LinkMessage;
    /// How `link` (of this driver's kind) differs from the children this driver makes, one
    /// reason per difference ("mode vepa -> bridge"); empty when it matches.
    fn drift(&self, link: &LinkFacts) -> Vec<String>;
    /// What the kernel's EBUSY means when it refuses a child on `parent`.
    fn busy_explanation(&self, parent: &str) -> String;
    /// Why the host cannot reach this network's children through a child of its own on the
    /// parent (`host_access`), if it cannot: the host child must be a sibling the children talk to.
    fn host_access_refusal(&self) -> Option<String>;
}

/// A network's driver with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    Macvlan(Macvlan),
    Ipvlan(Ipvlan),
}

impl std::ops::Deref for Driver {
    type Target = dyn ChildDriver;

    fn deref(&self) -> &Self::Target {
        match self {
            Driver::Macvlan(d) => d,
            Driver::Ipvlan(d) => d,
        }
    }
}

impl Driver {
    /// Reads `driver` and the driver's own keys; what is wrong goes to `report` (key, message).
    pub fn from_options(opts: &Options<'_>, report: Report<'_>) -> Option<Driver> {
        match opts.driver {
            Some("macvlan") => Macvlan::from_options(opts, report).map(Driver::Macvlan),
            Some("ipvlan") => Ipvlan::from_options(opts, report).map(Driver::Ipvlan),
            Some(other) => {
                report("driver", format!("unknown driver `{other}`: use \"macvlan\" or \"ipvlan\""));
                None
            }
            None => {
                report("driver", "missing: set driver = \"macvlan\" or \"ipvlan\"".into());
                None
            }
        }
    }

    /// Why a network of this driver cannot share parent `parent` with network `other_name` of
    /// driver `other`, if it cannot: the kernel puts one kind of child on a parent, and each
    /// driver has its own rules within its kind.
    pub fn sharing_conflict(&self, other: &Driver, other_name: &str, parent: &str) -> Option<(&'static str, String)> {
        if self.kind() != other.kind() {
            return Some((
                "driver",
                format!(
                    "parent {parent} already carries {} network `{other_name}`; the kernel cannot put macvlan and ipvlan children on one parent: use another parent",
                    other.kind(),
                ),
            ));
        }
        self.parent_conflict(other, other_name, parent)
    }

    /// The whole create request for one child: the driver's part, then vland's link group and
    /// the ifindex vland numbers the child with.
    pub fn create_request(&self, spec: &ChildSpec<'_>) -> LinkMessage {
        let mut msg = self.child_message(spec);
        msg.attributes.push(LinkAttribute::Group(spec.link_group));
        msg.header.index = spec.ifindex;
        msg
    }

    /// How `link` differs from a child of this driver: its kind, then the driver's own settings.
    pub fn link_drift(&self, link: &LinkFacts) -> Vec<String> {
        match link.kind.as_deref() {
            Some(kind) if kind == self.kind() => self.drift(link),
            other => vec![format!("kind {} -> {}", other.unwrap_or("unknown"), self.kind())],
        }
    }
}

/// A network table's driver keys, as written; the config reads the rest of the table.
pub struct Options<'a> {
    pub driver: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub ipvlan_flag: Option<&'a str>,
    pub source_macs: &'a [String],
}

/// Where a driver reports what is wrong with its keys: the key (in the network's table) and
/// what to do about it.
pub type Report<'r> = &'r mut dyn FnMut(&str, String);

/// Everything the kernel needs to create one endpoint's child link.
pub struct ChildSpec<'a> {
    pub mtu: Option<u32>,
    pub parent_index: u32,
    /// The endpoint's interface name inside the target namespace.
    pub name: &'a str,
    /// The ifindex vland numbers the child with (see Pins::endpoint_ifindex).
    pub ifindex: u32,
    pub mac: Mac,
    pub target_netns: RawFd,
    /// This vland instance's link group: `down` deletes a namespace's children in one request.
    pub link_group: u32,
}

#[cfg(test)]
mod tests;
