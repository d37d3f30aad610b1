//! ipvlan children: they share the parent's MAC, so no MAC is sent.
use super::ChildSpec;
use crate::config::IpvlanMode;
use netlink_packet_route::link::{IpVlanMode, LinkMessage};
use rtnetlink::LinkIpVlan;

fn kernel_mode(mode: IpvlanMode) -> IpVlanMode {
    match mode {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    }
}

pub fn kernel_mode_name(mode: IpvlanMode) -> &'static str {
    match mode {
        IpvlanMode::L2 => "l2",
        IpvlanMode::L3 => "l3",
        IpvlanMode::L3s => "l3s",
    }
}

pub fn child(spec: &ChildSpec<'_>, mode: IpvlanMode) -> LinkMessage {
    let mut b = LinkIpVlan::new(spec.temp_name, spec.parent_index, kernel_mode(mode)).setns_by_fd(spec.target_netns);
    if let Some(mtu) = spec.network.mtu {
        b = b.mtu(mtu);
    }
    b.build()
}
