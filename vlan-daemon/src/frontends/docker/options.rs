//! Docker's network options mapped onto vland's network keys. `docker network create -o k=v`
//! arrives as strings under `com.docker.network.generic`; `--internal` and `--ipv6` as
//! `com.docker.network.internal` / `com.docker.network.enable_ipv6`. The seed's macvlan/ipvlan
//! options (`parent`, `macvlan_mode`, `ipvlan_mode`, `ipvlan_flag`) and vland's own keys are
//! taken; anything else is refused, every problem listed at once.
use crate::config::RawNetwork;
use serde_json::{Map, Value};

/// What the options say about the network: its keys (addressing comes from IPAM) and whether
/// Docker asked for IPv6.
#[derive(Debug, Default, PartialEq)]
pub struct NetworkOptions {
    pub network: RawNetwork,
    pub ipv6: bool,
}

/// vland's own network keys a `-o` may set (as in the config file's network tables).
const VLAND_KEYS: &[&str] =
    &["driver", "mode", "mtu", "metric", "spoof_check", "vlan_protocol", "gratuitous_arp", "arp_responder", "ipv6_autoconf", "source_macs"];
/// The seed's (Docker's macvlan and ipvlan drivers') option names.
const DOCKER_KEYS: &[&str] = &["parent", "macvlan_mode", "ipvlan_mode", "ipvlan_flag", "com.docker.network.driver.mtu"];

/// Reads CreateNetwork's `Options`.
pub fn parse(options: Option<&Value>) -> Result<NetworkOptions, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = NetworkOptions::default();
    let empty = Map::new();
    let options = match options {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(other) => return Err(vec![format!("Options must be an object, not {other}")]),
    };
    match options.get("com.docker.network.internal") {
        None | Some(Value::Null) => {}
        Some(v) => out.network.internal = flag(v, "--internal", &mut errors),
    }
    match options.get("com.docker.network.enable_ipv6") {
        None | Some(Value::Null) => {}
        Some(v) => out.ipv6 = flag(v, "--ipv6", &mut errors),
    }
    let generic = match options.get("com.docker.network.generic") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(other) => {
            errors.push(format!("com.docker.network.generic must be an object of -o options, not {other}"));
            &empty
        }
    };
    generic_options(generic, &mut out.network, &mut errors);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// A boolean Docker sends as JSON, or a `-o` value ("true"/"false").
fn flag(v: &Value, what: &str, errors: &mut Vec<String>) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) if s == "true" => true,
        Value::String(s) if s == "false" => false,
        other => {
            errors.push(format!("{what} must be true or false, not {other}"));
            false
        }
    }
}

fn generic_options(generic: &Map<String, Value>, net: &mut RawNetwork, errors: &mut Vec<String>) {
    // `-o` values are strings; a JSON number or boolean from an API client is taken too.
    let text = |key: &str, errors: &mut Vec<String>| -> Option<String> {
        match generic.get(key)? {
            Value::String(s) => Some(s.clone()),
            v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
            other => {
                errors.push(format!("-o {key} must be a string, not {other}"));
                None
            }
        }
    };
    for key in generic.keys() {
        if !VLAND_KEYS.contains(&key.as_str()) && !DOCKER_KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "unknown option `-o {key}`: vland takes parent, macvlan_mode, ipvlan_mode, ipvlan_flag and its own network keys ({})",
                VLAND_KEYS.join(", ")
            ));
        }
    }
    net.parent = text("parent", errors).filter(|p| !p.is_empty());
    net.driver = text("driver", errors);
    net.ipvlan_flag = text("ipvlan_flag", errors);
    net.vlan_protocol = text("vlan_protocol", errors);
    let macvlan_mode = text("macvlan_mode", errors);
    let ipvlan_mode = text("ipvlan_mode", errors);
    let mode = text("mode", errors);
    // The driver follows from the seed's option names: ipvlan_mode or ipvlan_flag means ipvlan.
    let implied = match (&macvlan_mode, ipvlan_mode.is_some() || net.ipvlan_flag.is_some()) {
        (Some(_), true) => {
            errors.push("-o macvlan_mode and -o ipvlan_mode/ipvlan_flag contradict each other: give the options of one driver".into());
            None
        }
        (Some(_), false) => Some("macvlan"),
        (None, true) => Some("ipvlan"),
        (None, false) => None,
    };
    match (&net.driver, implied) {
        (Some(d), Some(i)) if d != i => errors.push(format!("-o driver={d} contradicts the {i} options given: drop one")),
        (None, Some(i)) => net.driver = Some(i.to_string()),
        _ => {}
    }
    // `-d vland` alone: macvlan, as the seed's `-d macvlan`.
    net.driver.get_or_insert_with(|| "macvlan".to_string());
    if mode.is_some() && (macvlan_mode.is_some() || ipvlan_mode.is_some()) {
        errors.push("give the mode once: -o macvlan_mode, -o ipvlan_mode or -o mode".into());
    }
    net.mode = macvlan_mode.or(ipvlan_mode).or(mode);
    let number = |key: &str, errors: &mut Vec<String>| -> Option<u32> {
        let t = text(key, errors)?;
        match t.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(format!("-o {key}={t}: must be a whole number"));
                None
            }
        }
    };
    let boolean = |key: &str, errors: &mut Vec<String>| -> Option<bool> {
        let t = text(key, errors)?;
        match t.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                errors.push(format!("-o {key}={t}: must be true or false"));
                None
            }
        }
    };
    let mtu = number("mtu", errors);
    let docker_mtu = number("com.docker.network.driver.mtu", errors);
    if mtu.is_some() && docker_mtu.is_some() {
        errors.push("give the MTU once: -o mtu or -o com.docker.network.driver.mtu".into());
    }
    net.mtu = mtu.or(docker_mtu);
    net.metric = number("metric", errors);
    net.spoof_check = boolean("spoof_check", errors).unwrap_or(false);
    net.ipv6_autoconf = boolean("ipv6_autoconf", errors).unwrap_or(false);
    net.gratuitous_arp = boolean("gratuitous_arp", errors);
    net.arp_responder = boolean("arp_responder", errors);
    if let Some(macs) = text("source_macs", errors) {
        net.source_macs = macs.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> Result<NetworkOptions, Vec<String>> {
        parse(Some(&v))
    }

    #[test]
    fn the_seeds_macvlan_options_as_docker_sends_them() {
        let o = parse_json(json!({
            "com.docker.network.enable_ipv6": false,
            "com.docker.network.generic": {"parent": "eth0", "macvlan_mode": "bridge"}
        }))
        .unwrap();
        assert_eq!(o.network.parent.as_deref(), Some("eth0"));
        assert_eq!(o.network.driver.as_deref(), Some("macvlan"));
        assert_eq!(o.network.mode.as_deref(), Some("bridge"));
        assert!(!o.ipv6 && !o.network.internal);
    }

    #[test]
    fn ipvlan_is_implied_by_its_options_and_vlands_keys_are_taken() {
        let o = parse_json(json!({
            "com.docker.network.internal": true,
            "com.docker.network.enable_ipv6": true,
            "com.docker.network.generic": {"parent": "eth1.19", "ipvlan_mode": "l3", "ipvlan_flag": "private",
                "mtu": "1400", "spoof_check": "true", "vlan_protocol": "802.1ad"}
        }))
        .unwrap();
        let n = &o.network;
        assert_eq!((n.driver.as_deref(), n.mode.as_deref(), n.ipvlan_flag.as_deref()), (Some("ipvlan"), Some("l3"), Some("private")));
        assert_eq!((n.mtu, n.spoof_check, n.internal, o.ipv6), (Some(1400), true, true, true));
        assert_eq!(n.vlan_protocol.as_deref(), Some("802.1ad"));
        let o = parse_json(json!({"com.docker.network.generic": {"driver": "ipvlan"}})).unwrap();
        assert_eq!((o.network.driver.as_deref(), o.network.mode), (Some("ipvlan"), None));
        // Docker's own MTU option name.
        let o = parse_json(json!({"com.docker.network.generic": {"com.docker.network.driver.mtu": "9000"}})).unwrap();
        assert_eq!(o.network.mtu, Some(9000));
    }

    #[test]
    fn every_problem_is_listed() {
        let errors = parse_json(json!({
            "com.docker.network.internal": "maybe",
            "com.docker.network.generic": {"parent": "eth0", "colour": "red", "mtu": "big", "macvlan_mode": "bridge",
                "ipvlan_mode": "l2", "spoof_check": "yes"}
        }))
        .unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors.iter().any(|e| e.contains("unknown option `-o colour`")), "{errors:#?}");
        assert!(errors.iter().any(|e| e.contains("-o mtu=big")), "{errors:#?}");
        let errors = parse_json(json!({"com.docker.network.generic": {"driver": "macvlan", "ipvlan_mode": "l2"}})).unwrap_err();
        assert!(errors[0].contains("contradicts"), "{errors:#?}");
        assert!(parse_json(json!(["x"])).is_err());
    }

    #[test]
    fn no_options_is_a_plain_network() {
        let macvlan = NetworkOptions { network: RawNetwork { driver: Some("macvlan".into()), ..RawNetwork::default() }, ipv6: false };
        assert_eq!(parse(None).unwrap(), macvlan);
        assert_eq!(parse(Some(&Value::Null)).unwrap(), macvlan);
    }
}
