//! Prometheus metrics on `[daemon] metrics_addr`: every scrape reads the pinned maps (summed over
//! CPUs) through the same path as `vland stats`, so the numbers always agree. Labels are limited
//! to network, endpoint, parent, vlan, reason and direction, to keep cardinality bounded (plus
//! address and mac on the last-conflict gauge: one series per endpoint with a conflict).
use crate::config::DaemonConfig;
use crate::stats::{self, StatsReport};
use anyhow::Context;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct MapsCollector {
    daemon: DaemonConfig,
}

fn family(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: Vec<(Labels, u64)>) -> Result<(), std::fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn endpoint_labels(e: &stats::EndpointStats) -> Labels {
    vec![("network", e.network.clone()), ("endpoint", e.endpoint.clone())]
}

fn with(mut labels: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    labels.push((key, value.into()));
    labels
}

fn parent_labels(p: &stats::ParentStats) -> Labels {
    vec![("parent", p.parent.clone()), ("vlan", p.vlan.map_or_else(|| "untagged".to_string(), |v| v.to_string()))]
}

fn encode_report(r: &StatsReport, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let e = &r.endpoints;
    family(
        enc,
        "vland_endpoint_packets",
        "Frames an endpoint received (rx) and sent (tx), counted by vland's eBPF programs.",
        e.iter()
            .flat_map(|s| {
                [(with(endpoint_labels(s), "direction", "rx"), s.rx_packets), (with(endpoint_labels(s), "direction", "tx"), s.tx_packets)]
            })
            .collect(),
    )?;
    family(
        enc,
        "vland_endpoint_bytes",
        "Bytes (whole frames) an endpoint received (rx) and sent (tx).",
        e.iter()
            .flat_map(|s| {
                [(with(endpoint_labels(s), "direction", "rx"), s.rx_bytes), (with(endpoint_labels(s), "direction", "tx"), s.tx_bytes)]
            })
            .collect(),
    )?;
    family(
        enc,
        "vland_endpoint_dropped_packets",
        "Frames an endpoint sent that vland dropped, by reason.",
        e.iter().flat_map(|s| s.drops.iter().map(|(reason, n)| (with(endpoint_labels(s), "reason", *reason), *n))).collect(),
    )?;
    family(
        enc,
        "vland_endpoint_neighbour_answers",
        "ARP requests (protocol arp) and IPv6 neighbour solicitations (protocol nd) for an endpoint that its parent's XDP responder answered.",
        e.iter()
            .flat_map(|s| {
                [(with(endpoint_labels(s), "protocol", "arp"), s.arp_answered), (with(endpoint_labels(s), "protocol", "nd"), s.nd_answered)]
            })
            .collect(),
    )?;
    family(
        enc,
        "vland_endpoint_address_conflicts",
        "Frames from the segment that claimed an endpoint's address (ARP sender, neighbour advertisement) from a MAC not its own.",
        e.iter().map(|s| (endpoint_labels(s), s.address_conflicts)).collect(),
    )?;
    // The last claim per endpoint, as the time it was seen, labelled with what it claimed and who
    // (one series per endpoint with a conflict: a new MAC replaces the old series).
    let mut last = enc.encode_descriptor(
        "vland_endpoint_last_address_conflict_timestamp_seconds",
        "When a frame last claimed an endpoint's address from a foreign MAC (labels: the address and that MAC).",
        None,
        MetricType::Gauge,
    )?;
    for s in e {
        if let Some(c) = &s.last_conflict {
            let labels = with(with(endpoint_labels(s), "address", c.address.to_string()), "mac", c.mac.to_string());
            ConstGauge::new(c.unix_time).encode(last.encode_family(&labels)?)?;
        }
    }
    let p = &r.parents;
    family(
        enc,
        "vland_vlan_packets",
        "Frames that arrived on a trunk, per VLAN.",
        p.iter().map(|s| (parent_labels(s), s.rx_packets)).collect(),
    )?;
    family(
        enc,
        "vland_vlan_bytes",
        "Bytes that arrived on a trunk, per VLAN.",
        p.iter().map(|s| (parent_labels(s), s.rx_bytes)).collect(),
    )?;
    family(
        enc,
        "vland_vlan_dropped_packets",
        "Frames vland dropped on a trunk, per VLAN and reason.",
        p.iter().flat_map(|s| s.drops.iter().map(|(reason, n)| (with(parent_labels(s), "reason", *reason), *n))).collect(),
    )
}

impl Collector for MapsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let report = stats::collect(&self.daemon);
        // An unreadable map must not look like a quiet host: say so in a gauge an alert can watch.
        let readable = match &report {
            Ok(_) => 1,
            Err(e) => {
                warn!("cannot read counters for a scrape: {e:#}");
                0
            }
        };
        let gauge = enc.encode_descriptor(
            "vland_counters_readable",
            "1 when this scrape read every pinned counter map, 0 when it could not (see the daemon's log)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(readable).encode(gauge)?;
        match report {
            Ok(report) => encode_report(&report, &mut enc),
            Err(_) => Ok(()),
        }
    }
}

/// Scrapers served at once: more are turned away (Prometheus uses one).
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this, and be done within CONNECTION_LIFETIME:
/// idle or slow connections from anyone on the host do not pile up.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

/// Binds `addr` now (so a taken port fails the start) and serves /metrics in the background.
pub async fn serve(addr: SocketAddr, daemon: DaemonConfig) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MapsCollector { daemon }));
    registry.register_collector(Box::new(crate::apply_metrics::ApplyCollector));
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) if crate::exposition::wants_openmetrics(accept) => {
                        ([(axum::http::header::CONTENT_TYPE, crate::exposition::OPENMETRICS)], body)
                    }
                    Ok(()) => ([(axum::http::header::CONTENT_TYPE, crate::exposition::TEXT)], crate::exposition::to_text_format(&body)),
                    Err(_) => ([(axum::http::header::CONTENT_TYPE, "text/plain")], "encoding failed\n".to_string()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on metrics_addr {addr}"))?;
    info!(%addr, "serving Prometheus metrics on /metrics");
    let limiter = crate::listen::Limiter::new("metrics", MAX_CONNECTIONS);
    let deadlines = crate::listen::HttpDeadlines { headers: HEADER_TIMEOUT, lifetime: CONNECTION_LIFETIME };
    tokio::spawn(async move { crate::listen::serve_http(limiter, || listener.accept(), app, deadlines).await });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(StatsReport);

    impl Collector for Fixed {
        fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_report(&self.0, &mut enc)
        }
    }

    /// The conflict count is a counter per endpoint; the last claim a gauge (its time) labelled
    /// with the address and the foreign MAC, there only for endpoints that had one.
    #[test]
    fn address_conflicts_are_a_counter_and_the_last_claim_a_labelled_gauge() {
        let endpoint = |name: &str, conflicts: u64, last: Option<stats::ConflictStats>| stats::EndpointStats {
            network: "lan".into(),
            endpoint: name.into(),
            netns: name.into(),
            ifname: "eth0".into(),
            owner: None,
            parent: "eth0".into(),
            vlan: None,
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            dropped_packets: 0,
            drops: Default::default(),
            arp_answered: 0,
            nd_answered: 0,
            address_conflicts: conflicts,
            last_conflict: last,
        };
        let last = stats::ConflictStats {
            address: "172.16.10.20".parse().unwrap(),
            mac: crate::mac::Mac([2, 0xee, 0, 0, 0, 1]),
            unix_time: 1.5e9,
        };
        let report = StatsReport { endpoints: vec![endpoint("web1", 6, Some(last)), endpoint("web2", 0, None)], parents: vec![] };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(report)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vland_endpoint_address_conflicts_total{network=\"lan\",endpoint=\"web1\"} 6\n"), "{text}");
        assert!(text.contains("vland_endpoint_address_conflicts_total{network=\"lan\",endpoint=\"web2\"} 0\n"), "{text}");
        let gauge = "vland_endpoint_last_address_conflict_timestamp_seconds{network=\"lan\",endpoint=\"web1\",address=\"172.16.10.20\",mac=\"02:ee:00:00:00:01\"} 1500000000";
        assert!(text.contains(gauge), "{text}");
        assert_eq!(text.matches("vland_endpoint_last_address_conflict_timestamp_seconds{").count(), 1, "{text}");
    }
}
