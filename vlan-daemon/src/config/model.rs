//! The validated config: every value parsed, every cross-reference checked.
use super::schema::DaemonConfig;
use crate::drivers::Driver;
use crate::mac::Mac;
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The `[trunks.NAME]` tables (802.1Q VIDs); `trunk_vlans` adds what the networks imply.
    pub trunks: BTreeMap<String, TrunkVlans>,
    /// `[cluster]`: where `scope = "cluster"` networks coordinate their pools.
    pub cluster: Option<ClusterConfig>,
    /// `[docker]`: serve Docker's plugin API.
    pub docker: Option<DockerConfig>,
}

/// The `[docker]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// The plugin socket (Docker's driver name is its file name without `.sock`).
    pub socket: PathBuf,
}

/// The `[cluster]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub etcd: Vec<String>,
    pub host: String,
    pub block_size: u8,
    pub block_size6: u8,
    pub lease_ttl: u32,
    pub tls: Option<ClusterTls>,
}

/// TLS files for etcd: the CA that signed the members' certificates, and optionally a client
/// certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    pub ca_file: PathBuf,
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Where a network's address pool lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PoolScope {
    /// This host's state file only.
    #[default]
    Local,
    /// Shared with every host of the `[cluster]` through etcd, in per-host blocks.
    Cluster,
}

/// What vland enforces on one trunk device: the (tag protocol, VID) pairs it carries, and
/// whether frames without a tag are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkVlans {
    pub allowed: std::collections::BTreeSet<(u16, u16)>,
    pub untagged_drop: bool,
}

impl Config {
    /// Which endpoint of `netns` carries the namespace's default route of a family: a namespace
    /// has one default route, so among its endpoints whose network gives one (a gateway, or
    /// ipvlan l3 `dev`), the lowest metric wins, then the endpoint name (Docker: one gateway).
    pub fn default_route_owner(&self, netns: &NetnsRef, v6: bool) -> Option<&str> {
        self.endpoints
            .values()
            .filter(|e| &e.netns == netns)
            .filter(|e| self.gives_default_route(e, v6))
            .min_by_key(|e| self.route_rank(e))
            .map(|e| e.name.as_str())
    }

    /// `default_route_owner` of every namespace and family at once (one pass, not one per
    /// endpoint): keyed by namespace, [IPv4 owner, IPv6 owner].
    pub fn default_route_owners(&self) -> HashMap<&NetnsRef, [Option<&str>; 2]> {
        let mut owners: HashMap<&NetnsRef, [Option<&Endpoint>; 2]> = HashMap::new();
        for e in self.endpoints.values() {
            for v6 in [false, true] {
                if !self.gives_default_route(e, v6) {
                    continue;
                }
                let owner = &mut owners.entry(&e.netns).or_default()[v6 as usize];
                if owner.is_none_or(|o| self.route_rank(e) < self.route_rank(o)) {
                    *owner = Some(e);
                }
            }
        }
        owners.into_iter().map(|(ns, o)| (ns, o.map(|e| e.map(|e| e.name.as_str())))).collect()
    }

    fn gives_default_route(&self, e: &Endpoint, v6: bool) -> bool {
        let n = &self.networks[&e.network];
        !e.staged && !n.internal && n.ipam(v6).is_some() && (n.default_gateway(v6).is_some() || n.driver.routes_by_device())
    }

    fn route_rank<'e>(&self, e: &'e Endpoint) -> (u32, &'e str) {
        (self.networks[&e.network].metric.unwrap_or(0), e.name.as_str())
    }

    /// Every trunk with its allowed set: the VLANs of the networks whose parent is a
    /// sub-interface of it, plus its `[trunks.NAME]` table.
    pub fn trunk_vlans(&self) -> BTreeMap<String, TrunkVlans> {
        let mut plans: BTreeMap<String, TrunkVlans> = BTreeMap::new();
        for net in self.networks.values() {
            if let ParentKind::Vlan { base, vid, protocol } = &net.parent.kind {
                let tpid = match protocol {
                    VlanProtocol::Dot1Q => vlan_common::ETH_P_8021Q,
                    VlanProtocol::Dot1Ad => vlan_common::ETH_P_8021AD,
                };
                plans.entry(base.clone()).or_default().allowed.insert((tpid, *vid));
            }
        }
        for (name, trunk) in &self.trunks {
            let plan = plans.entry(name.clone()).or_default();
            plan.allowed.extend(trunk.allowed.iter().copied());
            plan.untagged_drop = trunk.untagged_drop;
        }
        plans
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VlanProtocol {
    #[serde(rename = "802.1Q")]
    Dot1Q,
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

/// Where a network's children hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentKind {
    /// An interface that must exist; vland never changes or deletes it.
    Existing,
    /// `base.vid`: an 802.1Q (or 802.1ad) sub-interface, created if missing.
    Vlan { base: String, vid: u16, protocol: VlanProtocol },
    /// No parent in the config: an internal network on a dummy link vland creates.
    Dummy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// The interface name children are created on.
    pub name: String,
    pub kind: ParentKind,
}

/// Addressing of one family on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipam {
    pub subnet: IpNetwork,
    /// Where automatic allocation draws from; the whole subnet when no range is given.
    pub range: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Reserved addresses (`aux_addresses` of this family), never allocated.
    pub reserved: BTreeMap<String, IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub driver: Driver,
    pub parent: Parent,
    pub ipam4: Option<Ipam>,
    pub ipam6: Option<Ipam>,
    /// No gateway and no default route for endpoints (always so without a parent).
    pub internal: bool,
    pub ipv6_autoconf: bool,
    pub spoof_check: bool,
    /// The kernel's arp_notify on each child: a gratuitous ARP when it comes up, as CNI does.
    pub gratuitous_arp: bool,
    /// The parent answers ARP and neighbour solicitations for the endpoints (XDP).
    pub arp_responder: bool,
    /// The parent counts frames that claim the endpoints' addresses from other MACs (XDP).
    pub detect_conflicts: bool,
    /// How the children's counting programs are attached (`counter_hook`).
    pub counter_hook: CounterHook,
    /// `host_access`: vland gives the host a child of its own on the parent, with these addresses.
    pub host_access: Option<HostAccess>,
    pub mtu: Option<u32>,
    pub metric: Option<u32>,
    pub scope: PoolScope,
}

impl Network {
    pub fn ipam(&self, v6: bool) -> Option<&Ipam> {
        if v6 { self.ipam6.as_ref() } else { self.ipam4.as_ref() }
    }

    /// The default-route gateway of one family endpoints use, if any.
    pub fn default_gateway(&self, v6: bool) -> Option<IpAddr> {
        if self.internal || self.driver.routes_by_device() {
            return None;
        }
        self.ipam(v6).and_then(|i| i.gateway)
    }
}

/// Where a network's children carry their two counting programs (`counter_hook`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterHook {
    /// cls_bpf filters on a clsact qdisc: tens of microseconds to attach, a few percent of a
    /// small-packet stream's rate at run time.
    #[default]
    Tc,
    /// tcx programs (Linux 6.6+): nearly free per packet, but each attach and detach waits for
    /// an RCU grace period under RTNL (~12 ms per hook).
    Tcx,
}

impl CounterHook {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterHook::Tc => "tc",
            CounterHook::Tcx => "tcx",
        }
    }
}

/// The host's own child on a network's parent (`host_access = true`): its address of each family
/// the network has (`host_address`, `host_address6`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAccess {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
}

/// Which network namespace an endpoint lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsRef {
    /// A name under /run/netns: created if missing (and then removed by `down`).
    Named(String),
    /// Any nsfs path, e.g. /proc/PID/ns/net of a running process: used, never removed.
    Path(PathBuf),
    /// The namespace vland itself runs in (where the parents are): the host children of
    /// `host_access` networks live here. Never created or removed.
    Own,
}

impl NetnsRef {
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Named(name) => crate::netns::named_path(name),
            NetnsRef::Path(p) => p.clone(),
            // The process's (the main thread's) namespace, whichever thread asks.
            NetnsRef::Own => PathBuf::from("/proc/self/ns/net"),
        }
    }

    /// Whether this is vland's own namespace, named as `Own` or by its path (as Docker's staged
    /// children are).
    pub fn is_own(&self) -> bool {
        self.path() == NetnsRef::Own.path()
    }
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsRef::Named(n) => f.write_str(n),
            NetnsRef::Path(p) => write!(f, "{}", p.display()),
            NetnsRef::Own => f.write_str("(host)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub to: IpNetwork,
    /// None: a device route (`dev eth0`).
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub network: String,
    pub netns: NetnsRef,
    /// Static addresses; None = allocate from the network's range of that family.
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub mac: Option<Mac>,
    pub ifname: String,
    pub routes: Vec<Route>,
    /// Made for an engine to move into its sandbox (Docker's Join): a bare child, without
    /// addresses or routes where it is made.
    pub staged: bool,
}

impl Endpoint {
    pub fn static_ip(&self, v6: bool) -> Option<IpAddr> {
        if v6 { self.ip6.map(IpAddr::V6) } else { self.ip.map(IpAddr::V4) }
    }
}
