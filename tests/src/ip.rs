//! What `ip -j -d` shows, typed: only the fields the tests read, each defaulted when iproute2
//! leaves it out (a veth has no `info_data`, a link without XDP has no `xdp`).
use crate::sh::{run, run_ok};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// One entry of `ip -j -d link show`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Link {
    pub ifindex: u32,
    pub ifname: String,
    pub address: String,
    pub flags: Vec<String>,
    pub mtu: u32,
    pub ifalias: Option<String>,
    pub xdp: Option<Xdp>,
    pub linkinfo: LinkInfo,
    pub stats64: Option<Stats64>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// The kind (`macvlan`, `veth`, ...), empty for a device without one (loopback).
    pub fn kind(&self) -> &str {
        &self.linkinfo.info_kind
    }

    /// The attached XDP program, if any.
    pub fn xdp_prog(&self) -> Option<&XdpProg> {
        self.xdp.as_ref()?.prog.as_ref()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LinkInfo {
    pub info_kind: String,
    pub info_data: InfoData,
}

/// The driver's own attributes; which ones are there depends on the kind.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct InfoData {
    /// macvlan/ipvlan mode (`bridge`, `l3`, ...).
    pub mode: Option<String>,
    /// vlan: the VLAN id and tag protocol (`802.1Q` / `802.1ad`).
    pub id: Option<u16>,
    pub protocol: Option<String>,
    /// ipvlan's private and vepa flags.
    pub private: Option<bool>,
    pub vepa: Option<bool>,
    /// macvlan source mode: how many source MACs are listed, and (with `ip -d -d`) which.
    pub macaddr_count: Option<u32>,
    pub macaddr_data: Vec<String>,
}

/// XDP as iproute2 shows it: `mode` 1 is native (driver), 2 generic (skb).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Xdp {
    pub mode: u8,
    pub prog: Option<XdpProg>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct XdpProg {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Stats64 {
    pub rx: Counts,
    pub tx: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
}

/// One device of `ip -j addr show`, with its addresses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
struct AddrDevice {
    addr_info: Vec<Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Addr {
    pub local: String,
    pub prefixlen: u8,
}

impl Addr {
    /// `local/prefixlen`, as `ip addr` prints it.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.local, self.prefixlen)
    }
}

/// One entry of `ip -j route show`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Route {
    pub dst: String,
    pub dev: String,
    pub gateway: Option<String>,
    pub metric: Option<u32>,
}

fn args<'a>(ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec!["-n", ns, "-j", "-d"];
    full.extend_from_slice(args);
    full
}

/// `ip -j -d ARGS` inside namespace `ns`, parsed into `T`.
pub fn show<T: DeserializeOwned>(ns: &str, cmd: &[&str]) -> T {
    let full = args(ns, cmd);
    let text = run_ok("ip", &full);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip {} printed what is not the expected JSON ({e}): {text}", full.join(" ")))
}

/// Like `show`, for polling: None while the command fails (e.g. the device is not there yet).
pub fn try_show<T: DeserializeOwned>(ns: &str, cmd: &[&str]) -> Option<T> {
    let out = run("ip", &args(ns, cmd));
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Device `dev` in namespace `ns`.
pub fn link(ns: &str, dev: &str) -> Link {
    try_link(ns, dev).unwrap_or_else(|| panic!("no device {dev} in {ns}"))
}

pub fn try_link(ns: &str, dev: &str) -> Option<Link> {
    try_show::<Vec<Link>>(ns, &["link", "show", "dev", dev])?.into_iter().next()
}

/// Device `dev` with its counters (`ip -s`).
pub fn link_stats(ns: &str, dev: &str) -> Stats64 {
    show::<Vec<Link>>(ns, &["-s", "link", "show", "dev", dev]).remove(0).stats64.unwrap_or_default()
}

/// Every device in namespace `ns`.
pub fn links(ns: &str) -> Vec<Link> {
    show(ns, &["link", "show"])
}

pub fn link_names(ns: &str) -> Vec<String> {
    links(ns).into_iter().map(|l| l.ifname).collect()
}

/// The addresses of `ip FAMILY addr show ARGS...` (`family` is "-4" or "-6"), in order.
pub fn addrs(ns: &str, family: &str, filter: &[&str]) -> Vec<Addr> {
    try_addrs(ns, family, filter).unwrap_or_else(|| panic!("ip {family} addr show {filter:?} failed in {ns}"))
}

/// Like `addrs`, for polling: None while the command fails (the device is not there yet).
pub fn try_addrs(ns: &str, family: &str, filter: &[&str]) -> Option<Vec<Addr>> {
    let mut cmd = vec![family, "addr", "show"];
    cmd.extend_from_slice(filter);
    // iproute2 prints an IPv6 address's lifetimes as an entry of their own, without `local`.
    Some(try_show::<Vec<AddrDevice>>(ns, &cmd)?.into_iter().flat_map(|d| d.addr_info).filter(|a| !a.local.is_empty()).collect())
}

/// The first address of `dev` in `family`, polling-safe.
pub fn first_addr(ns: &str, family: &str, dev: &str) -> Option<String> {
    try_addrs(ns, family, &["dev", dev])?.into_iter().next().map(|a| a.local)
}

/// `ip FAMILY route show ARGS...`.
pub fn routes(ns: &str, family: &str, filter: &[&str]) -> Vec<Route> {
    let mut cmd = vec![family, "route", "show"];
    cmd.extend_from_slice(filter);
    show(ns, &cmd)
}
