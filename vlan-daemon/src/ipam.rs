//! Address allocation, for either family: the lowest free address of a network's range,
//! skipping the subnet's network (and, for IPv4, broadcast) address, the gateway, reserved aux
//! addresses, and every address already held or asked for statically.
use crate::config::{Ipam, is_network_or_broadcast};
use ipnetwork::IpNetwork;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub fn is_allocatable(ipam: &Ipam, addr: IpAddr) -> bool {
    ipam.subnet.contains(addr)
        && !is_network_or_broadcast(&ipam.subnet, addr)
        && Some(addr) != ipam.gateway
        && !ipam.reserved.values().any(|r| *r == addr)
}

fn bounds(net: &IpNetwork) -> (u128, u128) {
    match net {
        IpNetwork::V4(n) => (u32::from(n.network()) as u128, u32::from(n.broadcast()) as u128),
        IpNetwork::V6(n) => {
            let start = u128::from(n.network());
            let host_bits = 128 - n.prefix() as u32;
            let span = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
            (start, start | span)
        }
    }
}

fn addr_at(net: &IpNetwork, n: u128) -> IpAddr {
    from_u128(n, net.is_ipv6())
}

/// An address as a number, for range arithmetic on either family.
pub fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

/// The address numbered `n` of the family `v6` says (IPv4 takes the low 32 bits).
pub fn from_u128(n: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(Ipv6Addr::from(n)) } else { IpAddr::V4(Ipv4Addr::from(n as u32)) }
}

/// `taken` holds every address in use on this network (recorded and static).
pub fn allocate(ipam: &Ipam, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let (start, end) = bounds(&ipam.range);
    // Lazy: a /64 range is never walked further than the addresses in use plus a few.
    (start..=end).map(|n| addr_at(&ipam.range, n)).find(|a| is_allocatable(ipam, *a) && !taken.contains(a))
}

/// The lowest free address of `blocks` (a cluster network's blocks this host owns), in the
/// order given.
pub fn allocate_in<'b>(ipam: &Ipam, blocks: impl IntoIterator<Item = &'b IpNetwork>, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    blocks.into_iter().flat_map(|b| b.iter()).find(|a| ipam.range.contains(*a) && is_allocatable(ipam, *a) && !taken.contains(a))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn skips_network_gateway_and_aux() {
        let i = ipam("172.16.10.0/24", "172.16.10.0/25", Some("172.16.10.1"), &["172.16.10.2"]);
        assert_eq!(allocate(&i, &BTreeSet::new()), Some(ip("172.16.10.3")));
    }

    #[test]
    fn second_half_range_starts_at_its_network_address() {
        // As in the seed: docker2 with --ip-range 10.10.10.128/25 hands out 10.10.10.128 first.
        let i = ipam("10.10.10.0/24", "10.10.10.128/25", Some("10.10.10.1"), &[]);
        assert_eq!(allocate(&i, &BTreeSet::new()), Some(ip("10.10.10.128")));
    }

    #[test]
    fn cluster_allocation_stays_in_owned_blocks() {
        let i = ipam("10.10.10.0/24", "10.10.10.0/24", Some("10.10.10.1"), &[]);
        let blocks: Vec<IpNetwork> = vec!["10.10.10.32/28".parse().unwrap()];
        assert_eq!(allocate_in(&i, &blocks, &BTreeSet::from([ip("10.10.10.32")])), Some(ip("10.10.10.33")));
        let all: BTreeSet<IpAddr> = blocks[0].iter().collect();
        assert_eq!(allocate_in(&i, &blocks, &all), None);
    }

    #[test]
    fn exhausted_range_gives_none() {
        let i = ipam("10.0.0.0/30", "10.0.0.0/30", Some("10.0.0.1"), &[]);
        assert_eq!(allocate(&i, &BTreeSet::from([ip("10.0.0.2")])), None);
    }

    #[test]
    fn taken_addresses_are_skipped() {
        let i = ipam("10.0.0.0/24", "10.0.0.0/24", None, &[]);
        assert_eq!(allocate(&i, &BTreeSet::from([ip("10.0.0.1"), ip("10.0.0.2")])), Some(ip("10.0.0.3")));
    }

    #[test]
    fn ipv6_skips_the_subnet_router_anycast_and_gateway() {
        let i = ipam("fd00:10::/64", "fd00:10::/64", Some("fd00:10::1"), &["fd00:10::2"]);
        assert_eq!(allocate(&i, &BTreeSet::from([ip("fd00:10::3")])), Some(ip("fd00:10::4")));
    }
}
