//! `vland stats`: counters read straight from the pinned eBPF maps, named through vland's state.
//! Works whether or not the daemon runs.
use crate::config::DaemonConfig;
use crate::ebpf::{Pins, VlanKey, read_conflicts, read_endpoint_drops, read_endpoint_traffic, read_neigh_counters, read_trunk_counters};
use crate::state;
use serde::Serialize;
use std::collections::BTreeMap;
use vlan_common::{DropReason, ETH_P_8021AD, ETH_P_8021Q};

#[derive(Debug, Serialize)]
pub struct EndpointStats {
    pub network: String,
    pub endpoint: String,
    pub netns: String,
    pub ifname: String,
    /// Who made the endpoint when a front-end did: "container ID" or "pod NS/NAME (container ID)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub parent: String,
    /// The VLAN of the parent, for `eth1.19`-style parents.
    pub vlan: Option<u16>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the endpoint sent that vland dropped (spoofing), in total and per reason.
    pub dropped_packets: u64,
    pub drops: BTreeMap<&'static str, u64>,
    /// ARP requests and IPv6 neighbour solicitations for the endpoint that its parent's
    /// responder answered (they never reached the children).
    pub arp_answered: u64,
    pub nd_answered: u64,
    /// Frames from the segment that claimed the endpoint's address from a MAC not its own
    /// (seen by the parent's XDP program, with `detect_conflicts` or `arp_responder`).
    pub address_conflicts: u64,
    /// The last of them.
    pub last_conflict: Option<ConflictStats>,
}

/// The last frame that claimed an endpoint's address from a foreign MAC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictStats {
    pub address: std::net::IpAddr,
    pub mac: crate::mac::Mac,
    /// When, in seconds since the Unix epoch.
    pub unix_time: f64,
}

impl From<crate::ebpf::LastSeen> for ConflictStats {
    fn from(l: crate::ebpf::LastSeen) -> Self {
        let unix_time = l.at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        ConflictStats { address: l.address, mac: l.mac, unix_time }
    }
}

/// One VLAN on one trunk (`vlan` null: frames without a tag, and frames too short to parse).
#[derive(Debug, Serialize)]
pub struct ParentStats {
    pub parent: String,
    pub vlan: Option<u16>,
    /// "802.1Q" or "802.1ad"; null for the untagged row.
    pub protocol: Option<&'static str>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub dropped_packets: u64,
    pub drops: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub endpoints: Vec<EndpointStats>,
    pub parents: Vec<ParentStats>,
}

fn vlan_of(parent: &str) -> Option<u16> {
    parent.rsplit_once('.').and_then(|(_, vid)| vid.parse().ok())
}

/// A state dir vland may not read means a user without root: say so rather than only EACCES.
fn needs_root(e: anyhow::Error) -> anyhow::Error {
    let denied = e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied));
    if denied { e.context("vland's state and counters are root's: run stats as root") } else { e }
}

pub fn collect(daemon: &DaemonConfig) -> anyhow::Result<StatsReport> {
    let state = state::read(&daemon.state_dir).map_err(|e| needs_root(e.into()))?;
    let pins = Pins::new(&daemon.bpf_dir);
    pins.check_owner(&daemon.state_dir)?;
    let slots: Vec<u32> = state.endpoints.values().filter(|r| r.link.is_some()).filter_map(|r| r.slot).collect();
    let traffic = read_endpoint_traffic(&pins, &slots)?;
    let endpoint_drops = read_endpoint_drops(&pins, &slots)?;
    // Names of what the front-ends made; stats still work if that file cannot be read.
    let fragments = crate::frontends::store::read(&daemon.state_dir).unwrap_or_default();
    let answered = read_neigh_counters(&pins, &slots)?;
    let conflicts = read_conflicts(&pins, &slots)?;
    let mut endpoints = Vec::new();
    for (name, rec) in &state.endpoints {
        let (Some(_), Some(slot)) = (rec.link, rec.slot) else { continue };
        let t = traffic.get(&slot).copied().unwrap_or_default();
        let d = endpoint_drops.get(&slot).copied().unwrap_or_default();
        let a = answered.get(&slot).copied().unwrap_or_default();
        let (address_conflicts, last) = conflicts.get(&slot).copied().unwrap_or_default();
        let drops: BTreeMap<&'static str, u64> =
            [(DropReason::SpoofedMac.name(), d.spoofed_mac), (DropReason::SpoofedIp.name(), d.spoofed_ip)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect();
        endpoints.push(EndpointStats {
            network: rec.network.clone(),
            endpoint: name.clone(),
            netns: rec.netns.to_string(),
            ifname: rec.ifname.clone(),
            owner: fragments.endpoints.get(name).and_then(|f| f.origin.owner()),
            parent: rec.parent.clone(),
            vlan: vlan_of(&rec.parent),
            rx_packets: t.rx_packets,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            tx_bytes: t.tx_bytes,
            dropped_packets: drops.values().sum(),
            drops,
            arp_answered: a.arp_answered,
            nd_answered: a.nd_answered,
            address_conflicts,
            last_conflict: last.map(Into::into),
        });
    }
    endpoints.sort_by(|a, b| (&a.network, &a.endpoint).cmp(&(&b.network, &b.endpoint)));

    let counters = read_trunk_counters(&pins, !state.trunks.is_empty())?;
    let mut parents = Vec::new();
    for (name, trunk) in &state.trunks {
        let on_trunk = |k: &VlanKey| k.netns_inum == trunk.netns_inum && k.ifindex == trunk.ifindex;
        let mut rows: BTreeMap<(u16, u16), ParentStats> = BTreeMap::new();
        for (k, s) in counters.vlans.iter().filter(|(k, _)| on_trunk(k)) {
            let row = parent_row(&mut rows, name, k);
            row.rx_packets += s.rx_packets;
            row.rx_bytes += s.rx_bytes;
            row.dropped_packets += s.dropped_packets;
        }
        for (k, n) in counters.drops.iter().filter(|(k, _)| on_trunk(&k.vlan)) {
            let row = parent_row(&mut rows, name, &k.vlan);
            *row.drops.entry(k.reason.name()).or_default() += n;
            // Malformed frames have no VLAN row of their own: they count as dropped on the untagged row.
            if k.reason == DropReason::Malformed {
                row.dropped_packets += n;
            }
        }
        parents.extend(rows.into_values());
    }
    Ok(StatsReport { endpoints, parents })
}

fn parent_row<'a>(rows: &'a mut BTreeMap<(u16, u16), ParentStats>, parent: &str, k: &VlanKey) -> &'a mut ParentStats {
    rows.entry((k.tpid, k.vid)).or_insert_with(|| ParentStats {
        parent: parent.to_string(),
        vlan: (k.tpid != 0).then_some(k.vid),
        protocol: match k.tpid {
            ETH_P_8021Q => Some("802.1Q"),
            ETH_P_8021AD => Some("802.1ad"),
            _ => None,
        },
        rx_packets: 0,
        rx_bytes: 0,
        dropped_packets: 0,
        drops: BTreeMap::new(),
    })
}

/// Which rows `vland stats` shows: one network's or one endpoint's, and the trunk VLANs they use.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub network: Option<String>,
    pub endpoint: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.network.is_none() && self.endpoint.is_none()
    }

    /// Keeps the matching endpoints and, when filtering, only the trunk rows of their VLANs.
    pub fn apply(&self, mut report: StatsReport) -> StatsReport {
        if self.is_empty() {
            return report;
        }
        report
            .endpoints
            .retain(|e| self.network.as_ref().is_none_or(|n| *n == e.network) && self.endpoint.as_ref().is_none_or(|n| *n == e.endpoint));
        let used: Vec<(String, Option<u16>)> = report
            .endpoints
            .iter()
            .filter_map(|e| e.vlan.map(|v| (e.parent.rsplit_once('.').map_or(e.parent.as_str(), |(base, _)| base).to_string(), Some(v))))
            .collect();
        report.parents.retain(|p| used.iter().any(|(base, vlan)| *base == p.parent && *vlan == p.vlan));
        report
    }
}

/// How `vland stats` prints: JSON, exact numbers, or human units (the default).
#[derive(Debug, Default, Clone)]
pub struct View {
    pub filter: Filter,
    pub json: bool,
    pub raw: bool,
}

pub fn run(daemon: &DaemonConfig, view: &View) -> anyhow::Result<()> {
    let report = view.filter.apply(collect(daemon)?);
    if view.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, view.raw));
    }
    Ok(())
}

/// Bytes in binary units (`1.2 MiB`), or exact with `raw`.
fn bytes(n: u64, raw: bool) -> String {
    if raw { n.to_string() } else { humansize::format_size(n, humansize::BINARY.decimal_places(1)) }
}

/// A count with an SI prefix (`3.4 k`, `12 M`), or exact with `raw`: packets are counted in
/// thousands and millions, not in powers of two.
fn count(n: f64, unit: &str, raw: bool) -> String {
    if raw {
        return format!("{n:.1}");
    }
    let (value, prefix) =
        [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")].into_iter().find(|(scale, _)| n >= *scale).map_or((n, ""), |(s, p)| (n / s, p));
    if prefix.is_empty() && value.fract() == 0.0 { format!("{value:.0} {unit}") } else { format!("{value:.1} {prefix}{unit}") }
}

fn packets(n: u64, raw: bool) -> String {
    if raw { n.to_string() } else { count(n as f64, "", false).trim_end().to_string() }
}

/// Left-aligned text columns, right-aligned numbers (the first `text_cols` columns are text),
/// two spaces apart and without borders, like `ps` or `ip -s link`.
fn table(header: &[&str], rows: &[Vec<String>], text_cols: usize) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING).set_header(header.to_vec()).add_rows(rows.iter().cloned());
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if i >= text_cols {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    format!("{}\n", t.trim_fmt())
}

fn render(report: &StatsReport, raw: bool) -> String {
    let dash = |v: Option<u16>| v.map_or("-".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = report
        .endpoints
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                e.parent.clone(),
                dash(e.vlan),
                e.endpoint.clone(),
                // A front-end's container or pod says more than its namespace's path.
                e.owner.clone().unwrap_or_else(|| e.netns.clone()),
                e.ifname.clone(),
                packets(e.rx_packets, raw),
                bytes(e.rx_bytes, raw),
                packets(e.tx_packets, raw),
                bytes(e.tx_bytes, raw),
                packets(e.dropped_packets, raw),
            ]
        })
        .collect();
    let mut out = table(
        &["NETWORK", "PARENT", "VLAN", "ENDPOINT", "NETNS", "IFNAME", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES", "TX_DROPPED"],
        &rows,
        6,
    );
    if rows.is_empty() {
        out.push_str("(no endpoints attached here: run `vland apply`, or check --network/--endpoint)\n");
    }
    out.push_str(&render_conflicts(report, raw, std::time::SystemTime::now()));
    if !report.parents.is_empty() {
        let rows: Vec<Vec<String>> = report
            .parents
            .iter()
            .map(|p| {
                let drops: Vec<String> = p.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
                vec![
                    p.parent.clone(),
                    dash(p.vlan),
                    p.protocol.unwrap_or("untagged").to_string(),
                    packets(p.rx_packets, raw),
                    bytes(p.rx_bytes, raw),
                    packets(p.dropped_packets, raw),
                    drops.join(" "),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["TRUNK", "VLAN", "TAG", "RX_PACKETS", "RX_BYTES", "DROPPED", "DROPS_BY_REASON"], &rows, 3));
    }
    out
}

/// Endpoints whose addresses someone else claimed: how often, and the last claim (nothing when
/// none was seen).
fn render_conflicts(report: &StatsReport, raw: bool, now: std::time::SystemTime) -> String {
    let rows: Vec<Vec<String>> = report
        .endpoints
        .iter()
        .filter_map(|e| {
            let last = e.last_conflict.as_ref()?;
            let now = now.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let ago = (now - last.unix_time).max(0.0);
            let when = if raw { format!("{:.3}", last.unix_time) } else { format!("{ago:.0} s ago") };
            Some(vec![
                e.network.clone(),
                e.endpoint.clone(),
                last.address.to_string(),
                last.mac.to_string(),
                when,
                packets(e.address_conflicts, raw),
            ])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!("\n{}", table(&["NETWORK", "ENDPOINT", "ADDRESS", "CLAIMED_BY", "LAST_SEEN", "ADDRESS_CONFLICTS"], &rows, 5))
}

/// Rates of one endpoint between two readings.
#[derive(Debug, Serialize)]
pub struct EndpointRates {
    pub network: String,
    pub endpoint: String,
    pub rx_pps: f64,
    pub rx_bytes_per_s: f64,
    pub tx_pps: f64,
    pub tx_bytes_per_s: f64,
    pub dropped_pps: f64,
}

/// Rates of one VLAN on one trunk between two readings.
#[derive(Debug, Serialize)]
pub struct ParentRates {
    pub parent: String,
    pub vlan: Option<u16>,
    pub rx_pps: f64,
    pub rx_bytes_per_s: f64,
    pub dropped_pps: f64,
}

#[derive(Debug, Serialize)]
pub struct Rates {
    pub interval_s: f64,
    pub endpoints: Vec<EndpointRates>,
    pub parents: Vec<ParentRates>,
}

/// Per-second rates from two reports; rows that appeared in between start from zero.
pub fn rates(old: &StatsReport, new: &StatsReport, secs: f64) -> Rates {
    let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let endpoints = new
        .endpoints
        .iter()
        .map(|n| {
            let o = old.endpoints.iter().find(|o| o.network == n.network && o.endpoint == n.endpoint);
            let was = |f: fn(&EndpointStats) -> u64| o.map_or(0, f);
            EndpointRates {
                network: n.network.clone(),
                endpoint: n.endpoint.clone(),
                rx_pps: per_s(was(|e| e.rx_packets), n.rx_packets),
                rx_bytes_per_s: per_s(was(|e| e.rx_bytes), n.rx_bytes),
                tx_pps: per_s(was(|e| e.tx_packets), n.tx_packets),
                tx_bytes_per_s: per_s(was(|e| e.tx_bytes), n.tx_bytes),
                dropped_pps: per_s(was(|e| e.dropped_packets), n.dropped_packets),
            }
        })
        .collect();
    let parents = new
        .parents
        .iter()
        .map(|n| {
            let o = old.parents.iter().find(|o| o.parent == n.parent && o.vlan == n.vlan && o.protocol == n.protocol);
            let was = |f: fn(&ParentStats) -> u64| o.map_or(0, f);
            ParentRates {
                parent: n.parent.clone(),
                vlan: n.vlan,
                rx_pps: per_s(was(|p| p.rx_packets), n.rx_packets),
                rx_bytes_per_s: per_s(was(|p| p.rx_bytes), n.rx_bytes),
                dropped_pps: per_s(was(|p| p.dropped_packets), n.dropped_packets),
            }
        })
        .collect();
    Rates { interval_s: secs, endpoints, parents }
}

fn render_rates(r: &Rates, raw: bool) -> String {
    let pps = |v: f64| count(v, "pps", raw);
    let bps = |v: f64| if raw { format!("{v:.1}") } else { format!("{}/s", bytes(v.round() as u64, false)) };
    let rows: Vec<Vec<String>> = r
        .endpoints
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                e.endpoint.clone(),
                pps(e.rx_pps),
                bps(e.rx_bytes_per_s),
                pps(e.tx_pps),
                bps(e.tx_bytes_per_s),
                pps(e.dropped_pps),
            ]
        })
        .collect();
    let mut out = format!("per second, over {:.1} s (Ctrl-C to stop)\n", r.interval_s);
    out.push_str(&table(&["NETWORK", "ENDPOINT", "RX_PPS", "RX_B/S", "TX_PPS", "TX_B/S", "DROP_PPS"], &rows, 2));
    if !r.parents.is_empty() {
        let rows: Vec<Vec<String>> = r
            .parents
            .iter()
            .map(|p| {
                vec![
                    p.parent.clone(),
                    p.vlan.map_or("-".into(), |v| v.to_string()),
                    pps(p.rx_pps),
                    bps(p.rx_bytes_per_s),
                    pps(p.dropped_pps),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["TRUNK", "VLAN", "RX_PPS", "RX_B/S", "DROP_PPS"], &rows, 2));
    }
    out
}

/// `vland stats --watch`: a reading every `interval`, printed as rates against the one before.
pub fn watch(daemon: &DaemonConfig, view: &View, interval: std::time::Duration, count: Option<u64>) -> anyhow::Result<()> {
    let read = || -> anyhow::Result<_> { Ok((std::time::Instant::now(), view.filter.apply(collect(daemon)?))) };
    let mut previous = read()?;
    let mut shown = 0;
    while count.is_none_or(|c| shown < c) {
        std::thread::sleep(interval);
        let now = read()?;
        let r = rates(&previous.1, &now.1, (now.0 - previous.0).as_secs_f64());
        if view.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            // Redraw in place, like top.
            print!("\x1b[2J\x1b[H{}", render_rates(&r, view.raw));
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        previous = now;
        shown += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text columns left-aligned, numbers right-aligned, two spaces between columns, no trailing blanks.
    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let report = StatsReport {
            endpoints: vec![EndpointStats {
                network: "lan".into(),
                endpoint: "web".into(),
                netns: "app-web".into(),
                ifname: "eth0".into(),
                owner: None,
                parent: "eth1.19".into(),
                vlan: Some(19),
                rx_packets: 5,
                rx_bytes: 1234567,
                tx_packets: 12,
                tx_bytes: 900,
                dropped_packets: 0,
                drops: BTreeMap::new(),
                arp_answered: 0,
                nd_answered: 0,
                address_conflicts: 0,
                last_conflict: None,
            }],
            parents: vec![ParentStats {
                parent: "eth1".into(),
                vlan: None,
                protocol: None,
                rx_packets: 3,
                rx_bytes: 180,
                dropped_packets: 3,
                drops: BTreeMap::from([("vlan_not_allowed", 2), ("runt", 1)]),
            }],
        };
        let expected = "\
NETWORK  PARENT   VLAN  ENDPOINT  NETNS    IFNAME  RX_PACKETS  RX_BYTES  TX_PACKETS  TX_BYTES  TX_DROPPED
lan      eth1.19  19    web       app-web  eth0             5   1234567          12       900           0

TRUNK  VLAN  TAG       RX_PACKETS  RX_BYTES  DROPPED            DROPS_BY_REASON
eth1   -     untagged           3       180        3  runt=1 vlan_not_allowed=2
";
        assert_eq!(render(&report, true), expected);
    }

    /// Endpoints with a conflict get a row with the address, the foreign MAC and when; none: no section.
    #[test]
    fn conflicts_are_listed_only_when_there_are_some() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let mut report = StatsReport { endpoints: vec![endpoint("lan", "web", "eth1")], parents: vec![] };
        assert_eq!(render_conflicts(&report, false, at), "");
        report.endpoints[0].address_conflicts = 3;
        report.endpoints[0].last_conflict =
            Some(ConflictStats { address: "172.16.10.20".parse().unwrap(), mac: crate::mac::Mac([2, 0, 0, 0, 0, 0x99]), unix_time: 990.0 });
        let expected = "
NETWORK  ENDPOINT  ADDRESS       CLAIMED_BY         LAST_SEEN  ADDRESS_CONFLICTS
lan      web       172.16.10.20  02:00:00:00:00:99  10 s ago                   3
";
        assert_eq!(render_conflicts(&report, false, at), expected);
        let json = serde_json::to_value(&report.endpoints[0]).unwrap();
        assert_eq!(json["address_conflicts"], 3);
        assert_eq!(json["last_conflict"]["mac"], "02:00:00:00:00:99");
        assert_eq!(json["last_conflict"]["address"], "172.16.10.20");
    }

    #[test]
    fn human_units_by_default() {
        assert_eq!(bytes(1_258_291, false), "1.2 MiB");
        assert_eq!(bytes(900, false), "900 B");
        assert_eq!(packets(12, false), "12");
        assert_eq!(packets(1_234_567, false), "1.2 M");
        assert_eq!(count(3_400.0, "pps", false), "3.4 kpps");
        assert_eq!(count(0.0, "pps", false), "0 pps");
        assert_eq!(count(3_400.0, "pps", true), "3400.0");
    }

    fn endpoint(network: &str, name: &str, parent: &str) -> EndpointStats {
        EndpointStats {
            network: network.into(),
            endpoint: name.into(),
            netns: name.into(),
            ifname: "eth0".into(),
            owner: None,
            parent: parent.into(),
            vlan: vlan_of(parent),
            rx_packets: 1,
            rx_bytes: 1,
            tx_packets: 1,
            tx_bytes: 1,
            dropped_packets: 0,
            drops: BTreeMap::new(),
            arp_answered: 0,
            nd_answered: 0,
            address_conflicts: 0,
            last_conflict: None,
        }
    }

    fn trunk_row(parent: &str, vlan: Option<u16>) -> ParentStats {
        ParentStats { parent: parent.into(), vlan, protocol: None, rx_packets: 1, rx_bytes: 1, dropped_packets: 0, drops: BTreeMap::new() }
    }

    /// --network and --endpoint keep their endpoints and the trunk VLANs those endpoints use.
    #[test]
    fn filters_keep_the_endpoints_and_their_trunk_vlans() {
        let report = || StatsReport {
            endpoints: vec![endpoint("v19", "a", "eth1.19"), endpoint("v19", "b", "eth1.19"), endpoint("v20", "c", "eth1.20")],
            parents: vec![trunk_row("eth1", None), trunk_row("eth1", Some(19)), trunk_row("eth1", Some(20))],
        };
        let names = |r: &StatsReport| r.endpoints.iter().map(|e| e.endpoint.clone()).collect::<Vec<_>>();
        let vlans = |r: &StatsReport| r.parents.iter().map(|p| p.vlan).collect::<Vec<_>>();
        let all = Filter::default().apply(report());
        assert_eq!((names(&all), vlans(&all)), (vec!["a".into(), "b".into(), "c".into()], vec![None, Some(19), Some(20)]));
        let net = Filter { network: Some("v19".into()), endpoint: None }.apply(report());
        assert_eq!((names(&net), vlans(&net)), (vec!["a".into(), "b".into()], vec![Some(19)]));
        let one = Filter { network: None, endpoint: Some("c".into()) }.apply(report());
        assert_eq!((names(&one), vlans(&one)), (vec!["c".into()], vec![Some(20)]));
        let none = Filter { network: Some("v19".into()), endpoint: Some("c".into()) }.apply(report());
        assert!(none.endpoints.is_empty() && none.parents.is_empty());
    }
}
