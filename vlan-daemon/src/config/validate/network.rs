//! One `[networks.NAME]` table: its driver (checked by the driver itself), parent, addressing
//! and the keys that apply to every child.
use super::ipam::ipam;
use super::names::check_name;
use super::parent::parent;
use crate::config::errors::{ConfigErrors, Scope};
use crate::config::model::{CounterHook, Network, ParentKind, PoolScope};
use crate::config::schema::RawNetwork;
use crate::drivers::{Driver, Options as DriverOptions};
use std::net::IpAddr;

/// RFC 8200: every link that carries IPv6 has an MTU of at least 1280.
const IPV6_MIN_MTU: u32 = 1280;

/// Off unless asked for: on a veth parent the answers go back through the peer's XDP path,
/// which drops them unless the peer has GRO or an XDP program (see README, Data plane).
pub const ARP_RESPONDER_DEFAULT: bool = false;
/// Off by default for now: on, it puts vland's XDP program on every parent with endpoints, so
/// the parent's hook is no longer free for another program.
pub const DETECT_CONFLICTS_DEFAULT: bool = false;

pub fn network(name: &str, raw: &RawNetwork, errors: &mut ConfigErrors) -> Option<Network> {
    let mut s = Scope::new(errors, format!("networks.{name}"));
    if let Err(msg) = check_name(name) {
        s.err("name", msg);
    }
    let options = DriverOptions {
        driver: raw.driver.as_deref(),
        mode: raw.mode.as_deref(),
        ipvlan_flag: raw.ipvlan_flag.as_deref(),
        source_macs: &raw.source_macs,
    };
    let driver = Driver::from_options(&options, &mut |key, msg| s.err(key, msg));
    let parent = parent(name, raw, &mut s);
    let ipam4 = ipam(raw.subnet.as_deref(), raw.ip_range.as_deref(), raw.gateway.as_deref(), &raw.aux_addresses, false, &mut s);
    let ipam6 = ipam(raw.subnet6.as_deref(), raw.ip_range6.as_deref(), raw.gateway6.as_deref(), &raw.aux_addresses, true, &mut s);
    for (host, text) in &raw.aux_addresses {
        match text.parse::<IpAddr>() {
            Err(_) => s.err(&format!("aux_addresses.{host}"), format!("`{text}` is not an IP address")),
            Ok(a) if (a.is_ipv6() && raw.subnet6.is_none()) || (a.is_ipv4() && raw.subnet.is_none()) => s.err(
                &format!("aux_addresses.{host}"),
                format!("{a} needs a `{}` on this network to be reserved from", if a.is_ipv6() { "subnet6" } else { "subnet" }),
            ),
            Ok(_) => {}
        }
    }
    if let Some(mtu) = raw.mtu
        && !(68..=65535).contains(&mtu)
    {
        s.err("mtu", format!("{mtu} is out of range: use 68 to 65535 (and not above the parent's MTU)"));
    } else if let Some(mtu) = raw.mtu
        && mtu < IPV6_MIN_MTU
        && (raw.subnet6.is_some() || raw.ipv6_autoconf)
    {
        s.err(
            "mtu",
            format!("{mtu} is below {IPV6_MIN_MTU}, the least IPv6 works with, and this network has IPv6: use at least {IPV6_MIN_MTU}"),
        );
    }
    let scope = match raw.scope.as_deref() {
        None | Some("local") => PoolScope::Local,
        Some("cluster") => {
            if raw.subnet.is_none() && raw.subnet6.is_none() {
                s.err("scope", "a cluster network shares its address pool: give it a `subnet` (or `subnet6`)".to_string());
            }
            PoolScope::Cluster
        }
        Some(other) => {
            s.err("scope", format!("`{other}` is not a scope: use \"local\" (this host's pool) or \"cluster\" (shared through etcd)"));
            PoolScope::Local
        }
    };
    let counter_hook = match raw.counter_hook.as_deref() {
        None | Some("tc") => CounterHook::Tc,
        Some("tcx") => CounterHook::Tcx,
        Some(other) => {
            s.err(
                "counter_hook",
                format!("`{other}` is not a counter hook: use \"tc\" (classic TC filters, the default) or \"tcx\" (Linux 6.6+)"),
            );
            CounterHook::Tc
        }
    };
    let host_access = super::host_access::host_access(raw, ipam4.as_ref(), ipam6.as_ref(), driver.as_ref(), scope, &mut s);
    if !s.ok() {
        return None;
    }
    let parent = parent?;
    Some(Network {
        name: name.to_string(),
        driver: driver?,
        internal: raw.internal || parent.kind == ParentKind::Dummy,
        parent,
        ipam4,
        ipam6,
        ipv6_autoconf: raw.ipv6_autoconf,
        spoof_check: raw.spoof_check,
        gratuitous_arp: raw.gratuitous_arp.unwrap_or(true),
        arp_responder: raw.arp_responder.unwrap_or(ARP_RESPONDER_DEFAULT),
        detect_conflicts: raw.detect_conflicts.unwrap_or(DETECT_CONFLICTS_DEFAULT),
        counter_hook,
        host_access,
        mtu: raw.mtu,
        metric: raw.metric,
        scope,
    })
}
