//! Types shared by the eBPF programs (`vlan-ebpf`) and userspace (`vlan-daemon`), defined once.
//! Layouts are `repr(C)` with explicit padding so both sides agree byte for byte.
#![no_std]

use network_types::eth::EtherType;

/// Names of the maps and programs in the eBPF object; userspace looks them up by these.
pub mod names {
    pub const ENDPOINT_TRAFFIC_MAP: &str = "ENDPOINT_TRAFFIC";
    pub const TRUNKS_MAP: &str = "TRUNKS";
    pub const VLAN_COUNTERS_MAP: &str = "VLAN_COUNTERS";
    pub const TRUNK_MALFORMED_MAP: &str = "TRUNK_MALFORMED";
    pub const ENDPOINT_POLICY_MAP: &str = "ENDPOINT_POLICY";
    pub const ENDPOINT_DROPS_MAP: &str = "ENDPOINT_DROPS";
    /// Counts what an endpoint receives (TC ingress of its child).
    pub const INGRESS_PROGRAM: &str = "vland_rx_tc";
    pub const EGRESS_PROGRAM: &str = "vland_egress";
    /// The programs every endpoint child carries, pinned under `programs/`.
    pub const ENDPOINT_PROGRAMS: [&str; 2] = [INGRESS_PROGRAM, EGRESS_PROGRAM];
    /// The generic-XDP counter that builds before TC ingress counting attached to children (and
    /// pinned under `programs/`): apply removes it where it finds it.
    pub const LEGACY_INGRESS_XDP_PROGRAM: &str = "vland_ingress";
    pub const TRUNK_PROGRAM: &str = "vland_trunk";
    pub const TRUNK_TC_PROGRAM: &str = "vland_trunk_tc";
    pub const ALL_MAPS: [&str; 11] = [
        ENDPOINT_TRAFFIC_MAP,
        TRUNKS_MAP,
        VLAN_COUNTERS_MAP,
        TRUNK_MALFORMED_MAP,
        ENDPOINT_POLICY_MAP,
        ENDPOINT_DROPS_MAP,
        NEIGHBOURS_MAP,
        ENDPOINT_NEIGH_MAP,
        ENDPOINT_CONFLICTS_MAP,
        LAST_CONFLICT_MAP,
        LOG_MAP,
    ];
    /// Read-only global patched at load time: the ifindex of the endpoint in slot 0 (see
    /// `endpoint_slot`).
    pub const ENDPOINT_IFINDEX_BASE_GLOBAL: &str = "ENDPOINT_IFINDEX_BASE";
    /// Read-only global patched at load time: the trunk's slot in TRUNKS.
    pub const TRUNK_SLOT_GLOBAL: &str = "TRUNK_SLOT";
    /// The ARP/ND responder on a parent (XDP), and its table and per-endpoint counters.
    pub const PARENT_PROGRAM: &str = "vland_parent";
    pub const NEIGHBOURS_MAP: &str = "NEIGHBOURS";
    pub const ENDPOINT_NEIGH_MAP: &str = "ENDPOINT_NEIGH";
    /// Frames from the segment claiming an endpoint's address from another MAC, per endpoint,
    /// and the last of them.
    pub const ENDPOINT_CONFLICTS_MAP: &str = "ENDPOINT_CONFLICTS";
    pub const LAST_CONFLICT_MAP: &str = "LAST_CONFLICT";
    /// aya-log's ring buffer (the name aya-log-ebpf gives it); vland pins it so every program
    /// instance writes to one buffer the daemon reads.
    pub const LOG_MAP: &str = "AYA_LOGS";
}

/// Slots of the per-endpoint arrays. vland creates each endpoint's child link with the ifindex
/// `base + slot` (a base of its own, far above the indexes the kernel hands out), so one program
/// instance serves every endpoint in every namespace and finds the slot by subtraction: the hot
/// path indexes an array (inlined by the verifier) instead of hashing a key. Slot 0 is never
/// given out. 4095 endpoints per host: the endpoint counters take 48 bytes per slot per CPU, and
/// the kernel creates per-CPU arrays element by element (16384 slots took ~20 ms to create).
pub const MAX_ENDPOINTS: u32 = 4096;

/// The endpoint slot of device `ifindex`, given the base its vland instance uses; 0 (counts
/// nothing) for devices vland did not number.
#[inline(always)]
pub fn endpoint_slot(ifindex: u32, base: u32) -> u32 {
    let slot = ifindex.wrapping_sub(base);
    if slot < MAX_ENDPOINTS { slot } else { 0 }
}
/// Slots of TRUNKS; each trunk's program instance has its slot patched in, and slot 0 is never
/// given out. Each slot has VLAN_COUNTERS_PER_TRUNK per-CPU counters (256 KiB per CPU), so a host
/// gets 15 trunks.
pub const MAX_TRUNKS: u32 = 16;
/// VIDs of a 12-bit VLAN tag.
pub const VID_COUNT: usize = 4096;
/// The VID bits of a tag's TCI.
pub const VID_MASK: u16 = (VID_COUNT - 1) as u16;
/// A trunk's counters: every 802.1Q VID, every 802.1ad VID, untagged frames. Every VLAN has its
/// place, allowed or not, so counting never hashes and counts survive a VLAN joining or leaving
/// the allowed set.
pub const VLAN_COUNTERS_PER_TRUNK: u32 = 2 * VID_COUNT as u32 + 1;
/// VLAN_COUNTERS holds counters in chunks of this many: the kernel allocates a per-CPU array
/// element by element, so 131k single counters took ~80 ms to create; 16 KiB chunks take ~1 ms.
pub const VLAN_COUNTERS_PER_CHUNK: usize = 512;
/// Chunks per trunk slot; a chunk never holds counters of two trunks.
pub const VLAN_CHUNKS_PER_TRUNK: u32 = VLAN_COUNTERS_PER_TRUNK.div_ceil(VLAN_COUNTERS_PER_CHUNK as u32);

/// Where (tag protocol, VID) of the trunk in `slot` counts: (element of VLAN_COUNTERS, index in
/// its chunk). Tag protocol 0 is untagged. None for other tag protocols.
#[inline(always)]
pub fn vlan_counter_place(slot: u32, tpid: u16, vid: u16) -> Option<(u32, usize)> {
    let offset = match tpid {
        ETH_P_8021Q => u32::from(vid & VID_MASK),
        ETH_P_8021AD => VID_COUNT as u32 + u32::from(vid & VID_MASK),
        0 => 2 * VID_COUNT as u32,
        _ => return None,
    };
    let chunk = VLAN_COUNTERS_PER_CHUNK as u32;
    Some((slot * VLAN_CHUNKS_PER_TRUNK + offset / chunk, (offset % chunk) as usize))
}

/// The tag protocols (TPIDs) of 802.1Q and 802.1ad (QinQ service) tags, in host byte order
/// (network-types keeps ethertypes in network byte order).
pub const ETH_P_8021Q: u16 = u16::from_be(EtherType::Ieee8021q as u16);
pub const ETH_P_8021AD: u16 = u16::from_be(EtherType::Ieee8021ad as u16);

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

/// Entries of NEIGHBOURS: an endpoint address on a parent (v4 and v6 for each endpoint).
pub const MAX_NEIGHBOURS: u32 = 2 * MAX_ENDPOINTS;

/// A question the parent's responder answers: an address of an endpoint, asked on the parent
/// `ifindex` (in vland's namespace). IPv4 addresses fill the first 4 bytes of `addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighKey {
    pub ifindex: u32,
    /// 4 or 6.
    pub family: u32,
    pub addr: [u8; 16],
}

/// The answer: the MAC the endpoint's address resolves to (the child's; the parent's for
/// ipvlan), and the endpoint's slot for counting. The same MAC is the only one that may claim
/// the address on the segment: a frame claiming it from another is an address conflict.
/// (12 bytes, as before `flags` existed: older entries read as flags 0.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighEntry {
    pub slot: u32,
    pub mac: [u8; 6],
    pub flags: u8,
    pub _pad: u8,
}

impl NeighEntry {
    /// Watched for conflicts only: the parent does not answer for it (`arp_responder` off).
    pub const WATCH_ONLY: u8 = 1;
}

/// Per-CPU count of frames that claimed an endpoint's address from a MAC not its own.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConflictCounters {
    pub address_conflicts: u64,
}

impl ConflictCounters {
    pub fn add(&mut self, other: &ConflictCounters) {
        self.address_conflicts += other.address_conflicts;
    }
}

/// The last conflict seen for an endpoint (one shared element per slot; last writer wins).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastConflict {
    /// When, in CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns); 0: never.
    pub at_ns: u64,
    /// When the program last logged a conflict for this endpoint (its rate limit).
    pub logged_ns: u64,
    /// The address claimed (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// The MAC that claimed it.
    pub mac: [u8; 6],
    /// 4 or 6.
    pub family: u8,
    pub _pad: u8,
}

/// Per-CPU counters of what a parent's responder answered for one endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighCounters {
    pub arp_answered: u64,
    pub nd_answered: u64,
}

impl NeighCounters {
    pub fn add(&mut self, other: &NeighCounters) {
        self.arp_answered += other.arp_answered;
        self.nd_answered += other.nd_answered;
    }
}

/// Identifies one device: an ifindex is only unique inside one network namespace, so it is paired
/// with that namespace's inode number (what `stat -L /proc/PID/ns/net` shows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkId {
    pub netns_inum: u32,
    pub ifindex: u32,
}

/// One trunk's policy, in its slot of TRUNKS: the programs read it through one array lookup
/// (inlined by the verifier) and test a bit. Userspace rewrites the whole value; a VLAN that
/// stays allowed has its bit set in the old and the new value alike, so a reader racing the
/// write never sees it denied.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrunkPolicy {
    /// ENABLED | UNTAGGED_DROP.
    pub flags: u32,
    pub netns_inum: u32,
    pub ifindex: u32,
    pub _pad: u32,
    /// Bit VID set: the 802.1Q VLAN is allowed.
    pub allowed_8021q: [u64; VID_COUNT / 64],
    /// The same for an 802.1ad (QinQ service) outer tag.
    pub allowed_8021ad: [u64; VID_COUNT / 64],
}

impl TrunkPolicy {
    /// The slot holds a trunk; the programs pass everything otherwise.
    pub const ENABLED: u32 = 1;
    /// Drop frames without a VLAN tag.
    pub const UNTAGGED_DROP: u32 = 2;
    pub const EMPTY: TrunkPolicy = TrunkPolicy {
        flags: 0,
        netns_inum: 0,
        ifindex: 0,
        _pad: 0,
        allowed_8021q: [0; VID_COUNT / 64],
        allowed_8021ad: [0; VID_COUNT / 64],
    };

    pub fn id(&self) -> LinkId {
        LinkId { netns_inum: self.netns_inum, ifindex: self.ifindex }
    }

    /// Whether (tag protocol, VID) is allowed (never for an unknown tag protocol).
    #[inline(always)]
    pub fn allows(&self, tpid: u16, vid: u16) -> bool {
        let vid = (vid & VID_MASK) as usize;
        let words = match tpid {
            ETH_P_8021Q => &self.allowed_8021q,
            ETH_P_8021AD => &self.allowed_8021ad,
            _ => return false,
        };
        words[vid / 64] & (1 << (vid % 64)) != 0
    }

    /// Allows (tag protocol, VID); false for an unknown tag protocol.
    pub fn allow(&mut self, tpid: u16, vid: u16) -> bool {
        let vid = (vid & VID_MASK) as usize;
        let words = match tpid {
            ETH_P_8021Q => &mut self.allowed_8021q,
            ETH_P_8021AD => &mut self.allowed_8021ad,
            _ => return false,
        };
        words[vid / 64] |= 1 << (vid % 64);
        true
    }
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

/// One element of VLAN_COUNTERS (see VLAN_COUNTERS_PER_CHUNK).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanStatsChunk {
    pub vlans: [VlanStats; VLAN_COUNTERS_PER_CHUNK],
}

impl Default for VlanStatsChunk {
    fn default() -> Self {
        Self { vlans: [VlanStats::default(); VLAN_COUNTERS_PER_CHUNK] }
    }
}

impl VlanStats {
    pub fn add(&mut self, other: &VlanStats) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.dropped_packets += other.dropped_packets;
        self.dropped_bytes += other.dropped_bytes;
    }
}

/// Why a frame was dropped. Never stored in a map: EndpointDrops has a counter per spoofing
/// reason, and a trunk's drops get their reason from where they were counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Tagged with a VLAN the trunk does not carry.
    VlanNotAllowed,
    /// No tag, on a trunk with `untagged = "drop"`.
    Untagged,
    /// Too short to hold the headers it announces (counted on the untagged row).
    Malformed,
    /// Sent by an endpoint with a source MAC that is not its own.
    SpoofedMac,
    /// Sent by an endpoint with a source IP (or ARP sender IP) that is not its own.
    SpoofedIp,
}

impl DropReason {
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

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) structs of integers with no padding; any bit pattern is valid.
    unsafe impl aya::Pod for super::Traffic {}
    unsafe impl aya::Pod for super::TrunkPolicy {}
    unsafe impl aya::Pod for super::VlanStatsChunk {}
    unsafe impl aya::Pod for super::EndpointPolicy {}
    unsafe impl aya::Pod for super::EndpointDrops {}
    unsafe impl aya::Pod for super::NeighKey {}
    unsafe impl aya::Pod for super::NeighEntry {}
    unsafe impl aya::Pod for super::NeighCounters {}
    unsafe impl aya::Pod for super::ConflictCounters {}
    unsafe impl aya::Pod for super::LastConflict {}
}
