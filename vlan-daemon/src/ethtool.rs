//! The one ethtool fact vland needs: whether a device takes VLAN tags out of received frames
//! (rx VLAN offload), in which case its XDP hook never sees them and the TC hook decides.
use std::os::fd::AsRawFd;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Some(true) when `ifname` (in the caller's namespace) has rx VLAN offload on; None when the
/// device does not say.
pub fn rx_vlan_offload(ifname: &str) -> Option<bool> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    let mut value = EthtoolValue { cmd: ETHTOOL_GFLAGS, data: 0 };
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: &mut value, _pad: [0; 16] };
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: req and value live across the call and have the kernel's layouts.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) };
    (rc == 0).then_some(value.data & ETH_FLAG_RXVLAN != 0)
}
