//! Serving connections from clients vland does not trust (anyone on the host may connect to
//! metrics_addr): a cap on how many are open at once, a deadline for each, and an accept loop
//! that backs off on errors instead of spinning. A flood of idle connections then costs a bounded
//! number of file descriptors and no CPU, and leaves the descriptors the applies need.
use std::sync::Arc;
use std::time::Duration;
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
