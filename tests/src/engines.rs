//! Real container engines for the front-end tests: Debian's packages installed with apt when
//! missing, and a busybox image made without a registry (a rootfs tarball of busybox-static
//! with a link per applet).
use crate::sh::run_ok;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs the apt `packages` unless `probe` (a path) already exists.
pub fn ensure_packages(probe: &str, packages: &[&str]) {
    if Path::new(probe).exists() {
        return;
    }
    let mut args = vec!["install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"];
    args.extend_from_slice(packages);
    let out = Command::new("apt-get").args(&args).env("DEBIAN_FRONTEND", "noninteractive").output().expect("cannot run apt-get");
    if !out.status.success() {
        // The package lists may be missing on a fresh machine.
        run_ok("apt-get", &["update", "-q"]);
        run_ok("apt-get", &args);
    }
    assert!(Path::new(probe).exists(), "{probe} is still missing after installing {packages:?}");
}

/// A rootfs tarball of busybox-static: /bin/busybox and a link for each of its applets.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    ensure_packages("/bin/busybox", &["busybox-static"]);
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in run_ok("/bin/busybox", &["--list"]).lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    let tar = dir.join("rootfs.tar");
    run_ok("tar", &["-C", &root.display().to_string(), "-cf", &tar.display().to_string(), "."]);
    tar
}
