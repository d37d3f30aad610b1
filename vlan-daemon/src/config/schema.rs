//! The config as written: TOML tables modelled on Docker's network flags. Field names here are
//! the product's contract. Values stay strings where validation wants to explain bad ones itself.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub networks: BTreeMap<String, RawNetwork>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, RawEndpoint>,
    /// VLAN policy per trunk device (the base of `eth1.19`-style parents, or any other).
    #[serde(default)]
    pub trunks: BTreeMap<String, RawTrunk>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTrunk {
    /// 802.1Q VIDs carried besides those of the networks on this trunk.
    #[serde(default)]
    pub allowed_vlans: Vec<u16>,
    /// "pass" (default) or "drop" frames without a VLAN tag.
    pub untagged: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DaemonConfig {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_bpf_dir")]
    pub bpf_dir: PathBuf,
    pub socket: Option<PathBuf>,
    pub metrics_addr: Option<String>,
}

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/vland")
}

pub fn default_bpf_dir() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/vland")
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self { state_dir: default_state_dir(), bpf_dir: default_bpf_dir(), socket: None, metrics_addr: None }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RawNetwork {
    pub driver: Option<String>,
    pub parent: Option<String>,
    pub mode: Option<String>,
    /// macvlan mode "source": the MACs whose frames the children receive.
    #[serde(default)]
    pub source_macs: Vec<String>,
    pub ipvlan_flag: Option<String>,
    /// For a dotted parent (`eth1.19`): "802.1Q" (default) or "802.1ad".
    pub vlan_protocol: Option<String>,
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    pub subnet6: Option<String>,
    pub ip_range6: Option<String>,
    pub gateway6: Option<String>,
    /// Reserved addresses of either family.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    /// Let endpoints accept router advertisements and autoconfigure IPv6 (off by default).
    #[serde(default)]
    pub ipv6_autoconf: bool,
    /// Drop frames an endpoint sends with a source MAC or IP that is not its own.
    #[serde(default)]
    pub spoof_check: bool,
    /// Announce each endpoint with a gratuitous ARP when its child comes up (default on).
    pub gratuitous_arp: Option<bool>,
    /// Answer ARP and neighbour solicitations for the endpoints in the parent's XDP hook.
    pub arp_responder: Option<bool>,
    pub mtu: Option<u32>,
    pub metric: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRoute {
    pub to: Option<String>,
    pub via: Option<String>,
    pub metric: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawEndpoint {
    pub network: Option<String>,
    pub netns: Option<String>,
    pub netns_path: Option<PathBuf>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac: Option<String>,
    pub ifname: Option<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}
