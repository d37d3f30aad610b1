//! Where things live: the workspace, its target dir, and the cache kept outside git.
use std::path::PathBuf;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the workspace root").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Survives a fresh clone (CI clones anew each run): toolchain builds and VM images are kept here.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VLAND_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("vland")
}

pub fn ebpf_object() -> PathBuf {
    target_dir().join("bpfel-unknown-none/release/vlan-ebpf")
}

pub fn vland_binary() -> PathBuf {
    target_dir().join("release/vland")
}
