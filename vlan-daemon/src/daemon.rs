//! The daemon: apply, then stay in the foreground re-applying on SIGHUP. SIGTERM/SIGINT exit
//! cleanly and leave links and pinned programs in place: counting never depends on vland running.
use crate::config;
use crate::reconcile;
use std::path::Path;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let source = path.display().to_string();
    // A bad config at start is fatal; later, a bad reload keeps what is running.
    // Handlers first: a SIGTERM that arrives during the first apply is acted on after it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let config = config::load(path)?;
    reconcile::apply(&config, &source).await?;
    info!(config = %source, "vland running; SIGHUP re-applies, SIGTERM/SIGINT stop (links and programs stay)");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                info!("SIGHUP: re-applying");
                match config::load(path) {
                    Ok(config) => if let Err(e) = reconcile::apply(&config, &source).await {
                        error!("re-apply failed: {e:#}");
                    },
                    Err(e) => error!("{:#}", anyhow::Error::from(e)),
                }
            }
        }
    }
    info!("stopping; links and pinned eBPF programs stay in place");
    Ok(())
}
