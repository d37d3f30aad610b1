//! tcx attachments of vland's counting programs (`counter_hook = "tcx"`), through the bpf(2)
//! syscall: the one place vland issues BPF_PROG_ATTACH / BPF_PROG_DETACH / BPF_PROG_QUERY itself.
//!
//! Plain (non-link) attachments on purpose: the kernel keeps such a program on the device until
//! it is detached or the device goes, so counting never depends on vland running, and there is no
//! pin to keep. aya 0.14 attaches tcx only through a bpf_link (`SchedClassifier::attach` with
//! `TcAttachOptions::TcxOrder`), which the kernel detaches when its last fd closes unless it is
//! pinned: a pin per child and hook that vland would have to create, find and remove with the
//! child, for no gain. aya's `query_tcx` wants a device name and an owned program; this module
//! works on ifindexes and the pinned programs' fds, as the rest of the endpoint path does.
//!
//! Every call here acts on the network namespace of the calling thread (the kernel resolves
//! `target_ifindex` there): callers run them inside the endpoint's namespace. Attach and detach
//! each wait for an RCU grace period under RTNL (~12 ms here): they block their thread.
use anyhow::Context;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;
/// Swap `replace_bpf_fd` for the new program in one step (its place in the chain kept).
const BPF_F_REPLACE: u32 = 1 << 2;
/// The most programs one query reads back (the kernel's own limit per hook is 64).
const QUERY_MAX: usize = 64;

/// A tcx hook of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcxHook {
    Ingress,
    Egress,
}

impl TcxHook {
    fn attach_type(self) -> u32 {
        match self {
            TcxHook::Ingress => BPF_TCX_INGRESS,
            TcxHook::Egress => BPF_TCX_EGRESS,
        }
    }
}

/// `union bpf_attr` for the commands used here, zero-padded to a size every kernel since 4.x
/// accepts (the kernel checks that bytes past what it knows are zero).
#[repr(C, align(8))]
#[derive(Default)]
struct Attr {
    words: [u32; 30],
}

impl Attr {
    fn set_u32(&mut self, offset: usize, v: u32) {
        self.words[offset / 4] = v;
    }
    fn set_u64(&mut self, offset: usize, v: u64) {
        self.words[offset / 4] = v as u32;
        self.words[offset / 4 + 1] = (v >> 32) as u32;
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable bpf_attr of the size passed; the pointers it may hold
    // point to buffers that outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, std::mem::size_of::<Attr>() as libc::c_uint) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// Whether this kernel has tcx (Linux 6.6+): asked of the kernel itself, by querying the tcx
/// ingress hook of `lo`, which older kernels refuse (EINVAL) as an unknown attach type.
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| query(1, TcxHook::Ingress).map_or_else(|e| e.raw_os_error() != Some(libc::EINVAL), |_| true))
}

/// The ids of the programs attached to `hook` of device `ifindex`, in the order they run.
pub fn query(ifindex: u32, hook: TcxHook) -> std::io::Result<Vec<u32>> {
    let mut ids = [0u32; QUERY_MAX];
    let mut attr = Attr::default();
    attr.set_u32(0, ifindex);
    attr.set_u32(4, hook.attach_type());
    attr.set_u64(16, ids.as_mut_ptr() as u64);
    attr.set_u32(24, QUERY_MAX as u32);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let count = (attr.words[6] as usize).min(QUERY_MAX);
    Ok(ids[..count].to_vec())
}

/// Attaches `prog` to `hook` of `ifindex` (last in the chain, after programs already there),
/// or, with `replace`, puts it in the place of that program in one step.
pub fn attach(ifindex: u32, hook: TcxHook, prog: BorrowedFd<'_>, replace: Option<BorrowedFd<'_>>) -> anyhow::Result<()> {
    let mut attr = Attr::default();
    attr.set_u32(0, ifindex);
    attr.set_u32(4, prog.as_raw_fd() as u32);
    attr.set_u32(8, hook.attach_type());
    if let Some(old) = replace {
        attr.set_u32(12, BPF_F_REPLACE);
        attr.set_u32(16, old.as_raw_fd() as u32);
    }
    match bpf(BPF_PROG_ATTACH, &mut attr) {
        Ok(_) => Ok(()),
        // Already attached there (the hook holds each program once).
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && replace.is_none() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("attach the tcx {hook:?} counter to link {ifindex}")),
    }
}

/// Detaches `prog` from `hook` of `ifindex`; a program that is not there (or a device that is
/// gone) is fine.
pub fn detach(ifindex: u32, hook: TcxHook, prog: BorrowedFd<'_>) -> anyhow::Result<()> {
    let mut attr = Attr::default();
    attr.set_u32(0, ifindex);
    attr.set_u32(4, prog.as_raw_fd() as u32);
    attr.set_u32(8, hook.attach_type());
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("detach the tcx {hook:?} counter from link {ifindex}")),
    }
}

/// An fd of the loaded program `id` (to detach or replace a program known by its id).
pub fn program_fd(id: u32) -> anyhow::Result<OwnedFd> {
    let mut attr = Attr::default();
    attr.set_u32(0, id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).with_context(|| format!("open BPF program {id}"))?;
    // SAFETY: the kernel just returned this new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_fields_land_at_the_kernels_offsets() {
        let mut attr = Attr::default();
        attr.set_u32(8, BPF_TCX_EGRESS);
        attr.set_u64(16, 0x1122_3344_5566_7788);
        assert_eq!((attr.words[2], attr.words[4], attr.words[5]), (47, 0x5566_7788, 0x1122_3344));
        assert_eq!(std::mem::size_of::<Attr>(), 120);
        assert_eq!(std::mem::align_of::<Attr>(), 8);
    }
}
