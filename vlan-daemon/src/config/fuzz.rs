//! Fuzzing the config parser and validator (proptest, so it runs with the unit tests): configs
//! built from every key with valid, borderline and hostile values, and good configs with bytes
//! flipped. Whatever the input: no panic, and every error names the key it is about.
use super::parse::parse_str;
use super::schema::{endpoint_keys, network_keys};
use proptest::prelude::*;
use toml::{Table, Value};

const TOP: [&str; 4] = ["daemon", "networks", "endpoints", "trunks"];

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// A value for any key: well-formed ones, ones of the wrong type, and hostile strings.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "172.16.10.0/24",
            "172.16.10.1",
            "172.16.10.0/25",
            "10.20.0.1/16",
            "0.0.0.0/0",
            "fd00:10::/64",
            "fd00:10::1",
            "ff02::/64",
            "::/0",
            "eth0",
            "eth0.19",
            "eth0.4095",
            "lo",
            "macvlan",
            "ipvlan",
            "bridge",
            "vepa",
            "private",
            "passthru",
            "source",
            "l2",
            "l3",
            "l3s",
            "802.1Q",
            "802.1ad",
            "pass",
            "drop",
            "02:42:ac:10:0a:14",
            "ff:ff:ff:ff:ff:ff",
            "lan",
            "web1",
            "/proc/self/ns/mnt",
            "/proc/1/ns/net",
            "../../x",
            "a b",
            "rp-é1",
            "a\nb",
            "",
            "x.y",
            "123456789012345678",
            "127.0.0.1:9750",
            "::1",
            "not an address",
        ])
        .prop_map(s),
        any::<i64>().prop_map(Value::Integer),
        prop::sample::select(vec![0i64, 1, 68, 1000, 1280, 1500, 4094, 4095, 4096, 65535, -1]).prop_map(Value::Integer),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,20}".prop_map(|v: String| Value::String(v)),
        prop::collection::vec(prop::sample::select(vec![0i64, 1, 19, 4094, 4095, 70000]).prop_map(Value::Integer), 0..3)
            .prop_map(Value::Array),
    ]
}

const TRUNK_KEYS: [&str; 3] = ["allowed_vlans", "untagged", "bogus"];
const DAEMON_KEYS: [&str; 6] = ["state_dir", "bpf_dir", "socket", "metrics_addr", "resync_interval", "bogus"];

/// A table's real keys and one it does not have.
fn keys_and_a_bogus_one(keys: &'static [&'static str]) -> &'static [&'static str] {
    Vec::leak([keys, &["bogus"]].concat())
}

fn table(keys: &'static [&'static str]) -> impl Strategy<Value = Table> {
    prop::collection::vec((prop::sample::select(keys), value()), 0..8)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn route() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(vec!["to", "via", "metric", "bogus"]), value()), 0..4)
        .prop_map(|kv| Value::Table(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["lan", "lan2", "web1", "web2", "a b", "x\ny", "é", "-x", "eth0"]).prop_map(String::from),
        "[a-z]{1,5}"
    ]
}

/// A whole config as a TOML table.
fn config() -> impl Strategy<Value = String> {
    let named = |keys: &'static [&'static str]| prop::collection::btree_map(name(), table(keys), 0..3);
    (
        table(&DAEMON_KEYS),
        named(keys_and_a_bogus_one(network_keys())),
        named(keys_and_a_bogus_one(endpoint_keys())),
        named(&TRUNK_KEYS),
        prop::collection::vec(route(), 0..3),
        prop::sample::subsequence(TOP.to_vec(), 0..=4),
    )
        .prop_map(|(daemon, networks, mut endpoints, trunks, routes, present)| {
            if let Some(first) = endpoints.values_mut().next()
                && !routes.is_empty()
            {
                first.insert("routes".into(), Value::Array(routes));
            }
            let mut top = Table::new();
            let as_tables =
                |m: std::collections::BTreeMap<String, Table>| Value::Table(m.into_iter().map(|(k, t)| (k, Value::Table(t))).collect());
            for key in present {
                let v = match key {
                    "daemon" => Value::Table(daemon.clone()),
                    "networks" => as_tables(networks.clone()),
                    "endpoints" => as_tables(endpoints.clone()),
                    _ => as_tables(trunks.clone()),
                };
                top.insert(key.to_string(), v);
            }
            toml::to_string(&top).unwrap_or_default()
        })
}

const GOOD: &str = "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\nmtu = 1500\n\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"web1\"\nip = \"172.16.10.20\"\nroutes = [{ to = \"10.20.0.0/16\", via = \"172.16.10.254\" }]\n\n[trunks.eth1]\nallowed_vlans = [30]\n";

/// Every error names a key: one of the config's own (a dotted path into its tables), or
/// `config` for text that is not TOML at all (with its line).
fn check(text: &str) -> Result<(), TestCaseError> {
    let Err(errors) = parse_str(text, "fuzz.toml") else { return Ok(()) };
    prop_assert!(!errors.errors.is_empty());
    let is_toml = text.parse::<Table>().is_ok();
    for e in &errors.errors {
        prop_assert!(!e.key.is_empty(), "an error without a key: {e}");
        if is_toml {
            let first = e.key.split('.').next().unwrap_or_default();
            prop_assert!(
                TOP.contains(&first) || text.parse::<Table>().unwrap().contains_key(first),
                "error `{e}` names no key of the config:\n{text}"
            );
        } else {
            prop_assert!(e.key == "config" && e.line.is_some(), "a syntax error without its line: {e}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_never_panic_and_every_error_names_a_key(text in config()) {
        check(&text)?;
    }

    #[test]
    fn mutated_configs_never_panic_and_every_error_names_a_key(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = GOOD.as_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        check(&String::from_utf8_lossy(&bytes))?;
    }
}
