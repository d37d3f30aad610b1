//! Types shared by the eBPF programs (`vlan-ebpf`) and userspace (`vlan-daemon`), defined once.
//! Layouts are `repr(C)` with explicit padding so both sides agree byte for byte.
#![no_std]

/// Names of the maps and programs in the eBPF object; userspace looks them up by these.
pub mod names {
    pub const ENDPOINT_TRAFFIC_MAP: &str = "ENDPOINT_TRAFFIC";
    pub const TRUNK_POLICY_MAP: &str = "TRUNK_POLICY";
    pub const ALLOWED_VLANS_MAP: &str = "ALLOWED_VLANS";
    pub const VLAN_STATS_MAP: &str = "VLAN_STATS";
    pub const DROPS_MAP: &str = "DROPS";
    pub const ENDPOINT_POLICY_MAP: &str = "ENDPOINT_POLICY";
    pub const ENDPOINT_DROPS_MAP: &str = "ENDPOINT_DROPS";
    pub const INGRESS_PROGRAM: &str = "vland_ingress";
    pub const EGRESS_PROGRAM: &str = "vland_egress";
    pub const TRUNK_PROGRAM: &str = "vland_trunk";
    pub const TRUNK_TC_PROGRAM: &str = "vland_trunk_tc";
    pub const ALL_MAPS: [&str; 7] =
        [ENDPOINT_TRAFFIC_MAP, TRUNK_POLICY_MAP, ALLOWED_VLANS_MAP, VLAN_STATS_MAP, DROPS_MAP, ENDPOINT_POLICY_MAP, ENDPOINT_DROPS_MAP];
    /// Read-only global patched at load time: the network namespace the program instance serves.
    pub const NETNS_INUM_GLOBAL: &str = "NETNS_INUM";
    /// Read-only global patched at load time: the endpoint's slot in the endpoint arrays.
    pub const ENDPOINT_SLOT_GLOBAL: &str = "ENDPOINT_SLOT";
}

/// Slots of the per-endpoint arrays. Each endpoint's program instance is loaded with its slot
/// patched in, so the hot path indexes an array (inlined by the verifier) instead of hashing a
/// key. Slot 0 is never given out: an instance without a slot counts nothing.
pub const MAX_ENDPOINTS: u32 = 16384;
/// Capacity of the trunk maps: every (tag protocol, VID) of a few trunks.
pub const MAX_TRUNKS: u32 = 256;
pub const MAX_VLAN_KEYS: u32 = 65536;

pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

/// Identifies one endpoint device. An ifindex is only unique inside one network namespace, so the
/// key pairs it with that namespace's inode number (what `stat -L /proc/PID/ns/net` shows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub netns_inum: u32,
    pub ifindex: u32,
}

/// Per-CPU traffic counters of one endpoint device; userspace sums them over CPUs when reading.
/// rx = frames the endpoint received (XDP on its device), tx = frames it sent (TC egress).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Traffic {
    pub fn add(&mut self, other: &Traffic) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
    }
}

/// What an endpoint may send as, when its network has `spoof_check`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    pub flags: u32,
    /// IPv4 address, network byte order (valid with HAS_IPV4).
    pub ipv4: [u8; 4],
    /// MAC in the first 6 bytes.
    pub mac: [u8; 8],
    /// IPv6 address (valid with HAS_IPV6); link-local sources are always allowed.
    pub ipv6: [u8; 16],
}

impl EndpointPolicy {
    pub const SPOOF_CHECK: u32 = 1;
    pub const HAS_IPV4: u32 = 2;
    pub const HAS_IPV6: u32 = 4;
}

/// Per-CPU drop counters of one endpoint, per reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointDrops {
    pub spoofed_mac: u64,
    pub spoofed_ip: u64,
}

impl EndpointDrops {
    pub fn add(&mut self, other: &EndpointDrops) {
        self.spoofed_mac += other.spoofed_mac;
        self.spoofed_ip += other.spoofed_ip;
    }
}

/// A device enforcing a VLAN policy (a trunk), in a namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrunkId {
    pub netns_inum: u32,
    pub ifindex: u32,
}

/// Its presence in TRUNK_POLICY turns enforcement on for the device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrunkPolicy {
    /// 1: drop frames without a VLAN tag; 0: pass them.
    pub untagged_drop: u32,
}

/// One VLAN on one trunk: the outer tag's protocol (0x8100, 0x88a8; 0 = untagged) and VID.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanKey {
    pub netns_inum: u32,
    pub ifindex: u32,
    pub tpid: u16,
    pub vid: u16,
}

/// Per-CPU counters of one VLAN on a trunk: what arrived, and what of it was dropped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

impl VlanStats {
    pub fn add(&mut self, other: &VlanStats) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.dropped_packets += other.dropped_packets;
        self.dropped_bytes += other.dropped_bytes;
    }
}

/// Why a frame was dropped.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// Tagged with a VLAN the trunk does not carry.
    VlanNotAllowed = 1,
    /// No tag, on a trunk with `untagged = "drop"`.
    Untagged = 2,
    /// Too short to hold the headers it announces (counted on the untagged row).
    Malformed = 3,
    /// Sent by an endpoint with a source MAC that is not its own.
    SpoofedMac = 4,
    /// Sent by an endpoint with a source IP (or ARP sender IP) that is not its own.
    SpoofedIp = 5,
}

impl DropReason {
    pub const ALL: [DropReason; 5] =
        [DropReason::VlanNotAllowed, DropReason::Untagged, DropReason::Malformed, DropReason::SpoofedMac, DropReason::SpoofedIp];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            DropReason::VlanNotAllowed => "vlan_not_allowed",
            DropReason::Untagged => "untagged",
            DropReason::Malformed => "malformed",
            DropReason::SpoofedMac => "spoofed_mac",
            DropReason::SpoofedIp => "spoofed_ip",
        }
    }
}

/// Drop counters: per VLAN row and reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    pub vlan: VlanKey,
    pub reason: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) structs of integers with no padding; any bit pattern is valid.
    unsafe impl aya::Pod for super::EndpointKey {}
    unsafe impl aya::Pod for super::Traffic {}
    unsafe impl aya::Pod for super::TrunkId {}
    unsafe impl aya::Pod for super::TrunkPolicy {}
    unsafe impl aya::Pod for super::VlanKey {}
    unsafe impl aya::Pod for super::VlanStats {}
    unsafe impl aya::Pod for super::DropKey {}
    unsafe impl aya::Pod for super::EndpointPolicy {}
    unsafe impl aya::Pod for super::EndpointDrops {}
}
