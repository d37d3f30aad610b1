//! Semantic checks of a parsed config, one module per concept. Every check pushes an error and
//! carries on, so one run reports everything; nothing here touches the kernel.
mod cluster;
mod endpoint;
mod host_access;
mod ipam;
mod names;
mod network;
mod parent;
mod trunk;
mod uniqueness;

pub use ipam::is_network_or_broadcast;
pub use names::{check_ifname, check_name};
pub use parent::dummy_name;

use super::errors::ConfigErrors;
use super::model::Config;
use super::schema::RawConfig;
use std::collections::BTreeMap;

/// A day: beyond it a resync repairs nothing in time (and the timer would overflow).
const MAX_RESYNC_INTERVAL: u64 = 86_400;

pub fn validate(raw: RawConfig, errors: &mut ConfigErrors) -> Config {
    let mut networks = BTreeMap::new();
    for (name, net) in &raw.networks {
        if let Some(n) = network::network(name, net, errors) {
            networks.insert(name.clone(), n);
        }
    }
    uniqueness::check_parent_sharing(&networks, errors);
    let mut endpoints = BTreeMap::new();
    for (name, ep) in &raw.endpoints {
        if let Some(e) = endpoint::endpoint(name, ep, &raw.networks, &networks, errors) {
            endpoints.insert(name.clone(), e);
        }
    }
    uniqueness::check_endpoints(&endpoints, &networks, errors);
    host_access::check_endpoints(&endpoints, &networks, errors);
    if endpoints.len() >= vlan_common::MAX_ENDPOINTS as usize {
        errors.push(
            "endpoints",
            format!(
                "{} endpoints, but vland's data plane holds at most {} per host: remove some",
                endpoints.len(),
                vlan_common::MAX_ENDPOINTS - 1
            ),
        );
    }
    if let Some(addr) = &raw.daemon.metrics_addr
        && addr.parse::<std::net::SocketAddr>().is_err()
    {
        errors.push("daemon.metrics_addr", format!("`{addr}` is not an address:port: write it like \"127.0.0.1:9750\" or \"[::1]:9750\""));
    }
    if let Some(api) = &raw.daemon.docker_api
        && !api.is_absolute()
    {
        errors.push(
            "daemon.docker_api",
            format!("{} is relative: give Docker's API socket as an absolute path such as /var/run/docker.sock", api.display()),
        );
    }
    if raw.daemon.resync_interval > MAX_RESYNC_INTERVAL {
        errors.push(
            "daemon.resync_interval",
            format!(
                "{} s is more than a day: give at most {MAX_RESYNC_INTERVAL} (seconds), or 0 for no periodic apply",
                raw.daemon.resync_interval
            ),
        );
    }
    let trunks = raw.trunks.iter().filter_map(|(name, t)| trunk::trunk(name, t, errors).map(|t| (name.clone(), t))).collect();
    let cluster = cluster::cluster(raw.cluster.as_ref(), &networks, errors);
    let docker = raw.docker.as_ref().and_then(|d| docker(d, errors));
    Config { daemon: raw.daemon, networks, endpoints, trunks, cluster, docker }
}

/// The `[docker]` table: where the plugin socket goes.
fn docker(raw: &super::schema::RawDocker, errors: &mut ConfigErrors) -> Option<super::model::DockerConfig> {
    let socket = raw.socket.clone().unwrap_or_else(super::schema::default_docker_socket);
    if !socket.is_absolute() {
        errors.push(
            "docker.socket",
            format!("{} is relative: give an absolute path such as /run/docker/plugins/vland.sock", socket.display()),
        );
        return None;
    }
    if socket.extension().and_then(|e| e.to_str()) != Some("sock") {
        errors.push("docker.socket", format!("{}: Docker finds plugins by `NAME.sock` files: end the path with .sock", socket.display()));
        return None;
    }
    Some(super::model::DockerConfig { socket })
}
