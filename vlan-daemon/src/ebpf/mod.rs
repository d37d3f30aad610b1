//! vland's eBPF side in userspace: the embedded object, bpffs, attaching per-endpoint counting
//! programs with pinned links (so they outlive vland), and reading the pinned counters.
mod attach;
mod bpffs;
mod counters;
mod liveness;
mod pins;
mod tc;
mod trunk;
mod trunk_table;
mod upgrade;

pub use attach::{EndpointDevice, attach_endpoints, collect_garbage, detach_endpoint, endpoint_policy, reset_slots};
pub use bpffs::{ensure_bpffs, is_bpffs};
pub use counters::{read_endpoint_drops, read_endpoint_traffic};
pub use pins::Pins;
pub use trunk::{TrunkSpec, apply_trunk, read_trunk_counters, remove_other_trunks};
pub use upgrade::{object_id, replace_programs};

/// The eBPF object built by `cargo xtask build-ebpf`, embedded at compile time.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("VLAND_EBPF_OBJECT_PATH"));

/// One program instance: maps shared through the pins in `pins.dir` (created by the first load),
/// the endpoint or trunk slot it serves patched in (0 for the other kind). Programs are loaded
/// by the caller, as needed.
pub fn load_object(pins: &Pins, endpoint_slot: u32, trunk_slot: u32) -> anyhow::Result<aya::Ebpf> {
    use anyhow::Context;
    aya::EbpfLoader::new()
        .default_map_pin_directory(&pins.dir)
        .override_global(vlan_common::names::ENDPOINT_SLOT_GLOBAL, &endpoint_slot, true)
        .override_global(vlan_common::names::TRUNK_SLOT_GLOBAL, &trunk_slot, true)
        .load(OBJECT)
        .context("cannot load vland's eBPF object")
}

#[cfg(test)]
mod fixtures;
