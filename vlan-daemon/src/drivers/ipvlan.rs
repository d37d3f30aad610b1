//! ipvlan children: they share the parent's MAC, so no MAC is sent.
use super::ChildSpec;
use crate::config::{IpvlanFlag, IpvlanMode};
use netlink_packet_route::link::{IpVlanFlags, IpVlanMode, LinkMessage};
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

fn kernel_flag(flag: IpvlanFlag) -> IpVlanFlags {
    match flag {
        // "bridge" is the absence of the other two flags.
        IpvlanFlag::Bridge => IpVlanFlags::empty(),
        IpvlanFlag::Private => IpVlanFlags::Private,
        IpvlanFlag::Vepa => IpVlanFlags::Vepa,
    }
}

pub fn child(spec: &ChildSpec<'_>, mode: IpvlanMode, flag: IpvlanFlag) -> LinkMessage {
    let mut b = LinkIpVlan::new(spec.name, spec.parent_index, kernel_mode(mode)).flag(kernel_flag(flag)).setns_by_fd(spec.target_netns);
    if let Some(mtu) = spec.network.mtu {
        b = b.mtu(mtu);
    }
    b.build()
}
