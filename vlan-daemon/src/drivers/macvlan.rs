//! macvlan children. The mode is always sent: the kernel's own default is vepa, Docker's bridge.
use super::ChildSpec;
use crate::config::MacvlanMode;
use netlink_packet_route::link::{InfoMacVlan, LinkMessage, MacVlanMacAddressMode, MacVlanMode};
use rtnetlink::LinkMacVlan;

fn kernel_mode(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

/// The mode as `LinkFacts::mode` spells it (the lower-cased netlink enum name).
pub fn kernel_mode_name(mode: MacvlanMode) -> &'static str {
    match mode {
        MacvlanMode::Bridge => "bridge",
        MacvlanMode::Vepa => "vepa",
        MacvlanMode::Private => "private",
        MacvlanMode::Passthru => "passthrough",
        MacvlanMode::Source => "source",
    }
}

pub fn child(spec: &ChildSpec<'_>, mode: MacvlanMode) -> LinkMessage {
    let mut b = LinkMacVlan::new(spec.name, spec.parent_index, kernel_mode(mode)).setns_by_fd(spec.target_netns);
    // passthru always takes the parent's MAC; asking for another one is refused.
    if mode != MacvlanMode::Passthru {
        b = b.address(spec.mac.to_vec());
    }
    if mode == MacvlanMode::Source {
        // The child receives frames from exactly these source MACs.
        b = b
            .append_info_data(InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set))
            .append_info_data(InfoMacVlan::MacAddrData(spec.network.source_macs.iter().map(|m| InfoMacVlan::MacAddr(*m)).collect()));
    }
    if let Some(mtu) = spec.network.mtu {
        b = b.mtu(mtu);
    }
    b.build()
}
