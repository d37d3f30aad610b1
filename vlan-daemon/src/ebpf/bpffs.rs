//! The bpf filesystem that holds vland's pins. Pins outlive vland only on the host's bpffs: one
//! mounted in a private mount namespace (what `ip netns exec` makes: it remounts /sys) goes away
//! with the last process in it, taking attached trunk programs with it.
use anyhow::{Context, bail};
use nix::mount::{MsFlags, mount};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

pub fn is_bpffs(path: &Path) -> bool {
    crate::netns::is_filesystem(path, BPF_FS_MAGIC)
}

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (as systemd does at boot), then
/// creates `dir` inside it, root's alone. Refuses when this process does not see the host's
/// mounts (see [`check_host_mounts`]).
pub fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    check_host_mounts(dir)?;
    let root = Path::new(BPFFS_ROOT);
    if dir.starts_with(root) && !is_bpffs(root) {
        mount(Some("bpf"), root, Some("bpf"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some("mode=0700"))
            .with_context(|| format!("cannot mount bpffs at {BPFFS_ROOT}"))?;
    }
    crate::secure_fs::ensure_trusted_dir(dir, "bpf_dir")?;
    std::fs::create_dir_all(dir.join("links")).with_context(|| format!("cannot create {}", dir.display()))?;
    if !is_bpffs(dir) {
        bail!("{} is not on a bpf filesystem: set [daemon] bpf_dir to a directory under {BPFFS_ROOT}", dir.display());
    }
    Ok(())
}

/// The nearest ancestor process in another mount namespace that vland may look into (init's,
/// or the shell that ran `ip netns exec`, which unshares its own before it execs vland).
fn outer_process() -> Option<u32> {
    let mnt_ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| (m.dev(), m.ino()));
    let ours = mnt_ns("self")?;
    let mut pid = std::process::id();
    while pid > 1 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The parent's PID follows the command name, which is in parentheses and may hold anything.
        pid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        match mnt_ns(&pid.to_string()) {
            Some(ns) if ns != ours => return Some(pid),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// Refuses when this process sees another file system at `dir` (its nearest existing ancestor)
/// than the processes it came from see: it then runs in a private mount namespace whose mounts
/// go away with it (as under `ip netns exec`, which remounts /sys), and pins made there would
/// vanish when it exits while the state records them. (A private namespace whose mounts are the
/// outer ones, as systemd's sandboxing makes, is fine.)
pub fn check_host_mounts(dir: &Path) -> anyhow::Result<()> {
    let Some(outer) = outer_process() else { return Ok(()) };
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let outer_view = Path::new("/proc").join(outer.to_string()).join("root").join(existing.strip_prefix("/").unwrap_or(existing));
    let Ok(theirs) = std::fs::metadata(&outer_view) else { return Ok(()) };
    let same = std::fs::metadata(existing).is_ok_and(|ours| ours.dev() == theirs.dev()) && is_bpffs(existing) == is_bpffs(&outer_view);
    if !same {
        crate::secure_fs::refuse!(
            "{} is not what the process that started vland (PID {outer}) sees there: vland runs in a private mount namespace \
             (as under `ip netns exec`, which remounts /sys), so eBPF pins made here would vanish when it exits; \
             run vland without `ip netns exec` (e.g. `nsenter --net=/run/netns/NAME vland ...`)",
            existing.display()
        );
    }
    Ok(())
}
