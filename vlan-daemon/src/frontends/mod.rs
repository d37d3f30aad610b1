//! Front-ends: container engines that drive vland through its control socket instead of the
//! config file. Each turns an engine's request into config fragments (`store`), which the daemon
//! applies together with the file, through the same reconcile path: nothing is special-cased.
pub mod cni;
pub mod docker;
pub mod netconf;
pub mod store;

use crate::config::Config;
use crate::control::ApplyReport;
use serde_json::{Value, json};
use std::path::Path;
use tokio::sync::oneshot;

/// The daemon's apply loop, as the front-ends use it: apply the effective config now.
pub trait Apply {
    fn apply(&mut self, why: &str) -> impl Future<Output = ApplyReport>;
    /// The same, reading and changing only the namespaces of these endpoints (a call about
    /// them); validation and allocation still cover the whole effective config. `validated`:
    /// that config, when the caller has just loaded it with the saved fragments (else it is
    /// loaded again).
    fn apply_to(&mut self, why: &str, endpoints: &[String], validated: Option<Config>) -> impl Future<Output = ApplyReport>;
}

/// Saves the fragments (crash-safe), then applies what they concern: the namespaces of
/// `endpoints` (with the effective config they make, if the caller has it), or everything
/// (None). An error is the save's; the apply's outcome is the report.
pub async fn save_and_apply(
    state_dir: &Path,
    fragments: &store::Fragments,
    applier: &mut impl Apply,
    why: &str,
    endpoints: Option<(&[String], Option<Config>)>,
) -> anyhow::Result<ApplyReport> {
    store::save(state_dir, fragments)?;
    Ok(match endpoints {
        Some((endpoints, validated)) => applier.apply_to(why, endpoints, validated).await,
        None => applier.apply(why).await,
    })
}

/// A front-end request from the control socket (a JSON line), and where its answer goes.
pub struct Request {
    pub body: Value,
    pub reply: oneshot::Sender<Value>,
}

/// Handles one front-end request in the apply loop: `{"cni": {...}}` (control socket) or
/// `{"docker": {...}}` (the Docker plugin socket).
pub async fn handle(body: Value, path: &Path, applier: &mut impl Apply) -> Value {
    if let Some(docker) = body.get("docker") {
        return docker::handle(docker, path, applier).await;
    }
    match body.get("cni") {
        Some(cni) => match serde_json::from_value::<cni::Request>(cni.clone()) {
            Ok(request) => cni::answer(cni::handle(request, path, applier).await),
            Err(e) => cni::answer(Err(cni::Error { code: cni::code::DECODE, msg: "malformed CNI request".into(), details: e.to_string() })),
        },
        None => json!({ "error": "unknown request: send {\"cni\": {...}}, `status` or `apply`" }),
    }
}

/// Handles the front-end requests that were waiting together, answers in the same order. CNI's
/// ADD and DEL calls among them share one apply (`cni::handle_batch`), and so do Docker's Join and
/// Leave calls (`docker::handle_batch`): under a burst of calls the apply loop would otherwise
/// run one apply per call, one after another. The others (Docker's IPAM and endpoint calls, CNI's
/// CHECK, GC, STATUS) are handled one by one, after them: they came at the same time, so any
/// order is one the callers could have seen.
pub async fn handle_all(bodies: Vec<Value>, path: &Path, applier: &mut impl Apply) -> Vec<Value> {
    let mut cni_batch = Vec::new();
    let mut docker_batch = Vec::new();
    let mut rest = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        if let Some(docker) = body.get("docker").filter(|d| docker::batchable(d)) {
            docker_batch.push((i, docker.clone()));
            continue;
        }
        match body.get("cni").and_then(|cni| serde_json::from_value::<cni::Request>(cni.clone()).ok()) {
            Some(request) if cni::batchable(&request) => cni_batch.push((i, request)),
            _ => rest.push((i, body)),
        }
    }
    let mut answers = vec![Value::Null; cni_batch.len() + docker_batch.len() + rest.len()];
    let (places, requests): (Vec<usize>, Vec<cni::Request>) = cni_batch.into_iter().unzip();
    let results = match requests.len() {
        0 => Vec::new(),
        1 => vec![cni::handle(requests.into_iter().next().expect("one"), path, applier).await],
        _ => cni::handle_batch(requests, path, applier).await,
    };
    for (i, r) in places.into_iter().zip(results) {
        answers[i] = cni::answer(r);
    }
    let (places, calls): (Vec<usize>, Vec<Value>) = docker_batch.into_iter().unzip();
    let results = match calls.len() {
        0 => Vec::new(),
        1 => vec![docker::handle(&calls[0], path, applier).await],
        _ => docker::handle_batch(calls, path, applier).await,
    };
    for (i, r) in places.into_iter().zip(results) {
        answers[i] = r;
    }
    for (i, body) in rest {
        answers[i] = handle(body, path, applier).await;
    }
    answers
}
