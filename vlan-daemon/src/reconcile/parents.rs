//! Parents vland may have to make: `eth1.19` becomes an 802.1Q (or 802.1ad) sub-interface of eth1,
//! a network without parent gets a dummy. Each is recorded before it is created and deleted only
//! when vland created it and no configured network uses it any more (Docker's rule). Existing
//! parents are never changed.
use crate::config::{Config, Network, ParentKind, VlanProtocol};
use crate::netlink::Netlink;
use crate::state::{ParentRecord, State, StateStore};
use anyhow::{Context, bail};
use netlink_packet_route::link::{InfoVlan, VlanProtocol as NlVlanProtocol};
use rtnetlink::{LinkDummy, LinkVlan};
use tracing::info;

fn record_for(kind: &ParentKind) -> Option<ParentRecord> {
    match kind {
        ParentKind::Existing => None,
        ParentKind::Vlan { base, vid, protocol } => Some(ParentRecord::Vlan { base: base.clone(), vid: *vid, protocol: *protocol }),
        ParentKind::Dummy => Some(ParentRecord::Dummy {}),
    }
}

/// Makes sure the network's parent exists and is up; returns its ifindex.
pub async fn ensure(host: &Netlink, store: &StateStore, state: &mut State, net: &Network) -> anyhow::Result<u32> {
    let name = &net.parent.name;
    if let Some(link) = host.link_by_name(name).await? {
        if state.parents.contains_key(name) && !link.up {
            host.set_up(link.index).await?;
        }
        return Ok(link.index);
    }
    let Some(record) = record_for(&net.parent.kind) else {
        bail!("parent {name} does not exist (any more): create it, or change networks.{}.parent", net.name);
    };
    state.parents.insert(name.clone(), record);
    store.save(state)?;
    let msg = match &net.parent.kind {
        ParentKind::Vlan { base, vid, protocol } => {
            let base_link = host.link_by_name(base).await?.with_context(|| format!("{base}, the base of {name}, does not exist"))?;
            let proto = match protocol {
                VlanProtocol::Dot1Q => NlVlanProtocol::Ieee8021Q,
                VlanProtocol::Dot1Ad => NlVlanProtocol::Ieee8021Ad,
            };
            LinkVlan::new(name, base_link.index, *vid).append_info_data(InfoVlan::Protocol(proto)).up().build()
        }
        ParentKind::Dummy => LinkDummy::new(name).up().build(),
        ParentKind::Existing => unreachable!(),
    };
    host.add_link(msg, &format!("create parent {name}")).await?;
    // The tag that lets a run without the state file know this parent is vland's.
    host.set_alias_by_name(name, &super::adopt::parent_tag(store.link_group())).await?;
    info!(parent = %name, network = %net.name, "created parent");
    Ok(host.link_by_name(name).await?.context("the new parent vanished")?.index)
}

/// Deletes parents vland created that no configured network uses.
pub async fn remove_unused(host: &Netlink, store: &StateStore, state: &mut State, config: &Config) -> anyhow::Result<()> {
    let unused: Vec<String> = state.parents.keys().filter(|p| !config.networks.values().any(|n| &n.parent.name == *p)).cloned().collect();
    for name in unused {
        let record = state.parents[&name].clone();
        if let Some(link) = host.link_by_name(&name).await? {
            // Only if it is still the link vland made (same kind, same VLAN id).
            let same = match &record {
                ParentRecord::Vlan { vid, .. } => link.kind.as_deref() == Some("vlan") && link.vlan_id == Some(*vid),
                ParentRecord::Dummy {} => link.kind.as_deref() == Some("dummy"),
            };
            if same {
                host.delete_link(link.index).await?;
                info!(parent = %name, "removed parent vland had created");
            }
        }
        state.parents.remove(&name);
        store.save(state)?;
    }
    Ok(())
}
