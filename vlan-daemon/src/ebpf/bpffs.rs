//! The bpf filesystem that holds vland's pins.
use anyhow::Context;
use nix::mount::{MsFlags, mount};
use std::path::Path;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

pub fn is_bpffs(path: &Path) -> bool {
    crate::netns::is_filesystem(path, BPF_FS_MAGIC)
}

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (as systemd does at boot), then
/// creates `dir` inside it.
pub fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    let root = Path::new(BPFFS_ROOT);
    if dir.starts_with(root) && !is_bpffs(root) {
        mount(Some("bpf"), root, Some("bpf"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some("mode=0700"))
            .with_context(|| format!("cannot mount bpffs at {BPFFS_ROOT}"))?;
    }
    std::fs::create_dir_all(dir.join("links")).with_context(|| format!("cannot create {}", dir.display()))?;
    if !is_bpffs(dir) {
        anyhow::bail!("{} is not on a bpf filesystem: set [daemon] bpf_dir to a directory under {BPFFS_ROOT}", dir.display());
    }
    Ok(())
}
