//! Serving connections from clients vland does not trust (anyone on the host may connect to
//! metrics_addr): a cap on how many are open at once, a deadline for each, and an accept loop
//! that backs off on errors instead of spinning. A flood of idle connections then costs a bounded
//! number of file descriptors and no CPU, and leaves the descriptors the applies need.
use anyhow::{Context, bail};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// Accept errors (EMFILE, ENFILE, ENOBUFS) wait this long, doubling up to the max.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The connections one listener serves at once, and the accept loop's state.
pub struct Limiter {
    slots: Arc<Semaphore>,
    backoff: Duration,
    what: &'static str,
}

impl Limiter {
    pub fn new(what: &'static str, max: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max)), backoff: BACKOFF_START, what }
    }

    /// One accept, through `accept`: a connection and the permit it holds while served, or None
    /// when it was turned away (all slots busy: it is closed at once) or accept failed (after
    /// a pause that grows while the failures go on).
    pub async fn accept<S, A>(&mut self, accept: impl Future<Output = std::io::Result<(S, A)>>) -> Option<(S, OwnedSemaphorePermit)> {
        match accept.await {
            Ok((stream, _)) => {
                self.backoff = BACKOFF_START;
                // Turned away rather than queued: a queue of idle clients is what exhausts fds.
                let permit = self.slots.clone().try_acquire_owned().ok()?;
                Some((stream, permit))
            }
            Err(e) => {
                warn!(listener = self.what, "accept failed: {e}; pausing {} ms", self.backoff.as_millis());
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                None
            }
        }
    }
}

/// A Unix socket vland listens on (root only), removed again when dropped.
pub struct SocketFile {
    pub listener: UnixListener,
    path: PathBuf,
}

impl SocketFile {
    /// Listens on `path`, which the config calls `key`. A socket file left by a daemon that died
    /// is replaced; one that something answers on is an error, with `busy` saying what to do
    /// (two daemons on one socket would fight).
    pub async fn bind(path: &Path, key: &str, busy: &str) -> anyhow::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                bail!("{key} {} exists and is not a socket: remove it or pick another path", path.display());
            }
            if UnixStream::connect(path).await.is_ok() {
                bail!("{} already answers on {}: {busy}", key, path.display());
            }
            std::fs::remove_file(path).with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let listener = UnixListener::bind(path).with_context(|| format!("cannot listen on {key} {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { listener, path: path.to_path_buf() })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long an HTTP client may take: to send its request headers, and for the whole exchange.
pub struct HttpDeadlines {
    pub headers: Duration,
    pub lifetime: Duration,
}

/// Serves `app` over HTTP/1 on every connection `accept` yields, within `limiter`'s cap: one
/// request per connection (no keep-alive), within `deadlines`.
pub async fn serve_http<S, A, F>(mut limiter: Limiter, mut accept: impl FnMut() -> F, app: axum::Router, deadlines: HttpDeadlines)
where
    F: Future<Output = std::io::Result<(S, A)>>,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let Some((stream, permit)) = limiter.accept(accept()).await else { continue };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(deadlines.headers)
            .keep_alive(false)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let lifetime = deadlines.lifetime;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(lifetime, conn).await;
        });
    }
}

/// Raises the soft limit on open files to the hard one: the default soft limit (1024) is what a
/// local user's connection flood, or a few thousand endpoints, would hit first.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                warn!("cannot raise the open files limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_limiter_turns_connections_away_and_errors_back_off() {
        let mut l = Limiter::new("test", 1);
        let first = l.accept(async { Ok::<_, std::io::Error>((1, ())) }).await;
        assert!(first.is_some());
        assert!(l.accept(async { Ok::<_, std::io::Error>((2, ())) }).await.is_none(), "over the cap");
        drop(first);
        assert!(l.accept(async { Ok::<_, std::io::Error>((3, ())) }).await.is_some(), "a slot freed");
        let start = std::time::Instant::now();
        for _ in 0..3 {
            assert!(l.accept(async { Err::<(i32, ()), _>(std::io::Error::from_raw_os_error(libc::EMFILE)) }).await.is_none());
        }
        // 50 + 100 + 200 ms: errors never spin.
        assert!(start.elapsed() >= Duration::from_millis(350), "{:?}", start.elapsed());
    }
}
