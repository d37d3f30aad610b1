//! `host_access`, `host_address`, `host_address6`: the host's own child on a network's parent.
//! Its address is one the host takes in each subnet the network has, reserved from allocation
//! like an aux address (and may be one: Docker users list their host's address there).
use crate::config::errors::{ConfigErrors, Scope};
use crate::config::model::{Endpoint, HostAccess, Ipam, Network, PoolScope};
use crate::config::schema::RawNetwork;
use crate::drivers::Driver;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub fn host_access(
    raw: &RawNetwork,
    ipam4: Option<&Ipam>,
    ipam6: Option<&Ipam>,
    driver: Option<&Driver>,
    scope: PoolScope,
    s: &mut Scope<'_>,
) -> Option<HostAccess> {
    if !raw.host_access {
        for (key, given) in [("host_address", &raw.host_address), ("host_address6", &raw.host_address6)] {
            if given.is_some() {
                s.err(key, "is only used with host_access = true: set host_access = true, or remove it".to_string());
            }
        }
        return None;
    }
    if let Some(why) = driver.and_then(|d| d.host_access_refusal()) {
        s.err("host_access", why);
    }
    if scope == PoolScope::Cluster {
        s.err(
            "host_access",
            "is not supported on scope = \"cluster\" networks yet: remove host_access or use scope = \"local\"".to_string(),
        );
    }
    if ipam4.is_none() && ipam6.is_none() {
        s.err(
            "host_access",
            "the host child needs an address: give the network a `subnet` (or `subnet6`) and a `host_address`".to_string(),
        );
    }
    let ip = address(raw.host_address.as_deref(), ipam4, false, s);
    let ip6 = address(raw.host_address6.as_deref(), ipam6, true, s);
    Some(HostAccess {
        ip: ip.and_then(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }),
        ip6: ip6.and_then(|a| match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }),
    })
}

/// One family's host address: required when the network has that family, refused otherwise.
fn address(text: Option<&str>, ipam: Option<&Ipam>, v6: bool, s: &mut Scope<'_>) -> Option<IpAddr> {
    let sfx = if v6 { "6" } else { "" };
    let key = format!("host_address{sfx}");
    let (text, ipam) = match (text, ipam) {
        (None, None) => return None,
        (Some(_), None) => {
            s.err(&key, format!("needs a `subnet{sfx}` on this network: the host address lies in it"));
            return None;
        }
        (None, Some(ipam)) => {
            let example = ipam.subnet.iter().nth(2).unwrap_or(ipam.subnet.ip());
            s.err(
                &key,
                format!(
                    "missing: with host_access, the host takes an address in {} (the endpoints reach it there): add {key} = \"{example}\"",
                    ipam.subnet
                ),
            );
            return None;
        }
        (Some(t), Some(i)) => (t, i),
    };
    let Some(addr) = text.parse::<IpAddr>().ok().filter(|a| a.is_ipv6() == v6) else {
        s.err(&key, format!("`{text}` is not an {} address", if v6 { "IPv6" } else { "IPv4" }));
        return None;
    };
    if !ipam.subnet.contains(addr) {
        s.err(&key, format!("{addr} is outside the subnet {}: pick an address in it", ipam.subnet));
    } else if super::is_network_or_broadcast(&ipam.subnet, addr) {
        s.err(&key, format!("{addr} is the network or broadcast address of {}: pick another", ipam.subnet));
    } else if ipam.gateway == Some(addr) {
        s.err(&key, format!("{addr} is the gateway{sfx}: the host child needs an address of its own"));
    }
    Some(addr)
}

/// An endpoint's static address may not be its network's host address.
pub fn check_endpoints(endpoints: &BTreeMap<String, Endpoint>, networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) {
    for e in endpoints.values() {
        let Some(host) = networks.get(&e.network).and_then(|n| n.host_access.as_ref()) else { continue };
        for (key, ip, taken) in [("ip", e.static_ip(false), host.ip.map(IpAddr::V4)), ("ip6", e.static_ip(true), host.ip6.map(IpAddr::V6))]
        {
            if let Some(ip) = ip
                && Some(ip) == taken
            {
                errors.push(
                    format!("endpoints.{}.{key}", e.name),
                    format!("{} is network `{}`'s host_address (the host's child holds it): pick another address", ip, e.network),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{errors_in, parse_str};

    const NET: &str = r#"
[networks.lan]
driver = "macvlan"
parent = "eth0"
subnet = "10.10.10.0/24"
gateway = "10.10.10.1"
aux_addresses = { docker1 = "10.10.10.101" }
"#;

    fn errors_of(extra: &str, endpoints: &str) -> Vec<String> {
        errors_in(&format!("{NET}{extra}\n{endpoints}"))
    }

    #[test]
    fn a_host_address_in_the_subnet_is_taken_and_may_be_the_hosts_aux_address() {
        let c = parse_str(&format!("{NET}host_access = true\nhost_address = \"10.10.10.101\"\n"), "t").unwrap();
        assert_eq!(c.networks["lan"].host_access.as_ref().unwrap().ip, Some("10.10.10.101".parse().unwrap()));
        assert!(parse_str(NET, "t").unwrap().networks["lan"].host_access.is_none());
    }

    #[test]
    fn bad_host_addresses_are_refused_each_with_its_key_and_fix() {
        let cases = [
            ("host_access = true", "networks.lan.host_address: missing: with host_access, the host takes an address in 10.10.10.0/24"),
            ("host_address = \"10.10.10.101\"", "networks.lan.host_address: is only used with host_access = true"),
            ("host_access = true\nhost_address = \"10.10.11.5\"", "10.10.11.5 is outside the subnet 10.10.10.0/24"),
            ("host_access = true\nhost_address = \"10.10.10.1\"", "10.10.10.1 is the gateway"),
            ("host_access = true\nhost_address = \"10.10.10.255\"", "network or broadcast address"),
            ("host_access = true\nhost_address = \"fd00::1\"", "`fd00::1` is not an IPv4 address"),
            ("host_access = true\nhost_address = \"10.10.10.101\"\nhost_address6 = \"fd00::5\"", "host_address6: needs a `subnet6`"),
            ("host_access = true\nhost_address = \"10.10.10.101\"\nmode = \"vepa\"", "use mode = \"bridge\" or remove host_access"),
            ("host_access = true\nhost_address = \"10.10.10.101\"\nscope = \"cluster\"", "not supported on scope = \"cluster\""),
            ("host_access = true\nhost_address = \"10.10.10.101\"\nsubnet6 = \"fd00::/64\"", "networks.lan.host_address6: missing"),
        ];
        for (extra, want) in cases {
            let errors = errors_of(extra, "");
            assert!(errors.iter().any(|e| e.contains(want)), "{extra}: want {want}, got {errors:?}");
        }
        let ipvlan = NET.replace("macvlan", "ipvlan") + "host_access = true\nhost_address = \"10.10.10.101\"\nipvlan_flag = \"private\"\n";
        let errors: Vec<String> = parse_str(&ipvlan, "t").unwrap_err().errors.iter().map(|e| e.to_string()).collect();
        assert!(errors.iter().any(|e| e.contains("use ipvlan_flag = \"bridge\"")), "{errors:?}");
    }

    #[test]
    fn an_endpoint_may_not_hold_the_host_address() {
        let errors = errors_of(
            "host_access = true\nhost_address = \"10.10.10.102\"",
            "[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"web1\"\nip = \"10.10.10.102\"\n",
        );
        assert!(errors.iter().any(|e| e.contains("endpoints.web1.ip") && e.contains("host_address")), "{errors:?}");
    }
}
