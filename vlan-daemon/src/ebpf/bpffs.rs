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

/// In a mount namespace other than init's, the file system holding `dir` (its nearest existing
/// ancestor) must be the one init sees at the same path: else pins made here are private and
/// vanish with this process while the state records them.
pub fn check_host_mounts(dir: &Path) -> anyhow::Result<()> {
    let ns = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    let (Ok(ours), Ok(init)) = (ns("/proc/self/ns/mnt"), ns("/proc/1/ns/mnt")) else {
        // Not allowed to look (not root): the mounts below are not vland's to make anyway.
        return Ok(());
    };
    if ours == init {
        return Ok(());
    }
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let host_view = Path::new("/proc/1/root").join(existing.strip_prefix("/").unwrap_or(existing));
    let same = match (std::fs::metadata(existing), std::fs::metadata(&host_view)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && is_bpffs(existing) == is_bpffs(&host_view),
        _ => false,
    };
    if !same {
        bail!(
            "{} is not the host's here: this process runs in a private mount namespace (as under `ip netns exec`, which remounts /sys), \
             so eBPF pins made here would vanish when it exits; run vland without `ip netns exec` (e.g. `nsenter --net=/run/netns/NAME vland ...`)",
            existing.display()
        );
    }
    Ok(())
}
