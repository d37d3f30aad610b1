//! The daemon's side of `vland-cni`: each CNI call (ADD, DEL, CHECK, GC, STATUS) arrives on the
//! control socket as one JSON request, and becomes a change to the front-end fragments followed
//! by an apply of the effective config (file + fragments), or a plan (CHECK). The shim only
//! forwards (Multus' thick-plugin model): the daemon does the work, keeps the state and counts.
use super::Apply;
use super::netconf::{self, NetConf};
use super::store::{self, EndpointFragment, Fragments, NetworkFragment, Origin};
use crate::config::{self, Config, LoadError, RawEndpoint};
use crate::control::ApplyReport;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One CNI call, as the shim forwards it: the CNI_* variables and the network config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub command: String,
    #[serde(default)]
    pub container_id: String,
    #[serde(default)]
    pub netns: String,
    #[serde(default)]
    pub ifname: String,
    /// CNI_ARGS: `K=V;K=V`.
    #[serde(default)]
    pub args: String,
    pub config: Map<String, Value>,
}

/// The CNI spec's error: a well-known code (1-99) or one of vland's (100+).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Error {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// CNI's codes vland uses.
pub mod code {
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// vland's own: the kernel does not show what the attachment should have (CHECK).
    pub const DRIFT: u32 = 100;
    /// vland's own: the apply that carries out the call failed.
    pub const APPLY_FAILED: u32 = 101;
}

fn err(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Error {
    Error { code, msg: msg.into(), details: details.into() }
}

/// The daemon's answer: `result` (ADD's CNI result, else null) or `cni_error`.
pub fn answer(result: Result<Value, Error>) -> Value {
    match result {
        Ok(v) => json!({ "result": v }),
        Err(e) => json!({ "cni_error": e }),
    }
}

/// Handles one CNI call for the daemon running on config file `path`.
pub async fn handle(request: Request, path: &Path, applier: &mut impl Apply) -> Result<Value, Error> {
    let daemon = config::load_daemon_section(path).map_err(|e| err(code::IO, "cannot read vland's config", format!("{e:#}")))?;
    let state_dir = daemon.state_dir;
    let fragments = store::read(&state_dir).map_err(|e| err(code::IO, "cannot read vland's front-end fragments", format!("{e:#}")))?;
    // DEL and CHECK find the attachment by container ID and interface name: a config that has
    // since become invalid must not keep a container from being torn down.
    let conf = || netconf::parse(&request.config).map_err(|e| err(code::INVALID_CONFIG, "invalid network config", e.join("; ")));
    let args = CniArgs::parse(&request.args);
    match request.command.as_str() {
        "ADD" => add(&request, &conf()?, &args, path, &state_dir, fragments, applier).await,
        "DEL" => del(&request, path, &state_dir, fragments, applier).await,
        "CHECK" => check(&request, path, &fragments).await,
        "GC" => gc(&request, &conf()?, path, &state_dir, fragments, applier).await,
        "STATUS" => status(&conf()?, path),
        other => Err(err(code::INVALID_ENV, format!("unknown CNI_COMMAND `{other}`"), "")),
    }
}

/// Whether a call is one `handle_batch` takes: ADD and DEL, the calls whose cost is the apply.
pub fn batchable(request: &Request) -> bool {
    matches!(request.command.as_str(), "ADD" | "DEL")
}

/// ADD and DEL calls that arrived together, answered in order, as if handled one after another,
/// with ONE apply: each call's fragment change is made and validated in turn (a call refused
/// there is answered alone and changes nothing), then one apply covers the namespaces of all of
/// them, so their kernel work overlaps (a child's deletion waits ~20 ms for RCU). If that apply
/// fails, the fragments go back to what they were and each call is handled alone, so each gets
/// its own answer, and an ADD that fails alone is rolled back. A second call about an endpoint
/// the batch already changes is handled alone, after it.
pub async fn handle_batch(requests: Vec<Request>, path: &Path, applier: &mut impl Apply) -> Vec<Result<Value, Error>> {
    let mut answers: Vec<Option<Result<Value, Error>>> = vec![None; requests.len()];
    let loaded =
        config::load_daemon_section(path).map_err(|e| err(code::IO, "cannot read vland's config", format!("{e:#}"))).and_then(|daemon| {
            let fragments =
                store::read(&daemon.state_dir).map_err(|e| err(code::IO, "cannot read vland's front-end fragments", format!("{e:#}")))?;
            Ok((daemon.state_dir, fragments))
        });
    let (state_dir, before) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut fragments = before.clone();
    // (request index, endpoint, whether ADD): the calls the joint apply carries out.
    let mut staged: Vec<(usize, String, bool)> = Vec::new();
    // The effective config the staged fragments make (each call's check loads it anew).
    let mut validated = None;
    let mut alone = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let outcome = match request.command.as_str() {
            "ADD" => netconf::parse(&request.config)
                .map_err(|e| err(code::INVALID_CONFIG, "invalid network config", e.join("; ")))
                .and_then(|conf| stage_add(request, &conf, &CniArgs::parse(&request.args), path, &state_dir, &fragments))
                .map(|(name, next, config)| Some((name, next, config, true))),
            "DEL" => stage_del(request, path, fragments.clone()).map(|s| s.map(|(name, next, config)| (name, next, config, false))),
            _ => {
                alone.push(i);
                continue;
            }
        };
        match outcome {
            Ok(Some((name, ..))) if staged.iter().any(|(_, n, _)| *n == name) => alone.push(i),
            Ok(Some((name, next, config, is_add))) => {
                fragments = next;
                validated = Some(config);
                staged.push((i, name, is_add));
            }
            Ok(None) => answers[i] = Some(Ok(Value::Null)),
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    if !staged.is_empty() {
        let adds = staged.iter().filter(|(_, _, is_add)| *is_add).count();
        let why = format!("CNI: {adds} ADD and {} DEL together", staged.len() - adds);
        let scope: Vec<String> = staged.iter().map(|(_, name, _)| name.clone()).collect();
        let config: Config = validated.expect("a staged call validated the fragments");
        match save_and_apply(&state_dir, &fragments, applier, &why, &scope, Some(config.clone())).await {
            Ok(report) if report.ok => {
                for (i, name, is_add) in &staged {
                    answers[*i] = Some(match is_add {
                        true => result(&config, name, &requests[*i].config),
                        false => Ok(Value::Null),
                    });
                }
            }
            joint => {
                let why = match joint {
                    Ok(report) => report.error.unwrap_or_default(),
                    Err(e) => format!("{}: {}", e.msg, e.details),
                };
                tracing::warn!("the joint apply of {} CNI calls failed, handling each alone: {why}", staged.len());
                match store::save(&state_dir, &before) {
                    Ok(()) => alone.extend(staged.iter().map(|(i, _, _)| *i)),
                    Err(e) => {
                        for (i, _, _) in &staged {
                            answers[*i] = Some(Err(err(code::IO, "cannot save vland's front-end fragments", format!("{e:#}"))));
                        }
                    }
                }
            }
        }
    }
    alone.sort_unstable();
    for i in alone {
        answers[i] = Some(handle(requests[i].clone(), path, applier).await);
    }
    answers.into_iter().map(|a| a.expect("every call is answered")).collect()
}

/// CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;IP=10.0.0.5;MAC=...`.
#[derive(Debug, Default)]
struct CniArgs {
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    ip: Vec<String>,
    mac: Option<String>,
}

impl CniArgs {
    fn parse(text: &str) -> Self {
        let mut a = CniArgs::default();
        for (k, v) in text.split(';').filter_map(|kv| kv.split_once('=')) {
            match k {
                "K8S_POD_NAMESPACE" => a.pod_namespace = Some(v.to_string()),
                "K8S_POD_NAME" => a.pod_name = Some(v.to_string()),
                "IP" => a.ip.extend(v.split(',').map(str::to_string)),
                "MAC" => a.mac = Some(v.to_string()),
                _ => {}
            }
        }
        a
    }
}

fn require(value: &str, var: &str) -> Result<(), Error> {
    if value.is_empty() { Err(err(code::INVALID_ENV, format!("{var} is missing"), "")) } else { Ok(()) }
}

/// The attachment's fragment name: `cni-<container id, 12 characters>-<ifname>`, or with the
/// whole ID when another container's attachment has the short one.
fn endpoint_name(fragments: &Fragments, container_id: &str, ifname: &str) -> String {
    let short = format!("cni-{}-{ifname}", &container_id[..container_id.len().min(12)]);
    match fragments.endpoints.get(&short) {
        Some(f) if !is_attachment(&f.origin, container_id, ifname) => format!("cni-{container_id}-{ifname}"),
        _ => short,
    }
}

fn is_attachment(origin: &Origin, id: &str, name: &str) -> bool {
    matches!(origin, Origin::CniAttachment { container_id, ifname, .. } if container_id == id && ifname == name)
}

fn find_attachment<'f>(fragments: &'f Fragments, id: &str, ifname: &str) -> Option<&'f String> {
    fragments.endpoints.iter().find(|(_, f)| is_attachment(&f.origin, id, ifname)).map(|(name, _)| name)
}

/// The runtime's static addresses: CNI_ARGS `IP=`, or the `ips` capability.
fn static_ips(request: &Request, args: &CniArgs) -> Result<(Option<String>, Option<String>), Error> {
    let mut wanted: Vec<String> = args.ip.clone();
    if let Some(ips) = request.config.get("runtimeConfig").and_then(|r| r.get("ips")).and_then(Value::as_array) {
        wanted.extend(ips.iter().filter_map(Value::as_str).map(str::to_string));
    }
    let (mut v4, mut v6) = (None, None);
    for text in wanted {
        let addr = text.split('/').next().unwrap_or_default();
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => v4 = Some(a.to_string()),
            Ok(IpAddr::V6(a)) => v6 = Some(a.to_string()),
            Err(_) => return Err(err(code::INVALID_CONFIG, format!("requested address `{text}` is not an IP address"), "")),
        }
    }
    Ok((v4, v6))
}

fn load_with(path: &Path, fragments: &Fragments) -> Result<Config, Error> {
    config::load_with(path, fragments).map_err(|e| match e {
        LoadError::Invalid(errors) => {
            let list: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
            err(code::INVALID_CONFIG, "vland refuses this network config (nothing was changed)", list.join("; "))
        }
        LoadError::Io(e) => err(code::IO, "cannot read vland's config", format!("{e:#}")),
    })
}

/// Saves the fragments, then applies what the call concerns: the namespaces of `endpoints`
/// (`validated`: the effective config the fragments make, if just loaded).
async fn save_and_apply(
    state_dir: &Path,
    fragments: &Fragments,
    applier: &mut impl Apply,
    why: &str,
    endpoints: &[String],
    validated: Option<Config>,
) -> Result<ApplyReport, Error> {
    super::save_and_apply(state_dir, fragments, applier, why, Some((endpoints, validated)))
        .await
        .map_err(|e| err(code::IO, "cannot save vland's front-end fragments", format!("{e:#}")))
}

#[allow(clippy::too_many_arguments)]
async fn add(
    request: &Request,
    conf: &NetConf,
    args: &CniArgs,
    path: &Path,
    state_dir: &Path,
    before: Fragments,
    applier: &mut impl Apply,
) -> Result<Value, Error> {
    let (name, fragments, config) = stage_add(request, conf, args, path, state_dir, &before)?;
    let why = format!("CNI ADD {} {}", short(&request.container_id), request.ifname);
    let scope = [name.clone()];
    let report = save_and_apply(state_dir, &fragments, applier, &why, &scope, Some(config.clone())).await?;
    if !report.ok {
        // As the reference plugins: a failed ADD leaves nothing behind.
        let _ = save_and_apply(state_dir, &before, applier, &format!("{why} (rolling back)"), &scope, None).await;
        return Err(err(code::APPLY_FAILED, "vland could not attach the container", report.error.unwrap_or_default()));
    }
    result(&config, &name, &request.config)
}

/// ADD's change to the fragments, validated with the file (nothing is saved): the attachment's
/// endpoint name, the fragments with it and the effective config they make.
fn stage_add(
    request: &Request,
    conf: &NetConf,
    args: &CniArgs,
    path: &Path,
    state_dir: &Path,
    before: &Fragments,
) -> Result<(String, Fragments, Config), Error> {
    require(&request.container_id, "CNI_CONTAINERID")?;
    require(&request.netns, "CNI_NETNS")?;
    require(&request.ifname, "CNI_IFNAME")?;
    // Checked here: a fragment whose namespace is gone is left out of the effective config.
    crate::netns::open(Path::new(&request.netns))
        .map_err(|e| err(code::INVALID_ENV, "CNI_NETNS is not a network namespace", format!("{e:#}")))?;
    let mut fragments = before.clone();
    let network = match (&conf.network, &conf.inline) {
        (Some(n), _) => n.clone(),
        (None, Some(inline)) => {
            let name = format!("cni-{}", conf.name);
            fragments
                .networks
                .insert(name.clone(), NetworkFragment { config: inline.clone(), origin: Origin::CniNetwork { name: conf.name.clone() } });
            name
        }
        (None, None) => unreachable!("netconf gives one or the other"),
    };
    let (ip, ip6) = static_ips(request, args)?;
    let name = endpoint_name(&fragments, &request.container_id, &request.ifname);
    // A requested address another endpoint holds (allocated, so not in any config) is refused
    // here: the config's static address would otherwise take it from its holder.
    let wanted: Vec<&String> = [&ip, &ip6].into_iter().flatten().collect();
    let state = match wanted.is_empty() {
        true => crate::state::State::default(),
        false => crate::state::read(state_dir).map_err(|e| err(code::IO, "cannot read vland's state", format!("{e:#}")))?,
    };
    for wanted in wanted {
        let holder = state.endpoints.iter().find(|(n, rec)| {
            **n != name && [rec.ip.map(IpAddr::V4), rec.ip6.map(IpAddr::V6)].into_iter().flatten().any(|a| a.to_string() == *wanted)
        });
        if let Some((holder, _)) = holder {
            return Err(err(
                code::INVALID_CONFIG,
                format!("address {wanted} is already taken by endpoint {holder}"),
                "request another address, or none",
            ));
        }
    }
    let endpoint = RawEndpoint {
        network: Some(network),
        netns_path: Some(PathBuf::from(&request.netns)),
        ifname: Some(request.ifname.clone()),
        ip,
        ip6,
        mac: args.mac.clone().or_else(|| conf.mac.clone()),
        routes: conf.routes.clone(),
        ..RawEndpoint::default()
    };
    let origin = Origin::CniAttachment {
        network: conf.name.clone(),
        container_id: request.container_id.clone(),
        ifname: request.ifname.clone(),
        netns: request.netns.clone(),
        pod_namespace: args.pod_namespace.clone(),
        pod_name: args.pod_name.clone(),
    };
    fragments.endpoints.insert(name.clone(), EndpointFragment { config: endpoint, origin });
    // Validated with the file before anything is saved: a refused config changes nothing.
    let config = load_with(path, &fragments)?;
    Ok((name, fragments, config))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The CNI result of an attachment, from what vland recorded: its interface, addresses, routes.
fn result(config: &Config, name: &str, netconf: &Map<String, Value>) -> Result<Value, Error> {
    let state = crate::state::read(&config.daemon.state_dir).map_err(|e| err(code::IO, "cannot read vland's state", format!("{e:#}")))?;
    let (Some(rec), Some(ep)) = (state.endpoints.get(name), config.endpoints.get(name)) else {
        return Err(err(code::APPLY_FAILED, "the apply did not record this attachment", name.to_string()));
    };
    let net = &config.networks[&ep.network];
    let version = netconf.get("cniVersion").and_then(Value::as_str).unwrap_or("1.1.0");
    let old_format = version.starts_with("0.");
    let mut interface = json!({ "name": rec.ifname, "sandbox": ep.netns.path() });
    if let Some(mac) = rec.mac {
        interface["mac"] = json!(mac.to_string());
    }
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for v6 in [false, true] {
        let (Some(addr), Some(ipam)) = (rec.address(v6), net.ipam(v6)) else { continue };
        let mut ip = json!({ "address": format!("{addr}/{}", ipam.subnet.prefix()), "interface": 0 });
        if let Some(gw) = net.default_gateway(v6) {
            ip["gateway"] = json!(gw);
        }
        if old_format {
            ip["version"] = json!(if v6 { "6" } else { "4" });
        }
        ips.push(ip);
        let default = if v6 { "::/0" } else { "0.0.0.0/0" };
        if config.default_route_owner(&ep.netns, v6) == Some(name) {
            match net.default_gateway(v6) {
                Some(gw) => routes.push(json!({ "dst": default, "gw": gw })),
                None => routes.push(json!({ "dst": default })),
            }
        }
    }
    for r in &ep.routes {
        let mut route = json!({ "dst": r.to.to_string() });
        if let Some(via) = r.via {
            route["gw"] = json!(via);
        }
        routes.push(route);
    }
    Ok(json!({ "cniVersion": version, "interfaces": [interface], "ips": ips, "routes": routes, "dns": {} }))
}

/// DEL: idempotent. Works without CNI_NETNS (containerd sends none) and after a restart of the
/// daemon (the fragments are on disk): the container ID and interface name find the attachment.
async fn del(request: &Request, path: &Path, state_dir: &Path, fragments: Fragments, applier: &mut impl Apply) -> Result<Value, Error> {
    let Some((name, fragments, config)) = stage_del(request, path, fragments)? else {
        return Ok(Value::Null);
    };
    let why = format!("CNI DEL {} {}", short(&request.container_id), request.ifname);
    let report = save_and_apply(state_dir, &fragments, applier, &why, &[name], Some(config)).await?;
    if !report.ok {
        return Err(err(code::APPLY_FAILED, "vland could not remove the attachment", report.error.unwrap_or_default()));
    }
    Ok(Value::Null)
}

/// DEL's change to the fragments, validated with the file (nothing is saved): the attachment's
/// endpoint name, the fragments without it and the effective config they make; None when there
/// is no such attachment.
fn stage_del(request: &Request, path: &Path, mut fragments: Fragments) -> Result<Option<(String, Fragments, Config)>, Error> {
    require(&request.container_id, "CNI_CONTAINERID")?;
    require(&request.ifname, "CNI_IFNAME")?;
    let Some(name) = find_attachment(&fragments, &request.container_id, &request.ifname).cloned() else {
        return Ok(None);
    };
    fragments.endpoints.remove(&name);
    fragments.remove_unused_networks();
    // What is left must still be a valid config (it is, unless the file changed meanwhile).
    let config = load_with(path, &fragments)?;
    Ok(Some((name, fragments, config)))
}

/// CHECK: the attachment exists, and the plan for the effective config has nothing to do for it
/// (the kernel shows its child as it should be: addresses, routes, MTU, mode, programs).
async fn check(request: &Request, path: &Path, fragments: &Fragments) -> Result<Value, Error> {
    require(&request.container_id, "CNI_CONTAINERID")?;
    require(&request.ifname, "CNI_IFNAME")?;
    let Some(name) = find_attachment(fragments, &request.container_id, &request.ifname) else {
        return Err(err(code::UNKNOWN_CONTAINER, "vland has no such attachment", format!("{} {}", request.container_id, request.ifname)));
    };
    let config = load_with(path, fragments)?;
    if !config.endpoints.contains_key(name) {
        return Err(err(code::UNKNOWN_CONTAINER, "the attachment's network namespace is gone", request.netns.clone()));
    }
    let plan = crate::reconcile::plan(&config, &path.display().to_string())
        .await
        .map_err(|e| err(code::TRY_AGAIN_LATER, "vland cannot compare with the kernel now", format!("{e:#}")))?;
    let drift: Vec<String> = plan.actions.iter().filter(|a| a.endpoint() == Some(name.as_str())).map(ToString::to_string).collect();
    if drift.is_empty() {
        Ok(Value::Null)
    } else {
        Err(err(code::DRIFT, "the attachment differs from what vland set up", drift.join("; ")))
    }
}

/// GC: removes this network's attachments that are not in `cni.dev/valid-attachments`.
async fn gc(
    request: &Request,
    conf: &NetConf,
    path: &Path,
    state_dir: &Path,
    mut fragments: Fragments,
    applier: &mut impl Apply,
) -> Result<Value, Error> {
    #[derive(Deserialize)]
    struct Attachment {
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    }
    let valid: Vec<Attachment> = match request.config.get("cni.dev/valid-attachments") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| err(code::DECODE, "cni.dev/valid-attachments must be a list of {containerID, ifname}", e.to_string()))?,
    };
    let all: Vec<String> = fragments.endpoints.keys().cloned().collect();
    fragments.endpoints.retain(|_, f| match &f.origin {
        Origin::CniAttachment { network, container_id, ifname, .. } if *network == conf.name => {
            valid.iter().any(|a| a.container_id == *container_id && a.ifname == *ifname)
        }
        _ => true,
    });
    let stale: Vec<String> = all.into_iter().filter(|n| !fragments.endpoints.contains_key(n)).collect();
    if stale.is_empty() {
        return Ok(Value::Null);
    }
    fragments.remove_unused_networks();
    let config = load_with(path, &fragments)?;
    let report = save_and_apply(state_dir, &fragments, applier, &format!("CNI GC {}", conf.name), &stale, Some(config)).await?;
    if !report.ok {
        return Err(err(code::APPLY_FAILED, "vland could not remove stale attachments", report.error.unwrap_or_default()));
    }
    Ok(Value::Null)
}

/// STATUS: the daemon answers (else the shim reports 50) and the network is usable: the
/// config with it is valid.
fn status(conf: &NetConf, path: &Path) -> Result<Value, Error> {
    let config = config::load_effective(path)
        .map_err(|e| err(code::NOT_AVAILABLE, "vland's config is not usable now", format!("{:#}", anyhow::Error::from(e))))?;
    if let Some(n) = &conf.network
        && !config.networks.contains_key(n)
    {
        return Err(err(code::NOT_AVAILABLE, format!("vland's config has no network `{n}`"), ""));
    }
    Ok(Value::Null)
}
