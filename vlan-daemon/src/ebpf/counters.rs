//! Reading counters from the pinned maps: works from any process, with or without the daemon.
use super::pins::Pins;
use aya::Pod;
use aya::maps::{Map, PerCpuArray, PerCpuValues};
use std::collections::HashMap;
use vlan_common::{EndpointDrops, Traffic, names};

pub(super) fn sums<V: Pod + Default + Copy>(
    pins: &Pins,
    name: &str,
    slots: &[u32],
    add: impl Fn(&mut V, &V),
) -> anyhow::Result<HashMap<u32, V>> {
    if slots.is_empty() {
        return Ok(HashMap::new());
    }
    // Endpoints to read: their map must be there, else their counters would read as zeros.
    let data = pins.require_map(name)?;
    let map: PerCpuArray<_, V> = PerCpuArray::try_from(Map::PerCpuArray(data))?;
    let mut out = HashMap::new();
    for slot in slots {
        let mut sum = V::default();
        for v in map.get(slot, 0)?.iter() {
            add(&mut sum, v);
        }
        out.insert(*slot, sum);
    }
    Ok(out)
}

/// A zero for every CPU: what a per-CPU counter is reset to.
pub fn per_cpu_zeros<V: Pod + Default>() -> anyhow::Result<PerCpuValues<V>> {
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    Ok(PerCpuValues::try_from(vec![V::default(); cpus])?)
}

/// The counters of the endpoints in `slots`, summed over CPUs. A map that is missing or cannot
/// be opened is an error that names it.
pub fn read_endpoint_traffic(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, Traffic>> {
    sums(pins, names::ENDPOINT_TRAFFIC_MAP, slots, |a: &mut Traffic, b| a.add(b))
}

/// The drops (spoofing) of the endpoints in `slots`, summed over CPUs.
pub fn read_endpoint_drops(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, EndpointDrops>> {
    sums(pins, names::ENDPOINT_DROPS_MAP, slots, |a: &mut EndpointDrops, b| a.add(b))
}
