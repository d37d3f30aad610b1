//! Where the programs find the header fields they read, and the ethertypes they look for, named
//! through network-types' header structs rather than as bare numbers. Offsets count from the
//! start of the frame; ethertypes are in host byte order, as `u16::from_be_bytes` reads them
//! (network-types keeps them in network byte order).
use core::mem::offset_of;
use network_types::{
    arp::ArpHdr,
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    vlan::VlanHdr,
};

pub const ETH_SRC: usize = offset_of!(EthHdr, src_addr);
pub const ETH_TYPE: usize = offset_of!(EthHdr, ether_type);

/// A VLAN tag: what follows its TPID (which sits where the ethertype would).
pub const VLAN_HLEN: usize = VlanHdr::LEN;
/// The outer tag's TCI, and the ethertype after it (an inner tag's TPID in QinQ).
pub const VLAN_TCI: usize = EthHdr::LEN + offset_of!(VlanHdr, tci);
pub const VLAN_TYPE: usize = EthHdr::LEN + offset_of!(VlanHdr, ether_type);
/// The ethertype after a second (inner) tag.
pub const INNER_VLAN_TYPE: usize = VLAN_TYPE + VLAN_HLEN;

/// Source addresses of untagged IPv4, IPv6 and Ethernet/IPv4 ARP frames.
pub const IPV4_SRC: usize = EthHdr::LEN + offset_of!(Ipv4Hdr, src_addr);
pub const IPV6_SRC: usize = EthHdr::LEN + offset_of!(Ipv6Hdr, src_addr);
pub const ARP_SENDER_MAC: usize = EthHdr::LEN + offset_of!(ArpHdr, sha);
pub const ARP_SENDER_IP: usize = EthHdr::LEN + offset_of!(ArpHdr, spa);

pub const ETH_P_IP: u16 = u16::from_be(EtherType::Ipv4 as u16);
pub const ETH_P_ARP: u16 = u16::from_be(EtherType::Arp as u16);
pub const ETH_P_IPV6: u16 = u16::from_be(EtherType::Ipv6 as u16);
