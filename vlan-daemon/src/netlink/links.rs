//! Links: lookup, the facts vland reads back from them, creation, rename, up, delete.
use super::{Netlink, errno, nl_err};
use crate::mac::Mac;
use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, IpVlanFlags, IpVlanMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    LinkXdp, MacVlanMode,
};
use rtnetlink::LinkUnspec;

/// What vland needs to know about an existing link.
#[derive(Debug, Clone, Default)]
pub struct LinkFacts {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub mac: Option<Mac>,
    /// A macvlan or ipvlan child's own settings, as the kernel reports them.
    pub child: Option<ChildInfo>,
    /// 802.1Q/802.1ad sub-interfaces: their VLAN id.
    pub vlan_id: Option<u16>,
    /// The lower device's ifindex (in the link's own or its link-netns namespace).
    pub lower: Option<u32>,
    /// The XDP program attached to the link, if any.
    pub xdp_program: Option<u32>,
    pub group: Option<u32>,
}

impl LinkFacts {
    pub fn from_message(msg: &LinkMessage) -> Self {
        let mut facts = LinkFacts {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            alias: None,
            mtu: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            mac: None,
            child: None,
            vlan_id: None,
            lower: None,
            xdp_program: None,
            group: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => facts.name = n.clone(),
                LinkAttribute::IfAlias(a) => facts.alias = Some(a.clone()),
                LinkAttribute::Mtu(m) => facts.mtu = Some(*m),
                LinkAttribute::Link(l) => facts.lower = Some(*l),
                LinkAttribute::Group(g) => facts.group = Some(*g),
                LinkAttribute::Xdp(xdp) => {
                    facts.xdp_program = xdp.iter().find_map(|x| match x {
                        LinkXdp::ProgId(id) if *id != 0 => Some(*id),
                        _ => None,
                    })
                }
                LinkAttribute::Address(a) if a.len() == 6 => facts.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(Mac::from),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => facts.kind = Some(kind_name(k)),
                            LinkInfo::Data(InfoData::MacVlan(d)) => facts.child = ChildInfo::of_macvlan(d),
                            LinkInfo::Data(InfoData::Vlan(d)) => {
                                facts.vlan_id = d.iter().find_map(|i| match i {
                                    InfoVlan::Id(id) => Some(*id),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::IpVlan(d)) => facts.child = ChildInfo::of_ipvlan(d),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        facts
    }
}

/// The settings of a macvlan or ipvlan child that its driver compares with what it would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildInfo {
    Macvlan { mode: MacVlanMode, source_macs: Vec<Mac> },
    Ipvlan { mode: IpVlanMode, flags: IpVlanFlags },
}

impl ChildInfo {
    fn of_macvlan(data: &[InfoMacVlan]) -> Option<Self> {
        let mode = data.iter().find_map(|i| match i {
            InfoMacVlan::Mode(m) => Some(*m),
            _ => None,
        })?;
        let source_macs = data
            .iter()
            .filter_map(|i| match i {
                InfoMacVlan::MacAddrData(list) => Some(list),
                _ => None,
            })
            .flatten()
            .filter_map(|i| match i {
                InfoMacVlan::MacAddr(m) => Some(Mac::from(*m)),
                _ => None,
            })
            .collect();
        Some(ChildInfo::Macvlan { mode, source_macs })
    }

    fn of_ipvlan(data: &[InfoIpVlan]) -> Option<Self> {
        let mode = data.iter().find_map(|i| match i {
            InfoIpVlan::Mode(m) => Some(*m),
            _ => None,
        })?;
        // No flags attribute: bridge, the empty set.
        let flags = data
            .iter()
            .find_map(|i| match i {
                InfoIpVlan::Flags(f) => Some(*f),
                _ => None,
            })
            .unwrap_or(IpVlanFlags::empty());
        Some(ChildInfo::Ipvlan { mode, flags })
    }
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Other(s) => s.clone(),
        k => format!("{k}"),
    }
}

impl Netlink {
    pub async fn link_by_name(&self, name: &str) -> anyhow::Result<Option<LinkFacts>> {
        let mut stream = self.handle.link().get().match_name(name.to_string()).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(LinkFacts::from_message(&msg))),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(&format!("look up link {name}"))(e)),
        }
    }

    pub async fn link_by_index(&self, index: u32) -> anyhow::Result<Option<LinkFacts>> {
        let mut stream = self.handle.link().get().match_index(index).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(LinkFacts::from_message(&msg))),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(&format!("look up link {index}"))(e)),
        }
    }

    pub async fn links(&self) -> anyhow::Result<Vec<LinkFacts>> {
        let mut out = Vec::new();
        let mut stream = self.handle.link().get().execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list links"))? {
            out.push(LinkFacts::from_message(&msg));
        }
        Ok(out)
    }

    pub async fn add_link(&self, msg: LinkMessage, what: &str) -> anyhow::Result<()> {
        self.try_add_link(msg).await.map_err(nl_err(what))
    }

    /// Like `add_link`, keeping the kernel's error so callers can act on its errno.
    pub async fn try_add_link(&self, msg: LinkMessage) -> Result<(), rtnetlink::Error> {
        self.handle.link().add(msg).execute().await
    }

    /// vland's ownership tag on a new child (the kernel takes no alias when it creates a link).
    pub async fn tag(&self, index: u32, alias: &str) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).alias(alias.to_string()).build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("tag link {index}")))
    }

    /// Removes the XDP program of `index` (the generic one on devices without native XDP).
    pub async fn detach_xdp(&self, index: u32) -> anyhow::Result<()> {
        let mut msg = LinkUnspec::new_with_index(index).build();
        msg.attributes.push(LinkAttribute::Xdp(vec![LinkXdp::Fd(-1), LinkXdp::Flags(0)]));
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("detach XDP from link {index}")))
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("set MTU {mtu} on link {index}")))
    }

    pub async fn set_mac(&self, index: u32, mac: Mac) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).address(mac.octets().to_vec()).build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("set the MAC of link {index}")))
    }

    pub async fn set_up(&self, index: u32) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("bring link {index} up")))
    }

    pub async fn set_up_by_name(&self, name: &str) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_name(name).up().build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("bring {name} up")))
    }

    /// Sets the alias (IFLA_IFALIAS) of link `name`: how vland tags what it made.
    pub async fn set_alias_by_name(&self, name: &str, alias: &str) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_name(name).alias(alias.to_string()).build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("tag {name}")))
    }

    /// Deletes a link; one that is already gone is not an error.
    pub async fn delete_link(&self, index: u32) -> anyhow::Result<()> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_err(&format!("delete link {index}"))(e)),
        }
    }
}

/// Deletes every link of `group` in the calling thread's namespace, blocking until the kernel
/// has torn them down. The kernel waits for RCU callbacks after each such request, outside RTNL,
/// so requests for several namespaces sent from threads of their own wait together rather than
/// one after another (as requests through one async connection would).
pub fn delete_group_blocking(group: u32) -> anyhow::Result<()> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::Group(group));
    delete_blocking(msg, &format!("link group {group}"))
}

/// Deletes the link numbered `index` in the calling thread's namespace, blocking as
/// `delete_group_blocking` does (and for the same reason: deletions from several threads overlap
/// their RCU waits). A link already gone is fine.
pub fn delete_link_blocking(index: u32) -> anyhow::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    delete_blocking(msg, &format!("link {index}"))
}

fn delete_blocking(msg: LinkMessage, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;
    use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

    let mut req = NetlinkMessage::from(RouteNetlinkMessage::DelLink(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    let mut socket = Socket::new(NETLINK_ROUTE).context("cannot open a netlink socket")?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&buf, 0).with_context(|| format!("send the deletion of {what}"))?;
    let (reply, _) = socket.recv_from_full().with_context(|| format!("receive the answer to the deletion of {what}"))?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .with_context(|| format!("parse the answer to the deletion of {what}"))?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => {
            let err = rtnetlink::Error::NetlinkError(e);
            if errno(&err) == Some(libc::ENODEV) { Ok(()) } else { Err(nl_err(&format!("delete {what}"))(err)) }
        }
        _ => Ok(()),
    }
}
