//! vland's eBPF side in userspace: the embedded object, bpffs, the shared endpoint programs,
//! trunk programs with pinned links (so they outlive vland), and reading the pinned counters.
mod bpffs;
mod conflicts;
mod counters;
mod endpoints;
mod liveness;
mod pins;
mod prog_info;
mod responder;
mod tc;
mod trunk;
mod trunk_table;
mod upgrade;

pub use bpffs::{ensure_bpffs, is_bpffs};
pub use conflicts::{LastSeen, data_plane_logger, log_map_id, read_conflicts, read_last_conflicts};
pub use counters::{read_endpoint_drops, read_endpoint_traffic};
pub use endpoints::{
    EndpointPrograms, ProgramIds, endpoint_policy, is_legacy_ingress_xdp, pinned_program_ids, read_policies, reset_slots, write_policies,
};
pub use pins::Pins;
pub use prog_info::program_name;
pub use responder::{
    attach_responder, detach_other_responders, insert_neighbours, key_addr, neigh_key, read_neigh_counters, read_neighbours,
    remove_neighbours, responder_attached,
};
pub use trunk::{DropKey, TrunkCounters, apply_trunk, read_trunk_counters, remove_other_trunks, trunk_in_place};
pub use trunk_table::{TrunkTable, VlanKey};
pub use upgrade::{object_id, replace_trunk_programs};

/// The eBPF object built by `cargo xtask build-ebpf`, embedded at compile time (empty in a build
/// made without it, see build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("VLAND_EBPF_OBJECT_PATH"));

/// The embedded eBPF object, or an error saying how to get a build that has one.
pub fn object() -> anyhow::Result<&'static [u8]> {
    anyhow::ensure!(!OBJECT.is_empty(), "this vland was built without its eBPF programs: build it with `cargo xtask build`");
    Ok(OBJECT)
}

/// One program instance: maps shared through the pins in `pins.dir` (created by the first load),
/// the endpoint ifindex base and the trunk slot it serves patched in. Programs are loaded by the
/// caller, as needed.
pub fn load_object(pins: &Pins, ifindex_base: u32, trunk_slot: u32) -> anyhow::Result<aya::Ebpf> {
    load_object_from(object()?, pins, ifindex_base, trunk_slot)
}

/// Like [`load_object`], for an object read from elsewhere (the benchmarks load the one just built).
pub fn load_object_from(object: &[u8], pins: &Pins, ifindex_base: u32, trunk_slot: u32) -> anyhow::Result<aya::Ebpf> {
    use anyhow::Context;
    aya::EbpfLoader::new()
        .default_map_pin_directory(&pins.dir)
        .override_global(vlan_common::names::ENDPOINT_IFINDEX_BASE_GLOBAL, &ifindex_base, true)
        .override_global(vlan_common::names::TRUNK_SLOT_GLOBAL, &trunk_slot, true)
        // aya-log-ebpf does not pin its ring buffer: pinned, every instance logs into one.
        .map_pin_path(vlan_common::names::LOG_MAP, pins.map(vlan_common::names::LOG_MAP))
        .load(object)
        .context("cannot load vland's eBPF object")
}
