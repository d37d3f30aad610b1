//! The daemon: apply, then stay in the foreground and re-apply when asked (SIGHUP), when the
//! config file changes, and when a parent link appears, disappears or changes (so children come
//! back after their parent does), or through the control socket. SIGTERM/SIGINT exit cleanly and
//! leave links and pinned programs in place: counting never depends on vland running.
use crate::config;
use crate::control::{self, ApplyReport, Request, Status};
use crate::reconcile;
use anyhow::Context;
use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::MulticastGroup;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

/// Events often come in bursts (a veth pair, a sub-interface and its up): wait for the burst.
const SETTLE: Duration = Duration::from_millis(150);
const CONFIG_POLL: Duration = Duration::from_millis(500);
/// After a failed apply (a parent missing, a namespace gone mid-way), try again this often.
const RETRY: Duration = Duration::from_secs(2);

/// What identifies a version of the config file: a rewrite or an editor's rename changes it.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), std::os::unix::fs::MetadataExt::ino(&m)))
}

/// Interface names whose link events matter: parents, the bases of VLAN parents, and trunks.
fn watched_links(config: &config::Config) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = config.trunks.keys().cloned().collect();
    for net in config.networks.values() {
        names.insert(net.parent.name.clone());
        if let config::ParentKind::Vlan { base, .. } = &net.parent.kind {
            names.insert(base.clone());
        }
    }
    names
}

/// Applies `config`; with the outcome, whether the daemon is healthy (false: it retries).
async fn apply(config: &config::Config, source: &str, why: &str) -> (bool, ApplyReport) {
    let result = reconcile::apply(config, source).await;
    if let Err(e) = &result {
        error!("apply failed (retrying every {} s, and on the next link event): {e:#}", RETRY.as_secs());
    }
    (result.is_ok(), ApplyReport::new(why, &result))
}

/// Applies the config file as it is now.
async fn reapply(path: &Path, source: &str, why: &str, watched: &mut BTreeSet<String>) -> (bool, ApplyReport) {
    info!(reason = why, "applying");
    match config::load(path) {
        Ok(config) => {
            *watched = watched_links(&config);
            apply(&config, source, why).await
        }
        Err(e) => {
            // A broken edit keeps what is running; the next edit is picked up.
            let e = anyhow::Error::from(e);
            error!("{e:#}");
            (true, ApplyReport::new(why, &Err(e)))
        }
    }
}

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let source = path.display().to_string();
    // Handlers first: a SIGTERM that arrives during the first apply is acted on after it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (conn, _handle, mut link_events) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).context("cannot listen for link events")?;
    tokio::spawn(conn);

    // An invalid config at start is fatal: nothing would change until the file is edited. A
    // failing apply is not: the kernel may yet get what is missing (a parent link, say).
    let config = config::load(path)?;
    // One daemon per state dir, held until exit.
    let _instance = crate::state::DaemonLock::acquire(&config.daemon.state_dir)?;
    if let Some(addr) = &config.daemon.metrics_addr {
        let addr = addr.parse().with_context(|| format!("[daemon] metrics_addr `{addr}` is not an address:port such as 127.0.0.1:9750"))?;
        crate::metrics::serve(addr, config.daemon.clone()).await?;
    }
    // Before the first apply: a second daemon on this socket stops here, changing nothing.
    let control = match &config.daemon.socket {
        Some(socket) => Some(control::Server::listen(socket).await?),
        None => None,
    };
    let mut watched = watched_links(&config);
    let (mut healthy, report) = apply(&config, &source, "start").await;
    let mut last_apply = Some(report);
    let mut stamp = file_stamp(path);
    let mut poll = tokio::time::interval(CONFIG_POLL);
    let mut retry = tokio::time::interval(RETRY);
    let mut pending_link_event: Option<String> = None;
    info!(config = %source, "vland running; SIGHUP, config changes and parent link events re-apply; SIGTERM/SIGINT stop");
    loop {
        let settle = async {
            match &pending_link_event {
                Some(_) => tokio::time::sleep(SETTLE).await,
                None => std::future::pending().await,
            }
        };
        let request = async {
            match &control {
                Some(server) => server.next().await,
                None => std::future::pending().await,
            }
        };
        let mut why = None;
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => why = Some("SIGHUP".to_string()),
            _ = poll.tick() => {
                let now = file_stamp(path);
                if now != stamp {
                    stamp = now;
                    why = Some("config file changed".to_string());
                }
            }
            _ = retry.tick(), if !healthy => why = Some("retry after a failed apply".to_string()),
            (stream, req) = request => match req {
                Request::Status => {
                    let status = Status { pid: std::process::id(), config: source.clone(), last_apply: last_apply.clone() };
                    control::answer(stream, &status).await;
                }
                Request::Apply => {
                    let (h, report) = reapply(path, &source, "control socket", &mut watched).await;
                    healthy = h;
                    control::answer(stream, &report).await;
                    last_apply = Some(report);
                }
            },
            Some((msg, _)) = link_events.next() => {
                if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l)) = msg.payload {
                    let name = l.attributes.iter().find_map(|a| match a { LinkAttribute::IfName(n) => Some(n.clone()), _ => None });
                    if let Some(name) = name.filter(|n| watched.contains(n)) {
                        pending_link_event.get_or_insert(name);
                    }
                }
            }
            _ = settle => {
                let name = pending_link_event.take().unwrap_or_default();
                let (h, report) = reapply(path, &source, &format!("link event on {name}"), &mut watched).await;
                (healthy, last_apply) = (h, Some(report));
                // Drain what our own apply caused, so it does not trigger another round.
                while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), link_events.next()).await {}
            }
        }
        if let Some(why) = why {
            let (h, report) = reapply(path, &source, &why, &mut watched).await;
            (healthy, last_apply) = (h, Some(report));
        }
    }
    info!("stopping; links and pinned eBPF programs stay in place");
    Ok(())
}
