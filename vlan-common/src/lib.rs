//! Types shared by the eBPF programs (`vlan-ebpf`) and userspace (`vlan-daemon`), defined once.
//! Layouts are `repr(C)` with explicit padding so both sides agree byte for byte.
#![no_std]

/// Names of the maps and programs in the eBPF object; userspace looks them up by these.
pub mod names {
    pub const ENDPOINT_TRAFFIC_MAP: &str = "ENDPOINT_TRAFFIC";
    pub const INGRESS_PROGRAM: &str = "vland_ingress";
    pub const EGRESS_PROGRAM: &str = "vland_egress";
    /// Read-only global patched at load time: the network namespace the program instance serves.
    pub const NETNS_INUM_GLOBAL: &str = "NETNS_INUM";
}

/// Capacity of the per-endpoint counter map.
pub const MAX_ENDPOINTS: u32 = 16384;

/// Identifies one endpoint device. An ifindex is only unique inside one network namespace, so the
/// key pairs it with that namespace's inode number (what `stat -L /proc/PID/ns/net` shows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) structs of integers with no padding; any bit pattern is valid.
    unsafe impl aya::Pod for super::EndpointKey {}
    unsafe impl aya::Pod for super::Traffic {}
}
