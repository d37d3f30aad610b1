//! Address allocation: the lowest free address of a network's range, skipping the subnet's
//! network and broadcast addresses, the gateway, reserved aux addresses, and every address
//! already held or asked for statically.
use crate::config::Ipam;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub fn is_allocatable(ipam: &Ipam, addr: Ipv4Addr) -> bool {
    ipam.subnet.contains(addr)
        && addr != ipam.subnet.network()
        && addr != ipam.subnet.broadcast()
        && Some(addr) != ipam.gateway
        && !ipam.reserved.values().any(|r| *r == addr)
}

/// `taken` holds every address in use on this network (recorded and static).
pub fn allocate(ipam: &Ipam, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let start = u32::from(ipam.range.network());
    let end = u32::from(ipam.range.broadcast());
    (start..=end).map(Ipv4Addr::from).find(|a| is_allocatable(ipam, *a) && !taken.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ipam(subnet: &str, range: &str, gw: Option<&str>, aux: &[&str]) -> Ipam {
        Ipam {
            subnet: subnet.parse().unwrap(),
            range: range.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            reserved: aux.iter().enumerate().map(|(i, a)| (format!("h{i}"), a.parse().unwrap())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn skips_network_gateway_and_aux() {
        let i = ipam("172.16.10.0/24", "172.16.10.0/25", Some("172.16.10.1"), &["172.16.10.2"]);
        assert_eq!(allocate(&i, &BTreeSet::new()), Some("172.16.10.3".parse().unwrap()));
    }

    #[test]
    fn second_half_range_starts_at_its_network_address() {
        // The range's own first address is a host address of the subnet, so it is usable.
        let i = ipam("172.16.10.0/24", "172.16.10.128/25", Some("172.16.10.1"), &[]);
        assert_eq!(allocate(&i, &BTreeSet::new()), Some("172.16.10.128".parse().unwrap()));
    }

    #[test]
    fn exhausted_range_gives_none() {
        let i = ipam("10.0.0.0/30", "10.0.0.0/30", Some("10.0.0.1"), &[]);
        let taken = BTreeSet::from(["10.0.0.2".parse().unwrap()]);
        assert_eq!(allocate(&i, &taken), None);
    }

    #[test]
    fn taken_addresses_are_skipped() {
        let i = ipam("10.0.0.0/24", "10.0.0.0/24", None, &[]);
        let taken = BTreeSet::from(["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()]);
        assert_eq!(allocate(&i, &taken), Some("10.0.0.3".parse().unwrap()));
    }
}
