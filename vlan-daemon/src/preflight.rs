//! Checks of the config against the running kernel and vland's records, made before anything
//! is changed and reported together with the config's own errors.
use crate::config::{Config, ConfigErrors, CounterHook, NetnsRef, ParentKind};
use crate::netlink::Netlink;
use crate::state::State;
use std::collections::BTreeSet;

/// `only`: the namespaces a scoped apply reads (None: all). Endpoint namespaces are checked
/// there only: the others are not touched, and every whole apply checks them.
pub async fn check(
    config: &Config,
    state: &State,
    host: &Netlink,
    only: Option<&BTreeSet<NetnsRef>>,
    errors: &mut ConfigErrors,
) -> anyhow::Result<()> {
    for net in config.networks.values() {
        let key = |k: &str| format!("networks.{}.{k}", net.name);
        let name = &net.parent.name;
        let existing = host.link_by_name(name).await?;
        // The link whose MTU bounds the children's: the parent, or the base of a VLAN to be made.
        let mut mtu_source = existing.clone();
        match (&net.parent.kind, &existing) {
            (ParentKind::Existing, None) => errors.push(
                key("parent"),
                format!("interface {name} does not exist in vland's network namespace: create it or name an existing one (see `ip link`)"),
            ),
            (ParentKind::Existing, Some(link)) if link.kind.as_deref() == Some(net.driver.kind()) => {
                errors.push(key("parent"), format!("{name} is itself a {} child; use its parent instead", net.driver.kind()))
            }
            (ParentKind::Vlan { vid, .. }, Some(link)) if link.kind.as_deref() != Some("vlan") || link.vlan_id != Some(*vid) => {
                errors.push(key("parent"), format!("{name} exists but is not a VLAN sub-interface with id {vid}: rename it or pick another parent"))
            }
            (ParentKind::Vlan { base, .. }, None) => {
                mtu_source = host.link_by_name(base).await?;
                if mtu_source.is_none() {
                    errors.push(key("parent"), format!("base interface {base} of {name} does not exist: create it or fix the parent"));
                }
            }
            (ParentKind::Dummy, Some(_)) if !state.parents.contains_key(name) => errors.push(
                key("parent"),
                format!("the internal network's dummy parent would be {name}, but an interface of that name exists that vland did not create: rename the network"),
            ),
            _ => {}
        }
        // A child with the parent's own MAC would take the parent's frames (macvlan refuses
        // only duplicates among siblings).
        let parent_mac = mtu_source.as_ref().and_then(|l| l.mac);
        for ep in config.endpoints.values().filter(|e| e.network == net.name && e.mac.is_some() && e.mac == parent_mac) {
            errors.push(
                format!("endpoints.{}.mac", ep.name),
                format!("{} is the MAC of parent {name}: pick another (or leave `mac` out for a random one)", ep.mac.expect("filtered")),
            );
        }
        // Refused rather than fallen back from: an apply that attaches something other than what
        // the config says would leave the choice silently unmade.
        if net.counter_hook == CounterHook::Tcx && !crate::netlink::tcx::supported() {
            errors.push(
                key("counter_hook"),
                "this kernel has no tcx (Linux 6.6 or later has it): use counter_hook = \"tc\" (or leave the key out)".to_string(),
            );
        }
        if let (Some(want), Some(have)) = (net.mtu, mtu_source.and_then(|l| l.mtu))
            && net.parent.kind != ParentKind::Dummy
            && want > have
        {
            errors.push(key("mtu"), format!("{want} is above the MTU {have} of parent {name}: use at most {have}"));
        }
    }
    // A namespace given by path must be a network namespace now (named ones vland may create).
    for ep in config.endpoints.values().filter(|e| only.is_none_or(|only| only.contains(&e.netns))) {
        if let NetnsRef::Path(path) = &ep.netns
            && let Err(e) = crate::netns::open(path)
        {
            errors.push(format!("endpoints.{}.netns_path", ep.name), format!("{e:#}"));
        }
    }
    for name in config.trunks.keys() {
        let is_vlan_base = config.networks.values().any(|n| matches!(&n.parent.kind, ParentKind::Vlan { base, .. } if base == name));
        if !is_vlan_base && host.link_by_name(name).await?.is_none() {
            errors.push(
                format!("trunks.{name}"),
                format!("interface {name} does not exist in vland's network namespace: create it or remove the table"),
            );
        }
    }
    Ok(())
}
