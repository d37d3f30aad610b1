//! `[trunks.NAME]` tables: the extra VLANs a trunk carries and what happens to untagged frames.
use super::names::check_ifname;
use crate::config::errors::{ConfigErrors, Scope};
use crate::config::model::TrunkVlans;
use crate::config::schema::RawTrunk;

pub fn trunk(name: &str, raw: &RawTrunk, errors: &mut ConfigErrors) -> Option<TrunkVlans> {
    let mut s = Scope::new(errors, format!("trunks.{name}"));
    if let Err(msg) = check_ifname(name) {
        s.err("name", msg);
    } else if name == "lo" {
        s.err("name", "the loopback device carries no VLANs: name the physical or veth interface the tagged frames arrive on");
    }
    for (i, vid) in raw.allowed_vlans.iter().enumerate() {
        if !(1..=4094).contains(vid) {
            s.err(&format!("allowed_vlans.{i}"), format!("vlan id must be between 1-4094, received: {vid}"));
        }
    }
    let untagged_drop = match raw.untagged.as_deref() {
        None | Some("pass") => false,
        Some("drop") => true,
        Some(other) => {
            s.err("untagged", format!("`{other}` is not a choice: use \"pass\" (the default) or \"drop\""));
            false
        }
    };
    let allowed = raw.allowed_vlans.iter().map(|vid| (vlan_common::ETH_P_8021Q, *vid)).collect();
    s.ok().then_some(TrunkVlans { allowed, untagged_drop })
}
