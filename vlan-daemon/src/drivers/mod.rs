//! Per-driver knowledge: the netlink request that creates a child link of a network, and
//! whether an existing link is still what the network asks for.
mod ipvlan;
mod macvlan;

use crate::config::{Driver, Network};
use crate::netlink::LinkFacts;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use std::os::fd::RawFd;

/// Everything the kernel needs to create one endpoint's child link.
pub struct ChildSpec<'a> {
    pub network: &'a Network,
    pub parent_index: u32,
    /// The endpoint's interface name inside the target namespace.
    pub name: &'a str,
    /// The ifindex vland numbers the child with (see Pins::endpoint_ifindex).
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub target_netns: RawFd,
    /// This vland instance's link group: `down` deletes a namespace's children in one request.
    pub link_group: u32,
}

pub fn child_link_message(spec: &ChildSpec<'_>) -> LinkMessage {
    let mut msg = match spec.network.driver {
        Driver::Macvlan(mode) => macvlan::child(spec, mode),
        Driver::Ipvlan(mode, flag) => ipvlan::child(spec, mode, flag),
    };
    msg.attributes.push(LinkAttribute::Group(spec.link_group));
    msg.header.index = spec.ifindex;
    msg
}

/// True when `link` has the kind and mode the network asks for (MTU is corrected in place).
pub fn link_matches(link: &LinkFacts, network: &Network) -> bool {
    let mode = match network.driver {
        Driver::Macvlan(m) => macvlan::kernel_mode_name(m),
        Driver::Ipvlan(m, _) => ipvlan::kernel_mode_name(m),
    };
    link.kind.as_deref() == Some(network.driver.kind()) && link.mode.as_deref() == Some(mode)
}
