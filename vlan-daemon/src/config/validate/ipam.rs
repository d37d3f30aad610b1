//! A network's addressing of one family: subnet, range, gateway and reserved (aux) addresses.
use crate::config::errors::Scope;
use crate::config::model::Ipam;
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub fn ipam(
    subnet: Option<&str>,
    range: Option<&str>,
    gateway: Option<&str>,
    aux: &BTreeMap<String, String>,
    v6: bool,
    s: &mut Scope<'_>,
) -> Option<Ipam> {
    let sfx = if v6 { "6" } else { "" };
    let family = if v6 { "IPv6" } else { "IPv4" };
    let example = if v6 { "fd00:10::/64" } else { "172.16.10.0/24" };
    let Some(subnet_text) = subnet else {
        for (k, present) in [("ip_range", range.is_some()), ("gateway", gateway.is_some())] {
            if present {
                s.err(&format!("{k}{sfx}"), format!("needs a `subnet{sfx}` on the same network: add subnet{sfx} = \"{example}\""));
            }
        }
        return None;
    };
    let parse_net = |text: &str| text.parse::<IpNetwork>().ok().filter(|n| n.is_ipv6() == v6);
    let Some(net) = parse_net(subnet_text) else {
        s.err(&format!("subnet{sfx}"), format!("`{subnet_text}` is not an {family} CIDR: write it like \"{example}\""));
        return None;
    };
    let canonical = IpNetwork::new(net.network(), net.prefix()).ok()?;
    if net.ip() != net.network() {
        s.err(&format!("subnet{sfx}"), format!("invalid subnet {subnet_text}: it should be {canonical}"));
    }
    let max_prefix = if v6 { 126 } else { 30 };
    if net.prefix() > max_prefix {
        s.err(&format!("subnet{sfx}"), format!("{subnet_text} is too small to allocate from: use a /{max_prefix} or larger"));
    }
    if let Some(what) = unusable_kind(&canonical) {
        s.err(
            &format!("subnet{sfx}"),
            format!("{canonical} is a {what} range, which no endpoint can hold: use a unicast subnet like \"{example}\""),
        );
    }
    let subnet = canonical;

    let range = match range {
        None => subnet,
        Some(text) => match parse_net(text) {
            None => {
                s.err(&format!("ip_range{sfx}"), format!("`{text}` is not an {family} CIDR inside {subnet}"));
                subnet
            }
            Some(r) => {
                let canonical_r = IpNetwork::new(r.network(), r.prefix()).unwrap_or(subnet);
                if r.ip() != r.network() {
                    s.err(&format!("ip_range{sfx}"), format!("invalid ip_range{sfx} {text}: it should be {canonical_r}"));
                }
                if r.prefix() < subnet.prefix() || !subnet.contains(r.network()) {
                    s.err(
                        &format!("ip_range{sfx}"),
                        format!("{text} is not inside subnet{sfx} {subnet}: pick a range within it, no bigger than it"),
                    );
                }
                canonical_r
            }
        },
    };

    let host_address = |s: &mut Scope<'_>, key: String, what: &str, text: &str| -> Option<IpAddr> {
        let addr = text.parse::<IpAddr>().ok().filter(|a| a.is_ipv6() == v6)?;
        if !subnet.contains(addr) {
            s.err(&key, format!("{what} {addr} is outside subnet{sfx} {subnet}: use an address inside it"));
        } else if is_network_or_broadcast(&subnet, addr) {
            s.err(&key, format!("{what} {addr} is the subnet's network or broadcast address: use a host address"));
        }
        Some(addr)
    };
    let gateway = gateway.and_then(|g| {
        let parsed = host_address(s, format!("gateway{sfx}"), "gateway", g);
        if parsed.is_none() {
            s.err(&format!("gateway{sfx}"), format!("`{g}` is not an {family} address"));
        }
        parsed
    });
    let mut reserved = BTreeMap::new();
    for (host, text) in aux {
        if let Some(a) = host_address(s, format!("aux_addresses.{host}"), "aux address", text) {
            reserved.insert(host.clone(), a);
        }
    }
    Some(Ipam { subnet, range, gateway, reserved })
}

pub fn is_network_or_broadcast(subnet: &IpNetwork, addr: IpAddr) -> bool {
    match subnet {
        IpNetwork::V4(n) => addr == IpAddr::V4(n.network()) || addr == IpAddr::V4(n.broadcast()),
        // IPv6 has no broadcast; the subnet-router anycast address is the network address.
        IpNetwork::V6(n) => addr == IpAddr::V6(n.network()),
    }
}

/// What makes a subnet unusable for endpoints, if anything: multicast, loopback, unspecified.
fn unusable_kind(subnet: &IpNetwork) -> Option<&'static str> {
    let (ip, prefix) = (subnet.network(), subnet.prefix());
    match ip {
        IpAddr::V4(a) if a.is_multicast() => Some("multicast"),
        IpAddr::V4(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V4(a) if a.octets()[0] == 0 => Some("\"this network\" (0.0.0.0/8)"),
        IpAddr::V6(a) if a.is_multicast() => Some("multicast"),
        IpAddr::V6(a) if a.is_loopback() || (a.is_unspecified() && prefix == 128) => Some("loopback or unspecified"),
        _ => None,
    }
}
