//! The name of a loaded program, by id (what netlink reports for an attached XDP program).
//! aya has no public lookup by id, so this makes the two bpf(2) calls itself.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// Offset of `name` in `struct bpf_prog_info`, and its length (BPF_OBJ_NAME_LEN).
const NAME_OFFSET: usize = 64;
const NAME_LEN: usize = 16;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: attr is a live, writable bpf_attr of the size passed, as the command expects.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) }
}

/// The program's name (the kernel keeps its first 15 bytes); None if there is no such program.
pub fn program_name(id: u32) -> Option<String> {
    #[repr(C)]
    struct GetFdById {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut GetFdById { id, next_id: 0, open_flags: 0 });
    if fd < 0 {
        return None;
    }
    // SAFETY: a non-negative return is a new fd that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = [0u8; NAME_OFFSET + NAME_LEN];
    let mut attr = GetInfo { bpf_fd: fd.as_raw_fd() as u32, info_len: info.len() as u32, info: info.as_mut_ptr() as u64 };
    if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) < 0 {
        return None;
    }
    let name = &info[NAME_OFFSET..];
    let end = name.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}
