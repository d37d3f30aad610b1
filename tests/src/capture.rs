//! Capturing frames on an interface inside a namespace with an AF_PACKET socket. Devices that
//! take the VLAN tag out of the frame (veth does) hand it over as PACKET_AUXDATA; like libpcap,
//! the tag is put back so the frame is seen as it was on the wire.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// A capture socket bound to `ifname` inside namespace `/run/netns/<ns>`.
pub struct Capture {
    fd: OwnedFd,
}

fn check(ret: libc::c_int, what: &str) -> libc::c_int {
    assert!(ret >= 0, "{what}: {}", std::io::Error::last_os_error());
    ret
}

impl Capture {
    pub fn open(ns: &str, ifname: &str) -> Capture {
        let netns = vland::netns::open(&vland::netns::named_path(ns)).unwrap();
        // setns is per thread: the socket is opened on a thread inside the namespace, and stays there.
        vland::netns::run_in(&netns, || Ok(Capture::bind(ifname))).unwrap()
    }

    /// An AF_PACKET socket with PACKET_AUXDATA on, bound to `ifname` of the calling thread's namespace.
    fn bind(ifname: &str) -> Capture {
        unsafe {
            let fd = check(libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32), "socket");
            let fd = OwnedFd::from_raw_fd(fd);
            let one: libc::c_int = 1;
            check(
                libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, &one as *const _ as *const _, 4),
                "PACKET_AUXDATA",
            );
            let cname = std::ffi::CString::new(ifname).unwrap();
            let ifindex = libc::if_nametoindex(cname.as_ptr());
            assert!(ifindex != 0, "no interface {ifname}");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex as i32;
            check(libc::bind(fd.as_raw_fd(), &sll as *const _ as *const _, std::mem::size_of::<libc::sockaddr_ll>() as u32), "bind");
            let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
            check(
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const _,
                    std::mem::size_of::<libc::timeval>() as u32,
                ),
                "SO_RCVTIMEO",
            );
            Capture { fd }
        }
    }

    /// Sends `frame` as is out of the bound interface (tags included, in the frame's bytes).
    pub fn send(&self, frame: &[u8]) {
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr() as *const _, frame.len(), 0) };
        assert_eq!(n, frame.len() as isize, "send: {}", std::io::Error::last_os_error());
    }

    /// Incoming frames (as on the wire) until `want` says stop or `timeout` passes.
    pub fn frames_until(&self, timeout: Duration, mut want: impl FnMut(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        while Instant::now() < deadline {
            if let Some(frame) = self.recv() {
                let done = want(&frame);
                frames.push(frame);
                if done {
                    break;
                }
            }
        }
        frames
    }

    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut cmsg = [0u8; 256];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut _, iov_len: buf.len() };
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = &mut addr as *mut _ as *mut _;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr() as *mut _;
        msg.msg_controllen = cmsg.len();
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return None;
        }
        // Only what arrived on the interface, not what this host sent out of it.
        if addr.sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        buf.truncate(n as usize);
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !c.is_null() {
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == libc::PACKET_AUXDATA {
                let aux = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::tpacket_auxdata) };
                if aux.tp_status & TP_STATUS_VLAN_VALID != 0 && buf.len() >= 12 {
                    let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                    let mut tag = Vec::with_capacity(4);
                    tag.extend_from_slice(&tpid.to_be_bytes());
                    tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    buf.splice(12..12, tag);
                }
            }
            c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
        }
        Some(buf)
    }
}
