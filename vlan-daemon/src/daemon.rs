//! The daemon: apply, then stay in the foreground and re-apply when asked (SIGHUP), when the
//! config file changes, and when a parent link appears, disappears or changes (so children come
//! back after their parent does), or through the control socket. SIGTERM/SIGINT exit cleanly and
//! leave links and pinned programs in place: counting never depends on vland running. Events
//! inside the endpoint namespaces (see `watch`) re-apply too, so drift there is repaired at once.
//!
//! A failed apply is tried again only when trying can help (see `retry`): an invalid config, one
//! that does not fit the kernel, a full data plane or a refused state file wait for a change.
//!
//! Threads: an apply blocks its thread at times (the state lock, the threads that work inside
//! namespaces, file writes with fsync). So the apply loop below runs on the thread that calls
//! `Runtime::block_on` (see `cli`), while /metrics, the control socket and the netlink
//! connections are tasks on the runtime's worker thread: they answer while an apply runs or waits
//! for the lock.
mod namespaces;
mod retry;
mod watched;

use crate::config::{self, ConfigErrors, NetnsRef};
use crate::control::{self, ApplyReport, ApplyRequest};
use crate::frontends;
use crate::reconcile::{self, ApplyError, Summary};
use anyhow::Context;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use retry::{Backoff, Next};
use rtnetlink::MulticastGroup;
use rtnetlink::sys::SocketAddr;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{error, info};

/// Events often come in bursts (a veth pair, a sub-interface and its up): wait for the burst.
const SETTLE: Duration = Duration::from_millis(150);
const CONFIG_POLL: Duration = Duration::from_millis(500);

type LinkEvents = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// What identifies a version of the config file: a rewrite or an editor's rename changes it.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), std::os::unix::fs::MetadataExt::ino(&m)))
}

/// Applies, records the outcome for `status`, and decides when to try again.
struct Applier<'a> {
    path: &'a Path,
    source: String,
    /// The parents and trunks whose link events re-apply.
    watched: watched::WatchedLinks,
    /// The config last applied: whose endpoint namespaces are followed.
    config: Option<config::Config>,
    backoff: Backoff,
    next: Next,
    reports: watch::Sender<Option<ApplyReport>>,
    /// Docker's children it is still configuring in their containers, and when to look again.
    configuring: frontends::docker::join::Configuring,
    look_again: Option<Instant>,
}

impl Applier<'_> {
    /// Applies the config file as it is now. A broken edit keeps what is running.
    async fn reapply(&mut self, why: &str) -> ApplyReport {
        self.reapply_scoped(why, reconcile::Scope::All).await
    }

    async fn reapply_scoped(&mut self, why: &str, scope: reconcile::Scope) -> ApplyReport {
        self.reapply_scoped_with(why, scope, None).await
    }

    /// `validated`: the effective config, when the caller has just loaded it.
    async fn reapply_scoped_with(&mut self, why: &str, scope: reconcile::Scope, validated: Option<config::Config>) -> ApplyReport {
        info!(reason = why, "applying");
        let moved = self.settle_docker().await;
        self.apply_settled(why, scope, validated, moved).await
    }

    /// Follows Docker's children into their containers; returns the endpoints recorded there.
    async fn settle_docker(&mut self) -> Vec<String> {
        let settled = settle_docker(self.path, &mut self.configuring).await;
        self.look_again = settled.configuring.then(look_soon);
        settled.moved
    }

    /// The apply, once Docker's children are settled: those it `moved` are planned where they
    /// are now (their fragments changed: the config is loaded again).
    async fn apply_settled(
        &mut self,
        why: &str,
        scope: reconcile::Scope,
        validated: Option<config::Config>,
        moved: Vec<String>,
    ) -> ApplyReport {
        let validated = validated.filter(|_| moved.is_empty());
        let scope = scope.with_endpoints(moved);
        let result = match validated.map_or_else(|| config::load_effective(self.path), Ok) {
            Ok(config) => {
                self.watched.follow(&config);
                let result = reconcile::apply_scoped(&config, &self.source, &scope).await;
                self.config = Some(config);
                result
            }
            Err(e) => Err(match anyhow::Error::from(e).downcast::<ConfigErrors>() {
                Ok(errors) => ApplyError::Config(errors),
                Err(unreadable) => ApplyError::ConfigUnreadable(unreadable),
            }),
        };
        self.record(why, result)
    }

    fn record(&mut self, why: &str, result: Result<Summary, ApplyError>) -> ApplyReport {
        self.next = self.backoff.after(&result);
        if let Err(e) = &result {
            match self.next {
                Next::RetryIn(delay) => error!("apply failed (retrying in {} s, and on the next change): {e:#}", delay.as_secs()),
                _ => {
                    error!("apply failed; not retrying until the config file, a watched link, SIGHUP or a reload changes something: {e:#}")
                }
            }
        }
        let report = ApplyReport::new(why, &result);
        crate::apply_metrics::record(&report);
        self.reports.send_replace(Some(report.clone()));
        report
    }

    /// When to retry a failed apply, if at all.
    fn retry_at(&self, finished: Instant) -> Option<Instant> {
        match self.next {
            Next::RetryIn(delay) => Some(finished + delay),
            Next::Idle | Next::WaitForChange => None,
        }
    }
}

impl frontends::Apply for Applier<'_> {
    async fn apply(&mut self, why: &str) -> ApplyReport {
        self.reapply(why).await
    }

    async fn apply_to(&mut self, why: &str, endpoints: &[String], validated: Option<config::Config>) -> ApplyReport {
        self.reapply_scoped_with(why, reconcile::Scope::endpoints(endpoints.iter().cloned()), validated).await
    }
}

/// Children Docker has moved into their containers since the last apply are recorded there
/// first, so the apply neither misses nor re-creates them.
async fn settle_docker(path: &Path, configuring: &mut frontends::docker::join::Configuring) -> frontends::docker::join::Settled {
    let Ok(daemon) = config::load_daemon_section(path) else { return Default::default() };
    match frontends::docker::join::settle(&daemon.state_dir, configuring).await {
        Ok(settled) => {
            if !settled.moved.is_empty() {
                info!(endpoints = ?settled.moved, "Docker moved children into or out of their containers");
            }
            settled
        }
        Err(e) => {
            error!("cannot follow Docker's children into their containers: {e:#}");
            Default::default()
        }
    }
}

/// The timer of the daemon's own whole applies, every `seconds` (none for 0); the first comes
/// one interval after the start's apply.
fn resync_timer(seconds: u64) -> Option<tokio::time::Interval> {
    let period = Duration::from_secs(seconds);
    (seconds > 0).then(|| {
        let mut timer = tokio::time::interval_at(Instant::now() + period, period);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        timer
    })
}

/// When to look at Docker's children again (one moved, or on its way).
fn look_soon() -> Instant {
    Instant::now() + frontends::docker::join::LOOK_AGAIN
}

/// Sleeps until `at`; for ever if None.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Takes the link events that queued up during an apply (mostly its own doing); the first
/// watched link among them.
async fn drain(link_events: &mut LinkEvents, watched: &mut watched::WatchedLinks) -> Option<String> {
    let mut first = None;
    while let Ok(Some((msg, _))) = tokio::time::timeout(Duration::from_millis(1), link_events.next()).await {
        let changed = watched.changed(msg);
        first = first.or(changed);
    }
    first
}

/// After an apply: the namespaces of the config it applied are followed. The events its own
/// changes caused are not dropped, since a change someone made meanwhile may be among them: they
/// cause one more apply of their namespaces, whose plan is empty unless something did drift (and
/// an empty plan changes nothing, so causes no events). A Docker child leaving vland's namespace
/// is one: that apply records it in its container.
fn follow(ns_events: &mut namespaces::NamespaceEvents, applier: &Applier<'_>) {
    if let Some(config) = &applier.config {
        ns_events.follow(config);
    }
}

/// What the events since the last apply call for: a whole apply (a watched link changed), or
/// one of the namespaces they came from.
#[derive(Default)]
struct Pending {
    link: Option<String>,
    namespaces: BTreeSet<NetnsRef>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.link.is_none() && self.namespaces.is_empty()
    }
}

pub async fn run(path: &Path) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives during the first apply is acted on after it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (conn, _handle, mut link_events) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).context("cannot listen for link events")?;
    tokio::spawn(conn);

    // An invalid config at start is fatal: nothing would change until the file is edited. A
    // failing apply is not: the kernel may yet get what is missing (a parent link, say).
    let config = config::load_effective(path)?;
    // One daemon per state dir, held until exit.
    let _instance = crate::state::DaemonLock::acquire(&config.daemon.state_dir)?;
    // What Docker did while vland was down is recorded before the first apply.
    let mut configuring = frontends::docker::join::Configuring::default();
    let settled = settle_docker(path, &mut configuring).await;
    let config = if settled.moved.is_empty() { config } else { config::load_effective(path)? };
    crate::listen::raise_fd_limit();
    if let Some(addr) = &config.daemon.metrics_addr {
        let addr = addr.parse().with_context(|| format!("[daemon] metrics_addr `{addr}` is not an address:port such as 127.0.0.1:9750"))?;
        crate::metrics::serve(addr, config.daemon.clone()).await?;
    }
    crate::conflict_watch::spawn(config.daemon.clone());
    let (reports, last_apply) = watch::channel(None);
    let (apply_sender, mut apply_requests) = mpsc::channel::<ApplyRequest>(16);
    let (frontend_sender, mut frontend_requests) = mpsc::channel::<frontends::Request>(64);
    // Before the first apply: a second daemon on this socket stops here, changing nothing.
    // Docker's calls wait in the channel until the first apply is done.
    let docker = match &config.docker {
        Some(docker) => {
            let server = frontends::docker::server::Server::listen(&docker.socket).await?;
            info!(socket = %docker.socket.display(), "serving Docker's network and IPAM plugin API");
            Some(tokio::spawn(server.serve(frontend_sender.clone())))
        }
        None => None,
    };
    let control = match &config.daemon.socket {
        Some(socket) => {
            let server = control::Server::listen(socket).await?;
            Some(tokio::spawn(server.serve(path.display().to_string(), last_apply, apply_sender, frontend_sender)))
        }
        None => None,
    };
    // Other hosts see this one alive as long as its lease is renewed (on the serving thread:
    // an apply that blocks its thread does not let the lease lapse).
    #[cfg(feature = "etcd")]
    if let Some(cc) = &config.cluster
        && config.networks.values().any(|n| n.scope == config::PoolScope::Cluster)
    {
        tokio::spawn(crate::cluster::hosts::keep_alive(cc.clone(), crate::cluster::hosts::identity(&config.daemon.state_dir)));
    }
    let mut applier = Applier {
        path,
        source: path.display().to_string(),
        watched: watched::WatchedLinks::default(),
        config: None,
        backoff: Backoff::default(),
        next: Next::Idle,
        reports,
        configuring,
        look_again: settled.configuring.then(look_soon),
    };
    applier.watched.follow(&config);
    info!(reason = "start", "applying");
    let result = reconcile::apply(&config, &applier.source).await;
    let mut ns_events = namespaces::NamespaceEvents::new();
    applier.config = Some(config);
    follow(&mut ns_events, &applier);
    let first = applier.record("start", result);
    crate::notify::ready(if first.ok { "first apply done" } else { "first apply failed: see vland status" });
    crate::notify::spawn_watchdog();
    let mut retry_at = applier.retry_at(Instant::now());
    let mut stamp = file_stamp(path);
    let mut poll = tokio::time::interval(CONFIG_POLL);
    // After a long apply, one check rather than a burst of them.
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut resync = resync_timer(applier.config.as_ref().map_or(0, |c| c.daemon.resync_interval));
    let mut pending = Pending::default();
    info!(config = %applier.source, "vland running; SIGHUP, config changes, parent link events and the periodic resync re-apply; SIGTERM/SIGINT stop");
    loop {
        let settle = async { if pending.is_empty() { std::future::pending().await } else { tokio::time::sleep(SETTLE).await } };
        let retry = sleep_until(retry_at);
        let look_again = sleep_until(applier.look_again);
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
                    _ = retry => why = Some("retry after a failed apply".to_string()),
                    // Not while calls wait: an apply of theirs follows Docker's children too, and
                    // many containers starting at once then share one takeover instead of each
                    // taking an apply of its own.
                    _ = look_again, if frontend_requests.is_empty() => {
                        let moved = applier.settle_docker().await;
                        tracing::debug!(moved = moved.len(), again = applier.look_again.is_some(), "looked at Docker's children");
                        if !moved.is_empty() {
                            let why = "Docker configured its children";
                            info!(reason = why, "applying");
                            applier.apply_settled(why, reconcile::Scope::endpoints(Vec::new()), None, moved).await;
                            follow(&mut ns_events, &applier);
                            retry_at = applier.retry_at(Instant::now());
                        }
                    }
                    // Not after an apply that waits for a change: it would fail the same way.
                    _ = next_tick(&mut resync) => why = (applier.next != Next::WaitForChange).then(|| "periodic resync".to_string()),
                    Some(reply) = apply_requests.recv() => {
                        let report = applier.reapply("control socket").await;
                        follow(&mut ns_events, &applier);
                        let _ = reply.send(report);
                        retry_at = applier.retry_at(Instant::now());
                    }
        Some(request) = frontend_requests.recv() => {
                        // With it, every request already waiting: CNI's ADDs and DELs among them
                        // share one apply (see `frontends::handle_all`).
                        let mut requests = vec![request];
                        while let Ok(more) = frontend_requests.try_recv() {
                            requests.push(more);
                        }
                        let (bodies, replies): (Vec<_>, Vec<_>) = requests.into_iter().map(|r| (r.body, r.reply)).unzip();
                        let answers = frontends::handle_all(bodies, path, &mut applier).await;
                        // The namespaces the requests added are watched from now on (a Docker
                        // child staged in vland's own: Docker moving it is what settles it).
                        follow(&mut ns_events, &applier);
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(answer);
                        }
                        retry_at = applier.retry_at(Instant::now());
                    }
                    Some(ns) = ns_events.next() => {
                        tracing::debug!(netns = %ns, "event in an endpoint namespace");
                        // A Docker child leaving vland's namespace is Docker moving it into its
                        // container: followed there at once, not after the events settle (by
                        // then the next container's calls are often in, and would wait for it).
                        let docker = applier.config.as_ref().is_some_and(|c| c.docker.is_some());
                        if ns.is_own() && docker {
                            applier.look_again.get_or_insert_with(look_soon);
                        }
                        // Where Docker's children are staged, the look alone follows them: the
                        // events there are their Join's own (an apply would find nothing to do)
                        // or Docker moving them, which is what the look is for.
                        if !(docker && frontends::store::is_staging(&ns)) {
                            pending.namespaces.insert(ns);
                        }
                    }
                    Some((msg, _)) = link_events.next() => {
                        if let Some(name) = applier.watched.changed(msg) {
                            pending.link.get_or_insert(name);
                        }
                    }
                    _ = settle => {
                        // A parent's event concerns every endpoint on it; a namespace's, only
                        // what is in that namespace.
                        match std::mem::take(&mut pending) {
                            Pending { link: Some(name), .. } => applier.reapply(&format!("event on {name}")).await,
                            Pending { namespaces, .. } => {
                                let names: Vec<String> = namespaces.iter().map(ToString::to_string).collect();
                                let why = format!("event on namespace {}", names.join(", "));
                                applier.reapply_scoped(&why, reconcile::Scope::namespaces(namespaces)).await
                            }
                        };
                        follow(&mut ns_events, &applier);
                        retry_at = applier.retry_at(Instant::now());
                        // Drop what our own apply caused, so it does not trigger another round. But after
                        // an apply that waits for a change, what came meanwhile may be that change (the
                        // missing parent, back): it is acted on. Such an apply fails before changing
                        // links, or on a retry changes none again, so this does not loop.
                        let seen = drain(&mut link_events, &mut applier.watched).await;
                        if applier.next == Next::WaitForChange {
                            pending.link = seen;
                        }
                    }
                }
        if let Some(why) = why {
            applier.reapply(&why).await;
            follow(&mut ns_events, &applier);
            retry_at = applier.retry_at(Instant::now());
        }
    }
    crate::notify::stopping();
    info!("stopping; links and pinned eBPF programs stay in place");
    // The control socket's file goes with its server, before the process exits.
    for server in [control, docker].into_iter().flatten() {
        server.abort();
        let _ = server.await;
    }
    Ok(())
}
