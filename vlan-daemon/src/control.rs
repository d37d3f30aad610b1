//! The daemon's control socket (`[daemon] socket`): a Unix stream socket, readable and writable
//! by root only, where a client sends one command line and gets one JSON line back.
//! `status` reports the last apply; `apply` re-applies the config now (as SIGHUP does) and
//! answers with that apply's outcome, so `vland reload` can wait for it and fail when it fails.
//! Each client is served by a task of its own, apart from the apply loop: `status` answers at
//! once, even while an apply runs; `apply` waits its turn in the loop.
use crate::reconcile::{ApplyError, Summary};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

/// A client that says nothing for this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Clients served at once; more are turned away (each waiting `reload` holds one).
const MAX_CLIENTS: usize = 32;

/// What one apply did, as the daemon reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Why it ran: "start", "SIGHUP", "control socket", "config file changed", ...
    pub reason: String,
    /// When it finished, in seconds since the Unix epoch.
    pub finished_at: u64,
    pub ok: bool,
    pub error: Option<String>,
    pub created: usize,
    pub repaired: usize,
    pub removed: usize,
    /// The plan the apply carried out, one line per action.
    #[serde(default)]
    pub actions: Vec<String>,
}

impl ApplyReport {
    pub fn new(reason: &str, result: &Result<Summary, ApplyError>) -> Self {
        let finished_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (ok, error, created, repaired, removed, actions) = match result {
            Ok(s) => (true, None, s.created.len(), s.repaired.len(), s.removed.len(), s.actions.clone()),
            Err(e) => (false, Some(format!("{e:#}")), 0, 0, 0, Vec::new()),
        };
        Self { reason: reason.to_string(), finished_at, ok, error, created, repaired, removed, actions }
    }
}

/// The answer to `status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub config: String,
    pub last_apply: Option<ApplyReport>,
}

/// An apply a client asked for, sent to the apply loop: the loop answers with its report.
pub type ApplyRequest = oneshot::Sender<ApplyReport>;

/// The daemon's end: the listening socket, removed again when dropped.
pub struct Server {
    socket: crate::listen::SocketFile,
}

impl Server {
    /// Listens on `path` (root only).
    pub async fn listen(path: &Path) -> anyhow::Result<Self> {
        let busy = "another vland daemon serves it; stop it first, or give this config another [daemon] socket";
        Ok(Self { socket: crate::listen::SocketFile::bind(path, "[daemon] socket", busy).await? })
    }

    /// Serves clients until the task running it is dropped: `status` from the reports the apply
    /// loop publishes on `reports`, `apply` through the loop, on `applies`.
    /// A JSON line (`{"cni": ...}`) is a front-end's request, handled in the loop too, on `frontends`.
    pub async fn serve(
        self,
        config: String,
        reports: watch::Receiver<Option<ApplyReport>>,
        applies: mpsc::Sender<ApplyRequest>,
        frontends: mpsc::Sender<crate::frontends::Request>,
    ) {
        let mut limiter = crate::listen::Limiter::new("control socket", MAX_CLIENTS);
        loop {
            let Some((stream, permit)) = limiter.accept(self.socket.listener.accept()).await else { continue };
            let (config, reports, applies, frontends) = (config.clone(), reports.clone(), applies.clone(), frontends.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
                let stream = reader.into_inner();
                match (read, line.trim()) {
                    (Ok(Ok(_)), "status") => {
                        let status = Status { pid: std::process::id(), config, last_apply: reports.borrow().clone() };
                        answer(stream, &status).await;
                    }
                    (Ok(Ok(_)), "apply") => {
                        let (reply, report) = oneshot::channel();
                        if applies.send(reply).await.is_ok()
                            && let Ok(report) = report.await
                        {
                            answer(stream, &report).await;
                        }
                    }
                    (Ok(Ok(_)), json) if json.starts_with('{') => {
                        let body = serde_json::from_str(json).unwrap_or_else(|e| serde_json::json!({ "malformed": e.to_string() }));
                        let (reply, answer_rx) = oneshot::channel();
                        if frontends.send(crate::frontends::Request { body, reply }).await.is_ok()
                            && let Ok(value) = answer_rx.await
                        {
                            answer(stream, &value).await;
                        }
                    }
                    (_, other) => {
                        answer(stream, &serde_json::json!({ "error": format!("unknown command `{other}`: send `status` or `apply`") }))
                            .await;
                    }
                }
            });
        }
    }
}

/// Sends `value` as the one answer line.
pub async fn answer(mut stream: UnixStream, value: &impl Serialize) {
    if let Ok(text) = serde_json::to_string(value) {
        let _ = stream.write_all(format!("{text}\n").as_bytes()).await;
    }
}

/// The client's end: sends `command` to the daemon on `path` and returns its answer.
pub fn request(path: &Path, command: &str) -> anyhow::Result<serde_json::Value> {
    use std::io::{BufRead, Write};
    let stream = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("no vland daemon answers on {} (is it running with this config?)", path.display()))?;
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(&stream).read_line(&mut line).context("the daemon closed the control socket without answering")?;
    let value: serde_json::Value = serde_json::from_str(&line).context("the daemon's answer is not JSON")?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str())
        && value.get("ok").is_none()
    {
        bail!("the daemon refused the request: {e}");
    }
    Ok(value)
}
