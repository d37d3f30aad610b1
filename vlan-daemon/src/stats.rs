//! `vland stats`: per-endpoint counters from the pinned eBPF maps, named via vland's state.
use crate::config::DaemonConfig;
use crate::ebpf::{Pins, read_endpoint_traffic};
use crate::state;
use serde::Serialize;
use vlan_common::EndpointKey;

#[derive(Debug, Serialize)]
pub struct EndpointStats {
    pub network: String,
    pub endpoint: String,
    pub netns: String,
    pub ifname: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub endpoints: Vec<EndpointStats>,
}

pub fn collect(daemon: &DaemonConfig) -> anyhow::Result<StatsReport> {
    let state = state::read(&daemon.state_dir)?;
    let traffic = read_endpoint_traffic(&Pins::new(&daemon.bpf_dir))?;
    let mut endpoints = Vec::new();
    for (name, rec) in &state.endpoints {
        let Some(link) = rec.link else { continue };
        let t = traffic.get(&EndpointKey { netns_inum: link.netns_inum, ifindex: link.ifindex }).copied().unwrap_or_default();
        endpoints.push(EndpointStats {
            network: rec.network.clone(),
            endpoint: name.clone(),
            netns: rec.netns.to_string(),
            ifname: rec.ifname.clone(),
            rx_packets: t.rx_packets,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            tx_bytes: t.tx_bytes,
        });
    }
    endpoints.sort_by(|a, b| (&a.network, &a.endpoint).cmp(&(&b.network, &b.endpoint)));
    Ok(StatsReport { endpoints })
}

pub fn run(daemon: &DaemonConfig, json: bool) -> anyhow::Result<()> {
    let report = collect(daemon)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print!("{}", render_table(&report));
    Ok(())
}

fn render_table(report: &StatsReport) -> String {
    let header = ["NETWORK", "ENDPOINT", "NETNS", "IFNAME", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES"];
    let rows: Vec<[String; 8]> = report
        .endpoints
        .iter()
        .map(|e| {
            [
                e.network.clone(),
                e.endpoint.clone(),
                e.netns.clone(),
                e.ifname.clone(),
                e.rx_packets.to_string(),
                e.rx_bytes.to_string(),
                e.tx_packets.to_string(),
                e.tx_bytes.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| if i < 4 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        out.push_str("(no endpoints attached: run `vland apply --config FILE`)\n");
    }
    out
}
