//! Rules across tables: what may share a parent, and what must be unique among endpoints.
use crate::config::errors::ConfigErrors;
use crate::config::model::{Endpoint, NetnsRef, Network};
use crate::mac::Mac;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// What the kernel enforces per parent, said before the kernel says EBUSY or EINVAL.
pub fn check_parent_sharing(networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) {
    let mut by_parent: BTreeMap<&str, Vec<&Network>> = BTreeMap::new();
    for n in networks.values() {
        by_parent.entry(&n.parent.name).or_default().push(n);
    }
    for (parent, nets) in by_parent {
        // Each network answers for itself against those before it: the first one owns the parent.
        for (i, n) in nets.iter().enumerate() {
            if let Some((key, msg)) = nets[..i].iter().find_map(|earlier| n.driver.sharing_conflict(&earlier.driver, &earlier.name, parent))
            {
                errors.push(format!("networks.{}.{key}", n.name), msg);
            }
            if let Some(first) = nets[..i].first()
                && n.parent.kind != first.parent.kind
            {
                errors.push(
                    format!("networks.{}.parent", n.name),
                    format!("`{}` describes parent {parent} differently (vlan protocol)", first.name),
                );
            }
        }
        for (i, a) in nets.iter().enumerate() {
            for b in &nets[i + 1..] {
                for (x, y) in [(&a.ipam4, &b.ipam4), (&a.ipam6, &b.ipam6)] {
                    if let (Some(x), Some(y)) = (x, y)
                        && (x.subnet.contains(y.subnet.network()) || y.subnet.contains(x.subnet.network()))
                    {
                        errors.push(
                            format!("networks.{}.subnet", b.name),
                            format!(
                                "{} overlaps {} of network `{}` on the same parent {parent}: use disjoint subnets",
                                y.subnet, x.subnet, a.name
                            ),
                        );
                    }
                }
            }
        }
    }
}

pub fn check_endpoints(endpoints: &BTreeMap<String, Endpoint>, networks: &BTreeMap<String, Network>, errors: &mut ConfigErrors) {
    let mut ips: HashMap<(&str, IpAddr), &str> = HashMap::new();
    let mut ifnames: HashMap<(&NetnsRef, &str), &str> = HashMap::new();
    let mut macs: HashMap<(&str, Mac), &str> = HashMap::new();
    let mut per_network: HashMap<&str, usize> = HashMap::new();
    for e in endpoints.values() {
        for (key, ip) in [("ip", e.static_ip(false)), ("ip6", e.static_ip(true))] {
            if let Some(ip) = ip
                && let Some(other) = ips.insert((&e.network, ip), &e.name)
            {
                errors.push(
                    format!("endpoints.{}.{key}", e.name),
                    format!("{ip} is already taken by endpoint `{other}`: pick another address"),
                );
            }
        }
        if let Some(other) = ifnames.insert((&e.netns, &e.ifname), &e.name) {
            errors.push(
                format!("endpoints.{}.ifname", e.name),
                format!("endpoint `{other}` already uses {} in namespace {}: set a different ifname", e.ifname, e.netns),
            );
        }
        if let (Some(mac), Some(net)) = (e.mac, networks.get(&e.network))
            && let Some(other) = macs.insert((&net.parent.name, mac), &e.name)
        {
            errors.push(
                format!("endpoints.{}.mac", e.name),
                format!("endpoint `{other}` already uses this MAC on parent {}: MACs must be unique per parent", net.parent.name),
            );
        }
        *per_network.entry(&e.network).or_default() += 1;
    }
    for (net, count) in per_network {
        if let Some((max, why)) = networks.get(net).and_then(|n| n.driver.max_endpoints())
            && count > max
        {
            errors
                .push(format!("networks.{net}.mode"), format!("{why}, but {count} endpoints join `{net}`: keep {max} or use another mode"));
        }
    }
}
