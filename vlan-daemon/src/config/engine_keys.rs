//! vland's network keys as the engines hand them over: a JSON object (a CNI network config) or
//! `-o key=value` strings (Docker). Both are read through `RawNetwork`'s own Deserialize, so an
//! engine takes every key the config file takes, with the same types, and a new key needs no
//! change here. Each bad value is one error naming the key and what it must be.
use super::RawNetwork;
use serde_json::{Map, Value};

/// The network keys in `values` (the caller has refused other keys) as a `RawNetwork`; `name`
/// shows a key as the user wrote it (`` `mtu` ``, `-o mtu`).
pub fn network_from_json(values: &Map<String, Value>, name: impl Fn(&str) -> String, errors: &mut Vec<String>) -> RawNetwork {
    read(values.iter().map(|(k, v)| (k.as_str(), vec![v.clone()], v.to_string())), name, errors)
}

/// The same for option strings: each value is taken as the string itself, a number or boolean,
/// or a comma-separated list, whichever the key takes.
pub fn network_from_strings<'a>(
    values: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: impl Fn(&str) -> String,
    errors: &mut Vec<String>,
) -> RawNetwork {
    let candidates = |text: &str| {
        let mut c = vec![Value::String(text.to_string())];
        c.extend(serde_json::from_str::<Value>(text).ok().filter(|v| v.is_number() || v.is_boolean()));
        c.push(Value::Array(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect()));
        c
    };
    read(values.into_iter().map(|(k, v)| (k, candidates(v), format!("\"{v}\""))), name, errors)
}

fn read<'a>(
    values: impl Iterator<Item = (&'a str, Vec<Value>, String)>,
    name: impl Fn(&str) -> String,
    errors: &mut Vec<String>,
) -> RawNetwork {
    let mut good = Map::new();
    for (key, candidates, shown) in values {
        let taken = candidates.iter().find(|v| one_key::<RawNetwork>(key, v).is_ok());
        match (taken, candidates.first().map(|v| one_key::<RawNetwork>(key, v))) {
            (Some(v), _) => {
                good.insert(key.to_string(), v.clone());
            }
            (None, Some(Err(e))) => errors.push(format!("{} must be {}, not {shown}", name(key), expected(&e))),
            (None, _) => errors.push(format!("{} has no value", name(key))),
        }
    }
    serde_json::from_value(Value::Object(good)).unwrap_or_default()
}

fn one_key<T: serde::de::DeserializeOwned>(key: &str, value: &Value) -> serde_json::Result<T> {
    serde_json::from_value(Value::Object(Map::from_iter([(key.to_string(), value.clone())])))
}

/// What serde expected, in the words of the config reference.
fn expected(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let wanted = text.split("expected ").nth(1).unwrap_or(&text);
    match wanted.split(" at line").next().unwrap_or(wanted) {
        w if w.starts_with('u') || w.starts_with('i') => "a whole number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "a string".into(),
        "a sequence" => "a list of strings".into(),
        "a map" => "an object of names to addresses".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_are_typed_as_in_the_config_file_and_every_bad_one_is_named() {
        let values =
            json!({"mtu": 1400, "spoof_check": true, "mode": "bridge", "host_address": "10.0.0.9", "metric": "big", "internal": 3});
        let mut errors = Vec::new();
        let net = network_from_json(values.as_object().unwrap(), |k| format!("`{k}`"), &mut errors);
        assert_eq!((net.mtu, net.spoof_check, net.mode.as_deref()), (Some(1400), true, Some("bridge")));
        assert_eq!(net.host_address.as_deref(), Some("10.0.0.9"));
        assert_eq!(errors, ["`internal` must be true or false, not 3", "`metric` must be a whole number, not \"big\""]);
    }

    #[test]
    fn option_strings_become_numbers_booleans_and_lists_where_the_key_takes_them() {
        let mut errors = Vec::new();
        let options = [("mtu", "1400"), ("arp_responder", "true"), ("source_macs", "02:00:00:00:00:01, 02:00:00:00:00:02"), ("mode", "1")];
        let net = network_from_strings(options, |k| format!("-o {k}"), &mut errors);
        assert_eq!((net.mtu, net.arp_responder, net.mode.as_deref()), (Some(1400), Some(true), Some("1")));
        assert_eq!(net.source_macs, ["02:00:00:00:00:01", "02:00:00:00:00:02"]);
        assert!(errors.is_empty(), "{errors:?}");
        let net = network_from_strings([("counter_hook", "tcx")], |k| format!("-o {k}"), &mut errors);
        assert_eq!(net.counter_hook.as_deref(), Some("tcx"));
        network_from_strings([("spoof_check", "yes"), ("mtu", "-1")], |k| format!("-o {k}"), &mut errors);
        assert_eq!(errors, ["-o spoof_check must be true or false, not \"yes\"", "-o mtu must be a whole number, not \"-1\""]);
    }
}
