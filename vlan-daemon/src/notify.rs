//! The systemd service protocol (sd_notify), for `Type=notify` units: READY=1 once the first apply
//! has run, STOPPING=1 on the way out, and WATCHDOG=1 at half the interval systemd asks for
//! (`WatchdogSec=` in the unit, WATCHDOG_USEC in the environment). Without NOTIFY_SOCKET (not
//! started by systemd) every call does nothing.
use sd_notify::NotifyState;
use std::time::Duration;
use tracing::{debug, warn};

fn send(states: &[NotifyState]) {
    // A notify socket that went away is systemd's business: the daemon keeps working.
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify systemd: {e}");
    }
}

/// After the first apply, whatever its outcome: the daemon is up and retries a failed apply
/// itself; the unit must not hang in "activating" while a parent link is missing.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Starts feeding the watchdog from the daemon's runtime, if systemd asked for one: a runtime
/// that stops running tasks stops feeding it, and systemd restarts the daemon.
pub fn spawn_watchdog() {
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let period = (timeout / 2).max(Duration::from_millis(1));
    debug!(?period, "feeding the systemd watchdog");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}
