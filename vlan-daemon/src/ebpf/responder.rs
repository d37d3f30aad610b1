//! The parents' ARP/ND responder in userspace: `vland_parent` (XDP, native where the driver has
//! it) attached to a parent through a bpf_link pinned under `links/` (vland does not own most
//! parents, and a pinned link is what tells its attachment from someone else's program), and the
//! NEIGHBOURS table it answers from. A parent that is also a trunk answers from `vland_trunk`.
use super::liveness;
use super::pins::Pins;
use anyhow::Context;
use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use aya::programs::links::FdLink;
use aya::programs::{Xdp, XdpMode};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use vlan_common::{LinkId, NeighCounters, NeighEntry, NeighKey, names};

pub fn neigh_key(ifindex: u32, addr: IpAddr) -> NeighKey {
    let mut key = NeighKey { ifindex, family: 4, addr: [0; 16] };
    match addr {
        IpAddr::V4(a) => key.addr[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => (key.family, key.addr) = (6, a.octets()),
    }
    key
}

/// The address a key asks about.
pub fn key_addr(key: &NeighKey) -> IpAddr {
    if key.family == 6 { IpAddr::from(key.addr) } else { IpAddr::from([key.addr[0], key.addr[1], key.addr[2], key.addr[3]]) }
}

fn table(pins: &Pins) -> anyhow::Result<Option<BpfHashMap<MapData, NeighKey, NeighEntry>>> {
    let Some(data) = pins.open_map(names::NEIGHBOURS_MAP)? else { return Ok(None) };
    Ok(Some(BpfHashMap::try_from(Map::HashMap(data))?))
}

/// Every entry of the table (none before the maps exist).
pub fn read_neighbours(pins: &Pins) -> anyhow::Result<BTreeMap<NeighKey, NeighEntry>> {
    let Some(t) = table(pins)? else { return Ok(BTreeMap::new()) };
    t.iter().map(|r| r.map_err(Into::into)).collect()
}

pub fn remove_neighbours(pins: &Pins, keys: &[NeighKey]) -> anyhow::Result<()> {
    let Some(mut t) = table(pins)? else { return Ok(()) };
    for key in keys {
        match t.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e).context("cannot remove a neighbour entry"),
        }
    }
    Ok(())
}

pub fn insert_neighbours(pins: &Pins, entries: &[(NeighKey, NeighEntry)]) -> anyhow::Result<()> {
    let mut t = table(pins)?.context("the neighbour table is not pinned")?;
    for (key, entry) in entries {
        t.insert(key, entry, 0).context("cannot add a neighbour entry")?;
    }
    Ok(())
}

/// Whether vland's responder (this build's, when `current`) is attached to parent `id`.
pub fn responder_attached(pins: &Pins, id: LinkId) -> bool {
    liveness::attached_to(&pins.parent_link(id), id.ifindex)
}

/// Attaches this build's responder to parent `id`: a link still attached gets the program
/// swapped in place (no gap); otherwise a new link, native where the driver has XDP.
pub fn attach_responder(pins: &Pins, id: LinkId) -> anyhow::Result<()> {
    let pin = pins.parent_link(id);
    let mut bpf = super::load_object(pins, 0, 0)?;
    let xdp: &mut Xdp = bpf.program_mut(names::PARENT_PROGRAM).context("no parent program in the eBPF object")?.try_into()?;
    xdp.load().context("the kernel rejected the parent XDP program")?;
    if liveness::attached_to(&pin, id.ifindex) {
        return super::upgrade::replace_xdp(&mut bpf, names::PARENT_PROGRAM, &pin);
    }
    let _ = std::fs::remove_file(&pin);
    let xdp: &mut Xdp = bpf.program_mut(names::PARENT_PROGRAM).context("no parent program in the eBPF object")?.try_into()?;
    let link_id = xdp.attach_to_if_index(id.ifindex, XdpMode::Default).context("XDP attach to the parent")?;
    let link: FdLink = xdp.take_link(link_id)?.try_into().context("XDP attached without a bpf_link")?;
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir)?;
    }
    link.pin(&pin).with_context(|| format!("cannot pin {}", pin.display()))?;
    Ok(())
}

/// Detaches vland's responder from every parent of `netns_inum` not in `keep` (unpinning the
/// link detaches it; nothing else's program is touched).
pub fn detach_other_responders(pins: &Pins, netns_inum: u32, keep: &HashSet<LinkId>) -> anyhow::Result<Vec<LinkId>> {
    let mut gone = Vec::new();
    for (id, path) in pins.parent_links() {
        if id.netns_inum == netns_inum && !keep.contains(&id) {
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
            gone.push(id);
        }
    }
    Ok(gone)
}

/// What was answered for the endpoints in `slots`, summed over CPUs.
pub fn read_neigh_counters(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, NeighCounters>> {
    super::counters::sums(pins, names::ENDPOINT_NEIGH_MAP, slots, |a: &mut NeighCounters, b| a.add(b))
}
