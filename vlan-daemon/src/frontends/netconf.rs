//! A CNI network config turned into vland's tables: `"network": "lan"` joins a network of the
//! config file; otherwise the network is defined inline, with vland's own keys or with the
//! reference macvlan/ipvlan plugins' keys (`master`, `mode`, `mtu`, `mac`, and a `host-local`
//! shaped `ipam`), so a conflist written for those plugins works with `type` changed to `vland`.
use crate::config::{RawNetwork, RawRoute, network_keys};
use crate::ipam::{from_u128, to_u128};
use ipnetwork::IpNetwork;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What one network config asks for.
#[derive(Debug, Default, PartialEq)]
pub struct NetConf {
    /// The config's `name`.
    pub name: String,
    /// `network`: a network of the daemon's config file.
    pub network: Option<String>,
    /// The network defined inline, when there is no `network`.
    pub inline: Option<RawNetwork>,
    /// Routes every attachment gets (host-local's `ipam.routes`, other than the default).
    pub routes: Vec<RawRoute>,
    /// The reference macvlan plugin's static `mac`.
    pub mac: Option<String>,
}

/// Keys the CNI spec (or a runtime) puts in every config; not the plugin's business.
const SPEC_KEYS: &[&str] =
    &["cniVersion", "name", "type", "args", "dns", "capabilities", "runtimeConfig", "prevResult", "socket", "ipMasq"];
/// The reference plugins' keys vland maps.
const REFERENCE_KEYS: &[&str] = &["master", "ipam", "mac", "linkInContainer"];

/// At most this many addresses are reserved to turn a rangeStart..rangeEnd into a CIDR range.
const MAX_RANGE_RESERVATIONS: u128 = 1024;

/// Reads the network config; every problem is listed (CNI error 7, invalid network config).
pub fn parse(conf: &Map<String, Value>) -> Result<NetConf, Vec<String>> {
    let mut errors = Vec::new();
    for key in conf.keys() {
        let known = SPEC_KEYS.contains(&key.as_str())
            || network_keys().contains(&key.as_str())
            || REFERENCE_KEYS.contains(&key.as_str())
            || key == "network"
            || key.starts_with("cni.dev/");
        if !known {
            errors.push(format!("unknown key `{key}`: vland takes `network`, its own network keys or the macvlan/ipvlan plugins' keys"));
        }
    }
    let name = match conf.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => {
            errors.push("`name` is missing: every CNI network config has one".into());
            String::new()
        }
    };
    let mut out = NetConf { name, ..NetConf::default() };
    if let Some(v) = conf.get("network") {
        match v.as_str() {
            Some(n) => out.network = Some(n.to_string()),
            None => errors.push("`network` must be a string: the name of a network in vland's config".into()),
        }
        let defines: Vec<&str> =
            network_keys().iter().chain(["master", "ipam"].iter()).copied().filter(|k| conf.contains_key(*k)).collect();
        if !defines.is_empty() {
            errors.push(format!(
                "`network` joins a network of vland's config, so {} cannot be given here: change that network in the config instead",
                defines.join(", ")
            ));
        }
    } else {
        out.inline = Some(inline(conf, &mut out.routes, &mut errors));
    }
    match conf.get("mac") {
        None => {}
        Some(Value::String(m)) => out.mac = Some(m.clone()),
        Some(_) => errors.push("`mac` must be a string such as \"02:00:00:00:00:01\"".into()),
    }
    if conf.get("linkInContainer").and_then(Value::as_bool) == Some(true) {
        errors.push("`linkInContainer` is not supported: vland's parents live in its own namespace".into());
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn string(conf: &Map<String, Value>, key: &str, errors: &mut Vec<String>) -> Option<String> {
    match conf.get(key)? {
        Value::String(s) => Some(s.clone()),
        other => {
            errors.push(format!("`{key}` must be a string, not {other}"));
            None
        }
    }
}

fn number(conf: &Map<String, Value>, key: &str, errors: &mut Vec<String>) -> Option<u32> {
    let v = conf.get(key)?;
    match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Some(n),
        None => {
            errors.push(format!("`{key}` must be a whole number, not {v}"));
            None
        }
    }
}

fn boolean(conf: &Map<String, Value>, key: &str, errors: &mut Vec<String>) -> Option<bool> {
    let v = conf.get(key)?;
    match v.as_bool() {
        Some(b) => Some(b),
        None => {
            errors.push(format!("`{key}` must be true or false, not {v}"));
            None
        }
    }
}

/// An inline network: vland's keys, with `master` for `parent` and a host-local `ipam`.
fn inline(conf: &Map<String, Value>, routes: &mut Vec<RawRoute>, errors: &mut Vec<String>) -> RawNetwork {
    let s = |key: &str, errors: &mut Vec<String>| string(conf, key, errors);
    let mut net = RawNetwork {
        driver: s("driver", errors),
        parent: s("parent", errors),
        mode: s("mode", errors),
        ipvlan_flag: s("ipvlan_flag", errors),
        vlan_protocol: s("vlan_protocol", errors),
        subnet: s("subnet", errors),
        ip_range: s("ip_range", errors),
        gateway: s("gateway", errors),
        subnet6: s("subnet6", errors),
        ip_range6: s("ip_range6", errors),
        gateway6: s("gateway6", errors),
        internal: boolean(conf, "internal", errors).unwrap_or(false),
        ipv6_autoconf: boolean(conf, "ipv6_autoconf", errors).unwrap_or(false),
        spoof_check: boolean(conf, "spoof_check", errors).unwrap_or(false),
        gratuitous_arp: boolean(conf, "gratuitous_arp", errors),
        host_access: boolean(conf, "host_access", errors).unwrap_or(false),
        host_address: s("host_address", errors),
        host_address6: s("host_address6", errors),
        mtu: number(conf, "mtu", errors),
        metric: number(conf, "metric", errors),
        ..RawNetwork::default()
    };
    for (key, target) in [("source_macs", &mut net.source_macs)] {
        if let Some(v) = conf.get(key) {
            match serde_json::from_value::<Vec<String>>(v.clone()) {
                Ok(list) => *target = list,
                Err(_) => errors.push(format!("`{key}` must be a list of strings")),
            }
        }
    }
    if let Some(v) = conf.get("aux_addresses") {
        match serde_json::from_value::<BTreeMap<String, String>>(v.clone()) {
            Ok(map) => net.aux_addresses = map,
            Err(_) => errors.push("`aux_addresses` must be an object of names to addresses".into()),
        }
    }
    if let Some(master) = s("master", errors) {
        if net.parent.is_some() {
            errors.push("give either `parent` (vland) or `master` (the reference plugins), not both".into());
        }
        net.parent = Some(master);
    }
    // The reference plugins pick the driver by their `type`; here the mode tells it (ipvlan's
    // l2/l3/l3s), and macvlan otherwise.
    if net.driver.is_none() {
        let ipvlan = matches!(net.mode.as_deref(), Some("l2" | "l3" | "l3s"));
        net.driver = Some(if ipvlan { "ipvlan" } else { "macvlan" }.into());
    }
    match conf.get("ipam") {
        None => {}
        Some(Value::Object(ipam)) => {
            let own: Vec<&str> = ["subnet", "ip_range", "gateway", "subnet6", "ip_range6", "gateway6"]
                .into_iter()
                .filter(|k| conf.contains_key(*k))
                .collect();
            if !own.is_empty() {
                errors.push(format!("give the addressing either as `ipam` or as {}, not both", own.join(", ")));
            }
            host_local(ipam, &mut net, routes, errors);
        }
        Some(other) => errors.push(format!("`ipam` must be an object, not {other}")),
    }
    net
}

/// One range of a host-local `ipam`.
struct Range {
    subnet: IpNetwork,
    start: Option<IpAddr>,
    end: Option<IpAddr>,
    gateway: Option<IpAddr>,
}

/// A host-local shaped `ipam`: `subnet`/`rangeStart`/`rangeEnd`/`gateway` or `ranges` (one
/// range set per family), and `routes`. host-local's gateway (default: the subnet's first
/// address) is never allocated; it becomes the default route only when `routes` has one.
fn host_local(ipam: &Map<String, Value>, net: &mut RawNetwork, routes: &mut Vec<RawRoute>, errors: &mut Vec<String>) {
    const IPAM_KEYS: &[&str] = &["type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes", "dataDir", "resolvConf"];
    for key in ipam.keys().filter(|k| !IPAM_KEYS.contains(&k.as_str())) {
        errors.push(format!("unknown key `ipam.{key}`: vland reads host-local's subnet, rangeStart, rangeEnd, gateway, ranges and routes"));
    }
    if let Some(t) = ipam.get("type").and_then(Value::as_str)
        && t != "host-local"
    {
        errors.push(format!("ipam type `{t}`: vland allocates addresses itself, from an ipam of host-local's shape"));
    }
    let mut ranges = Vec::new();
    if ipam.contains_key("subnet") {
        ranges.extend(range(ipam, "ipam", errors));
    }
    match ipam.get("ranges") {
        None => {}
        Some(Value::Array(sets)) => {
            for (i, set) in sets.iter().enumerate() {
                match set.as_array().map(Vec::as_slice) {
                    Some([one]) => match one.as_object() {
                        Some(r) => ranges.extend(range(r, &format!("ipam.ranges[{i}][0]"), errors)),
                        None => errors.push(format!("ipam.ranges[{i}][0] must be an object")),
                    },
                    _ => errors.push(format!("ipam.ranges[{i}] must hold exactly one range: vland allocates from one range per family")),
                }
            }
        }
        Some(_) => errors.push("`ipam.ranges` must be a list of range sets".into()),
    }
    let mut defaults = [false, false];
    match ipam.get("routes") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, r) in list.iter().enumerate() {
                let dst = r.get("dst").and_then(Value::as_str);
                let gw = r.get("gw").and_then(Value::as_str).map(str::to_string);
                match dst.map(str::parse::<IpNetwork>) {
                    Some(Ok(d)) if d.prefix() == 0 => {
                        defaults[usize::from(d.is_ipv6())] = true;
                        if let Some(gw) = gw {
                            let gw_addr = gw.parse::<IpAddr>().ok();
                            if let Some(range) = ranges.iter_mut().find(|r| r.subnet.is_ipv6() == d.is_ipv6()) {
                                range.gateway = gw_addr.or(range.gateway);
                            }
                        }
                    }
                    Some(Ok(_)) => routes.push(RawRoute { to: dst.map(str::to_string), via: gw, metric: None }),
                    _ => errors.push(format!("ipam.routes[{i}].dst must be a CIDR such as \"10.20.0.0/16\"")),
                }
            }
        }
        Some(_) => errors.push("`ipam.routes` must be a list of {\"dst\", \"gw\"}".into()),
    }
    for r in ranges {
        let v6 = r.subnet.is_ipv6();
        let (subnet, ip_range, gateway) = if v6 {
            (&mut net.subnet6, &mut net.ip_range6, &mut net.gateway6)
        } else {
            (&mut net.subnet, &mut net.ip_range, &mut net.gateway)
        };
        if subnet.is_some() {
            errors.push(format!("two ranges of {}: vland allocates from one subnet per family", if v6 { "IPv6" } else { "IPv4" }));
            continue;
        }
        *subnet = Some(r.subnet.to_string());
        // host-local's default gateway: the subnet's first address.
        let gw = r.gateway.or_else(|| nth(r.subnet, 1));
        if defaults[usize::from(v6)] {
            *gateway = gw.map(|g| g.to_string());
        } else if let Some(g) = gw {
            net.aux_addresses.insert(format!("gateway{}", if v6 { "6" } else { "" }), g.to_string());
        }
        if r.start.is_some() || r.end.is_some() {
            match cidr_range(r.subnet, r.start, r.end, gw) {
                Ok((cidr, reserved)) => {
                    *ip_range = Some(cidr.to_string());
                    for (i, a) in reserved.into_iter().enumerate() {
                        net.aux_addresses.insert(format!("outside-range{}-{i}", if v6 { "6" } else { "" }), a.to_string());
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
}

fn range(r: &Map<String, Value>, at: &str, errors: &mut Vec<String>) -> Option<Range> {
    let addr = |key: &str, errors: &mut Vec<String>| -> Option<IpAddr> {
        let text = r.get(key)?.as_str();
        match text.and_then(|t| t.parse().ok()) {
            Some(a) => Some(a),
            None => {
                errors.push(format!("{at}.{key} must be an IP address"));
                None
            }
        }
    };
    let subnet = match r.get("subnet").and_then(Value::as_str).map(str::parse::<IpNetwork>) {
        Some(Ok(s)) => s,
        _ => {
            errors.push(format!("{at}.subnet must be a CIDR such as \"10.1.2.0/24\""));
            return None;
        }
    };
    Some(Range { subnet, start: addr("rangeStart", errors), end: addr("rangeEnd", errors), gateway: addr("gateway", errors) })
}

fn nth(subnet: IpNetwork, n: u128) -> Option<IpAddr> {
    let base = to_u128(subnet.network());
    let size = if subnet.is_ipv6() { 128 } else { 32 } - u32::from(subnet.prefix());
    (size >= 2).then(|| from_u128(base + n, subnet.is_ipv6()))
}

/// vland allocates from a CIDR: rangeStart..rangeEnd becomes the smallest CIDR holding both,
/// with the addresses of that CIDR outside them reserved (as aux addresses).
fn cidr_range(
    subnet: IpNetwork,
    start: Option<IpAddr>,
    end: Option<IpAddr>,
    gateway: Option<IpAddr>,
) -> Result<(IpNetwork, Vec<IpAddr>), String> {
    let v6 = subnet.is_ipv6();
    let bits: u32 = if v6 { 128 } else { 32 };
    let net = to_u128(subnet.network());
    let host_mask =
        if u32::from(subnet.prefix()) == 0 { u128::MAX >> (128 - bits) } else { (1u128 << (bits - u32::from(subnet.prefix()))) - 1 };
    let last = net | host_mask;
    let lo = start.map(to_u128).unwrap_or(net + 1);
    let hi = end.map(to_u128).unwrap_or(last - u128::from(!v6));
    for (a, what) in [(lo, "rangeStart"), (hi, "rangeEnd")] {
        if a < net || a > last || start.is_some_and(|s| s.is_ipv6() != v6) || end.is_some_and(|e| e.is_ipv6() != v6) {
            return Err(format!("{what} {} is outside subnet {subnet}", from_u128(a, v6)));
        }
    }
    if lo > hi {
        return Err(format!("rangeStart {} is above rangeEnd {}", from_u128(lo, v6), from_u128(hi, v6)));
    }
    let common = (lo ^ hi).leading_zeros() - (128 - bits);
    let prefix = common.max(u32::from(subnet.prefix()));
    let size_mask = if prefix == 0 { u128::MAX >> (128 - bits) } else { (1u128 << (bits - prefix)) - 1 };
    let base = lo & !size_mask;
    let cidr = IpNetwork::new(from_u128(base, v6), prefix as u8).map_err(|e| e.to_string())?;
    let outside = (lo - base) + ((base | size_mask) - hi);
    if outside > MAX_RANGE_RESERVATIONS {
        return Err(format!(
            "rangeStart..rangeEnd ({}..{}) is not close to a CIDR block ({cidr} would need {outside} addresses reserved): \
             use a range that is one, such as {}..{}, or vland's `ip_range`",
            from_u128(lo, v6),
            from_u128(hi, v6),
            from_u128(base + 1, v6),
            from_u128(base | size_mask, v6)
        ));
    }
    let gw = gateway.map(to_u128);
    let reserved = (base..lo)
        .chain(hi + 1..=(base | size_mask))
        .filter(|&a| a != net && a != last && Some(a) != gw)
        .map(|a| from_u128(a, v6))
        .collect();
    Ok((cidr, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_reference_macvlan_config_maps_to_vland_keys() {
        let c = conf(serde_json::json!({
            "cniVersion": "1.0.0", "name": "mynet", "type": "vland", "master": "eth0", "mode": "bridge", "mtu": 1400,
            "ipam": {"type": "host-local", "subnet": "10.1.2.0/24", "rangeStart": "10.1.2.200", "rangeEnd": "10.1.2.216",
                     "gateway": "10.1.2.1", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.2.254"}]}
        }));
        let n = parse(&c).unwrap();
        let net = n.inline.unwrap();
        assert_eq!(net.parent.as_deref(), Some("eth0"));
        assert_eq!(net.mode.as_deref(), Some("bridge"));
        assert_eq!(net.driver.as_deref(), Some("macvlan"));
        assert_eq!(net.mtu, Some(1400));
        assert_eq!(net.subnet.as_deref(), Some("10.1.2.0/24"));
        assert_eq!(net.gateway.as_deref(), Some("10.1.2.1"));
        // .192/27 holds .200-.216; .192-.199 and .217-.223 are reserved.
        assert_eq!(net.ip_range.as_deref(), Some("10.1.2.192/27"));
        assert_eq!(net.aux_addresses.len(), 8 + 7);
        assert!(net.aux_addresses.values().any(|a| a == "10.1.2.199"));
        assert!(!net.aux_addresses.values().any(|a| a == "10.1.2.200" || a == "10.1.2.216"));
        assert_eq!(n.routes, vec![RawRoute { to: Some("10.9.0.0/16".into()), via: Some("10.1.2.254".into()), metric: None }]);
    }

    #[test]
    fn without_a_default_route_the_gateway_is_only_reserved() {
        let c = conf(serde_json::json!({"name": "n", "master": "eth0", "mode": "l3",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1::/64", "gateway": "fd00:1::fe"}]]}}));
        let net = parse(&c).unwrap().inline.unwrap();
        assert_eq!(net.driver.as_deref(), Some("ipvlan"));
        assert_eq!(net.gateway, None);
        assert_eq!(net.aux_addresses["gateway"], "10.1.2.1");
        assert_eq!(net.aux_addresses["gateway6"], "fd00:1::fe");
        assert_eq!(net.subnet6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(net.ip_range, None);
    }

    #[test]
    fn every_problem_is_listed() {
        let c = conf(serde_json::json!({"name": "n", "master": 3, "colour": "red", "mtu": "big",
            "ipam": {"type": "dhcp", "subnet": "10.1.2.0/24", "rangeStart": "10.1.3.1"}}));
        let errors = parse(&c).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        let c = conf(serde_json::json!({"name": "n", "network": "lan", "subnet": "10.0.0.0/24"}));
        assert_eq!(parse(&c).unwrap_err().len(), 1);
    }

    #[test]
    fn a_range_far_from_a_cidr_is_refused() {
        let subnet: IpNetwork = "10.0.0.0/8".parse().unwrap();
        let e = cidr_range(subnet, "10.0.255.255".parse().ok(), "10.1.0.0".parse().ok(), None).unwrap_err();
        assert!(e.contains("not close to a CIDR"), "{e}");
        let (cidr, reserved) = cidr_range(subnet, "10.0.1.0".parse().ok(), "10.0.1.255".parse().ok(), None).unwrap();
        assert_eq!((cidr.to_string(), reserved.len()), ("10.0.1.0/24".to_string(), 0));
    }
}
