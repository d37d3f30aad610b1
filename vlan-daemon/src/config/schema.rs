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
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    pub mtu: Option<u32>,
    pub metric: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawEndpoint {
    pub network: Option<String>,
    pub netns: Option<String>,
    pub netns_path: Option<PathBuf>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    pub ifname: Option<String>,
}
