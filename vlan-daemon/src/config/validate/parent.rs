//! A network's `parent` in Docker's forms: "eth0" (existing), "eth0.19" (an 802.1Q or 802.1ad
//! sub-interface vland makes), none (an internal network on a dummy vland makes).
use super::names::{MAX_IFNAME_LEN, check_ifname};
use crate::config::errors::Scope;
use crate::config::model::{Parent, ParentKind, VlanProtocol};
use crate::config::schema::RawNetwork;

/// Docker's `parent` forms: "eth0" (existing), "eth0.19" (802.1Q sub-interface), none (internal).
pub fn parent(network: &str, raw: &RawNetwork, s: &mut Scope<'_>) -> Option<Parent> {
    let protocol = match raw.vlan_protocol.as_deref() {
        None | Some("802.1Q") | Some("802.1q") => VlanProtocol::Dot1Q,
        Some("802.1ad") | Some("802.1AD") => VlanProtocol::Dot1Ad,
        Some(other) => {
            s.err("vlan_protocol", format!("`{other}` is not a VLAN protocol: use \"802.1Q\" (the default) or \"802.1ad\""));
            VlanProtocol::Dot1Q
        }
    };
    let Some(name) = raw.parent.as_deref() else {
        if raw.vlan_protocol.is_some() {
            s.err("vlan_protocol", "only a parent of the form \"eth1.19\" has a VLAN protocol");
        }
        return Some(Parent { name: dummy_name(network), kind: ParentKind::Dummy });
    };
    if name == "lo" {
        s.err("parent", "the loopback device cannot be a parent: name a physical or veth interface");
        return None;
    }
    if let Err(msg) = check_ifname(name) {
        s.err("parent", msg);
        return None;
    }
    if !name.contains('.') {
        if raw.vlan_protocol.is_some() {
            s.err("vlan_protocol", format!("{name} is not a VLAN sub-interface: write the parent as \"{name}.VID\""));
        }
        return Some(Parent { name: name.to_string(), kind: ParentKind::Existing });
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() != 2 || parts[0].is_empty() {
        s.err("parent", format!("`{name}`: the required interface name format is name.vlan_id, e.g. \"eth1.19\""));
        return None;
    }
    let vid = match parts[1].parse::<u16>() {
        Ok(v) if (1..=4094).contains(&v) => v,
        _ => {
            s.err("parent", format!("vlan id must be between 1-4094, received: {}", parts[1]));
            return None;
        }
    };
    if parts[0] == "lo" {
        s.err("parent", "the loopback device cannot carry VLANs: name a physical or veth interface");
        return None;
    }
    Some(Parent { name: name.to_string(), kind: ParentKind::Vlan { base: parts[0].to_string(), vid, protocol } })
}

/// The dummy parent of an internal network: readable when the name fits, hashed when not.
pub fn dummy_name(network: &str) -> String {
    let readable = format!("vd-{network}");
    if readable.len() <= MAX_IFNAME_LEN && check_ifname(&readable).is_ok() && !network.contains('.') {
        return readable;
    }
    let hash = crate::fnv::fnv1a64(network.as_bytes());
    format!("vd-{:012x}", hash & 0xffff_ffff_ffff)
}
