//! Reading counters from the pinned maps: works from any process, with or without the daemon.
use super::pins::Pins;
use anyhow::Context;
use aya::maps::{Map, MapData, PerCpuHashMap};
use std::collections::HashMap;
use vlan_common::{EndpointDropKey, EndpointKey, Traffic, names};

pub type TrafficTable = HashMap<EndpointKey, Traffic>;

/// Every endpoint's counters, summed over CPUs. An absent map (nothing attached yet) is empty.
pub fn read_endpoint_traffic(pins: &Pins) -> anyhow::Result<TrafficTable> {
    let path = pins.traffic_map();
    if !path.exists() {
        return Ok(TrafficTable::new());
    }
    let data = MapData::from_pin(&path).with_context(|| format!("cannot open pinned map {}", path.display()))?;
    let map: PerCpuHashMap<_, EndpointKey, Traffic> = PerCpuHashMap::try_from(Map::PerCpuHashMap(data))?;
    let mut out = TrafficTable::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry?;
        let mut sum = Traffic::default();
        for t in per_cpu.iter() {
            sum.add(t);
        }
        out.insert(key, sum);
    }
    Ok(out)
}

/// Every endpoint's drops (spoofing), per reason, summed over CPUs.
pub fn read_endpoint_drops(pins: &Pins) -> anyhow::Result<HashMap<EndpointDropKey, u64>> {
    let path = pins.map(names::ENDPOINT_DROPS_MAP);
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let data = MapData::from_pin(&path).with_context(|| format!("cannot open pinned map {}", path.display()))?;
    let map: PerCpuHashMap<_, EndpointDropKey, u64> = PerCpuHashMap::try_from(Map::PerCpuHashMap(data))?;
    let mut out = HashMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry?;
        out.insert(key, per_cpu.iter().sum());
    }
    Ok(out)
}
