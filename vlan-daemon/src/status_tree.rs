//! `vland status`'s tree of what the daemon manages, like `lsblk` for disks: parent link ->
//! VLAN sub-interface -> network -> endpoint, with each endpoint's addresses and state. Built from
//! the state file (what vland made) and the config (what it should make), so an endpoint still
//! waiting for its parent shows up too.
use crate::config::{Config, ParentKind};
use crate::state::State;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ParentNode {
    /// The physical (or existing) link: `eth1` for networks on `eth1` and on `eth1.19`.
    pub parent: String,
    pub vlans: Vec<VlanNode>,
}

/// Networks directly on the parent (`vlan` null) or on one of its VLAN sub-interfaces.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct VlanNode {
    pub vlan: Option<u16>,
    /// The link the children hang on: the parent itself, or `eth1.19`.
    pub link: String,
    pub networks: Vec<NetworkNode>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NetworkNode {
    pub network: String,
    /// "macvlan" or "ipvlan"; null for a network only the state still knows.
    pub driver: Option<&'static str>,
    pub endpoints: Vec<EndpointNode>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct EndpointNode {
    pub endpoint: String,
    pub netns: String,
    pub ifname: String,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac: Option<String>,
    pub state: EndpointState,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Its child link exists and carries vland's programs.
    Attached,
    /// Recorded (address reserved) but its link is not there yet: waiting for a retry or its parent.
    Pending,
    /// In the config, not yet applied.
    NotApplied,
    /// Made by vland but no longer in the config: the next apply removes it.
    Removing,
}

impl EndpointState {
    fn name(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Pending => "pending",
            Self::NotApplied => "not applied",
            Self::Removing => "removing",
        }
    }
}

/// Splits a child's parent link into (base link, VLAN): `eth1.19` -> (eth1, 19).
fn split_parent(link: &str, config: Option<&Config>) -> (String, Option<u16>) {
    let from_config = config.and_then(|c| c.networks.values().find(|n| n.parent.name == link)).and_then(|n| match &n.parent.kind {
        ParentKind::Vlan { base, vid, .. } => Some((base.clone(), Some(*vid))),
        _ => None,
    });
    from_config.unwrap_or_else(|| match link.rsplit_once('.').and_then(|(base, vid)| Some((base, vid.parse().ok()?))) {
        Some((base, vid)) => (base.to_string(), Some(vid)),
        None => (link.to_string(), None),
    })
}

/// The networks on one link, by name: driver and endpoints.
type Networks = BTreeMap<String, (Option<&'static str>, Vec<EndpointNode>)>;

pub fn collect(state: &State, config: Option<&Config>) -> Vec<ParentNode> {
    // The host children of `host_access` networks are endpoints too.
    let with_hosts = config.map(crate::reconcile::host_access::with_host_children);
    let config = with_hosts.as_deref();
    let mut links: BTreeMap<String, Networks> = BTreeMap::new();
    if let Some(config) = config {
        for net in config.networks.values() {
            links.entry(net.parent.name.clone()).or_default().entry(net.name.clone()).or_default().0 = Some(net.driver.kind());
        }
    }
    for (name, rec) in &state.endpoints {
        let in_config = config.is_none_or(|c| c.endpoints.get(name).is_some_and(|e| e.network == rec.network));
        let state = match (in_config, rec.link.is_some()) {
            (false, _) => EndpointState::Removing,
            (true, true) => EndpointState::Attached,
            (true, false) => EndpointState::Pending,
        };
        links.entry(rec.parent.clone()).or_default().entry(rec.network.clone()).or_default().1.push(EndpointNode {
            endpoint: name.clone(),
            netns: rec.netns.to_string(),
            ifname: rec.ifname.clone(),
            ip: rec.ip.map(|a| a.to_string()),
            ip6: rec.ip6.map(|a| a.to_string()),
            mac: rec.mac.map(|m| m.to_string()),
            state,
        });
    }
    if let Some(config) = config {
        for ep in config.endpoints.values().filter(|e| !state.endpoints.contains_key(&e.name)) {
            let Some(net) = config.networks.get(&ep.network) else { continue };
            links.entry(net.parent.name.clone()).or_default().entry(net.name.clone()).or_default().1.push(EndpointNode {
                endpoint: ep.name.clone(),
                netns: ep.netns.to_string(),
                ifname: ep.ifname.clone(),
                ip: ep.ip.map(|a| a.to_string()),
                ip6: ep.ip6.map(|a| a.to_string()),
                mac: ep.mac.map(|m| m.to_string()),
                state: EndpointState::NotApplied,
            });
        }
    }
    let mut parents: BTreeMap<String, Vec<VlanNode>> = BTreeMap::new();
    for (link, networks) in links {
        let (base, vlan) = split_parent(&link, config);
        let networks = networks
            .into_iter()
            .map(|(network, (driver, mut endpoints))| {
                endpoints.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
                NetworkNode { network, driver, endpoints }
            })
            .collect();
        parents.entry(base).or_default().push(VlanNode { vlan, link, networks });
    }
    parents
        .into_iter()
        .map(|(parent, mut vlans)| {
            vlans.sort_by_key(|v| v.vlan);
            ParentNode { parent, vlans }
        })
        .collect()
}

/// One row per node, the first column drawn as a tree with lsblk's branches.
pub fn render(tree: &[ParentNode]) -> String {
    if tree.is_empty() {
        return "(the daemon manages nothing: its config has no networks)\n".to_string();
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let branch = |last: bool| if last { "└─" } else { "├─" };
    let stem = |last: bool| if last { "  " } else { "│ " };
    for p in tree {
        rows.push(vec![p.parent.clone()]);
        // Networks directly on the parent hang from it; a VLAN's networks hang from the VLAN.
        let mut items: Vec<(Option<&VlanNode>, &NetworkNode)> = Vec::new();
        for v in &p.vlans {
            if v.vlan.is_none() {
                items.extend(v.networks.iter().map(|n| (None, n)));
            }
        }
        let vlans: Vec<&VlanNode> = p.vlans.iter().filter(|v| v.vlan.is_some()).collect();
        let children = items.len() + vlans.len();
        let mut i = 0;
        for (_, net) in items {
            i += 1;
            network_rows(&mut rows, net, "", i == children, branch, stem);
        }
        for v in vlans {
            i += 1;
            let last = i == children;
            rows.push(vec![format!("{}{} (vlan {})", branch(last), v.link, v.vlan.unwrap_or_default())]);
            for (j, net) in v.networks.iter().enumerate() {
                network_rows(&mut rows, net, stem(last), j + 1 == v.networks.len(), branch, stem);
            }
        }
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING).set_header(vec!["NAME", "NETNS", "IFNAME", "ADDRESS", "ADDRESS6", "MAC", "STATE"]);
    for mut row in rows {
        row.resize(7, String::new());
        t.add_row(row);
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    format!("{}\n", t.trim_fmt())
}

fn network_rows(
    rows: &mut Vec<Vec<String>>,
    net: &NetworkNode,
    indent: &str,
    last: bool,
    branch: impl Fn(bool) -> &'static str,
    stem: impl Fn(bool) -> &'static str,
) {
    let driver = net.driver.map(|d| format!(" ({d})")).unwrap_or_default();
    rows.push(vec![format!("{indent}{}{}{driver}", branch(last), net.network)]);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for (k, e) in net.endpoints.iter().enumerate() {
        let name = format!("{indent}{}{}{}", stem(last), branch(k + 1 == net.endpoints.len()), e.endpoint);
        rows.push(vec![name, e.netns.clone(), e.ifname.clone(), dash(&e.ip), dash(&e.ip6), dash(&e.mac), e.state.name().to_string()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, ip: &str, state: EndpointState) -> EndpointNode {
        EndpointNode { endpoint: name.into(), netns: name.into(), ifname: "eth0".into(), ip: Some(ip.into()), ip6: None, mac: None, state }
    }

    #[test]
    fn renders_parent_vlan_network_endpoint_like_lsblk() {
        let tree = vec![ParentNode {
            parent: "eth1".into(),
            vlans: vec![
                VlanNode {
                    vlan: None,
                    link: "eth1".into(),
                    networks: vec![NetworkNode {
                        network: "lan".into(),
                        driver: Some("macvlan"),
                        endpoints: vec![endpoint("web1", "10.0.0.2", EndpointState::Attached)],
                    }],
                },
                VlanNode {
                    vlan: Some(19),
                    link: "eth1.19".into(),
                    networks: vec![NetworkNode {
                        network: "v19".into(),
                        driver: Some("ipvlan"),
                        endpoints: vec![
                            endpoint("db1", "10.19.0.2", EndpointState::Attached),
                            endpoint("db2", "10.19.0.3", EndpointState::Pending),
                        ],
                    }],
                },
            ],
        }];
        let expected = "\
NAME                 NETNS  IFNAME  ADDRESS    ADDRESS6  MAC  STATE
eth1
├─lan (macvlan)
│ └─web1             web1   eth0    10.0.0.2   -         -    attached
└─eth1.19 (vlan 19)
  └─v19 (ipvlan)
    ├─db1            db1    eth0    10.19.0.2  -         -    attached
    └─db2            db2    eth0    10.19.0.3  -         -    pending
";
        assert_eq!(render(&tree), expected);
    }
}
