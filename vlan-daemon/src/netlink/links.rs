//! Links: lookup, the facts vland reads back from them, creation, rename, up, delete.
use super::{Netlink, errno, nl_err};
use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::LinkUnspec;

/// What vland needs to know about an existing link.
#[derive(Debug, Clone)]
pub struct LinkFacts {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    /// The macvlan or ipvlan mode, as the kernel reports it.
    pub mode: Option<String>,
    /// 802.1Q/802.1ad sub-interfaces: their VLAN id.
    pub vlan_id: Option<u16>,
    /// The lower device's ifindex (in the link's own or its link-netns namespace).
    pub lower: Option<u32>,
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
            mode: None,
            vlan_id: None,
            lower: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => facts.name = n.clone(),
                LinkAttribute::IfAlias(a) => facts.alias = Some(a.clone()),
                LinkAttribute::Mtu(m) => facts.mtu = Some(*m),
                LinkAttribute::Link(l) => facts.lower = Some(*l),
                LinkAttribute::Address(a) if a.len() == 6 => facts.mac = a.as_slice().try_into().ok(),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => facts.kind = Some(kind_name(k)),
                            LinkInfo::Data(InfoData::MacVlan(d)) => {
                                facts.mode = d.iter().find_map(|i| match i {
                                    InfoMacVlan::Mode(m) => Some(format!("{m:?}").to_lowercase()),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::Vlan(d)) => {
                                facts.vlan_id = d.iter().find_map(|i| match i {
                                    InfoVlan::Id(id) => Some(*id),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::IpVlan(d)) => {
                                facts.mode = d.iter().find_map(|i| match i {
                                    InfoIpVlan::Mode(m) => Some(format!("{m:?}").to_lowercase()),
                                    _ => None,
                                })
                            }
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

    pub async fn rename_and_tag(&self, index: u32, name: &str, alias: &str) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).name(name.to_string()).alias(alias.to_string()).build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("rename link {index} to {name}")))
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(&format!("set MTU {mtu} on link {index}")))
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).address(mac.to_vec()).build();
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

    /// Deletes every link of `group` in this namespace in one request: the kernel tears them
    /// down together, ~100x faster than one by one.
    pub async fn delete_group(&self, group: u32) -> anyhow::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        match self.handle.link().del_with_message(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_err(&format!("delete link group {group}"))(e)),
        }
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
