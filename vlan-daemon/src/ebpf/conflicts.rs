//! Address conflicts the parents' XDP program saw (see vlan-ebpf's conflict.rs): per-endpoint
//! counts and the last one, read from the pinned maps like every counter; and the data plane's
//! own log events (aya-log), read from the ring buffer every program instance shares.
use super::pins::Pins;
use crate::mac::Mac;
use aya::maps::{Array, Map};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use vlan_common::{ConflictCounters, LastConflict, names};

/// The last frame that claimed an endpoint's address from a foreign MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSeen {
    pub address: IpAddr,
    pub mac: Mac,
    pub at: SystemTime,
}

/// Conflicts of the endpoints in `slots`: how many frames, and the last one (if any).
pub fn read_conflicts(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, (u64, Option<LastSeen>)>> {
    let counts = super::counters::sums(pins, names::ENDPOINT_CONFLICTS_MAP, slots, |a: &mut ConflictCounters, b| a.add(b))?;
    let mut last = read_last_conflicts(pins, slots)?;
    Ok(slots.iter().map(|s| (*s, (counts.get(s).map_or(0, |c| c.address_conflicts), last.remove(s)))).collect())
}

/// The last conflict of each endpoint in `slots` that had one.
pub fn read_last_conflicts(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, LastSeen>> {
    if slots.is_empty() {
        return Ok(HashMap::new());
    }
    let last: Array<_, LastConflict> = Array::try_from(Map::Array(pins.require_map(names::LAST_CONFLICT_MAP)?))?;
    let (wall, mono) = (SystemTime::now(), monotonic_ns());
    let mut out = HashMap::new();
    for slot in slots {
        let l = last.get(slot, 0)?;
        if l.at_ns == 0 {
            continue;
        }
        let address = if l.family == 6 { IpAddr::from(l.addr) } else { IpAddr::from([l.addr[0], l.addr[1], l.addr[2], l.addr[3]]) };
        out.insert(*slot, LastSeen { address, mac: Mac(l.mac), at: wall - Duration::from_nanos(mono.saturating_sub(l.at_ns)) });
    }
    Ok(out)
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Clears the conflicts a reused slot holds from an earlier endpoint.
pub(super) fn reset(pins: &Pins, slots: &[u32]) -> anyhow::Result<()> {
    if let Some(data) = pins.open_map(names::LAST_CONFLICT_MAP)? {
        let mut map: Array<_, LastConflict> = Array::try_from(Map::Array(data))?;
        for slot in slots {
            map.set(*slot, LastConflict::default(), 0)?;
        }
    }
    Ok(())
}

/// The data plane's log events (address conflicts, rate-limited by the programs), written to the
/// daemon's log through the `log` facade (tracing picks them up). The ring buffer is the pinned
/// one every program instance of this bpf dir writes to; None before the first apply pinned it.
pub fn data_plane_logger(pins: &Pins) -> anyhow::Result<Option<(u32, aya_log::EbpfLogger<&'static dyn log::Log>)>> {
    let Some(id) = log_map_id(pins) else { return Ok(None) };
    let mut bpf = super::load_object(pins, 0, 0)?;
    let logger = aya_log::EbpfLogger::init(&mut bpf)?;
    Ok(Some((id, logger)))
}

/// The id of the pinned log ring buffer: a new id means `down` and `apply` made a new one.
pub fn log_map_id(pins: &Pins) -> Option<u32> {
    let data = pins.open_map(names::LOG_MAP).ok()??;
    data.info().ok().map(|i| i.id())
}
