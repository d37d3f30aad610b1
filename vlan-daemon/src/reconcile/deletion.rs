//! Deleting children without waiting for RCU. The kernel takes a deleted link out of its
//! namespace at once (its name, number and addresses are free from then on), then waits for an
//! RCU barrier (~20 ms) before it answers. That wait changes nothing anyone can see, so a
//! deletion is done once the link has left its namespace: the thread that sent it waits for the
//! answer in the background, and the apply (and the engine's call behind it) goes on.
use anyhow::{Context, anyhow};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often a deletion's progress is looked at.
const POLL: Duration = Duration::from_micros(200);
/// A deletion whose link is still listed after this is waited for to the end.
const UNLIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Deletes links (endpoint, namespace, ifindex) at once, each from a thread inside its namespace;
/// returns when every one is gone from its namespace, or with the first error.
pub fn delete_links_at_once(links: &[(String, File, u32)]) -> anyhow::Result<()> {
    // A bounded number started at a time: removing thousands of endpoints need not mean
    // thousands of threads (each ends with its RCU wait).
    for batch in links.chunks(DELETION_THREADS) {
        let mut started = Vec::new();
        for (name, ns, index) in batch {
            started.push(start(name, ns, *index).with_context(|| format!("endpoint {name}"))?);
        }
        for deletion in started {
            deletion.wait_unlisted()?;
        }
    }
    Ok(())
}

/// How many deletions `delete_links_at_once` starts at once.
const DELETION_THREADS: usize = 64;

/// One deletion under way.
struct Deletion {
    endpoint: String,
    index: u32,
    /// A socket in the link's namespace: asks the kernel whether the number is still listed.
    probe: OwnedFd,
    /// The deleting thread's outcome, once the kernel has answered.
    done: mpsc::Receiver<anyhow::Result<()>>,
}

fn start(endpoint: &str, ns: &File, index: u32) -> anyhow::Result<Deletion> {
    let ns = ns.try_clone()?;
    let (probe_tx, probe_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    std::thread::Builder::new().name("vland-unlink".into()).spawn(move || {
        let joined = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns into the endpoint's network namespace");
        let probe = joined.and_then(|()| probe_socket());
        let ok = probe.is_ok();
        let _ = probe_tx.send(probe);
        if ok {
            // The receiver may be gone: the apply went on once the link had left its namespace.
            let _ = done_tx.send(crate::netlink::delete_link_blocking(index));
        }
    })?;
    let probe = probe_rx.recv().context("the deleting thread ended early")??;
    Ok(Deletion { endpoint: endpoint.to_string(), index, probe, done })
}

impl Deletion {
    fn wait_unlisted(self) -> anyhow::Result<()> {
        let deadline = Instant::now() + UNLIST_TIMEOUT;
        while Instant::now() < deadline {
            match self.done.try_recv() {
                Ok(result) => return self.named(result),
                Err(mpsc::TryRecvError::Disconnected) => return self.named(Err(anyhow!("the deleting thread panicked"))),
                Err(mpsc::TryRecvError::Empty) if !listed(&self.probe, self.index) => return Ok(()),
                Err(mpsc::TryRecvError::Empty) => std::thread::sleep(POLL),
            }
        }
        // Still listed: the kernel's answer says how it ended.
        let result = self.done.recv().unwrap_or_else(|_| Err(anyhow!("the deleting thread panicked")));
        self.named(result)
    }

    fn named(&self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        result.with_context(|| format!("endpoint {}", self.endpoint))
    }
}

/// A datagram socket in the calling thread's namespace (SIOCGIFNAME asks the socket's namespace).
fn probe_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot open a socket in the endpoint's namespace");
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether link number `index` is still in the probe's namespace. Anything but "no such device"
/// counts as listed: the deletion is then waited for to its end.
fn listed(probe: &OwnedFd, index: u32) -> bool {
    // SAFETY: an all-zero ifreq is valid; SIOCGIFNAME reads ifr_ifindex and writes ifr_name.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_ifru.ifru_ifindex = index as libc::c_int;
    // SAFETY: a valid descriptor and a properly sized request.
    let rc = unsafe { libc::ioctl(probe.as_raw_fd(), libc::SIOCGIFNAME, &mut req) };
    !(rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENODEV))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_and_an_unused_number_is_not() {
        let probe = probe_socket().unwrap();
        assert!(listed(&probe, 1), "lo is link 1 in every namespace");
        assert!(!listed(&probe, u32::MAX >> 1), "no namespace numbers a link this high");
    }
}
