//! Upgrades in place: when vland starts with an eBPF object other than the one that attached the
//! pinned trunk links, the programs behind those links are swapped atomically (BPF_LINK_UPDATE).
//! The links, and so the attachments, stay; the pinned maps are reused, so counting goes on
//! without a gap or a reset. (Endpoint programs are replaced by apply, filter by filter; a future
//! object with an incompatible map layout would need new pin names.)
use super::pins::Pins;
use anyhow::Context;
use aya::Ebpf;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::SchedClassifierLink;
use aya::programs::xdp::XdpLink;
use aya::programs::{SchedClassifier, Xdp};
use std::collections::BTreeMap;
use std::path::PathBuf;
use vlan_common::names;

/// Identifies this build's object (FNV-1a of its bytes), recorded in the state. Hashed once:
/// every apply asks, and the object is large.
pub fn object_id() -> String {
    static ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("{:016x}", crate::fnv::fnv1a64(super::OBJECT)));
    ID.clone()
}

fn load(pins: &Pins, trunk_slot: u32) -> anyhow::Result<Ebpf> {
    let mut bpf = super::load_object(pins, 0, trunk_slot)?;
    let p: &mut Xdp = bpf.program_mut(names::TRUNK_PROGRAM).context("program missing")?.try_into()?;
    p.load()?;
    let p: &mut SchedClassifier = bpf.program_mut(names::TRUNK_TC_PROGRAM).context("program missing")?.try_into()?;
    p.load()?;
    Ok(bpf)
}

pub(super) fn replace_xdp(bpf: &mut Ebpf, program: &str, pin: &PathBuf) -> anyhow::Result<()> {
    let link = XdpLink::try_from(FdLink::from(PinnedLink::from_pin(pin)?))?;
    let xdp: &mut Xdp = bpf.program_mut(program).context("program missing")?.try_into()?;
    let id = xdp.attach_to_link(link).with_context(|| format!("cannot update {}", pin.display()))?;
    // Closing our handle leaves the pinned link (now running the new program) in place.
    drop(xdp.take_link(id)?);
    Ok(())
}

fn replace_tc(bpf: &mut Ebpf, program: &str, pin: &PathBuf) -> anyhow::Result<()> {
    let link = SchedClassifierLink::try_from(FdLink::from(PinnedLink::from_pin(pin)?))?;
    let tc: &mut SchedClassifier = bpf.program_mut(program).context("program missing")?.try_into()?;
    let id = tc.attach_to_link(link).with_context(|| format!("cannot update {}", pin.display()))?;
    drop(tc.take_link(id)?);
    Ok(())
}

/// A pinned link: the program to put behind it, whether it is an XDP link, its pin.
type LinkToUpdate = (&'static str, bool, PathBuf);

/// Swaps the program of every pinned trunk link for this build's; how many links were updated.
/// Trunk links without a slot in TRUNKS (attached by a build before trunk slots) are unpinned,
/// which detaches them: the apply that follows attaches them anew.
pub fn replace_trunk_programs(pins: &Pins) -> anyhow::Result<usize> {
    // One program instance per trunk slot, patched in at load time.
    let mut instances: BTreeMap<u32, Vec<LinkToUpdate>> = BTreeMap::new();
    let trunk_slots = super::trunk::trunk_slots(pins)?;
    for (id, path) in pins.trunk_links() {
        let Some(slot) = trunk_slots.get(&id) else {
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
            continue;
        };
        let xdp = path.to_string_lossy().ends_with("_xdp");
        let program = if xdp { names::TRUNK_PROGRAM } else { names::TRUNK_TC_PROGRAM };
        instances.entry(*slot).or_default().push((program, xdp, path));
    }
    let mut updated = 0;
    for (trunk_slot, links) in instances {
        let mut bpf = load(pins, trunk_slot)?;
        for (program, is_xdp, path) in links {
            if is_xdp {
                replace_xdp(&mut bpf, program, &path)?
            } else {
                replace_tc(&mut bpf, program, &path)?
            }
            updated += 1;
        }
    }
    Ok(updated)
}
