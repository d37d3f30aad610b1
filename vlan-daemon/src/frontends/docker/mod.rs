//! Docker's plugin API (legacy v1 plugins): vland as the network driver and the IPAM driver
//! `vland`. The HTTP endpoint (`server`) forwards every state-changing call to the daemon's
//! apply loop, where it becomes a change to the front-end fragments (`ipam` for the pools,
//! `network` for networks and endpoints), validated with the config file and applied through
//! the same reconcile path as everything else. `join` follows a child from vland's namespace
//! into the container's, where Docker moves it.
pub mod ipam;
pub mod join;
pub mod names;
pub mod network;
pub mod options;
pub mod server;

use super::store::{self, Fragments};
use super::{Apply, save_and_apply};
use crate::config::{self, LoadError};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A Docker call as the server forwards it to the apply loop: `{"docker": {"call", "body"}}`.
pub fn request(call: &str, body: Value) -> Value {
    json!({ "docker": { "call": call, "body": body } })
}

/// Docker's error reply to `call`: shown to the user as "Error response from daemon: ...", and
/// Docker rolls back what it did. The two protocols name the field differently: libnetwork's
/// remote IPAM reads `Error`, its remote network driver `Err` (an IPAM reply with `Err` is taken
/// as a success with empty fields, and Docker then fails on those instead).
pub fn error(call: &str, msg: impl std::fmt::Display) -> Value {
    let field = if call.starts_with("IpamDriver.") { "Error" } else { "Err" };
    json!({ field: msg.to_string() })
}

/// What every handler works with: the config file, the state dir and the saved fragments.
pub struct Ctx<'a, A: Apply> {
    pub path: &'a Path,
    pub state_dir: PathBuf,
    pub fragments: Fragments,
    pub applier: &'a mut A,
    /// In a batch (`handle_batch`): the work its calls leave for the one apply at its end.
    pub deferred: Option<Deferred>,
}

/// What the calls of a batch leave for its end.
#[derive(Default)]
pub struct Deferred {
    /// The endpoints whose changes the batch's apply carries out.
    endpoints: Vec<String>,
    /// Children Docker gave back: removed together, before that apply.
    returned: Vec<join::GivenBack>,
}

impl<A: Apply> Ctx<'_, A> {
    /// Checks `next` with the config file (every error at once); nothing is saved if refused.
    /// Returns the effective config it makes.
    pub fn validate(&self, next: &Fragments) -> Result<config::Config, String> {
        match config::load_with(self.path, next) {
            Ok(config) => Ok(config),
            Err(LoadError::Invalid(errors)) => {
                let list: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
                Err(format!("vland refuses this (nothing was changed): {}", list.join("; ")))
            }
            Err(LoadError::Io(e)) => Err(format!("cannot read vland's config: {e:#}")),
        }
    }

    /// Saves `next` (crash-safe) without applying: for changes the kernel does not see.
    pub fn save(&mut self, next: Fragments) -> Result<(), String> {
        store::save(&self.state_dir, &next).map_err(saving)?;
        self.fragments = next;
        Ok(())
    }

    /// Validates, saves and applies `next`; when the apply fails, the fragments before are saved
    /// and applied again, and the call fails: a refused or failed call leaves things as they were.
    pub async fn commit(&mut self, next: Fragments, why: &str) -> Result<(), String> {
        self.commit_to(next, why, None).await
    }

    /// `commit` of a change to these endpoints only (a container's call): the apply reads and
    /// changes their namespaces only (see `reconcile::Scope`), not every container's.
    pub async fn commit_endpoint(&mut self, next: Fragments, why: &str, endpoint: &str) -> Result<(), String> {
        self.commit_to(next, why, Some(&[endpoint.to_string()])).await
    }

    async fn commit_to(&mut self, next: Fragments, why: &str, endpoints: Option<&[String]>) -> Result<(), String> {
        let validated = self.validate(&next)?;
        if let (Some(deferred), Some(endpoints)) = (self.deferred.as_mut(), endpoints) {
            deferred.endpoints.extend_from_slice(endpoints);
            self.fragments = next;
            return Ok(());
        }
        let scope = endpoints.map(|e| (e, Some(validated)));
        let report = save_and_apply(&self.state_dir, &next, self.applier, why, scope).await.map_err(saving)?;
        if report.ok {
            self.fragments = next;
            return Ok(());
        }
        let scope = endpoints.map(|e| (e, None));
        let _ = save_and_apply(&self.state_dir, &self.fragments, self.applier, &format!("{why} (rolling back)"), scope).await;
        Err(format!("vland could not apply this: {}", report.error.unwrap_or_default()))
    }
}

/// Why a call fails when its fragments cannot be saved.
fn saving(e: anyhow::Error) -> String {
    format!("cannot save vland's front-end fragments: {e:#}")
}

/// Handles one Docker call in the apply loop. Every answer is Docker's JSON: the call's reply or
/// its error (`error`).
pub async fn handle(docker: &Value, path: &Path, applier: &mut impl Apply) -> Value {
    let (Some(call), Some(body)) = (docker.get("call").and_then(Value::as_str), docker.get("body")) else {
        let call = docker.get("call").and_then(Value::as_str).unwrap_or_default();
        return error(call, "malformed request to vland's Docker plugin: {\"call\", \"body\"} expected");
    };
    let mut ctx = match context(path, applier).await {
        Ok(ctx) => ctx,
        Err(msg) => return error(call, msg),
    };
    let result = network::handle(call, body, &mut ctx).await;
    reply(call, result)
}

/// The context for calls: the state dir and the saved fragments. (Children Docker moved since
/// the last look are taken over by the next apply, a call's or an event's: every apply settles
/// them first, and with them in its scope.)
async fn context<'a, A: Apply>(path: &'a Path, applier: &'a mut A) -> Result<Ctx<'a, A>, String> {
    let state_dir = config::load_daemon_section(path).map_err(|e| format!("cannot read vland's config: {e:#}"))?.state_dir;
    let fragments = store::read(&state_dir).map_err(|e| format!("cannot read vland's front-end fragments: {e:#}"))?;
    Ok(Ctx { path, state_dir, fragments, applier, deferred: None })
}

/// A call's result as Docker's JSON.
fn reply(call: &str, result: Result<Value, String>) -> Value {
    result.unwrap_or_else(|msg| {
        tracing::info!(call, "Docker call refused: {msg}");
        error(call, msg)
    })
}

/// Whether a call is one `handle_batch` takes: Join and Leave, which Docker sends in bursts
/// when containers start or are removed together, and whose cost is the apply.
pub fn batchable(docker: &Value) -> bool {
    matches!(docker.get("call").and_then(Value::as_str), Some("NetworkDriver.Join" | "NetworkDriver.Leave")) && docker.get("body").is_some()
}

/// Join and Leave calls that arrived together, answered in order as if handled one after
/// another, with ONE apply: each call's change is made and validated in turn (a call refused
/// there is answered alone and changes nothing), the children the Leaves got back are removed
/// together (each removal waits for RCU), and one apply covers every endpoint. If something
/// fails there, the fragments go back to what they were and each call is handled alone, so each
/// gets its own answer.
pub async fn handle_batch(calls: Vec<Value>, path: &Path, applier: &mut impl Apply) -> Vec<Value> {
    let names: Vec<&str> = calls.iter().map(|c| c.get("call").and_then(Value::as_str).unwrap_or_default()).collect();
    let mut ctx = match context(path, applier).await {
        Ok(ctx) => ctx,
        Err(msg) => return names.iter().map(|call| error(call, &msg)).collect(),
    };
    let before = ctx.fragments.clone();
    ctx.deferred = Some(Deferred::default());
    let mut results = Vec::new();
    for (call, docker) in names.iter().zip(&calls) {
        results.push(network::handle(call, &docker["body"], &mut ctx).await);
    }
    let Deferred { endpoints, returned } = ctx.deferred.take().unwrap_or_default();
    let joint = match join::delete_returned_at_once(&returned).await {
        Err(e) => Err(format!("cannot remove a child Docker gave back: {e:#}")),
        Ok(_) if endpoints.is_empty() => Ok(()),
        Ok(_) => {
            let why = format!("Docker: {} Join and Leave calls together", endpoints.len());
            match save_and_apply(&ctx.state_dir, &ctx.fragments, ctx.applier, &why, Some((&endpoints, None))).await {
                Ok(report) if report.ok => Ok(()),
                Ok(report) => Err(report.error.unwrap_or_default()),
                Err(e) => Err(saving(e)),
            }
        }
    };
    match joint {
        Ok(()) => names.iter().zip(results).map(|(call, r)| reply(call, r)).collect(),
        Err(why) => {
            tracing::warn!("the joint apply of {} Docker calls failed, handling each alone: {why}", calls.len());
            if let Err(e) = store::save(&ctx.state_dir, &before) {
                let msg = saving(e);
                return names.iter().map(|call| error(call, &msg)).collect();
            }
            let mut answers = Vec::new();
            for docker in &calls {
                answers.push(handle(docker, path, ctx.applier).await);
            }
            answers
        }
    }
}

/// Decodes a request body, naming the call: a missing field or a wrong type is the caller's error.
pub fn decode<T: serde::de::DeserializeOwned>(call: &str, body: &Value) -> Result<T, String> {
    serde_json::from_value(body.clone()).map_err(|e| format!("malformed {call} request: {e}"))
}

/// Docker's IDs are 64 hex digits; vland's names use the first 12, as `docker ps` does.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_gets_its_error_field() {
        assert_eq!(error("IpamDriver.RequestAddress", "taken"), json!({ "Error": "taken" }));
        assert_eq!(error("NetworkDriver.CreateNetwork", "bad"), json!({ "Err": "bad" }));
    }
}
