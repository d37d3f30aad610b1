//! rtnetlink, as vland uses it: one handle per network namespace, typed helpers for the few link,
//! address and route operations vland needs, and errors that name the operation and errno.
mod links;

pub use links::*;

use anyhow::Context;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};

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
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = crate::netns::run_in(ns, || {
            let _guard = rt.enter();
            rtnetlink::new_connection().context("cannot open a netlink socket in the endpoint namespace")
        })?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    pub async fn ipv4_addresses(&self, index: u32) -> anyhow::Result<Vec<(Ipv4Addr, u8, AddressMessage)>> {
        let mut out = Vec::new();
        let mut stream = self.handle.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list addresses"))? {
            if msg.header.index != index {
                continue;
            }
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(v4)) => Some(*v4),
                _ => None,
            });
            if let Some(addr) = addr {
                out.push((addr, msg.header.prefix_len, msg));
            }
        }
        Ok(out)
    }

    /// Makes `addr/prefix` the link's only IPv4 address (the link is vland's own).
    pub async fn set_only_ipv4(&self, index: u32, addr: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
        let mut present = false;
        for (a, p, msg) in self.ipv4_addresses(index).await? {
            if a == addr && p == prefix {
                present = true;
            } else {
                self.handle.address().del(msg).execute().await.map_err(nl_err(&format!("remove stale address {a}/{p}")))?;
            }
        }
        if !present {
            self.handle
                .address()
                .add(index, IpAddr::V4(addr), prefix)
                .execute()
                .await
                .map_err(nl_err(&format!("add address {addr}/{prefix}")))?;
        }
        Ok(())
    }

    pub async fn replace_default_route_via(&self, index: u32, gateway: Ipv4Addr, metric: Option<u32>) -> anyhow::Result<()> {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(index);
        if let Some(m) = metric {
            route = route.priority(m);
        }
        self.handle
            .route()
            .add(route.build())
            .replace()
            .execute()
            .await
            .map_err(nl_err(&format!("add default route via {gateway}")))
    }

    /// `default dev X`: for ipvlan l3/l3s, where there is no gateway to resolve.
    pub async fn replace_default_route_dev(&self, index: u32, metric: Option<u32>) -> anyhow::Result<()> {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(index)
            .scope(netlink_packet_route::route::RouteScope::Link);
        if let Some(m) = metric {
            route = route.priority(m);
        }
        self.handle.route().add(route.build()).replace().execute().await.map_err(nl_err("add default dev route"))
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
