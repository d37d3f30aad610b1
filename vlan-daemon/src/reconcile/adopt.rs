//! Rebuilding lost records from the kernel. vland tags what it creates (children by their alias,
//! number and link group; the namespaces and parents it makes by an alias carrying its link
//! group), so when the state file is lost or older than the kernel, the next apply adopts them
//! as they are (addresses, MACs, slots and so counters kept) instead of renumbering everything,
//! and `down` still knows which namespaces and parents are vland's to remove.
use super::endpoint::alias_for;
use super::observed::Observed;
use crate::config::{Config, NetnsRef};
use crate::ebpf::Pins;
use crate::state::{EndpointRecord, ParentRecord};
use vlan_common::{LinkId, MAX_ENDPOINTS};

/// The alias vland puts on the loopback device of a namespace it creates.
pub fn namespace_tag(link_group: u32) -> String {
    format!("vland-netns:{link_group:08x}")
}

/// The alias vland puts on a parent it creates (an 802.1Q sub-interface, a dummy).
pub fn parent_tag(link_group: u32) -> String {
    format!("vland-parent:{link_group:08x}")
}

/// Adds to `observed.state` what the kernel shows as this vland's but the state lacks; returns
/// one line per adoption, for the log.
pub fn adopt(config: &Config, observed: &mut Observed, pins: &Pins, link_group: u32) -> Vec<String> {
    let mut lines = Vec::new();
    let state = &mut observed.state;
    for (name, ep) in &config.endpoints {
        if state.endpoints.contains_key(name) {
            continue;
        }
        let Some(view) = observed.namespaces.get(&ep.netns) else { continue };
        let Some(link) = view.links.get(&ep.ifname) else { continue };
        let slot = link.index.wrapping_sub(pins.ifindex_base());
        let ours =
            link.alias.as_deref() == Some(alias_for(name).as_str()) && link.group == Some(link_group) && (1..MAX_ENDPOINTS).contains(&slot);
        if !ours {
            continue;
        }
        let net = &config.networks[&ep.network];
        // The address of each family on the child that lies in the network's subnet.
        let address = |v6: bool| {
            let subnet = net.ipam(v6)?.subnet;
            view.addresses.get(&(link.index, v6))?.iter().map(|a| a.addr).find(|a| subnet.contains(*a))
        };
        let ip = match address(false) {
            Some(std::net::IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let ip6 = match address(true) {
            Some(std::net::IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        let inum = view.inum;
        state.endpoints.insert(
            name.clone(),
            EndpointRecord {
                network: ep.network.clone(),
                parent: net.parent.name.clone(),
                netns: ep.netns.clone(),
                ifname: ep.ifname.clone(),
                ip,
                ip6,
                mac: link.mac,
                link: inum.map(|netns_inum| LinkId { netns_inum, ifindex: link.index }),
                slot: Some(slot),
                routes: Vec::new(),
            },
        );
        lines.push(format!("adopted endpoint {name} from the kernel (slot {slot}, {})", ip.map_or("no IPv4".into(), |a| a.to_string())));
    }
    let ns_tag = namespace_tag(link_group);
    for (ns_ref, view) in &observed.namespaces {
        if let NetnsRef::Named(name) = ns_ref
            && !state.namespaces.contains(name)
            && view.links.get("lo").and_then(|l| l.alias.as_deref()) == Some(ns_tag.as_str())
        {
            state.namespaces.insert(name.clone());
            lines.push(format!("adopted namespace {name}: vland made it"));
        }
    }
    let parent_tag = parent_tag(link_group);
    for net in config.networks.values() {
        let name = &net.parent.name;
        if state.parents.contains_key(name) || observed.host_links.get(name).and_then(|l| l.alias.as_deref()) != Some(parent_tag.as_str()) {
            continue;
        }
        let record = match &net.parent.kind {
            crate::config::ParentKind::Vlan { base, vid, protocol } => {
                ParentRecord::Vlan { base: base.clone(), vid: *vid, protocol: *protocol }
            }
            crate::config::ParentKind::Dummy => ParentRecord::Dummy {},
            crate::config::ParentKind::Existing => continue,
        };
        state.parents.insert(name.clone(), record);
        lines.push(format!("adopted parent {name}: vland made it"));
    }
    lines
}
