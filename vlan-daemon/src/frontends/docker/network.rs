//! Docker's network-driver and IPAM calls, each a change to the front-end fragments. Networks
//! become `docker-<id>` network tables, containers `docker-<endpoint id>` endpoints; an endpoint
//! has a child only between Join and Leave (see `store::DockerPhase`).
use super::ipam;
use super::{Ctx, decode, options, short};
use crate::config::{Network, RawEndpoint, RawNetwork};
use crate::frontends::Apply;
use crate::frontends::store::{DockerPhase, EndpointFragment, Fragments, NetworkFragment, Origin};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tracing::{info, warn};

/// The fragment name of Docker's network `id`.
pub fn network_name(id: &str) -> String {
    format!("docker-{}", short(id))
}

/// The fragment name of Docker's endpoint `id`.
pub fn endpoint_name(id: &str) -> String {
    format!("docker-{}", short(id))
}

/// The child's name in vland's namespace, until Docker moves and renames it (15 bytes at most).
pub fn src_name(endpoint_id: &str) -> String {
    format!("vd{}", short(endpoint_id))
}

/// Docker's IDs are hex; anything else would end up in link and table names.
fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("{what} `{id}` is not a Docker ID (letters and digits)"));
    }
    Ok(())
}

pub async fn handle<A: Apply>(call: &str, body: &Value, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    if let Some(result) = stateless(call, body) {
        return result;
    }
    match call {
        "IpamDriver.RequestPool" => {
            let mut next = ctx.fragments.clone();
            let reply = ipam::request_pool(&mut next.docker_pools, &decode(call, body)?)?;
            ctx.save(next)?;
            Ok(reply)
        }
        "IpamDriver.RequestAddress" => {
            let mut next = ctx.fragments.clone();
            let reply = ipam::request_address(&mut next.docker_pools, &decode(call, body)?)?;
            ctx.save(next)?;
            Ok(reply)
        }
        "IpamDriver.ReleaseAddress" => {
            let mut next = ctx.fragments.clone();
            let reply = ipam::release_address(&mut next.docker_pools, &decode(call, body)?);
            ctx.save(next)?;
            Ok(reply)
        }
        "IpamDriver.ReleasePool" => {
            let mut next = ctx.fragments.clone();
            let reply = ipam::release_pool(&mut next.docker_pools, &decode(call, body)?);
            ctx.save(next)?;
            Ok(reply)
        }
        "NetworkDriver.CreateNetwork" => create_network(decode(call, body)?, ctx).await,
        "NetworkDriver.DeleteNetwork" => delete_network(decode(call, body)?, ctx).await,
        "NetworkDriver.CreateEndpoint" => create_endpoint(decode(call, body)?, ctx),
        "NetworkDriver.DeleteEndpoint" => delete_endpoint(decode(call, body)?, ctx).await,
        "NetworkDriver.Join" => join(decode(call, body)?, ctx).await,
        "NetworkDriver.Leave" => leave(decode(call, body)?, ctx).await,
        "NetworkDriver.EndpointOperInfo" => {
            let r: EndpointRef = decode(call, body)?;
            let name = endpoint_name(&r.endpoint_id);
            let value = match ctx.fragments.endpoints.get(&name) {
                Some(f) => json!({ "vland_endpoint": name, "ip": f.config.ip, "ip6": f.config.ip6 }),
                None => json!({}),
            };
            Ok(json!({ "Value": value }))
        }
        "NetworkDriver.AllocateNetwork" | "NetworkDriver.FreeNetwork" => {
            Err("vland is a local driver: swarm (global scope) networks are not supported".into())
        }
        other => Err(format!("vland's Docker plugin has no call `{other}`")),
    }
}

/// The calls that neither read nor change vland's state, answered where they arrive rather than
/// queued behind applies (Docker sends them in the middle of starting and removing containers).
pub fn stateless(call: &str, body: &Value) -> Option<Result<Value, String>> {
    match call {
        "NetworkDriver.ProgramExternalConnectivity" => Some(decode::<EndpointRef>(call, body).map(|r| {
            warn_about_ports(&r.endpoint_id, r.options.as_ref());
            json!({})
        })),
        "NetworkDriver.RevokeExternalConnectivity" | "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => Some(Ok(json!({}))),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointRef {
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamData {
    pool: String,
    #[serde(default)]
    gateway: String,
    #[serde(default)]
    aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default, rename = "IPv4Data")]
    ipv4_data: Option<Vec<IpamData>>,
    #[serde(default, rename = "IPv6Data")]
    ipv6_data: Option<Vec<IpamData>>,
}

/// The network's addressing from Docker's IPAM data: the pool's subnet, gateway and aux
/// addresses, and the `--ip-range` vland's IPAM recorded for that subnet.
fn addressing(net: &mut RawNetwork, data: &[IpamData], v6: bool, fragments: &Fragments, errors: &mut Vec<String>) {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let d = match data {
        [] => return,
        [d] => d,
        _ => {
            errors.push(format!("{} {family} subnets: vland networks have one subnet per family", data.len()));
            return;
        }
    };
    let range = ipam::pool_of(&fragments.docker_pools, &d.pool).and_then(|p| p.ip_range.clone());
    let gateway = Some(ipam::bare(&d.gateway).to_string()).filter(|g| !g.is_empty());
    if v6 {
        (net.subnet6, net.ip_range6, net.gateway6) = (Some(d.pool.clone()), range, gateway);
    } else {
        (net.subnet, net.ip_range, net.gateway) = (Some(d.pool.clone()), range, gateway);
    }
    for (name, addr) in d.aux_addresses.iter().flatten() {
        let key = if net.aux_addresses.contains_key(name) { format!("{name}-v6") } else { name.clone() };
        net.aux_addresses.insert(key, ipam::bare(addr).to_string());
    }
}

async fn create_network<A: Apply>(r: CreateNetwork, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    check_id("NetworkID", &r.network_id)?;
    let mut errors = Vec::new();
    let opts = options::parse(r.options.as_ref()).unwrap_or_else(|e| {
        errors.extend(e);
        options::NetworkOptions::default()
    });
    let mut net = opts.network;
    addressing(&mut net, r.ipv4_data.as_deref().unwrap_or_default(), false, &ctx.fragments, &mut errors);
    addressing(&mut net, r.ipv6_data.as_deref().unwrap_or_default(), true, &ctx.fragments, &mut errors);
    if opts.ipv6 && net.subnet6.is_none() {
        errors.push("--ipv6 needs an IPv6 --subnet".into());
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let name = network_name(&r.network_id);
    let mut next = ctx.fragments.clone();
    next.networks.insert(name.clone(), NetworkFragment { config: net, origin: Origin::DockerNetwork { network_id: r.network_id.clone() } });
    ctx.commit(next, &format!("Docker CreateNetwork {}", short(&r.network_id))).await?;
    info!(network = %name, "Docker created a network");
    Ok(json!({}))
}

async fn delete_network<A: Apply>(r: NetworkRef, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    let name = network_name(&r.network_id);
    let mut next = ctx.fragments.clone();
    // Endpoints Docker never deleted (it always does first) go with their network.
    next.endpoints.retain(|_, f| !matches!(&f.origin, Origin::DockerEndpoint { network_id, .. } if *network_id == r.network_id));
    if next.networks.remove(&name).is_none() && next.endpoints.len() == ctx.fragments.endpoints.len() {
        return Ok(json!({}));
    }
    ctx.commit(next, &format!("Docker DeleteNetwork {}", short(&r.network_id))).await?;
    Ok(json!({}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointInterface {
    #[serde(default)]
    address: String,
    #[serde(default, rename = "AddressIPv6")]
    address_ipv6: String,
    #[serde(default)]
    mac_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(default)]
    interface: Option<EndpointInterface>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

/// `docker run --mac-address`: in the interface, or base64 in the endpoint's options.
fn mac_of(r: &CreateEndpoint) -> Result<Option<String>, String> {
    if let Some(mac) = r.interface.as_ref().map(|i| &i.mac_address).filter(|m| !m.is_empty()) {
        return Ok(Some(mac.clone()));
    }
    let Some(v) = r.options.as_ref().and_then(|o| o.get("com.docker.network.endpoint.macaddress")) else { return Ok(None) };
    let bytes = v
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .filter(|b| b.len() == 6)
        .ok_or_else(|| format!("com.docker.network.endpoint.macaddress {v} is not a base64 MAC address"))?;
    Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")))
}

/// CreateEndpoint: the container's addresses (from IPAM) and MAC are recorded; its child is made
/// at Join. Checked now as the child would be, so a bad address fails `docker run` here.
fn create_endpoint<A: Apply>(r: CreateEndpoint, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    check_id("NetworkID", &r.network_id)?;
    check_id("EndpointID", &r.endpoint_id)?;
    let network = network_name(&r.network_id);
    if !ctx.fragments.networks.contains_key(&network) {
        return Err(format!("vland has no network {}: create it with `docker network create -d vland`", short(&r.network_id)));
    }
    let iface = r.interface.as_ref();
    let addr = |a: Option<&String>| a.filter(|a| !a.is_empty()).map(|a| ipam::bare(a).to_string());
    let ip = addr(iface.map(|i| &i.address));
    let ip6 = addr(iface.map(|i| &i.address_ipv6));
    if ip.is_none() && ip6.is_none() {
        return Err("Docker gave the endpoint no address: use `--ipam-driver vland` (or give the network a --subnet)".into());
    }
    let name = endpoint_name(&r.endpoint_id);
    if let Some(f) = ctx.fragments.endpoints.get(&name)
        && !matches!(&f.origin, Origin::DockerEndpoint { endpoint_id, .. } if *endpoint_id == r.endpoint_id)
    {
        return Err(format!("vland already has an endpoint named {name}"));
    }
    let config = RawEndpoint { network: Some(network), ip, ip6, mac: mac_of(&r)?, ..RawEndpoint::default() };
    let fragment = EndpointFragment {
        config,
        origin: Origin::DockerEndpoint {
            network_id: r.network_id.clone(),
            endpoint_id: r.endpoint_id.clone(),
            phase: DockerPhase::Created,
        },
    };
    // Validated as it will be once joined (addresses in the subnet, MAC, the parent's rules).
    let mut check = ctx.fragments.clone();
    let mut joined = fragment.clone();
    if let Origin::DockerEndpoint { phase, .. } = &mut joined.origin {
        *phase = DockerPhase::Joining { sandbox: PathBuf::new(), src_name: src_name(&r.endpoint_id), default_routes: [false; 2] };
    }
    check.endpoints.insert(name.clone(), joined);
    let config = ctx.validate(&check)?;
    let mut fragment = fragment;
    let takes_parent_mac = config.networks.get(&network_name(&r.network_id)).is_some_and(|n| n.driver.takes_parent_mac());
    if fragment.config.mac.is_none() && !takes_parent_mac {
        fragment.config.mac = Some(unused_mac(&config, &ctx.state_dir)?.to_string());
    }
    let mac = fragment.config.mac.clone();
    let mut next = ctx.fragments.clone();
    next.endpoints.insert(name, fragment);
    ctx.save(next)?;
    // Docker knows the endpoint's MAC (`docker inspect`) only from this reply, and takes one only
    // if it sent none itself.
    let docker_has_mac = r.interface.as_ref().is_some_and(|i| !i.mac_address.is_empty());
    match mac.filter(|_| !docker_has_mac) {
        Some(mac) => Ok(json!({ "Interface": { "MacAddress": mac } })),
        None => Ok(json!({ "Interface": {} })),
    }
}

/// A MAC for a new child, chosen at CreateEndpoint so Docker can be told it: random (locally
/// administered, as Docker's own drivers and vland's allocation draw them), held by no endpoint
/// configured or recorded (a static MAC would be taken from a child holding it).
fn unused_mac(config: &crate::config::Config, state_dir: &std::path::Path) -> Result<crate::mac::Mac, String> {
    let store = crate::state::StateStore::open_locked(state_dir).map_err(|e| format!("cannot read vland's state: {e:#}"))?;
    let state = store.load().map_err(|e| format!("cannot read vland's state: {e:#}"))?;
    let taken: std::collections::BTreeSet<crate::mac::Mac> =
        config.endpoints.values().filter_map(|e| e.mac).chain(state.endpoints.values().filter_map(|r| r.mac)).collect();
    Ok(std::iter::repeat_with(crate::mac::Mac::random).find(|m| !taken.contains(m)).expect("2^46 MACs"))
}

async fn delete_endpoint<A: Apply>(r: EndpointRef, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    let name = endpoint_name(&r.endpoint_id);
    let mut next = ctx.fragments.clone();
    let Some(removed) = next.endpoints.remove(&name) else { return Ok(json!({})) };
    if removed.effective().is_some() {
        // Never left (Docker always leaves first): its child goes now.
        ctx.commit_endpoint(next, &format!("Docker DeleteEndpoint {}", short(&r.endpoint_id)), &name).await?;
    } else {
        ctx.save(next)?;
    }
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Join {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    sandbox_key: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

/// Docker publishes no ports for remote drivers (its documentation says so): a `-p` is said in
/// the log rather than dropped silently.
fn warn_about_ports(endpoint_id: &str, options: Option<&Map<String, Value>>) {
    let ports = options.and_then(|o| o.get("com.docker.network.portmap")).and_then(Value::as_array).filter(|p| !p.is_empty());
    if let Some(ports) = ports {
        let ports = Value::Array(ports.clone()).to_string();
        warn!(
            endpoint = %endpoint_name(endpoint_id),
            ports,
            "docker run -p on a vland network: Docker publishes no ports for remote network drivers, so none are published; \
             reach the container at its own address instead"
        );
    }
}

/// Join: the child is made in vland's namespace as SrcName (staged: no addresses or routes
/// there) and handed to Docker, which moves it into the sandbox, renames it `eth<n>` and
/// configures it from CreateEndpoint's addresses and this reply's gateway and routes.
async fn join<A: Apply>(r: Join, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    check_id("EndpointID", &r.endpoint_id)?;
    let name = endpoint_name(&r.endpoint_id);
    let Some(fragment) = ctx.fragments.endpoints.get(&name) else {
        return Err(format!("vland has no endpoint {}: Docker must CreateEndpoint before Join", short(&r.endpoint_id)));
    };
    if r.sandbox_key.is_empty() || !r.sandbox_key.starts_with('/') {
        return Err(format!("SandboxKey `{}` is not the path of a network namespace", r.sandbox_key));
    }
    warn_about_ports(&r.endpoint_id, r.options.as_ref());
    let network = fragment.config.network.clone().unwrap_or_default();
    // What Docker is told to set: the gateway, or a `dev` default route (ipvlan l3/l3s).
    let config = crate::config::load_with(ctx.path, &ctx.fragments).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    let net = config.networks.get(&network).ok_or_else(|| format!("vland has no network {network} for this endpoint"))?;
    let has_address = [fragment.config.ip.is_some(), fragment.config.ip6.is_some()];
    let (reply, default_routes) = join_reply(net, &src_name(&r.endpoint_id), has_address);
    let mut next = ctx.fragments.clone();
    if let Some(Origin::DockerEndpoint { phase, .. }) = next.endpoints.get_mut(&name).map(|f| &mut f.origin) {
        *phase = DockerPhase::Joining { sandbox: PathBuf::from(&r.sandbox_key), src_name: src_name(&r.endpoint_id), default_routes };
    }
    ctx.commit_endpoint(next, &format!("Docker Join {} (network {})", short(&r.endpoint_id), short(&r.network_id)), &name).await?;
    Ok(reply)
}

/// Join's reply: the child's name in vland's namespace, and what Docker sets in the sandbox,
/// the gateway or (ipvlan l3/l3s) a `dev` default route, per family the endpoint has an address
/// of; and for which families that gives a default route.
fn join_reply(net: &Network, src: &str, has_address: [bool; 2]) -> (Value, [bool; 2]) {
    let mut reply = json!({ "InterfaceName": { "SrcName": src, "DstPrefix": "eth" } });
    let mut static_routes = Vec::new();
    let mut default_routes = [false; 2];
    for v6 in [false, true] {
        if net.internal || net.ipam(v6).is_none() || !has_address[v6 as usize] {
            continue;
        }
        if let Some(gw) = net.default_gateway(v6) {
            reply[if v6 { "GatewayIPv6" } else { "Gateway" }] = json!(gw.to_string());
            default_routes[v6 as usize] = true;
        } else if net.driver.routes_by_device() {
            // RouteType 1: connected (`dev`), no next hop.
            static_routes.push(json!({ "Destination": if v6 { "::/0" } else { "0.0.0.0/0" }, "RouteType": 1 }));
            default_routes[v6 as usize] = true;
        }
    }
    if !static_routes.is_empty() {
        reply["StaticRoutes"] = Value::Array(static_routes);
    }
    (reply, default_routes)
}

/// Leave: Docker has moved the child back into vland's namespace under SrcName; it is deleted
/// (only if it carries this endpoint's tag), and the endpoint keeps its address until
/// DeleteEndpoint.
async fn leave<A: Apply>(r: EndpointRef, ctx: &mut Ctx<'_, A>) -> Result<Value, String> {
    let name = endpoint_name(&r.endpoint_id);
    let mut next = ctx.fragments.clone();
    let Some(fragment) = next.endpoints.get_mut(&name) else { return Ok(json!({})) };
    let Origin::DockerEndpoint { phase, .. } = &mut fragment.origin else {
        return Err(format!("endpoint {name} is not Docker's"));
    };
    let src = match std::mem::take(phase) {
        DockerPhase::Created => return Ok(json!({})),
        DockerPhase::Joining { src_name, .. } | DockerPhase::Joined { src_name, .. } => src_name,
    };
    match ctx.deferred.as_mut() {
        Some(deferred) => deferred.returned.push((name.clone(), src)),
        None => super::join::delete_returned(&name, &src).await.map_err(|e| format!("cannot remove the container's link {src}: {e:#}"))?,
    }
    ctx.commit_endpoint(next, &format!("Docker Leave {}", short(&r.endpoint_id)), &name).await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(table: &str) -> Network {
        let config = crate::config::parse_str(&format!("[networks.n]\nparent = \"eth0\"\n{table}"), "test").unwrap();
        config.networks["n"].clone()
    }

    #[test]
    fn docker_ipam_data_becomes_the_networks_addressing() {
        let mut fragments = Fragments::default();
        fragments.docker_pools.insert(
            "10.10.10.0/24|10.10.10.0/25".into(),
            crate::frontends::store::DockerPool {
                subnet: "10.10.10.0/24".into(),
                ip_range: Some("10.10.10.0/25".into()),
                addresses: BTreeMap::new(),
            },
        );
        let v4: Vec<IpamData> = serde_json::from_value(json!([{"AddressSpace": "LocalDefault", "Pool": "10.10.10.0/24",
            "Gateway": "10.10.10.1/24", "AuxAddresses": {"docker1": "10.10.10.101/24", "host": "10.10.10.200/24"}}]))
        .unwrap();
        let v6: Vec<IpamData> = serde_json::from_value(json!([{"AddressSpace": "LocalDefault", "Pool": "fd00:10::/64",
            "Gateway": "fd00:10::1/64", "AuxAddresses": {"host": "fd00:10::5/64"}}]))
        .unwrap();
        let (mut net, mut errors) = (RawNetwork::default(), Vec::new());
        addressing(&mut net, &v4, false, &fragments, &mut errors);
        addressing(&mut net, &v6, true, &fragments, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (net.subnet.as_deref(), net.ip_range.as_deref(), net.gateway.as_deref()),
            (Some("10.10.10.0/24"), Some("10.10.10.0/25"), Some("10.10.10.1"))
        );
        assert_eq!(
            (net.subnet6.as_deref(), net.ip_range6.as_deref(), net.gateway6.as_deref()),
            (Some("fd00:10::/64"), None, Some("fd00:10::1"))
        );
        let aux: Vec<(&str, &str)> = net.aux_addresses.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(aux, [("docker1", "10.10.10.101"), ("host", "10.10.10.200"), ("host-v6", "fd00:10::5")]);
        // Two subnets of one family: refused.
        let two: Vec<IpamData> = serde_json::from_value(json!([{"Pool": "10.1.0.0/24"}, {"Pool": "10.2.0.0/24"}])).unwrap();
        addressing(&mut RawNetwork::default(), &two, false, &fragments, &mut errors);
        assert!(errors[0].contains("one subnet per family"), "{errors:?}");
    }

    #[test]
    fn join_tells_docker_the_gateway_or_the_dev_route() {
        let macvlan = network(
            "driver = \"macvlan\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\nsubnet6 = \"fd00::/64\"\ngateway6 = \"fd00::1\"",
        );
        let (reply, routes) = join_reply(&macvlan, "vd0123", [true, true]);
        assert_eq!(
            reply,
            json!({"InterfaceName": {"SrcName": "vd0123", "DstPrefix": "eth"}, "Gateway": "10.0.0.1", "GatewayIPv6": "fd00::1"})
        );
        assert_eq!(routes, [true, true]);
        // Without an IPv6 address, no IPv6 gateway.
        assert_eq!(join_reply(&macvlan, "vd0123", [true, false]).1, [true, false]);
        let l3 = network("driver = \"ipvlan\"\nmode = \"l3\"\nsubnet = \"10.0.0.0/24\"");
        let (reply, routes) = join_reply(&l3, "vd0123", [true, false]);
        assert_eq!(reply.get("Gateway"), None);
        assert_eq!(reply["StaticRoutes"], json!([{"Destination": "0.0.0.0/0", "RouteType": 1}]));
        assert_eq!(routes, [true, false]);
        let internal = network("driver = \"macvlan\"\ninternal = true\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"");
        let (reply, routes) = join_reply(&internal, "vd0123", [true, false]);
        assert_eq!((reply.get("Gateway"), reply.get("StaticRoutes"), routes), (None, None, [false, false]));
    }
}
