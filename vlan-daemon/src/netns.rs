//! Network namespaces: named ones under /run/netns (made the way iproute2 makes them, without
//! forking), and running code inside any namespace on a thread of its own, because setns
//! changes only the calling thread.
use anyhow::{Context, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const RUN_DIR: &str = "/run/netns";
const NSFS_MAGIC: i64 = 0x6e73_6673;

pub fn named_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(name)
}

/// A name that is one plain entry of /run/netns: what create and remove accept, so that no name
/// (from a tampered state file, say) makes root create or delete a file elsewhere.
fn check_plain(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        bail!("`{}` is not a namespace name: it must be one plain entry of {RUN_DIR}", name.escape_debug());
    }
    Ok(())
}

/// True when `path` lies on a file system of type `magic` (statfs f_type).
pub fn is_filesystem(path: &Path, magic: i64) -> bool {
    // The field is i64 on x86_64 but not on every architecture.
    #[allow(clippy::unnecessary_cast)]
    let fs_is = |s: nix::sys::statfs::Statfs| s.filesystem_type().0 as i64 == magic;
    nix::sys::statfs::statfs(path).is_ok_and(fs_is)
}

/// True when `path` is a mounted namespace handle (a bind mount of nsfs), not a stale file.
pub fn is_namespace(path: &Path) -> bool {
    is_filesystem(path, NSFS_MAGIC)
}

/// NS_GET_NSTYPE from linux/nsfs.h (`_IO(0xb7, 0x3)`): the CLONE_NEW* kind of an nsfs file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Opens a network namespace handle; any other file, or a namespace of another kind (such as
/// /proc/PID/ns/mnt), is an error that names it.
pub fn open(path: &Path) -> anyhow::Result<File> {
    if !is_namespace(path) {
        bail!("{} is not a network namespace", path.display());
    }
    let file = File::open(path).with_context(|| format!("cannot open network namespace {}", path.display()))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which is open.
    let kind = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        bail!("{} is a namespace, but not a network namespace: give a path like /proc/PID/ns/net", path.display());
    }
    Ok(file)
}

/// The namespace's inode number: stable while it lives, and what eBPF counter keys carry.
pub fn inum(ns: &File) -> anyhow::Result<u32> {
    let ino = ns.metadata()?.ino();
    u32::try_from(ino).with_context(|| format!("namespace inode {ino} does not fit 32 bits"))
}

/// Makes /run/netns a shared mount point, as `ip netns add` does, so that namespace mounts made
/// here propagate to other mount namespaces (e.g. `ip netns exec`).
fn ensure_run_dir() -> anyhow::Result<()> {
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
    let shared = || mount(None::<&str>, RUN_DIR, Some("none"), MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    if shared().is_ok() {
        return Ok(());
    }
    mount(Some(RUN_DIR), RUN_DIR, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .with_context(|| format!("cannot bind-mount {RUN_DIR} onto itself"))?;
    shared().with_context(|| format!("cannot make {RUN_DIR} a shared mount"))?;
    Ok(())
}

/// Creates /run/netns/NAME holding a new, empty network namespace.
pub fn create(name: &str) -> anyhow::Result<()> {
    check_plain(name)?;
    ensure_run_dir()?;
    let path = named_path(name);
    // A file that is no namespace is what a run killed between creating and mounting it leaves.
    if path.exists() && !is_namespace(&path) {
        let _ = std::fs::remove_file(&path);
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let result = std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            // thread-self, not self: self is the main thread's namespace.
            mount(Some("/proc/thread-self/ns/net"), &path, Some("none"), MsFlags::MS_BIND, None::<&str>)
                .with_context(|| format!("cannot bind-mount the new namespace onto {}", path.display()))?;
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// Removes /run/netns/NAME. The namespace itself goes when nothing else holds it.
pub fn remove(name: &str) -> anyhow::Result<()> {
    check_plain(name)?;
    let path = named_path(name);
    if !path.exists() {
        return Ok(());
    }
    if is_namespace(&path) {
        umount2(&path, MntFlags::MNT_DETACH).with_context(|| format!("cannot unmount {}", path.display()))?;
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
}

/// Runs `f` on a fresh thread that has joined namespace `ns`. Sockets opened there stay in `ns`.
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).context("setns into the endpoint's network namespace")?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread inside a network namespace panicked"))?
    })
}

/// Runs `f` inside a throwaway namespace that disappears when it returns (used by `doctor`).
pub fn run_in_scratch<T: Send>(f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("scratch namespace thread panicked"))?
    })
}

/// Reads a per-namespace 0/1 sysctl under /proc/sys/net (None if it is not there); must run
/// inside the namespace.
pub fn read_sysctl_flag(path: &str) -> Option<bool> {
    std::fs::read_to_string(Path::new("/proc/sys/net").join(path)).ok().map(|v| v.trim() != "0")
}

/// Writes a per-namespace sysctl under /proc/sys/net; must run inside the namespace.
pub fn write_sysctl(path: &str, value: &str) -> anyhow::Result<()> {
    let full = Path::new("/proc/sys/net").join(path);
    std::fs::write(&full, value).with_context(|| format!("cannot write {value} to {}", full.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names_are_created_or_removed() {
        for name in ["../../tmp/x", "..", ".", "", "a/b"] {
            assert!(super::remove(name).is_err(), "{name}");
            assert!(super::create(name).is_err(), "{name}");
        }
    }
}
