//! rtnetlink, as vland uses it: one handle per network namespace, typed helpers for the few link,
//! address and route operations vland needs, and errors that name the operation and errno.
mod links;
mod tc;
pub mod tcx;

pub use links::*;
pub use tc::Hook;

use anyhow::Context;
use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A netlink handle bound to one network namespace (the one its socket was opened in).
#[derive(Clone)]
pub struct Netlink {
    pub handle: Handle,
}

impl Netlink {
    /// A handle in the namespace of the calling thread (vland's own, where parents live).
    pub fn current() -> anyhow::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().context("cannot open a netlink socket")?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// A handle whose socket lives in `ns`; usable from any thread afterwards.
    pub fn in_netns(ns: &File) -> anyhow::Result<Self> {
        Self::in_netns_with(ns, || Ok(())).map(|(nl, ())| nl)
    }

    /// `in_netns`, running `also` on the same thread inside `ns`: one thread, not two, for what
    /// must be read from inside (under load, each thread waits its turn on a CPU).
    pub fn in_netns_with<T: Send>(ns: &File, also: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<(Self, T)> {
        let rt = tokio::runtime::Handle::current();
        let ((conn, handle, _), found) = crate::netns::run_in(ns, || {
            let socket = {
                let _guard = rt.enter();
                rtnetlink::new_connection().context("cannot open a netlink socket in the endpoint namespace")?
            };
            Ok((socket, also()?))
        })?;
        tokio::spawn(conn);
        Ok((Self { handle }, found))
    }

    /// Every global (scope universe) address in the namespace, by (link, is IPv6): the ones vland
    /// manages on its children. Kernel-made IPv6 link-local addresses are left alone.
    pub async fn addresses_by_link(&self) -> anyhow::Result<HashMap<(u32, bool), Vec<PresentAddress>>> {
        let mut out: HashMap<(u32, bool), Vec<PresentAddress>> = HashMap::new();
        let mut stream = self.handle.address().get().execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list addresses"))? {
            if msg.header.scope != AddressScope::Universe {
                continue;
            }
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(addr) = addr {
                out.entry((msg.header.index, addr.is_ipv6())).or_default().push(PresentAddress {
                    addr,
                    prefix: msg.header.prefix_len,
                    msg,
                });
            }
        }
        Ok(out)
    }

    /// Makes `wanted` (address, prefix) the only global address of its family on link `index`
    /// (the link is vland's), given what is `present`; None removes them all.
    pub async fn set_only_addresses(&self, index: u32, wanted: Option<(IpAddr, u8)>, present: Vec<PresentAddress>) -> anyhow::Result<()> {
        let mut have = false;
        for p in present {
            if Some((p.addr, p.prefix)) == wanted {
                have = true;
            } else {
                self.handle
                    .address()
                    .del(p.msg)
                    .execute()
                    .await
                    .map_err(nl_err(&format!("remove stale address {}/{}", p.addr, p.prefix)))?;
            }
        }
        if let Some((addr, prefix)) = wanted
            && !have
        {
            let mut req = self.handle.address().add(index, addr, prefix);
            if addr.is_ipv6() {
                // The address is vland's to give out: no duplicate detection delay (as Docker).
                req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
            }
            req.execute().await.map_err(nl_err(&format!("add address {addr}/{prefix}")))?;
        }
        Ok(())
    }

    /// The routes of the main table (both families), by output link, as vland records routes:
    /// what `vland plan` compares the routes it wants with.
    pub async fn routes_by_link(&self) -> anyhow::Result<HashMap<u32, Vec<RouteSpec>>> {
        let mut out: HashMap<u32, Vec<RouteSpec>> = HashMap::new();
        for family in [false, true] {
            let filter =
                if family { RouteMessageBuilder::<Ipv6Addr>::new().build() } else { RouteMessageBuilder::<Ipv4Addr>::new().build() };
            let mut stream = self.handle.route().get(filter).execute();
            while let Some(msg) = stream.try_next().await.map_err(nl_err("list routes"))? {
                if msg.header.table != netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN {
                    continue;
                }
                if let Some((index, route)) = RouteSpec::from_message(&msg) {
                    out.entry(index).or_default().push(route);
                }
            }
        }
        Ok(out)
    }

    /// Adds or replaces a route out of link `index`: via a gateway, or on-link (`dev X`).
    pub async fn replace_route(&self, index: u32, route: &RouteSpec) -> anyhow::Result<()> {
        self.handle.route().add(route.message(index)).replace().execute().await.map_err(nl_err(&format!("add route {route}")))
    }

    /// Deletes a route vland added earlier; one that is gone already is fine.
    pub async fn delete_route(&self, index: u32, route: &RouteSpec) -> anyhow::Result<()> {
        match self.handle.route().del(route.message(index)).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(nl_err(&format!("delete route {route}"))(e)),
        }
    }
}

/// An address the kernel has on a link, with the message that deletes it.
pub struct PresentAddress {
    pub addr: IpAddr,
    pub prefix: u8,
    pub(crate) msg: AddressMessage,
}

/// A route as vland records it in its state (so it can remove exactly its own routes later).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteSpec {
    pub to: IpNetwork,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
}

impl std::fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to)?;
        match self.via {
            Some(v) => write!(f, " via {v}")?,
            None => write!(f, " dev")?,
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

impl RouteSpec {
    /// Whether the kernel's `present` route is this one: a route added without a metric gets
    /// the family's default (0 for IPv4, 1024 for IPv6).
    pub fn matches(&self, present: &RouteSpec) -> bool {
        let metric = |r: &RouteSpec| r.metric.unwrap_or(if r.to.is_ipv6() { 1024 } else { 0 });
        self.to == present.to && self.via == present.via && metric(self) == metric(present)
    }

    /// A route message's destination, gateway and metric, with its output link.
    fn from_message(msg: &RouteMessage) -> Option<(u32, RouteSpec)> {
        use netlink_packet_route::route::{RouteAddress, RouteAttribute};
        let addr = |a: &RouteAddress| match a {
            RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
            RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
            _ => None,
        };
        let (mut dst, mut via, mut metric, mut oif) = (None, None, None, None);
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst = addr(a),
                RouteAttribute::Gateway(a) => via = addr(a),
                RouteAttribute::Priority(m) => metric = Some(*m),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        let v6 = msg.header.address_family == netlink_packet_route::AddressFamily::Inet6;
        let dst = dst.unwrap_or(if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) });
        let to = IpNetwork::new(dst, msg.header.destination_prefix_length).ok()?;
        Some((oif?, RouteSpec { to, via, metric }))
    }

    fn message(&self, index: u32) -> RouteMessage {
        let mut msg = match (self.to, self.via) {
            (IpNetwork::V4(to), via) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(to.network(), to.prefix()).output_interface(index);
                match via {
                    Some(IpAddr::V4(gw)) => b = b.gateway(gw),
                    _ => b = b.scope(RouteScope::Link),
                }
                b.build()
            }
            (IpNetwork::V6(to), via) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(to.network(), to.prefix()).output_interface(index);
                if let Some(IpAddr::V6(gw)) = via {
                    b = b.gateway(gw);
                }
                b.build()
            }
        };
        if let Some(m) = self.metric {
            msg.attributes.push(netlink_packet_route::route::RouteAttribute::Priority(m));
        }
        msg
    }
}

/// Turns an rtnetlink error into one that says what vland was doing and the kernel's errno text.
pub fn nl_err(what: &str) -> impl FnOnce(rtnetlink::Error) -> anyhow::Error + '_ {
    move |e| match e {
        rtnetlink::Error::NetlinkError(msg) => {
            let io = msg.to_io();
            anyhow::anyhow!("{what}: {io}")
        }
        other => anyhow::anyhow!("{what}: {other}"),
    }
}

/// The errno of a netlink error, if it is one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}
