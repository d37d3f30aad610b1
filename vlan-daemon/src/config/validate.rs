//! Semantic checks of a parsed config. Every check pushes an error and carries on, so one run
//! reports everything; nothing here touches the kernel.
use super::errors::ConfigErrors;
use super::model::*;
use super::schema::{RawConfig, RawEndpoint, RawNetwork};
use ipnetwork::Ipv4Network;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// The kernel's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

pub fn validate(raw: RawConfig, errors: &mut ConfigErrors) -> Config {
    let mut networks = BTreeMap::new();
    for (name, net) in &raw.networks {
        if let Some(n) = network(name, net, errors) {
            networks.insert(name.clone(), n);
        }
    }
    check_parent_sharing(&networks, errors);
    let mut endpoints = BTreeMap::new();
    for (name, ep) in &raw.endpoints {
        if let Some(e) = endpoint(name, ep, &raw.networks, &networks, errors) {
            endpoints.insert(name.clone(), e);
        }
    }
    check_endpoint_uniqueness(&endpoints, &networks, errors);
    Config { daemon: raw.daemon, networks, endpoints }
}

pub fn check_ifname(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "interface name `{value}` is {} bytes; Linux allows 1 to {MAX_IFNAME_LEN}: use a shorter name",
            value.len()
        ));
    }
    if value == "." || value == ".." || value.contains(['/', ':']) || value.chars().any(char::is_whitespace) {
        return Err(format!("interface name `{value}` may not be `.`/`..` or contain `/`, `:` or spaces"));
    }
    Ok(())
}

fn network(name: &str, raw: &RawNetwork, errors: &mut ConfigErrors) -> Option<Network> {
    let key = |k: &str| format!("networks.{name}.{k}");
    let before = errors.errors.len();

    let driver = match raw.driver.as_deref() {
        Some("macvlan") => Some(macvlan_mode(raw.mode.as_deref()).map(Driver::Macvlan)),
        Some("ipvlan") => Some(ipvlan_mode(raw.mode.as_deref()).map(Driver::Ipvlan)),
        Some(other) => {
            errors.push(key("driver"), format!("unknown driver `{other}`: use \"macvlan\" or \"ipvlan\""));
            None
        }
        None => {
            errors.push(key("driver"), "missing: set driver = \"macvlan\" or \"ipvlan\"");
            None
        }
    };
    let driver = match driver {
        Some(Ok(d)) => Some(d),
        Some(Err(msg)) => {
            errors.push(key("mode"), msg);
            None
        }
        None => None,
    };

    let parent = match raw.parent.as_deref() {
        None => {
            errors.push(key("parent"), "missing: set the parent interface, e.g. parent = \"eth0\" (networks without a parent are not supported yet)");
            None
        }
        Some("lo") => {
            errors.push(key("parent"), "the loopback device cannot be a parent: name a physical or veth interface");
            None
        }
        Some(p) if p.contains('.') => {
            errors.push(key("parent"), format!("`{p}` names an 802.1Q sub-interface, which this version cannot create yet: create it yourself and name it without a dot"));
            None
        }
        Some(p) => match check_ifname(p) {
            Ok(()) => Some(p.to_string()),
            Err(msg) => {
                errors.push(key("parent"), msg);
                None
            }
        },
    };

    let ipam = ipam(name, raw, errors);
    if let Some(mtu) = raw.mtu
        && !(68..=65535).contains(&mtu)
    {
        errors.push(key("mtu"), format!("{mtu} is out of range: use 68 to 65535 (and not above the parent's MTU)"));
    }

    if errors.errors.len() != before {
        return None;
    }
    Some(Network {
        name: name.to_string(),
        driver: driver?,
        parent: parent?,
        ipam,
        internal: raw.internal,
        mtu: raw.mtu,
        metric: raw.metric,
    })
}

fn macvlan_mode(mode: Option<&str>) -> Result<MacvlanMode, String> {
    Ok(match mode.unwrap_or("bridge") {
        "bridge" => MacvlanMode::Bridge,
        "vepa" => MacvlanMode::Vepa,
        "private" => MacvlanMode::Private,
        "passthru" => MacvlanMode::Passthru,
        other => {
            return Err(format!(
                "macvlan mode `{other}` is not valid: use bridge (the default), vepa, private or passthru"
            ));
        }
    })
}

fn ipvlan_mode(mode: Option<&str>) -> Result<IpvlanMode, String> {
    Ok(match mode.unwrap_or("l2") {
        "l2" => IpvlanMode::L2,
        "l3" => IpvlanMode::L3,
        "l3s" => IpvlanMode::L3s,
        other => return Err(format!("ipvlan mode `{other}` is not valid: use l2 (the default), l3 or l3s")),
    })
}

fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

fn ipam(name: &str, raw: &RawNetwork, errors: &mut ConfigErrors) -> Option<Ipam> {
    let key = |k: &str| format!("networks.{name}.{k}");
    let Some(subnet_text) = raw.subnet.as_deref() else {
        for (k, present) in [("ip_range", raw.ip_range.is_some()), ("gateway", raw.gateway.is_some()), ("aux_addresses", !raw.aux_addresses.is_empty())] {
            if present {
                errors.push(key(k), "needs a `subnet` on the same network: add subnet = \"A.B.C.0/NN\"");
            }
        }
        return None;
    };
    let subnet: Ipv4Network = match subnet_text.parse() {
        Ok(s) => s,
        Err(_) => {
            errors.push(key("subnet"), format!("`{subnet_text}` is not an IPv4 CIDR: write it like \"172.16.10.0/24\""));
            return None;
        }
    };
    if subnet.ip() != subnet.network() {
        errors.push(key("subnet"), format!("invalid subnet {subnet_text}: it should be {}/{}", subnet.network(), subnet.prefix()));
    }
    if subnet.prefix() > 30 {
        errors.push(key("subnet"), format!("{subnet_text} is too small to allocate from: use a /30 or larger"));
    }
    let subnet = Ipv4Network::new(subnet.network(), subnet.prefix()).ok()?;

    let range = match raw.ip_range.as_deref() {
        None => subnet,
        Some(text) => match text.parse::<Ipv4Network>() {
            Err(_) => {
                errors.push(key("ip_range"), format!("`{text}` is not an IPv4 CIDR: write it like \"172.16.10.0/25\""));
                subnet
            }
            Ok(r) => {
                if r.ip() != r.network() {
                    errors.push(key("ip_range"), format!("invalid ip_range {text}: it should be {}/{}", r.network(), r.prefix()));
                }
                if r.prefix() < subnet.prefix() || !subnet.contains(r.network()) {
                    errors.push(key("ip_range"), format!("{text} is not inside subnet {subnet}: pick a range within it, no bigger than it"));
                }
                Ipv4Network::new(r.network(), r.prefix()).unwrap_or(subnet)
            }
        },
    };

    let mut in_subnet = |k: String, what: &str, text: &str| -> Option<Ipv4Addr> {
        let Some(addr) = parse_v4(text) else {
            errors.push(k, format!("`{text}` is not an IPv4 address"));
            return None;
        };
        if !subnet.contains(addr) {
            errors.push(k, format!("{what} {addr} is outside subnet {subnet}: use an address inside it"));
        } else if addr == subnet.network() || addr == subnet.broadcast() {
            errors.push(k, format!("{what} {addr} is the subnet's network or broadcast address: use a host address"));
        }
        Some(addr)
    };
    let gateway = raw.gateway.as_deref().and_then(|g| in_subnet(key("gateway"), "gateway", g));
    let mut reserved = BTreeMap::new();
    for (host, text) in &raw.aux_addresses {
        if let Some(a) = in_subnet(format!("networks.{name}.aux_addresses.{host}"), "aux address", text) {
            reserved.insert(host.clone(), a);
        }
    }
    Some(Ipam { subnet, range, gateway, reserved })
}

/// What the kernel enforces per parent, said before the kernel says EBUSY or EINVAL.
fn check_parent_sharing(networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) {
    let mut by_parent: BTreeMap<&str, Vec<&Network>> = BTreeMap::new();
    for n in networks.values() {
        by_parent.entry(&n.parent).or_default().push(n);
    }
    for (parent, nets) in by_parent {
        let first = nets[0];
        for n in &nets[1..] {
            if n.driver.kind() != first.driver.kind() {
                errors.push(
                    format!("networks.{}.driver", n.name),
                    format!(
                        "parent {parent} already carries {} network `{}`; the kernel cannot put macvlan and ipvlan children on one parent: use another parent",
                        first.driver.kind(),
                        first.name
                    ),
                );
            } else if let (Driver::Ipvlan(a), Driver::Ipvlan(b)) = (first.driver, n.driver)
                && a != b
            {
                errors.push(
                    format!("networks.{}.mode", n.name),
                    format!("all ipvlan children of one parent share one mode; `{}` on {parent} uses {a}: use {a} here too or another parent", first.name),
                );
            }
        }
        for n in &nets {
            if n.driver == Driver::Macvlan(MacvlanMode::Passthru) && nets.len() > 1 {
                errors.push(
                    format!("networks.{}.mode", n.name),
                    format!("cannot use mode passthru: parent {parent} is also used by other networks; passthru needs the parent to itself"),
                );
            }
        }
        for (i, a) in nets.iter().enumerate() {
            for b in &nets[i + 1..] {
                if let (Some(x), Some(y)) = (&a.ipam, &b.ipam)
                    && (x.subnet.contains(y.subnet.network()) || y.subnet.contains(x.subnet.network()))
                {
                    errors.push(
                        format!("networks.{}.subnet", b.name),
                        format!("{} overlaps {} of network `{}` on the same parent {parent}: use disjoint subnets", y.subnet, x.subnet, a.name),
                    );
                }
            }
        }
    }
}

fn endpoint(
    name: &str,
    raw: &RawEndpoint,
    raw_networks: &BTreeMap<String, RawNetwork>,
    networks: &BTreeMap<String, Network>,
    errors: &mut ConfigErrors,
) -> Option<Endpoint> {
    let key = |k: &str| format!("endpoints.{name}.{k}");
    let before = errors.errors.len();
    let network = match raw.network.as_deref() {
        None => {
            errors.push(key("network"), "missing: name the network this endpoint joins");
            None
        }
        Some(n) if !raw_networks.contains_key(n) => {
            errors.push(key("network"), format!("no network `{n}` is defined: add [networks.{n}] or fix the name"));
            None
        }
        Some(n) => Some(n),
    };
    let net = network.and_then(|n| networks.get(n));

    let netns = match (&raw.netns, &raw.netns_path) {
        (Some(_), Some(_)) => {
            errors.push(key("netns"), "set either `netns` or `netns_path`, not both");
            None
        }
        (None, None) => {
            errors.push(key("netns"), "missing: set netns = \"NAME\" (under /run/netns) or netns_path = \"/proc/PID/ns/net\"");
            None
        }
        (Some(n), None) => {
            if n.is_empty() || n == "." || n == ".." || n.contains('/') || n.len() > 200 {
                errors.push(key("netns"), format!("`{n}` is not a usable namespace name: use letters, digits, `-` or `_`"));
                None
            } else {
                Some(NetnsRef::Named(n.clone()))
            }
        }
        (None, Some(p)) => {
            if !p.is_absolute() {
                errors.push(key("netns_path"), format!("{} is relative: give an absolute path such as /proc/PID/ns/net", p.display()));
                None
            } else {
                Some(NetnsRef::Path(p.clone()))
            }
        }
    };

    let ifname = raw.ifname.clone().unwrap_or_else(|| "eth0".to_string());
    if let Err(msg) = check_ifname(&ifname) {
        errors.push(key("ifname"), msg);
    }

    let ip = raw.ip.as_deref().and_then(|text| {
        let Some(addr) = parse_v4(text) else {
            errors.push(key("ip"), format!("`{text}` is not an IPv4 address"));
            return None;
        };
        if let Some(net) = net {
            check_static_ip(addr, net, &key("ip"), errors);
        }
        Some(addr)
    });

    let mac = raw.mac.as_deref().and_then(|text| match parse_mac(text) {
        Ok(m) => Some(m),
        Err(msg) => {
            errors.push(key("mac"), msg);
            None
        }
    });

    if errors.errors.len() != before {
        return None;
    }
    Some(Endpoint { name: name.to_string(), network: network?.to_string(), netns: netns?, ip, mac, ifname })
}

fn check_static_ip(addr: Ipv4Addr, net: &Network, key: &str, errors: &mut ConfigErrors) {
    let Some(ipam) = &net.ipam else {
        errors.push(key, format!("network `{}` has no subnet, so it cannot hold a static ip: add a subnet to it", net.name));
        return;
    };
    if !ipam.subnet.contains(addr) {
        errors.push(key, format!("{addr} is outside subnet {} of network `{}`: use an address inside it", ipam.subnet, net.name));
    } else if addr == ipam.subnet.network() || addr == ipam.subnet.broadcast() {
        errors.push(key, format!("{addr} is the network or broadcast address of {}: use a host address", ipam.subnet));
    } else if Some(addr) == ipam.gateway {
        errors.push(key, format!("{addr} is the gateway of network `{}`: pick another address", net.name));
    } else if let Some((host, _)) = ipam.reserved.iter().find(|(_, a)| **a == addr) {
        errors.push(key, format!("{addr} is reserved as aux address `{host}` of network `{}`: pick another address", net.name));
    }
}

pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("`{text}` is not a MAC address: write six hex bytes like \"02:42:ac:10:0a:05\"");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("{text} is a multicast MAC: the first byte must be even (e.g. 02:...)"));
    }
    if mac == [0; 6] {
        return Err(format!("{text} is the all-zero MAC: use a real unicast address"));
    }
    Ok(mac)
}

fn check_endpoint_uniqueness(endpoints: &BTreeMap<String, Endpoint>, networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) {
    let mut ips: HashMap<(&str, Ipv4Addr), &str> = HashMap::new();
    let mut ifnames: HashMap<(&NetnsRef, &str), &str> = HashMap::new();
    let mut per_network: HashMap<&str, usize> = HashMap::new();
    for e in endpoints.values() {
        if let Some(ip) = e.ip
            && let Some(other) = ips.insert((&e.network, ip), &e.name)
        {
            errors.push(format!("endpoints.{}.ip", e.name), format!("{ip} is already taken by endpoint `{other}`: pick another address"));
        }
        if let Some(other) = ifnames.insert((&e.netns, &e.ifname), &e.name) {
            errors.push(
                format!("endpoints.{}.ifname", e.name),
                format!("endpoint `{other}` already uses {} in namespace {}: set a different ifname", e.ifname, e.netns),
            );
        }
        *per_network.entry(&e.network).or_default() += 1;
    }
    for (net, count) in per_network {
        if let Some(n) = networks.get(net)
            && n.driver == Driver::Macvlan(MacvlanMode::Passthru)
            && count > 1
        {
            errors.push(format!("networks.{net}.mode"), format!("passthru gives the parent's MAC to one child only, but {count} endpoints join `{net}`: keep one or use bridge"));
        }
    }
}
