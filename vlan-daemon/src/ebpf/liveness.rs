//! Whether a pinned bpf_link is still attached to the device it was made for. A link outlives
//! its device (the kernel just detaches it), and a new device may even get the same ifindex,
//! so a pin's existence alone proves nothing.
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;

/// The `bpf_attr` layout of BPF_OBJ_GET.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// Raw BPF_OBJ_GET: aya's `PinnedLink` hides its fd, and its `LinkInfo` has no ifindex.
fn open_pinned(path: &Path) -> Option<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let attr = ObjGetAttr { pathname: c_path.as_ptr() as u64, ..Default::default() };
    // SAFETY: attr outlives the call and has the kernel's layout for this command.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &attr as *const ObjGetAttr, std::mem::size_of::<ObjGetAttr>()) };
    // SAFETY: a non-negative return is a new fd that we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// True when the link pinned at `path` is attached to device `ifindex` (read from the link's
/// fdinfo, which shows `ifindex: 0` once its device is gone).
pub fn attached_to(path: &Path, ifindex: u32) -> bool {
    let Some(fd) = open_pinned(path) else { return false };
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).unwrap_or_default();
    fdinfo.lines().find_map(|l| l.strip_prefix("ifindex:")).and_then(|v| v.trim().parse::<u32>().ok()) == Some(ifindex)
}
