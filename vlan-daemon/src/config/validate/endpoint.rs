//! One `[endpoints.NAME]` table: its network, namespace, interface name, addresses, MAC, routes.
use super::ipam::is_network_or_broadcast;
use super::names::{check_ifname, check_name};
use crate::config::errors::{ConfigErrors, Scope};
use crate::config::model::{Endpoint, NetnsRef, Network, Route};
use crate::config::schema::{RawEndpoint, RawNetwork, RawRoute};
use crate::mac::Mac;
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub fn endpoint(
    name: &str,
    raw: &RawEndpoint,
    raw_networks: &BTreeMap<String, RawNetwork>,
    networks: &BTreeMap<String, Network>,
    errors: &mut ConfigErrors,
) -> Option<Endpoint> {
    let mut s = Scope::new(errors, format!("endpoints.{name}"));
    if let Err(msg) = check_name(name) {
        s.err("name", msg);
    }
    let network = match raw.network.as_deref() {
        None => {
            s.err("network", "missing: name the network this endpoint joins");
            None
        }
        Some(n) if !raw_networks.contains_key(n) => {
            s.err("network", format!("no network `{n}` is defined: add [networks.{n}] or fix the name"));
            None
        }
        Some(n) => Some(n),
    };
    let net = network.and_then(|n| networks.get(n));

    let netns = match (&raw.netns, &raw.netns_path) {
        (Some(_), Some(_)) => {
            s.err("netns", "set either `netns` or `netns_path`, not both");
            None
        }
        (None, None) => {
            s.err("netns", "missing: set netns = \"NAME\" (under /run/netns) or netns_path = \"/proc/PID/ns/net\"");
            None
        }
        (Some(n), None) => match check_name(n) {
            Ok(()) => Some(NetnsRef::Named(n.clone())),
            Err(msg) => {
                s.err("netns", msg);
                None
            }
        },
        (None, Some(p)) => {
            if !p.is_absolute() {
                s.err("netns_path", format!("{} is relative: give an absolute path such as /proc/PID/ns/net", p.display()));
                None
            } else {
                Some(NetnsRef::Path(p.clone()))
            }
        }
    };

    let ifname = raw.ifname.clone().unwrap_or_else(|| "eth0".to_string());
    if let Err(msg) = check_ifname(&ifname) {
        s.err("ifname", msg);
    } else if ifname == "lo" {
        s.err("ifname", "every namespace has its own loopback device `lo`: name the child otherwise, e.g. \"eth0\"");
    }

    let mut static_ip = |key: &str, text: Option<&str>, v6: bool| -> Option<IpAddr> {
        let text = text?;
        let Some(addr) = text.parse::<IpAddr>().ok().filter(|a| a.is_ipv6() == v6) else {
            s.err(key, format!("`{text}` is not an {} address", if v6 { "IPv6" } else { "IPv4" }));
            return None;
        };
        if let Some(net) = net {
            check_static_ip(addr, net, v6, key, &mut s);
        }
        Some(addr)
    };
    let ip = static_ip("ip", raw.ip.as_deref(), false);
    let ip6 = static_ip("ip6", raw.ip6.as_deref(), true);

    let mac = raw.mac.as_deref().and_then(|text| text.parse::<Mac>().map_err(|msg| s.err("mac", msg)).ok());
    if mac.is_some() && net.is_some_and(|n| n.driver.takes_parent_mac()) {
        s.err("mac", "this network's children take the parent's MAC (ipvlan, macvlan passthru): remove `mac`");
    }
    let routes: Vec<Route> = raw.routes.iter().enumerate().filter_map(|(i, r)| route(i, r, net, &mut s)).collect();

    if !s.ok() {
        return None;
    }
    Some(Endpoint {
        name: name.to_string(),
        network: network?.to_string(),
        netns: netns?,
        ip: ip.map(|a| match a {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => unreachable!(),
        }),
        ip6: ip6.map(|a| match a {
            IpAddr::V6(v6) => v6,
            IpAddr::V4(_) => unreachable!(),
        }),
        mac,
        ifname,
        routes,
        staged: raw.staged,
    })
}

fn route(i: usize, raw: &RawRoute, net: Option<&Network>, s: &mut Scope<'_>) -> Option<Route> {
    let key = format!("routes.{i}");
    let Some(to_text) = raw.to.as_deref() else {
        s.err(&key, "a route needs `to`, e.g. { to = \"10.20.0.0/16\", via = \"172.16.10.254\" }");
        return None;
    };
    let Ok(to) = to_text.parse::<IpNetwork>() else {
        s.err(&format!("{key}.to"), format!("`{to_text}` is not a CIDR"));
        return None;
    };
    let canonical = IpNetwork::new(to.network(), to.prefix()).unwrap_or(to);
    if to.ip() != to.network() {
        s.err(&format!("{key}.to"), format!("invalid route destination {to_text}: it should be {canonical}"));
    }
    // The namespace's default route comes from the network (its gateway, or `dev` for ipvlan
    // l3/l3s); a second one here would silently replace it.
    if let Some(net) = net
        && to.prefix() == 0
        && net.ipam(to.is_ipv6()).is_some()
        && (net.default_gateway(to.is_ipv6()).is_some() || (!net.internal && net.driver.routes_by_device()))
    {
        s.err(
            &format!("{key}.to"),
            format!("network `{}` already gives this endpoint its default route: remove this route, or the network's gateway", net.name),
        );
    }
    let via = match raw.via.as_deref() {
        None => None,
        Some(text) => match text.parse::<IpAddr>() {
            Ok(v) if v.is_ipv6() == to.is_ipv6() => Some(v),
            _ => {
                s.err(&format!("{key}.via"), format!("`{text}` is not an address of the same family as {to}"));
                return None;
            }
        },
    };
    // The kernel wants a gateway it can reach on the link (else ENETUNREACH).
    if let (Some(v), Some(net)) = (via, net)
        && !net.ipam(v.is_ipv6()).is_some_and(|i| i.subnet.contains(v))
    {
        s.err(&format!("{key}.via"), format!("{v} is not inside a subnet of network `{}`: use a gateway on the endpoint's link", net.name));
    }
    Some(Route { to: canonical, via, metric: raw.metric })
}

fn check_static_ip(addr: IpAddr, net: &Network, v6: bool, key: &str, s: &mut Scope<'_>) {
    let sfx = if v6 { "6" } else { "" };
    let Some(ipam) = net.ipam(v6) else {
        s.err(
            key,
            format!("network `{}` has no subnet{sfx}, so it cannot hold a static address of this family: add subnet{sfx} to it", net.name),
        );
        return;
    };
    if !ipam.subnet.contains(addr) {
        s.err(key, format!("{addr} is outside subnet{sfx} {} of network `{}`: use an address inside it", ipam.subnet, net.name));
    } else if is_network_or_broadcast(&ipam.subnet, addr) {
        s.err(key, format!("{addr} is the network or broadcast address of {}: use a host address", ipam.subnet));
    } else if Some(addr) == ipam.gateway {
        s.err(key, format!("{addr} is the gateway of network `{}`: pick another address", net.name));
    } else if let Some((host, _)) = ipam.reserved.iter().find(|(_, a)| **a == addr) {
        s.err(key, format!("{addr} is reserved as aux address `{host}` of network `{}`: pick another address", net.name));
    }
}
