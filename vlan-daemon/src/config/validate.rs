//! Semantic checks of a parsed config. Every check pushes an error and carries on, so one run
//! reports everything; nothing here touches the kernel.
use super::errors::ConfigErrors;
use super::model::*;
use super::schema::{RawConfig, RawEndpoint, RawNetwork, RawRoute, RawTrunk};
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

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
    if let Some(addr) = &raw.daemon.metrics_addr
        && addr.parse::<std::net::SocketAddr>().is_err()
    {
        errors.push("daemon.metrics_addr", format!("`{addr}` is not an address:port: write it like \"127.0.0.1:9750\" or \"[::1]:9750\""));
    }
    let trunks = raw.trunks.iter().filter_map(|(name, t)| trunk(name, t, errors).map(|t| (name.clone(), t))).collect();
    Config { daemon: raw.daemon, networks, endpoints, trunks }
}

fn trunk(name: &str, raw: &RawTrunk, errors: &mut ConfigErrors) -> Option<Trunk> {
    let mut s = Scope::new(errors, format!("trunks.{name}"));
    if let Err(msg) = check_ifname(name) {
        s.err("name", msg);
    }
    for (i, vid) in raw.allowed_vlans.iter().enumerate() {
        if !(1..=4094).contains(vid) {
            s.err(&format!("allowed_vlans.{i}"), format!("vlan id must be between 1-4094, received: {vid}"));
        }
    }
    let untagged_drop = match raw.untagged.as_deref() {
        None | Some("pass") => false,
        Some("drop") => true,
        Some(other) => {
            s.err("untagged", format!("`{other}` is not a choice: use \"pass\" (the default) or \"drop\""));
            false
        }
    };
    s.ok().then(|| Trunk { allowed_vlans: raw.allowed_vlans.iter().copied().collect(), untagged_drop })
}

pub fn check_ifname(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_IFNAME_LEN {
        return Err(format!("interface name `{value}` is {} bytes; Linux allows 1 to {MAX_IFNAME_LEN}: use a shorter name", value.len()));
    }
    if value == "." || value == ".." || value.contains(['/', ':']) || value.chars().any(char::is_whitespace) {
        return Err(format!("interface name `{value}` may not be `.`/`..` or contain `/`, `:` or spaces"));
    }
    Ok(())
}

/// Collects errors for one table, then says whether any were added.
struct Scope<'a> {
    errors: &'a mut ConfigErrors,
    prefix: String,
    before: usize,
}

impl<'a> Scope<'a> {
    fn new(errors: &'a mut ConfigErrors, prefix: String) -> Self {
        let before = errors.errors.len();
        Scope { errors, prefix, before }
    }

    fn err(&mut self, key: &str, msg: impl Into<String>) {
        self.errors.push(format!("{}.{key}", self.prefix), msg);
    }

    fn ok(&self) -> bool {
        self.errors.errors.len() == self.before
    }
}

fn network(name: &str, raw: &RawNetwork, errors: &mut ConfigErrors) -> Option<Network> {
    let mut s = Scope::new(errors, format!("networks.{name}"));
    let driver = driver(raw, &mut s);
    let parent = parent(name, raw, &mut s);
    let source_macs = source_macs(raw, driver, &mut s);
    let ipam4 = ipam(raw.subnet.as_deref(), raw.ip_range.as_deref(), raw.gateway.as_deref(), &raw.aux_addresses, false, &mut s);
    let ipam6 = ipam(raw.subnet6.as_deref(), raw.ip_range6.as_deref(), raw.gateway6.as_deref(), &raw.aux_addresses, true, &mut s);
    for (host, text) in &raw.aux_addresses {
        match text.parse::<IpAddr>() {
            Err(_) => s.err(&format!("aux_addresses.{host}"), format!("`{text}` is not an IP address")),
            Ok(a) if (a.is_ipv6() && raw.subnet6.is_none()) || (a.is_ipv4() && raw.subnet.is_none()) => s.err(
                &format!("aux_addresses.{host}"),
                format!("{a} needs a `{}` on this network to be reserved from", if a.is_ipv6() { "subnet6" } else { "subnet" }),
            ),
            Ok(_) => {}
        }
    }
    if let Some(mtu) = raw.mtu
        && !(68..=65535).contains(&mtu)
    {
        s.err("mtu", format!("{mtu} is out of range: use 68 to 65535 (and not above the parent's MTU)"));
    }
    if !s.ok() {
        return None;
    }
    let parent = parent?;
    Some(Network {
        name: name.to_string(),
        driver: driver?,
        internal: raw.internal || parent.kind == ParentKind::Dummy,
        parent,
        ipam4,
        ipam6,
        ipv6_autoconf: raw.ipv6_autoconf,
        spoof_check: raw.spoof_check,
        gratuitous_arp: raw.gratuitous_arp.unwrap_or(true),
        mtu: raw.mtu,
        metric: raw.metric,
        source_macs,
    })
}

fn driver(raw: &RawNetwork, s: &mut Scope<'_>) -> Option<Driver> {
    let mode = raw.mode.as_deref();
    match raw.driver.as_deref() {
        Some("macvlan") => {
            if raw.ipvlan_flag.is_some() {
                s.err("ipvlan_flag", "only ipvlan networks have a flag: remove it or use driver = \"ipvlan\"");
            }
            let m = match mode.unwrap_or("bridge") {
                "bridge" => MacvlanMode::Bridge,
                "vepa" => MacvlanMode::Vepa,
                "private" => MacvlanMode::Private,
                "passthru" => MacvlanMode::Passthru,
                "source" => MacvlanMode::Source,
                other => {
                    s.err(
                        "mode",
                        format!("macvlan mode `{other}` is not valid: use bridge (the default), vepa, private, passthru or source"),
                    );
                    return None;
                }
            };
            Some(Driver::Macvlan(m))
        }
        Some("ipvlan") => {
            let m = match mode.unwrap_or("l2") {
                "l2" => IpvlanMode::L2,
                "l3" => IpvlanMode::L3,
                "l3s" => IpvlanMode::L3s,
                other => {
                    s.err("mode", format!("ipvlan mode `{other}` is not valid: use l2 (the default), l3 or l3s"));
                    return None;
                }
            };
            let f = match raw.ipvlan_flag.as_deref().unwrap_or("bridge") {
                "bridge" => IpvlanFlag::Bridge,
                "private" => IpvlanFlag::Private,
                "vepa" => IpvlanFlag::Vepa,
                other => {
                    s.err("ipvlan_flag", format!("ipvlan flag `{other}` is not valid: use bridge (the default), private or vepa"));
                    return None;
                }
            };
            Some(Driver::Ipvlan(m, f))
        }
        Some(other) => {
            s.err("driver", format!("unknown driver `{other}`: use \"macvlan\" or \"ipvlan\""));
            None
        }
        None => {
            s.err("driver", "missing: set driver = \"macvlan\" or \"ipvlan\"");
            None
        }
    }
}

fn source_macs(raw: &RawNetwork, driver: Option<Driver>, s: &mut Scope<'_>) -> Vec<[u8; 6]> {
    let is_source = driver == Some(Driver::Macvlan(MacvlanMode::Source));
    if is_source && raw.source_macs.is_empty() {
        s.err("source_macs", "mode source needs the MACs to accept: source_macs = [\"02:00:00:00:00:01\"]");
    }
    if !is_source && !raw.source_macs.is_empty() {
        s.err("source_macs", "only macvlan mode \"source\" uses source_macs: remove them or set mode = \"source\"");
    }
    raw.source_macs
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match parse_mac(m) {
            Ok(mac) => Some(mac),
            Err(msg) => {
                s.err(&format!("source_macs.{i}"), msg);
                None
            }
        })
        .collect()
}

/// Docker's `parent` forms: "eth0" (existing), "eth0.19" (802.1Q sub-interface), none (internal).
fn parent(network: &str, raw: &RawNetwork, s: &mut Scope<'_>) -> Option<Parent> {
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

fn ipam(
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

/// What the kernel enforces per parent, said before the kernel says EBUSY or EINVAL.
fn check_parent_sharing(networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) {
    let mut by_parent: BTreeMap<&str, Vec<&Network>> = BTreeMap::new();
    for n in networks.values() {
        by_parent.entry(&n.parent.name).or_default().push(n);
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
            } else if let (Driver::Ipvlan(am, af), Driver::Ipvlan(bm, bf)) = (first.driver, n.driver)
                && (am, af) != (bm, bf)
            {
                errors.push(
                    format!("networks.{}.mode", n.name),
                    format!("all ipvlan children of one parent share one mode and flag; `{}` on {parent} uses {am}/{af}: use the same here or another parent", first.name),
                );
            }
            if n.parent.kind != first.parent.kind {
                errors.push(
                    format!("networks.{}.parent", n.name),
                    format!("`{}` describes parent {parent} differently (vlan protocol)", first.name),
                );
            }
        }
        for n in &nets {
            if n.driver == Driver::Macvlan(MacvlanMode::Passthru) && nets.len() > 1 {
                errors.push(
                    format!("networks.{}.mode", n.name),
                    format!(
                        "cannot use mode passthru: parent {parent} is also used by other networks; passthru needs the parent to itself"
                    ),
                );
            }
        }
        for (i, a) in nets.iter().enumerate() {
            for b in &nets[i + 1..] {
                for (x, y) in [(&a.ipam4, &b.ipam4), (&a.ipam6, &b.ipam6)] {
                    if let (Some(x), Some(y)) = (x, y)
                        && (x.subnet.contains(y.subnet.network()) || y.subnet.contains(x.subnet.network()))
                    {
                        errors.push(
                            format!("networks.{}.subnet", b.name),
                            format!(
                                "{} overlaps {} of network `{}` on the same parent {parent}: use disjoint subnets",
                                y.subnet, x.subnet, a.name
                            ),
                        );
                    }
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
    let mut s = Scope::new(errors, format!("endpoints.{name}"));
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
        (Some(n), None) => {
            if n.is_empty() || n == "." || n == ".." || n.contains('/') || n.len() > 200 {
                s.err("netns", format!("`{n}` is not a usable namespace name: use letters, digits, `-` or `_`"));
                None
            } else {
                Some(NetnsRef::Named(n.clone()))
            }
        }
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

    let mac = raw.mac.as_deref().and_then(|text| match parse_mac(text) {
        Ok(m) => Some(m),
        Err(msg) => {
            s.err("mac", msg);
            None
        }
    });
    if mac.is_some() && net.is_some_and(|n| matches!(n.driver, Driver::Ipvlan(..) | Driver::Macvlan(MacvlanMode::Passthru))) {
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
    Some(Route { to: IpNetwork::new(to.network(), to.prefix()).unwrap_or(to), via, metric: raw.metric })
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
    let mut ips: HashMap<(&str, IpAddr), &str> = HashMap::new();
    let mut ifnames: HashMap<(&NetnsRef, &str), &str> = HashMap::new();
    let mut macs: HashMap<(&str, [u8; 6]), &str> = HashMap::new();
    let mut per_network: HashMap<&str, usize> = HashMap::new();
    for e in endpoints.values() {
        for (key, ip) in [("ip", e.static_ip(false)), ("ip6", e.static_ip(true))] {
            if let Some(ip) = ip
                && let Some(other) = ips.insert((&e.network, ip), &e.name)
            {
                errors.push(
                    format!("endpoints.{}.{key}", e.name),
                    format!("{ip} is already taken by endpoint `{other}`: pick another address"),
                );
            }
        }
        if let Some(other) = ifnames.insert((&e.netns, &e.ifname), &e.name) {
            errors.push(
                format!("endpoints.{}.ifname", e.name),
                format!("endpoint `{other}` already uses {} in namespace {}: set a different ifname", e.ifname, e.netns),
            );
        }
        if let (Some(mac), Some(net)) = (e.mac, networks.get(&e.network))
            && let Some(other) = macs.insert((&net.parent.name, mac), &e.name)
        {
            errors.push(
                format!("endpoints.{}.mac", e.name),
                format!("endpoint `{other}` already uses this MAC on parent {}: MACs must be unique per parent", net.parent.name),
            );
        }
        *per_network.entry(&e.network).or_default() += 1;
    }
    for (net, count) in per_network {
        if let Some(n) = networks.get(net)
            && n.driver == Driver::Macvlan(MacvlanMode::Passthru)
            && count > 1
        {
            errors.push(
                format!("networks.{net}.mode"),
                format!("passthru gives the parent's MAC to one child only, but {count} endpoints join `{net}`: keep one or use bridge"),
            );
        }
    }
}
