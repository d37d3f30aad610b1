//! The config as written: TOML tables modelled on Docker's network flags. Field names here are
//! the product's contract. Values stay strings where validation wants to explain bad ones itself.
use serde::{Deserialize, Serialize};
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
    /// Several hosts sharing the pools of `scope = "cluster"` networks through etcd.
    pub cluster: Option<RawCluster>,
    /// Serving Docker's plugin API (network and IPAM driver `vland`).
    pub docker: Option<RawDocker>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawDocker {
    /// The plugin socket; its file name (without `.sock`) is the driver's name in Docker.
    pub socket: Option<PathBuf>,
}

/// Where Docker finds vland's plugin socket by default: driver name `vland`.
pub fn default_docker_socket() -> PathBuf {
    PathBuf::from("/run/docker/plugins/vland.sock")
}

#[derive(Debug, Default, Deserialize)]
pub struct RawCluster {
    /// Client URLs of any members of one etcd cluster.
    #[serde(default)]
    pub etcd: Vec<String>,
    /// This host's name in the cluster (default: the hostname).
    pub host: Option<String>,
    /// Prefix length of the IPv4 address blocks a host claims (default 28).
    pub block_size: Option<u8>,
    /// Prefix length of the IPv6 address blocks (default 122).
    pub block_size6: Option<u8>,
    /// Seconds this host's lease lasts without renewal (default 30): how soon others may
    /// release a host that died.
    pub lease_ttl: Option<u32>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
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
    /// Docker's API socket, asked for the names of Docker's networks and containers in stats
    /// and metrics (default /var/run/docker.sock).
    pub docker_api: Option<PathBuf>,
    /// Seconds between whole applies that the daemon makes on its own (0: none), for drift the
    /// kernel announces to no one: a sysctl written by hand, a detached tcx program.
    #[serde(default = "default_resync_interval")]
    pub resync_interval: u64,
}

pub fn default_resync_interval() -> u64 {
    90
}

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/vland")
}

pub fn default_bpf_dir() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/vland")
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            bpf_dir: default_bpf_dir(),
            socket: None,
            metrics_addr: None,
            docker_api: None,
            resync_interval: default_resync_interval(),
        }
    }
}

/// The keys of a `[networks.NAME]` table, read from `RawNetwork` itself so that the front-ends'
/// option checks (CNI's inline networks, Docker's `-o key=value`) and the fuzzer never lag it.
pub fn network_keys() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<RawNetwork>()
}

/// The keys of an `[endpoints.NAME]` table, likewise.
pub fn endpoint_keys() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<RawEndpoint>()
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Serialize)]
/// Also the shape of a front-end's fragment (see frontends::store), hence Serialize.
pub struct RawNetwork {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// macvlan mode "source": the MACs whose frames the children receive.
    #[serde(default)]
    pub source_macs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipvlan_flag: Option<String>,
    /// For a dotted parent (`eth1.19`): "802.1Q" (default) or "802.1ad".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gratuitous_arp: Option<bool>,
    /// Answer ARP and neighbour solicitations for the endpoints in the parent's XDP hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp_responder: Option<bool>,
    /// Watch the segment for frames claiming the endpoints' addresses from other MACs (the
    /// parent's XDP hook; also without `arp_responder`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_conflicts: Option<bool>,
    /// How the children's counting programs are attached: "tc" (default: clsact + cls_bpf
    /// filters) or "tcx" (cheaper per packet, ~12 ms of RTNL per attach and detach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter_hook: Option<String>,
    /// The host reaches the endpoints through a child of its own on the parent (see host_access).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_access: bool,
    /// The host child's addresses, in the subnets, reserved from allocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_address6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// "local" (default): the pool is this host's; "cluster": shared through etcd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RawRoute {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RawEndpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Set by a front-end, never by the file: the child is made in vland's own namespace for an
    /// engine to move (Docker's Join), so it gets no addresses or routes there.
    #[serde(skip)]
    pub staged: bool,
}
