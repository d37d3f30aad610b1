//! The `[cluster]` table: which etcd members, this host's name, block sizes and TLS files; and
//! that every `scope = "cluster"` network has one to share its pool through.
use crate::config::errors::ConfigErrors;
use crate::config::model::{ClusterConfig, ClusterTls, Network, PoolScope};
use crate::config::schema::RawCluster;
use std::collections::BTreeMap;

pub const DEFAULT_BLOCK_SIZE: u8 = 28;
pub const DEFAULT_BLOCK_SIZE6: u8 = 122;
pub const DEFAULT_LEASE_TTL: u32 = 30;

pub fn cluster(raw: Option<&RawCluster>, networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) -> Option<ClusterConfig> {
    let Some(raw) = raw else {
        for net in networks.values().filter(|n| n.scope == PoolScope::Cluster) {
            errors.push(
                format!("networks.{}.scope", net.name),
                "a cluster network needs a [cluster] table with the etcd members to share its pool through, \
                 e.g. [cluster] etcd = [\"http://10.0.0.5:2379\"]",
            );
        }
        return None;
    };
    let before = errors.errors.len();
    if raw.etcd.is_empty() {
        errors.push("cluster.etcd", "list at least one etcd member's client URL, e.g. etcd = [\"http://10.0.0.5:2379\"]");
    }
    for url in &raw.etcd {
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
            errors.push("cluster.etcd", format!("`{url}` is not a client URL: write it like \"http://10.0.0.5:2379\""));
        }
    }
    let host = match &raw.host {
        Some(h) => h.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default(),
    };
    if host.is_empty() || host.len() > 64 || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        errors.push(
            "cluster.host",
            format!("`{host}` cannot name this host in the cluster: use 1-64 letters, digits, '.', '_' or '-' (set `host`)"),
        );
    }
    let block_size = raw.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
    if !(16..=30).contains(&block_size) {
        errors
            .push("cluster.block_size", format!("/{block_size} blocks: use a prefix length from 16 to 30 (default {DEFAULT_BLOCK_SIZE})"));
    }
    let block_size6 = raw.block_size6.unwrap_or(DEFAULT_BLOCK_SIZE6);
    if !(96..=126).contains(&block_size6) {
        errors.push(
            "cluster.block_size6",
            format!("/{block_size6} blocks: use a prefix length from 96 to 126 (default {DEFAULT_BLOCK_SIZE6})"),
        );
    }
    let lease_ttl = raw.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
    if !(3..=3600).contains(&lease_ttl) {
        errors.push("cluster.lease_ttl", format!("{lease_ttl} s: use 3 to 3600 seconds (default {DEFAULT_LEASE_TTL})"));
    }
    let tls = match (&raw.ca_file, &raw.cert_file, &raw.key_file) {
        (None, None, None) => None,
        (Some(ca), None, None) => Some(ClusterTls { ca_file: ca.clone(), client: None }),
        (Some(ca), Some(cert), Some(key)) => Some(ClusterTls { ca_file: ca.clone(), client: Some((cert.clone(), key.clone())) }),
        _ => {
            errors.push("cluster.ca_file", "TLS needs ca_file, and for a client certificate both cert_file and key_file");
            None
        }
    };
    if tls.is_some() && raw.etcd.iter().any(|u| u.starts_with("http://")) {
        errors.push("cluster.etcd", "with TLS files, write the members as https:// URLs");
    }
    (errors.errors.len() == before).then(|| ClusterConfig { etcd: raw.etcd.clone(), host, block_size, block_size6, lease_ttl, tls })
}

#[cfg(test)]
mod tests {
    use crate::config::{PoolScope, errors_in, parse_str};

    const NET: &str = r#"
[networks.lan]
driver = "macvlan"
parent = "eth0"
subnet = "10.10.10.0/24"
gateway = "10.10.10.1"
"#;

    fn errors_of(text: &str) -> String {
        errors_in(text).join("\n")
    }

    #[test]
    fn without_cluster_keys_networks_stay_local() {
        let c = parse_str(NET, "t").unwrap();
        assert_eq!(c.networks["lan"].scope, PoolScope::Local);
        assert_eq!(c.cluster, None);
    }

    #[test]
    fn a_cluster_network_with_its_cluster_table() {
        let text = format!("{NET}scope = \"cluster\"\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nhost = \"docker1\"\n");
        let c = parse_str(&text, "t").unwrap();
        assert_eq!(c.networks["lan"].scope, PoolScope::Cluster);
        let cc = c.cluster.unwrap();
        assert_eq!((cc.host.as_str(), cc.block_size, cc.block_size6), ("docker1", 28, 122));
    }

    #[test]
    fn mistakes_are_named() {
        let e = errors_of(&format!("{NET}scope = \"cluster\"\n"));
        assert!(e.contains("networks.lan.scope: a cluster network needs a [cluster] table"), "{e}");
        let e = errors_of(&format!("{NET}scope = \"global\"\n"));
        assert!(e.contains("`global` is not a scope"), "{e}");
        let e = errors_of(&format!("{NET}[cluster]\netcd = [\"127.0.0.1:2379\"]\nhost = \"a b\"\nblock_size = 31\n"));
        assert!(e.contains("cluster.etcd: `127.0.0.1:2379` is not a client URL"), "{e}");
        assert!(e.contains("cluster.host: `a b` cannot name this host"), "{e}");
        assert!(e.contains("cluster.block_size: /31 blocks"), "{e}");
        let e = errors_of(&format!("{NET}[cluster]\netcd = [\"http://127.0.0.1:2379\"]\ncert_file = \"/c\"\n"));
        assert!(e.contains("TLS needs ca_file"), "{e}");
    }
}
