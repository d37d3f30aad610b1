//! Reading counters from the pinned maps: works from any process, with or without the daemon.
use super::pins::Pins;
use anyhow::Context;
use aya::Pod;
use aya::maps::{Map, MapData, PerCpuArray};
use std::collections::HashMap;
use vlan_common::{EndpointDrops, Traffic, names};

fn sums<V: Pod + Default + Copy>(pins: &Pins, name: &str, slots: &[u32], add: impl Fn(&mut V, &V)) -> anyhow::Result<HashMap<u32, V>> {
    let path = pins.map(name);
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let data = MapData::from_pin(&path).with_context(|| format!("cannot open pinned map {}", path.display()))?;
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

/// The counters of the endpoints in `slots`, summed over CPUs. No map yet (nothing attached
/// so far) reads as no counters.
pub fn read_endpoint_traffic(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, Traffic>> {
    sums(pins, names::ENDPOINT_TRAFFIC_MAP, slots, |a: &mut Traffic, b| a.add(b))
}

/// The drops (spoofing) of the endpoints in `slots`, summed over CPUs.
pub fn read_endpoint_drops(pins: &Pins, slots: &[u32]) -> anyhow::Result<HashMap<u32, EndpointDrops>> {
    sums(pins, names::ENDPOINT_DROPS_MAP, slots, |a: &mut EndpointDrops, b| a.add(b))
}
