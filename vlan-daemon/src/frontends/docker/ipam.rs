//! Docker's IPAM driver: the pools Docker requests (`--subnet`, `--ip-range`) and the addresses
//! it takes from them (the gateway, each `--aux-address`, each container's). The bookkeeping is
//! kept in the fragments file, since Docker asks once, before CreateNetwork, and never again
//! after a restart of vland. Pure: the caller saves the result (in the apply loop).
use crate::frontends::store::DockerPool;
use crate::ipam::{from_u128, to_u128};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;

const GATEWAY_TYPE: &str = "com.docker.network.gateway";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    #[serde(default)]
    pub address_space: String,
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub sub_pool: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleasePool {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// An address as Docker writes it, with or without `/prefix`.
pub fn bare(text: &str) -> &str {
    text.split('/').next().unwrap_or(text)
}

fn cidr(text: &str, what: &str) -> Result<IpNetwork, String> {
    let net: IpNetwork = text.parse().map_err(|_| format!("{what} `{text}` is not a CIDR such as 10.10.10.0/24"))?;
    if net.ip() != net.network() {
        return Err(format!("{what} `{text}` has host bits set: write {}/{}", net.network(), net.prefix()));
    }
    Ok(net)
}

/// RequestPool: a pool for `--subnet` (vland picks no subnets itself), `--ip-range` within it.
pub fn request_pool(pools: &mut BTreeMap<String, DockerPool>, r: &RequestPool) -> Result<Value, String> {
    let mut errors = Vec::new();
    if r.pool.is_empty() {
        return Err(format!(
            "vland needs the subnet: give `--subnet` to docker network create{}",
            if r.v6 { " (with --ipv6, one IPv6 --subnet too)" } else { "" }
        ));
    }
    if let Some(opts) = r.options.as_ref().filter(|o| !o.is_empty()) {
        let keys: Vec<&str> = opts.keys().map(String::as_str).collect();
        errors.push(format!("unknown --ipam-opt {}: vland's IPAM takes none", keys.join(", ")));
    }
    let subnet = cidr(&r.pool, "--subnet").map_err(|e| {
        errors.push(e);
        errors.join("; ")
    })?;
    if subnet.is_ipv6() != r.v6 {
        errors.push(format!("--subnet {subnet} is not an IPv{} subnet", if r.v6 { 6 } else { 4 }));
    }
    let range = match r.sub_pool.as_str() {
        "" => None,
        text => match cidr(text, "--ip-range") {
            Ok(range) if range.is_ipv6() == subnet.is_ipv6() && subnet.contains(range.network()) && range.prefix() >= subnet.prefix() => {
                Some(range)
            }
            Ok(range) => {
                errors.push(format!("--ip-range {range} is outside --subnet {subnet}: give a range inside the subnet"));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    for (id, pool) in pools.iter() {
        if let Ok(other) = pool.subnet.parse::<IpNetwork>()
            && other.is_ipv6() == subnet.is_ipv6()
            && (other.contains(subnet.network()) || subnet.contains(other.network()))
        {
            errors.push(format!("--subnet {subnet} overlaps {other} of another vland network in Docker (pool {id}): pick another subnet"));
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let id = match range {
        Some(range) => format!("{subnet}|{range}"),
        None => subnet.to_string(),
    };
    pools.insert(id.clone(), DockerPool { subnet: subnet.to_string(), ip_range: range.map(|r| r.to_string()), addresses: BTreeMap::new() });
    Ok(json!({ "PoolID": id, "Pool": subnet.to_string(), "Data": {} }))
}

/// Whether `a` can be handed out in `subnet`: not the network or (IPv4) broadcast address.
fn usable(a: IpAddr, subnet: IpNetwork) -> bool {
    subnet.contains(a) && !crate::config::is_network_or_broadcast(&subnet, a)
}

/// RequestAddress: the address asked for (gateway, `--aux-address`, `docker run --ip`), or the
/// lowest free one of the range (the gateway: of the subnet).
pub fn request_address(pools: &mut BTreeMap<String, DockerPool>, r: &RequestAddress) -> Result<Value, String> {
    let Some(pool) = pools.get_mut(&r.pool_id) else {
        return Err(format!("vland has no pool `{}`: was it released, or made by another IPAM driver?", r.pool_id));
    };
    let subnet: IpNetwork = pool.subnet.parse().map_err(|_| format!("pool {} has a bad subnet", r.pool_id))?;
    let gateway = r.options.as_ref().and_then(|o| o.get("RequestAddressType")).is_some_and(|t| t == GATEWAY_TYPE);
    let what = if gateway { "gateway" } else { "address" };
    let addr = if r.address.is_empty() {
        let range = match (&pool.ip_range, gateway) {
            (Some(range), false) => range.parse::<IpNetwork>().map_err(|_| format!("pool {} has a bad range", r.pool_id))?,
            _ => subnet,
        };
        let v6 = subnet.is_ipv6();
        let start = to_u128(range.network());
        let size: u128 = if v6 { 1u128 << (128 - u32::from(range.prefix())).min(127) } else { 1u128 << (32 - u32::from(range.prefix())) };
        // Bounded: a huge IPv6 range is searched no further than this many addresses.
        (0..size.min(1 << 20))
            .map(|i| from_u128(start + i, v6))
            .find(|a| usable(*a, subnet) && !pool.addresses.contains_key(&a.to_string()))
            .ok_or_else(|| format!("no free address left in {range}: widen --ip-range, or remove containers"))?
    } else {
        let text = bare(&r.address);
        let addr: IpAddr = text.parse().map_err(|_| format!("requested {what} `{}` is not an IP address", r.address))?;
        if !usable(addr, subnet) {
            return Err(format!("requested {what} {addr} is not a usable address of subnet {subnet}"));
        }
        if let Some(holder) = pool.addresses.get(&addr.to_string()) {
            return Err(format!("address {addr} is already taken ({holder}) in subnet {subnet}: request another, or none"));
        }
        addr
    };
    pool.addresses.insert(addr.to_string(), what.to_string());
    Ok(json!({ "Address": format!("{addr}/{}", subnet.prefix()), "Data": {} }))
}

/// ReleaseAddress: idempotent (Docker may release again after a failed create).
pub fn release_address(pools: &mut BTreeMap<String, DockerPool>, r: &ReleaseAddress) -> Value {
    if let Some(pool) = pools.get_mut(&r.pool_id) {
        pool.addresses.remove(bare(&r.address));
    }
    json!({})
}

/// ReleasePool: idempotent.
pub fn release_pool(pools: &mut BTreeMap<String, DockerPool>, r: &ReleasePool) -> Value {
    pools.remove(&r.pool_id);
    json!({})
}

/// The pool whose subnet is `subnet` (CreateNetwork's IPv4Data/IPv6Data name the pool by it).
pub fn pool_of<'p>(pools: &'p BTreeMap<String, DockerPool>, subnet: &str) -> Option<&'p DockerPool> {
    pools.values().find(|p| p.subnet == subnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str, sub: &str, v6: bool) -> RequestPool {
        RequestPool { address_space: "LocalDefault".into(), pool: subnet.into(), sub_pool: sub.into(), options: None, v6 }
    }

    fn addr(id: &str, a: &str, gateway: bool) -> RequestAddress {
        let options = gateway.then(|| BTreeMap::from([("RequestAddressType".to_string(), GATEWAY_TYPE.to_string())]));
        RequestAddress { pool_id: id.into(), address: a.into(), options }
    }

    #[test]
    fn the_seeds_sequence_gives_the_books_addresses() {
        let mut pools = BTreeMap::new();
        let v = request_pool(&mut pools, &pool("10.10.10.0/24", "10.10.10.0/25", false)).unwrap();
        let id = v["PoolID"].as_str().unwrap().to_string();
        assert_eq!(v["Pool"], "10.10.10.0/24");
        assert_eq!(request_address(&mut pools, &addr(&id, "10.10.10.1", true)).unwrap()["Address"], "10.10.10.1/24");
        // Aux addresses arrive with Options null, also outside the range.
        request_address(&mut pools, &addr(&id, "10.10.10.101", false)).unwrap();
        request_address(&mut pools, &addr(&id, "10.10.10.202", false)).unwrap();
        // The first container: the lowest free address of the range.
        assert_eq!(request_address(&mut pools, &addr(&id, "", false)).unwrap()["Address"], "10.10.10.2/24");
        assert_eq!(request_address(&mut pools, &addr(&id, "", false)).unwrap()["Address"], "10.10.10.3/24");
        release_address(&mut pools, &ReleaseAddress { pool_id: id.clone(), address: "10.10.10.2/24".into() });
        assert_eq!(request_address(&mut pools, &addr(&id, "", false)).unwrap()["Address"], "10.10.10.2/24");
        // Taken, outside, not an address: refused, nothing recorded.
        let before = pools.clone();
        assert!(request_address(&mut pools, &addr(&id, "10.10.10.3", false)).unwrap_err().contains("already taken"));
        assert!(request_address(&mut pools, &addr(&id, "10.10.11.3", false)).unwrap_err().contains("not a usable address"));
        assert!(request_address(&mut pools, &addr(&id, "10.10.10.255", false)).unwrap_err().contains("not a usable address"));
        assert!(request_address(&mut pools, &addr(&id, "ten", false)).unwrap_err().contains("not an IP address"));
        assert!(request_address(&mut pools, &addr("nope", "", false)).unwrap_err().contains("no pool"));
        assert_eq!(pools, before);
        release_pool(&mut pools, &ReleasePool { pool_id: id });
        assert!(pools.is_empty());
    }

    #[test]
    fn a_full_range_and_ipv6() {
        let mut pools = BTreeMap::new();
        let id = request_pool(&mut pools, &pool("10.0.0.0/24", "10.0.0.0/30", false)).unwrap()["PoolID"].as_str().unwrap().to_string();
        // .0 is the subnet's network address; .1, .2, .3 are usable (.3 is not the subnet's broadcast).
        for want in ["10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24"] {
            assert_eq!(request_address(&mut pools, &addr(&id, "", false)).unwrap()["Address"], want);
        }
        assert!(request_address(&mut pools, &addr(&id, "", false)).unwrap_err().contains("no free address"));
        let id6 = request_pool(&mut pools, &pool("fd00:10::/64", "", true)).unwrap()["PoolID"].as_str().unwrap().to_string();
        assert_eq!(request_address(&mut pools, &addr(&id6, "", true)).unwrap()["Address"], "fd00:10::1/64");
        assert_eq!(request_address(&mut pools, &addr(&id6, "", false)).unwrap()["Address"], "fd00:10::2/64");
    }

    #[test]
    fn bad_pools_are_refused_with_every_reason() {
        let mut pools = BTreeMap::new();
        assert!(request_pool(&mut pools, &pool("", "", false)).unwrap_err().contains("--subnet"));
        let e = request_pool(&mut pools, &pool("10.10.10.0/24", "10.10.20.0/25", false)).unwrap_err();
        assert!(e.contains("outside --subnet"), "{e}");
        let mut bad = pool("10.10.10.0/24", "10.20.0.0/25", true);
        bad.options = Some(BTreeMap::from([("colour".to_string(), "red".to_string())]));
        let e = request_pool(&mut pools, &bad).unwrap_err();
        assert_eq!(e.matches("; ").count(), 2, "three reasons: {e}");
        assert!(request_pool(&mut pools, &pool("10.10.10.1/24", "", false)).unwrap_err().contains("host bits"));
        assert!(pools.is_empty());
        request_pool(&mut pools, &pool("10.10.0.0/16", "", false)).unwrap();
        assert!(request_pool(&mut pools, &pool("10.10.10.0/24", "", false)).unwrap_err().contains("overlaps"));
    }
}
