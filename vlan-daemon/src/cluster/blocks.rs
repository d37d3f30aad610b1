//! Address blocks of a cluster network's range, and what etcd records about them. Pure: the
//! arithmetic of blocks, the keys and values, and the choice of what this host must claim.
//!
//! Calico's design: a host claims a whole block with one create-if-absent transaction and then
//! allocates inside its own blocks from local state, so hosts never contend for single
//! addresses and etcd sees one write per block instead of one per endpoint.
use crate::config::Ipam;
use crate::ipam;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Every key vland writes starts with this.
pub const ROOT: &str = "/vland/v1/";

pub fn hosts_prefix() -> String {
    format!("{ROOT}hosts/")
}

pub fn host_key(host: &str) -> String {
    format!("{ROOT}hosts/{host}")
}

pub fn usage_key(host: &str) -> String {
    format!("{ROOT}usage/{host}")
}

pub fn usage_prefix() -> String {
    format!("{ROOT}usage/")
}

pub fn networks_prefix() -> String {
    format!("{ROOT}networks/")
}

/// Everything about one network (its pool, blocks and static addresses): one range read.
pub fn network_prefix(network: &str) -> String {
    format!("{ROOT}networks/{network}/")
}

pub fn pool_key(network: &str) -> String {
    format!("{ROOT}networks/{network}/pool")
}

pub fn block_key(network: &str, block: &IpNetwork) -> String {
    format!("{ROOT}networks/{network}/blocks/{}-{}", block.network(), block.prefix())
}

pub fn static_key(network: &str, ip: IpAddr) -> String {
    format!("{ROOT}networks/{network}/static/{ip}")
}

/// A block's owner. `request` is the id of the transaction that claimed it: after an ambiguous
/// outcome (the leader died mid-request) the claimer reads it back to see whether it was its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOwner {
    pub host: String,
    pub request: String,
}

/// A static address, claimed as its own key inside a block its host owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticOwner {
    pub host: String,
    pub endpoint: String,
    pub request: String,
}

/// What every host's config of a cluster network must agree on; the first host records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub subnet: Option<IpNetwork>,
    pub ip_range: Option<IpNetwork>,
    pub gateway: Option<IpAddr>,
    pub subnet6: Option<IpNetwork>,
    pub ip_range6: Option<IpNetwork>,
    pub gateway6: Option<IpAddr>,
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

impl PoolRecord {
    pub fn of(net: &crate::config::Network) -> Self {
        let mut aux = BTreeMap::new();
        for i in [&net.ipam4, &net.ipam6].into_iter().flatten() {
            aux.extend(i.reserved.iter().map(|(k, v)| (k.clone(), *v)));
        }
        PoolRecord {
            subnet: net.ipam4.as_ref().map(|i| i.subnet),
            ip_range: net.ipam4.as_ref().map(|i| i.range),
            gateway: net.ipam4.as_ref().and_then(|i| i.gateway),
            subnet6: net.ipam6.as_ref().map(|i| i.subnet),
            ip_range6: net.ipam6.as_ref().map(|i| i.range),
            gateway6: net.ipam6.as_ref().and_then(|i| i.gateway),
            aux_addresses: aux,
        }
    }

    /// How `self` (this host's config) differs from `recorded`, one phrase per key.
    pub fn differences(&self, recorded: &PoolRecord) -> Vec<String> {
        fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
            v.as_ref().map_or("none".into(), ToString::to_string)
        }
        let mut out = Vec::new();
        let mut cmp = |key: &str, mine: String, theirs: String| {
            if mine != theirs {
                out.push(format!("{key} is {mine} here but {theirs} in the cluster"));
            }
        };
        cmp("subnet", show(&self.subnet), show(&recorded.subnet));
        cmp("ip_range", show(&self.ip_range), show(&recorded.ip_range));
        cmp("gateway", show(&self.gateway), show(&recorded.gateway));
        cmp("subnet6", show(&self.subnet6), show(&recorded.subnet6));
        cmp("ip_range6", show(&self.ip_range6), show(&recorded.ip_range6));
        cmp("gateway6", show(&self.gateway6), show(&recorded.gateway6));
        let aux = |m: &BTreeMap<String, IpAddr>| {
            if m.is_empty() { "none".to_string() } else { m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",") }
        };
        cmp("aux_addresses", aux(&self.aux_addresses), aux(&recorded.aux_addresses));
        out
    }
}

/// The prefix length of a network's blocks: the configured size, or the whole range when the
/// range is smaller than one block.
pub fn block_prefix(range: &IpNetwork, size: u8) -> u8 {
    size.max(range.prefix())
}

/// The block of `range` that holds `addr` (which must lie in the range).
pub fn block_of(range: &IpNetwork, prefix: u8, addr: IpAddr) -> IpNetwork {
    let net = IpNetwork::new(addr, prefix).expect("prefix fits the family");
    IpNetwork::new(net.network(), prefix).expect("prefix fits the family").clamp_to(range)
}

trait ClampTo {
    fn clamp_to(self, range: &IpNetwork) -> IpNetwork;
}

impl ClampTo for IpNetwork {
    fn clamp_to(self, range: &IpNetwork) -> IpNetwork {
        if self.prefix() < range.prefix() { *range } else { self }
    }
}

/// The blocks of `range`, lowest first, lazily (an IPv6 range holds more than can be listed).
pub fn blocks_of(range: IpNetwork, prefix: u8) -> impl Iterator<Item = IpNetwork> {
    let bits: u32 = if range.is_ipv4() { 32 } else { 128 };
    let (start, count_bits) = match range {
        IpNetwork::V4(n) => (u32::from(n.network()) as u128, u32::from(prefix - range.prefix())),
        IpNetwork::V6(n) => (u128::from(n.network()), u32::from(prefix - range.prefix())),
    };
    let step: u128 = 1u128 << (bits - u32::from(prefix));
    let count: u128 = if count_bits >= 127 { u128::MAX } else { 1u128 << count_bits };
    (0..count).map(move |i| {
        let n = start + i * step;
        let ip = if bits == 32 { IpAddr::V4((n as u32).into()) } else { IpAddr::V6(n.into()) };
        IpNetwork::new(ip, prefix).expect("prefix fits the family")
    })
}

/// The addresses of `block` an endpoint may get: inside the range and neither the subnet's
/// network or broadcast address, the gateway nor an aux address.
pub fn allocatable(ipam: &Ipam, block: &IpNetwork) -> impl Iterator<Item = IpAddr> {
    let ipam = ipam.clone();
    let block = *block;
    block.iter().filter(move |a| ipam.range.contains(*a) && ipam::is_allocatable(&ipam, *a))
}

/// What this host must claim for one family of one network, given what etcd shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// Unclaimed blocks to claim, lowest first.
    pub blocks: Vec<IpNetwork>,
    /// Static addresses (with their endpoint) to record as their own keys.
    pub statics: Vec<(IpAddr, String)>,
}

/// One family of one network as etcd shows it and as this host needs it.
pub struct Need<'a> {
    pub ipam: &'a Ipam,
    pub prefix: u8,
    pub host: &'a str,
    /// Block -> owner, every host's.
    pub owners: &'a BTreeMap<IpNetwork, String>,
    /// Addresses endpoints here hold and keep, unless their block is another host's.
    pub kept: &'a BTreeSet<IpAddr>,
    /// Static addresses of this host's endpoints: (address, endpoint).
    pub statics: &'a [(IpAddr, String)],
    /// Static addresses this host has recorded in etcd already.
    pub recorded_statics: &'a BTreeSet<IpAddr>,
    /// Endpoints with neither a static nor a kept address.
    pub new_endpoints: usize,
}

/// Why the claims cannot be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NeedError {
    #[error(
        "static address {ip} of endpoint `{endpoint}` lies in block {block}, which host `{owner}` owns: pick an address in a block of this host's, or none"
    )]
    StaticInOthersBlock { ip: IpAddr, endpoint: String, block: IpNetwork, owner: String },
    #[error(
        "pool exhausted: {range} has no unclaimed block of /{prefix} left and this host's blocks are full \
         ({wanted} more address(es) needed): widen the range, remove endpoints, or free dead hosts' blocks with `vland cluster release-host`"
    )]
    Exhausted { range: IpNetwork, prefix: u8, wanted: usize },
}

impl Need<'_> {
    /// Blocks this host owns.
    pub fn owned(&self) -> BTreeSet<IpNetwork> {
        self.owners.iter().filter(|(_, h)| h.as_str() == self.host).map(|(b, _)| *b).collect()
    }

    /// The blocks to claim and statics to record so every endpoint gets an address: unclaimed
    /// blocks holding kept or static addresses, then the lowest unclaimed blocks until the free
    /// addresses of owned and claimed blocks cover the new endpoints.
    pub fn claims(&self) -> Result<Claims, NeedError> {
        let mut claims = Claims::default();
        let mut mine = self.owned();
        for (ip, endpoint) in self.statics {
            let block = block_of(&self.ipam.range, self.prefix, *ip);
            match self.owners.get(&block) {
                Some(owner) if owner != self.host => {
                    return Err(NeedError::StaticInOthersBlock { ip: *ip, endpoint: endpoint.clone(), block, owner: owner.clone() });
                }
                Some(_) => {}
                None => {
                    if mine.insert(block) {
                        claims.blocks.push(block);
                    }
                }
            }
            if !self.recorded_statics.contains(ip) {
                claims.statics.push((*ip, endpoint.clone()));
            }
        }
        // A kept address in an unclaimed block (the kernel and the state say it is in use here)
        // claims that block; one in another host's block is given up and reallocated.
        let mut taken: BTreeSet<IpAddr> = self.statics.iter().map(|(ip, _)| *ip).collect();
        let mut new_endpoints = self.new_endpoints;
        for ip in self.kept {
            if !self.ipam.range.contains(*ip) {
                new_endpoints += 1;
                continue;
            }
            let block = block_of(&self.ipam.range, self.prefix, *ip);
            match self.owners.get(&block) {
                Some(owner) if owner != self.host => new_endpoints += 1,
                Some(_) => {
                    taken.insert(*ip);
                }
                None => {
                    taken.insert(*ip);
                    if mine.insert(block) {
                        claims.blocks.push(block);
                    }
                }
            }
        }
        let free = |blocks: &BTreeSet<IpNetwork>| -> usize {
            blocks.iter().map(|b| allocatable(self.ipam, b).filter(|a| !taken.contains(a)).take(new_endpoints).count()).sum()
        };
        let mut available = free(&mine);
        let already = mine.clone();
        let mut candidates = blocks_of(self.ipam.range, self.prefix).filter(|b| !self.owners.contains_key(b) && !already.contains(b));
        while available < new_endpoints {
            let Some(block) = candidates.next() else {
                return Err(NeedError::Exhausted { range: self.ipam.range, prefix: self.prefix, wanted: new_endpoints - available });
            };
            available += allocatable(self.ipam, &block).filter(|a| !taken.contains(a)).count();
            mine.insert(block);
            claims.blocks.push(block);
        }
        claims.blocks.sort();
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(subnet: &str, range: &str, gw: Option<&str>) -> Ipam {
        Ipam {
            subnet: subnet.parse().unwrap(),
            range: range.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            reserved: BTreeMap::new(),
        }
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_tile_the_range_lowest_first() {
        let all: Vec<_> = blocks_of(net("10.10.10.0/24"), 28).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(all[0], net("10.10.10.0/28"));
        assert_eq!(all[15], net("10.10.10.240/28"));
        assert_eq!(blocks_of(net("10.10.10.0/30"), block_prefix(&net("10.10.10.0/30"), 28)).count(), 1);
        assert_eq!(blocks_of(net("fd00::/64"), 122).nth(1), Some(net("fd00::40/122")));
        assert_eq!(block_of(&net("10.10.10.0/24"), 28, ip("10.10.10.37")), net("10.10.10.32/28"));
    }

    #[test]
    fn the_first_block_loses_the_network_address_and_gateway() {
        let i = ipam("10.10.10.0/24", "10.10.10.0/24", Some("10.10.10.1"));
        assert_eq!(allocatable(&i, &net("10.10.10.0/28")).count(), 14);
        assert_eq!(allocatable(&i, &net("10.10.10.240/28")).count(), 15);
    }

    static NONE: BTreeSet<IpAddr> = BTreeSet::new();

    /// Host `b`'s need with /28 blocks, nothing kept or recorded yet.
    fn need_of_b<'a>(
        ipam: &'a Ipam,
        owners: &'a BTreeMap<IpNetwork, String>,
        statics: &'a [(IpAddr, String)],
        new_endpoints: usize,
    ) -> Need<'a> {
        Need { ipam, prefix: 28, host: "b", owners, kept: &NONE, statics, recorded_statics: &NONE, new_endpoints }
    }

    #[test]
    fn claims_only_what_new_endpoints_need_skipping_others_blocks() {
        let i = ipam("10.10.10.0/24", "10.10.10.0/24", Some("10.10.10.1"));
        let owners = BTreeMap::from([(net("10.10.10.0/28"), "a".to_string()), (net("10.10.10.16/28"), "b".to_string())]);
        let need = need_of_b(&i, &owners, &[], 20);
        // b owns 16 addresses; 4 more need one more block, the lowest unclaimed one.
        assert_eq!(need.claims().unwrap(), Claims { blocks: vec![net("10.10.10.32/28")], statics: vec![] });
        let need = Need { new_endpoints: 16, ..need };
        assert_eq!(need.claims().unwrap(), Claims::default());
    }

    #[test]
    fn statics_in_another_hosts_block_are_refused_and_unclaimed_ones_claim_theirs() {
        let i = ipam("10.10.10.0/24", "10.10.10.0/24", None);
        let owners = BTreeMap::from([(net("10.10.10.0/28"), "a".to_string())]);
        let statics = [(ip("10.10.10.5"), "web".to_string())];
        let need = need_of_b(&i, &owners, &statics, 0);
        assert!(matches!(need.claims(), Err(NeedError::StaticInOthersBlock { .. })));
        let statics = [(ip("10.10.10.200"), "web".to_string())];
        let need = Need { statics: &statics, ..need };
        assert_eq!(
            need.claims().unwrap(),
            Claims { blocks: vec![net("10.10.10.192/28")], statics: vec![(ip("10.10.10.200"), "web".to_string())] }
        );
    }

    #[test]
    fn a_full_pool_is_exhausted() {
        let i = ipam("10.10.10.0/26", "10.10.10.0/26", Some("10.10.10.1"));
        let owners: BTreeMap<_, _> = blocks_of(net("10.10.10.0/26"), 28).take(3).map(|b| (b, "a".to_string())).collect();
        let need = need_of_b(&i, &owners, &[], 16);
        let err = need.claims().unwrap_err();
        assert!(err.to_string().starts_with("pool exhausted: 10.10.10.0/26"), "{err}");
    }

    #[test]
    fn pools_name_their_differences() {
        let mine = PoolRecord {
            subnet: Some(net("10.10.10.0/24")),
            ip_range: None,
            gateway: Some(ip("10.10.10.1")),
            subnet6: None,
            ip_range6: None,
            gateway6: None,
            aux_addresses: BTreeMap::new(),
        };
        let theirs = PoolRecord { gateway: Some(ip("10.10.10.254")), ..mine.clone() };
        assert_eq!(mine.differences(&theirs), vec!["gateway is 10.10.10.1 here but 10.10.10.254 in the cluster"]);
    }
}
