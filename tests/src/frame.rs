//! Ethernet frames built byte by byte, for injecting into a trunk (tests) and for
//! BPF_PROG_TEST_RUN (the eBPF fixtures and `cargo xtask bench`): one builder, so every caller
//! agrees on what a tag or an ethertype looks like on the wire.
use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, MutableArpPacket};
pub use pnet_packet::ethernet::{EtherType, EtherTypes};
use pnet_packet::ipv4::MutableIpv4Packet;
use pnet_packet::ipv6::MutableIpv6Packet;

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;
/// IEEE "local experimental" ethertype: nothing in the stack answers it.
pub const ETHERTYPE_EXPERIMENTAL: EtherType = EtherType(0x88b5);
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A frame under construction: destination, source, VLAN tags (outermost first), ethertype,
/// payload. By default from 02:00:00:00:00:01 to 02:00:00:00:00:02, untagged, empty.
#[derive(Debug, Clone)]
pub struct Frame {
    dst: [u8; 6],
    src: [u8; 6],
    tags: Vec<(u16, u16)>,
    priority: u16,
    ethertype: EtherType,
    payload: Vec<u8>,
    min_len: usize,
    pad: u8,
}

impl Frame {
    pub fn new(ethertype: EtherType) -> Frame {
        Frame {
            dst: [0x02, 0, 0, 0, 0, 0x02],
            src: [0x02, 0, 0, 0, 0, 0x01],
            tags: Vec::new(),
            priority: 0,
            ethertype,
            payload: Vec::new(),
            min_len: 0,
            pad: 0,
        }
    }

    pub fn dst(mut self, mac: [u8; 6]) -> Frame {
        self.dst = mac;
        self
    }

    pub fn src(mut self, mac: [u8; 6]) -> Frame {
        self.src = mac;
        self
    }

    /// VLAN tags as (TPID, VID), outermost first.
    pub fn tags(mut self, tags: &[(u16, u16)]) -> Frame {
        self.tags.extend_from_slice(tags);
        self
    }

    /// The priority code point (0-7) every tag carries next to its VID.
    pub fn priority(mut self, pcp: u16) -> Frame {
        self.priority = pcp & 0x7;
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Frame {
        self.payload = payload.to_vec();
        self
    }

    /// At least `len` bytes on the wire, padded with `byte`.
    pub fn padded_to(mut self, len: usize, byte: u8) -> Frame {
        self.min_len = len;
        self.pad = byte;
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + 4 * self.tags.len() + self.payload.len());
        f.extend_from_slice(&self.dst);
        f.extend_from_slice(&self.src);
        for (tpid, vid) in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(self.priority << 13 | vid & 0x0fff).to_be_bytes());
        }
        f.extend_from_slice(&self.ethertype.0.to_be_bytes());
        f.extend_from_slice(&self.payload);
        if f.len() < self.min_len {
            f.resize(self.min_len, self.pad);
        }
        f
    }
}

/// An IPv4 packet of `len` bytes (at least its 20-byte header) from 10.19.0.2 to 10.19.0.1.
pub fn ipv4_packet(len: usize) -> Vec<u8> {
    let len = len.max(20);
    let mut buf = vec![0u8; len];
    let mut ip = MutableIpv4Packet::new(&mut buf).unwrap();
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length(len as u16);
    ip.set_ttl(64);
    ip.set_source("10.19.0.2".parse().unwrap());
    ip.set_destination("10.19.0.1".parse().unwrap());
    buf
}

/// An Ethernet/IPv4 ARP packet: operation `op` (1 request, 2 reply) from (`mac`, `sender`) about
/// `target` (the target hardware address left zero).
fn arp_packet(op: u16, mac: [u8; 6], sender: std::net::Ipv4Addr, target: std::net::Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 28];
    let mut arp = MutableArpPacket::new(&mut buf).unwrap();
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperation::new(op));
    arp.set_sender_hw_addr(mac.into());
    arp.set_sender_proto_addr(sender);
    arp.set_target_proto_addr(target);
    buf
}

/// An ARP request for 10.19.0.1 (sender fields zero).
pub fn arp_request() -> Vec<u8> {
    arp_packet(1, [0; 6], std::net::Ipv4Addr::UNSPECIFIED, "10.19.0.1".parse().unwrap())
}

/// A whole broadcast Ethernet/IPv4 ARP request from (`mac`, `sender`) asking for `target`,
/// padded to the 60-byte minimum.
pub fn arp_request_frame(mac: [u8; 6], sender: std::net::Ipv4Addr, target: std::net::Ipv4Addr) -> Vec<u8> {
    arp_frame(1, mac, sender, target)
}

/// A whole broadcast Ethernet/IPv4 ARP frame from `mac` (op 1 request, 2 reply) whose sender is
/// (`mac`, `sender`) and whose target address is `target`; sender = target is a gratuitous ARP.
pub fn arp_frame(op: u16, mac: [u8; 6], sender: std::net::Ipv4Addr, target: std::net::Ipv4Addr) -> Vec<u8> {
    Frame::new(EtherTypes::Arp).dst(BROADCAST).src(mac).payload(&arp_packet(op, mac, sender, target)).padded_to(60, 0).build()
}

/// The IPv6 packet carrying neighbour-discovery message `icmp` (its checksum filled in) from `src`
/// to `dst`, with the hop limit of 255 that receivers require of ND.
fn neighbour_packet(mut icmp: Vec<u8>, src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) -> Vec<u8> {
    let sum = pnet_packet::icmpv6::checksum(&pnet_packet::icmpv6::Icmpv6Packet::new(&icmp).unwrap(), &src, &dst);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut buf = vec![0u8; 40 + icmp.len()];
    let mut ip = MutableIpv6Packet::new(&mut buf).unwrap();
    ip.set_version(6);
    ip.set_hop_limit(255);
    ip.set_next_header(pnet_packet::ip::IpNextHeaderProtocols::Icmpv6);
    ip.set_payload_length(icmp.len() as u16);
    ip.set_source(src);
    ip.set_destination(dst);
    buf[40..].copy_from_slice(&icmp);
    buf
}

/// A whole unsolicited neighbour advertisement (override flag) from `mac` for `target` (also its
/// source address), to all nodes, with a target link-layer address option naming `lladdr` when
/// given.
pub fn neighbour_advertisement_frame(mac: [u8; 6], target: std::net::Ipv6Addr, lladdr: Option<[u8; 6]>) -> Vec<u8> {
    let all_nodes: std::net::Ipv6Addr = "ff02::1".parse().unwrap();
    let mut icmp = vec![136u8, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    if let Some(l) = lladdr {
        icmp.extend_from_slice(&[2, 1]);
        icmp.extend_from_slice(&l);
    }
    let buf = neighbour_packet(icmp, target, all_nodes);
    Frame::new(EtherTypes::Ipv6).dst([0x33, 0x33, 0, 0, 0, 1]).src(mac).payload(&buf).build()
}

/// A whole IPv6 neighbour solicitation from (`mac`, `sender`) for `target`, to the target's
/// solicited-node multicast address, with a source link-layer address option.
pub fn neighbour_solicitation_frame(mac: [u8; 6], sender: std::net::Ipv6Addr, target: std::net::Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(t[13]), u16::from_be_bytes([t[14], t[15]]));
    let mut icmp = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&mac);
    let buf = neighbour_packet(icmp, sender, group);
    let g = group.octets();
    Frame::new(EtherTypes::Ipv6).dst([0x33, 0x33, g[12], g[13], g[14], g[15]]).src(mac).payload(&buf).build()
}

/// An IPv6 header (no payload) from fd00::2 to fd00::1.
pub fn ipv6_packet() -> Vec<u8> {
    let mut buf = vec![0u8; 40];
    let mut ip = MutableIpv6Packet::new(&mut buf).unwrap();
    ip.set_version(6);
    ip.set_hop_limit(64);
    ip.set_source("fd00::2".parse().unwrap());
    ip.set_destination("fd00::1".parse().unwrap());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_priority_and_padding_land_where_the_wire_has_them() {
        let f = Frame::new(ETHERTYPE_EXPERIMENTAL)
            .dst(BROADCAST)
            .tags(&[(TPID_8021AD, 100), (TPID_8021Q, 5)])
            .priority(1)
            .padded_to(64, 0x5a)
            .build();
        assert_eq!(&f[..6], &BROADCAST);
        assert_eq!(&f[6..12], &[0x02, 0, 0, 0, 0, 0x01]);
        assert_eq!(&f[12..22], &[0x88, 0xa8, 0x20, 100, 0x81, 0x00, 0x20, 5, 0x88, 0xb5]);
        assert_eq!((f.len(), f[63]), (64, 0x5a));
        let ip = Frame::new(EtherTypes::Ipv4).payload(&ipv4_packet(84)).build();
        assert_eq!((ip.len(), ip[14], &ip[16..18]), (98, 0x45, &[0, 84][..]));
    }
}
