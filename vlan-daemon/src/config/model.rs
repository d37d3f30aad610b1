//! The validated config: every value parsed, every cross-reference checked.
use super::schema::DaemonConfig;
use ipnetwork::Ipv4Network;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Bridge,
    Vepa,
    Private,
    Passthru,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvlanMode {
    L2,
    L3,
    L3s,
}

/// The link kind a network's endpoints get, with its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Macvlan(MacvlanMode),
    Ipvlan(IpvlanMode),
}

impl Driver {
    pub fn kind(&self) -> &'static str {
        match self {
            Driver::Macvlan(_) => "macvlan",
            Driver::Ipvlan(_) => "ipvlan",
        }
    }

    /// ipvlan l3/l3s children route everything out of their own device: no gateway is used.
    pub fn routes_by_device(&self) -> bool {
        matches!(self, Driver::Ipvlan(IpvlanMode::L3 | IpvlanMode::L3s))
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Private => "private",
            MacvlanMode::Passthru => "passthru",
        })
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipam {
    pub subnet: Ipv4Network,
    /// Where automatic allocation draws from; the whole subnet when no `ip_range` is given.
    pub range: Ipv4Network,
    pub gateway: Option<Ipv4Addr>,
    /// Reserved addresses (`aux_addresses`), never allocated.
    pub reserved: BTreeMap<String, Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub driver: Driver,
    pub parent: String,
    pub ipam: Option<Ipam>,
    /// No gateway and no default route for endpoints.
    pub internal: bool,
    pub mtu: Option<u32>,
    pub metric: Option<u32>,
}

impl Network {
    /// The default-route gateway endpoints use, if any.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        if self.internal || self.driver.routes_by_device() {
            return None;
        }
        self.ipam.as_ref().and_then(|i| i.gateway)
    }
}

/// Which network namespace an endpoint lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsRef {
    /// A name under /run/netns: created if missing (and then removed by `down`).
    Named(String),
    /// Any nsfs path, e.g. /proc/PID/ns/net of a running process: used, never removed.
    Path(PathBuf),
}

impl NetnsRef {
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Named(name) => crate::netns::named_path(name),
            NetnsRef::Path(p) => p.clone(),
        }
    }
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsRef::Named(n) => f.write_str(n),
            NetnsRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub network: String,
    pub netns: NetnsRef,
    /// A static address; None = allocate from the network's range.
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    pub ifname: String,
}
