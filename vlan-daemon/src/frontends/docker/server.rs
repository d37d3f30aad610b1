//! The plugin socket Docker talks to: HTTP/1 with JSON bodies on a Unix socket (legacy v1
//! plugins, `/run/docker/plugins/NAME.sock`). The handshake calls are answered here; every other
//! call goes to the daemon's apply loop (as the control socket's front-end requests do), so
//! Docker's changes are serialized with applies and journaled in the fragments file.
use crate::frontends::Request;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Docker's plugin media type.
const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";
/// Docker connections served at once; more are turned away. Docker makes a call per container
/// it starts or removes, all at once (`docker rm -f` of 100 containers: ~100 Leaves waiting for
/// the apply loop), and a call turned away is lost: Docker 20.10 retries it with an empty body
/// (seen here: "missing field `EndpointID`"), so the container's endpoint stays behind. The socket
/// is root's alone; what bounds it is the daemon's file limit.
const MAX_CONNECTIONS: usize = 4096;
/// Request headers must arrive within this; a whole call (which may wait for an apply) within
/// CALL_LIFETIME, beyond Docker's own 30 s client timeout.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_LIFETIME: Duration = Duration::from_secs(60);
/// Request bodies are small JSON documents.
const MAX_BODY: usize = 1 << 20;

pub struct Server {
    socket: crate::listen::SocketFile,
}

impl Server {
    /// Listens on `path` (root only).
    pub async fn listen(path: &Path) -> anyhow::Result<Self> {
        let busy = "stop the other plugin, or give [docker] another socket";
        Ok(Self { socket: crate::listen::SocketFile::bind(path, "[docker] socket", busy).await? })
    }

    /// Serves Docker until the task running it is dropped; calls go to the loop on `frontends`.
    pub async fn serve(self, frontends: mpsc::Sender<Request>) {
        let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
            let frontends = frontends.clone();
            async move {
                let started = std::time::Instant::now();
                let name = uri.path().trim_start_matches('/');
                let reply = call(name, &body, &frontends).await;
                tracing::debug!(call = name, ms = started.elapsed().as_secs_f64() * 1000.0, "answered Docker");
                (StatusCode::OK, [(header::CONTENT_TYPE, MEDIA_TYPE)], reply.to_string()).into_response()
            }
        });
        let app = app.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
        let limiter = crate::listen::Limiter::new("docker plugin socket", MAX_CONNECTIONS);
        let deadlines = crate::listen::HttpDeadlines { headers: HEADER_TIMEOUT, lifetime: CALL_LIFETIME };
        crate::listen::serve_http(limiter, || self.socket.listener.accept(), app, deadlines).await;
    }
}

/// One call: the handshake answered here, the rest in the apply loop.
async fn call(name: &str, body: &[u8], frontends: &mpsc::Sender<Request>) -> Value {
    match name {
        "Plugin.Activate" => return json!({ "Implements": ["NetworkDriver", "IpamDriver"] }),
        "NetworkDriver.GetCapabilities" => return json!({ "Scope": "local", "ConnectivityScope": "local" }),
        "IpamDriver.GetCapabilities" => return json!({ "RequiresMACAddress": false, "RequiresRequestReplay": false }),
        "IpamDriver.GetDefaultAddressSpaces" => {
            return json!({ "LocalDefaultAddressSpace": "LocalDefault", "GlobalDefaultAddressSpace": "GlobalDefault" });
        }
        _ => {}
    }
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return super::error(name, format!("malformed {name} request: the body is not JSON ({e})")),
        }
    };
    if let Some(result) = super::network::stateless(name, &body) {
        return result.unwrap_or_else(|msg| super::error(name, msg));
    }
    let (reply, answer) = oneshot::channel();
    if frontends.send(Request { body: super::request(name, body), reply }).await.is_err() {
        return super::error(name, "vland is stopping");
    }
    answer.await.unwrap_or_else(|_| super::error(name, "vland stopped before answering"))
}
