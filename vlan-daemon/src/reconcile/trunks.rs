//! Trunk VLAN policy: every device that carries VLAN sub-interfaces of vland's networks, or has
//! a `[trunks.NAME]` table, gets the enforcing XDP program with exactly the allowed set the
//! config implies; trunks no longer implied lose it. Runs in vland's own namespace.
use crate::config::Config;
use crate::ebpf::{self, Pins};
use crate::netlink::Netlink;
use crate::netns;
use crate::state::{State, StateStore};
use anyhow::Context;
use std::collections::{BTreeMap, HashSet};
use vlan_common::LinkId;

pub async fn apply(host: &Netlink, store: &StateStore, state: &mut State, config: &Config, pins: &Pins) -> anyhow::Result<()> {
    let own_inum = netns::inum(&netns::open(std::path::Path::new("/proc/thread-self/ns/net"))?)?;
    let mut keep = HashSet::new();
    let mut records = BTreeMap::new();
    for (name, vlans) in config.trunk_vlans() {
        let link = host.link_by_name(&name).await?.with_context(|| format!("trunk {name} does not exist"))?;
        let id = LinkId { netns_inum: own_inum, ifindex: link.index };
        ebpf::apply_trunk(pins, id, &name, &vlans).with_context(|| format!("trunk {name}"))?;
        keep.insert(id);
        records.insert(name, id);
    }
    ebpf::remove_other_trunks(pins, own_inum, &keep)?;
    if state.trunks != records {
        state.trunks = records;
        store.save(state)?;
    }
    Ok(())
}
