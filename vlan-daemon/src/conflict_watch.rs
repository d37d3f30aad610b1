//! The daemon's view of address conflicts: it writes the data plane's own log events (aya-log,
//! rate-limited by the programs) into its log, and logs each endpoint's conflict once per change
//! of the claimed address or foreign MAC, read from the same pinned maps as `vland stats`.
use crate::config::DaemonConfig;
use crate::ebpf::{self, Pins};
use crate::mac::Mac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use tracing::{debug, warn};

/// How often the maps and the log ring buffer are read: a conflict is in the log within this.
const POLL: Duration = Duration::from_millis(500);

/// Starts the watcher in the background; it waits for the first apply to pin the maps.
pub fn spawn(daemon: DaemonConfig) {
    tokio::spawn(async move {
        let mut watcher = Watcher { daemon, logger: None, reported: HashMap::new(), slots: None };
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Map reads are syscalls and a file read: off the async threads.
            watcher = match tokio::task::spawn_blocking(move || {
                watcher.poll();
                watcher
            })
            .await
            {
                Ok(w) => w,
                Err(e) => {
                    warn!("the address-conflict watcher stopped: {e}");
                    return;
                }
            };
        }
    });
}

struct Watcher {
    daemon: DaemonConfig,
    /// The data plane's logger and the id of the ring buffer it reads.
    logger: Option<(u32, aya_log::EbpfLogger<&'static dyn log::Log>)>,
    /// What was last logged per endpoint.
    reported: HashMap<String, (IpAddr, Mac)>,
    /// The counted endpoints by slot (endpoint, network), and the state file's mtime they were
    /// read at: the state is parsed again only when an apply has rewritten it, not every poll.
    slots: Option<(SystemTime, Slots)>,
}

/// Slot -> (endpoint, network).
type Slots = HashMap<u32, (String, String)>;

impl Watcher {
    fn poll(&mut self) {
        let pins = Pins::new(&self.daemon.bpf_dir);
        self.follow_log(&pins);
        if let Err(e) = self.report_changes(&pins) {
            debug!("cannot read address conflicts: {e:#}");
        }
    }

    /// Reads the data plane's log events; after `down` and `apply` made a new ring buffer, that one.
    fn follow_log(&mut self, pins: &Pins) {
        let id = ebpf::log_map_id(pins);
        if id.is_none() || self.logger.as_ref().map(|(i, _)| *i) != id {
            self.logger = match ebpf::data_plane_logger(pins) {
                Ok(l) => l,
                Err(e) => {
                    debug!("cannot read the data plane's log yet: {e:#}");
                    None
                }
            };
        }
        if let Some((_, logger)) = &mut self.logger {
            logger.flush();
        }
    }

    /// One line per endpoint whose last conflict is new: another address or another MAC.
    fn report_changes(&mut self, pins: &Pins) -> anyhow::Result<()> {
        let stamp = std::fs::metadata(crate::state::path(&self.daemon.state_dir)).and_then(|m| m.modified())?;
        if self.slots.as_ref().map(|(at, _)| *at) != Some(stamp) {
            let state = crate::state::read(&self.daemon.state_dir)?;
            let slots = state
                .endpoints
                .into_iter()
                .filter(|(_, r)| r.link.is_some())
                .filter_map(|(name, r)| Some((r.slot?, (name, r.network))))
                .collect();
            self.slots = Some((stamp, slots));
        }
        let Some((_, slots)) = &self.slots else { return Ok(()) };
        let list: Vec<u32> = slots.keys().copied().collect();
        for (slot, c) in ebpf::read_last_conflicts(pins, &list)? {
            let Some((endpoint, network)) = slots.get(&slot) else { continue };
            let now = (c.address, c.mac);
            if self.reported.get(endpoint) != Some(&now) {
                warn!(network = %network, "endpoint {endpoint}: address {} claimed by MAC {}", c.address, c.mac);
                self.reported.insert(endpoint.to_string(), now);
            }
        }
        Ok(())
    }
}
