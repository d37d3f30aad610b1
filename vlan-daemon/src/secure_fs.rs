//! The directories root writes and deletes in (state dir, bpf dir) must be root's alone: a
//! directory another user can write to lets that user plant a symlink or a crafted file that
//! makes root write or delete elsewhere. Files vland writes there are created new, never through
//! a symlink.
use anyhow::Context;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const STICKY: u32 = 0o1000;

/// A refusal that no retry can change: an unsafe directory, a bpf dir of another instance, a
/// private mount namespace. The daemon waits for a change instead of retrying (see ApplyError).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Returns early with a [`Refusal`].
macro_rules! refuse {
    ($($arg:tt)*) => { return Err(anyhow::Error::new($crate::secure_fs::Refusal(format!($($arg)*)))) };
}
pub(crate) use refuse;

/// Whose files vland trusts: root's and its own user's (the same unless vland runs unprivileged,
/// e.g. `stats` by a normal user, which only reads).
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses `dir` (`what` names it in the error: "state dir", "bpf_dir") unless it and every
/// directory above it belong to root (or vland's user) and no one else can write there. A
/// world-writable ancestor is fine when it has the sticky bit (as /tmp): others cannot rename or
/// remove root's entries in it.
pub fn check_trusted_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    check_chain(dir, what, false)
}

/// `dir` and its ancestors; `sticky_ok`: `dir` itself may be world-writable with the sticky bit
/// (it is an ancestor of what vland creates, such as a bpffs root mounted with mode 1777).
fn check_chain(dir: &Path, what: &str, sticky_ok: bool) -> anyhow::Result<()> {
    let real = dir.canonicalize().with_context(|| format!("cannot resolve {what} {}", dir.display()))?;
    let meta = std::fs::metadata(&real).with_context(|| format!("cannot stat {what} {}", real.display()))?;
    if !meta.is_dir() {
        refuse!("{what} {} is not a directory", dir.display());
    }
    check_one(&real, &meta, what, dir, sticky_ok)?;
    for ancestor in real.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor).with_context(|| format!("cannot stat {}", ancestor.display()))?;
        check_one(ancestor, &meta, what, dir, true)?;
    }
    Ok(())
}

fn check_one(path: &Path, meta: &std::fs::Metadata, what: &str, dir: &Path, sticky_ok: bool) -> anyhow::Result<()> {
    let whose = if path == dir { String::new() } else { format!(" (above {what} {})", dir.display()) };
    if !trusted_owner(meta.uid()) {
        refuse!(
            "refusing {what} {}: {}{whose} is owned by uid {}, not root: another user could make vland write or delete elsewhere; use a directory only root controls",
            dir.display(),
            path.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 && !(sticky_ok && mode & STICKY != 0) {
        refuse!(
            "refusing {what} {}: {}{whose} is writable by group or others (mode {:o}): another user could plant files there; `chmod go-w` it or use a directory only root controls",
            dir.display(),
            path.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

/// Creates `dir` (mode 0700 for what it creates) and checks it as [`check_trusted_dir`] does.
/// The nearest existing ancestor is checked first, so nothing is created under a directory
/// another user controls.
pub fn ensure_trusted_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    if !dir.exists()
        && let Some(existing) = dir.ancestors().skip(1).find(|a| a.exists())
    {
        check_chain(existing, what, true).with_context(|| format!("cannot create {what} {}", dir.display()))?;
        DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("cannot create {what} {}", dir.display()))?;
    }
    check_trusted_dir(dir, what)
}

/// Opens (creating if needed) `path` for writing without following a symlink at it.
pub fn open_nofollow(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open {} (a symlink is never followed)", path.display()))
}

/// Writes `bytes` to a new file at `path` (whatever was there, a symlink included, is removed
/// first, never followed) and fsyncs it; the caller renames it into place.
pub fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove the stale {}", path.display())),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    Ok(())
}

/// Reads a regular file of at most `cap` bytes, not through a symlink (ELOOP); None if it is
/// missing. Anything else (a FIFO, a device, a file too big) is an InvalidData error.
pub fn read_regular(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Error, ErrorKind, Read};
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidData, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(Error::new(ErrorKind::InvalidData, format!("more than the {cap} bytes vland reads")));
    }
    Ok(Some(bytes))
}

/// The canonical form of `dir`, for records that name it (an owner link).
pub fn canonical(dir: &Path) -> anyhow::Result<PathBuf> {
    dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(mode: u32) -> tempfile::TempDir {
        let d = tempfile::Builder::new().prefix("vland-secure-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        d
    }

    #[test]
    fn a_world_writable_dir_is_refused() {
        let d = scratch(0o777);
        let err = check_trusted_dir(d.path(), "state dir").unwrap_err();
        assert!(format!("{err:#}").contains("writable by group or others"), "{err:#}");
        // The daemon waits for a change rather than retrying it, also under added context.
        let err = crate::reconcile::ApplyError::Kernel(err.context("cannot apply"));
        assert!(err.is_permanent());
    }

    #[test]
    fn a_dir_owned_by_another_user_is_refused() {
        if euid() != 0 {
            return eprintln!("skipped: needs root to chown");
        }
        let d = scratch(0o755);
        std::os::unix::fs::chown(d.path(), Some(65534), None).unwrap();
        let err = format!("{:#}", check_trusted_dir(d.path(), "state dir").unwrap_err());
        assert!(err.contains("owned by uid 65534"), "{err}");
    }

    #[test]
    fn a_dir_under_another_users_dir_is_refused_and_not_created() {
        if euid() != 0 {
            return eprintln!("skipped: needs root to chown");
        }
        let d = scratch(0o755);
        std::os::unix::fs::chown(d.path(), Some(65534), None).unwrap();
        let state = d.path().join("state");
        let err = format!("{:#}", ensure_trusted_dir(&state, "state dir").unwrap_err());
        assert!(err.contains("owned by uid 65534"), "{err}");
        assert!(!state.exists());
        // Made by root inside it, still refused: the user can rename it away and plant another.
        std::fs::create_dir(&state).unwrap();
        assert!(check_trusted_dir(&state, "state dir").is_err());
    }

    /// As a bpffs root mounted with the kernel's default mode (1777) is.
    #[test]
    fn a_dir_created_in_a_sticky_world_writable_dir_is_fine() {
        let d = scratch(0o1777);
        ensure_trusted_dir(&d.path().join("vland"), "bpf_dir").unwrap();
        assert!(check_trusted_dir(d.path(), "bpf_dir").is_err(), "the sticky dir itself is no place for vland's files");
    }

    #[test]
    fn a_root_dir_under_sticky_tmp_is_fine() {
        let d = scratch(0o700);
        ensure_trusted_dir(&d.path().join("a/b"), "state dir").unwrap();
        let mode = std::fs::metadata(d.path().join("a/b")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn write_new_replaces_a_symlink_instead_of_following_it() {
        let d = scratch(0o700);
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let tmp = d.path().join("state.json.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_new(&tmp, b"state").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "state");
        assert!(!std::fs::symlink_metadata(&tmp).unwrap().file_type().is_symlink());
    }

    #[test]
    fn open_nofollow_and_read_regular_refuse_symlinks() {
        let d = scratch(0o700);
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = d.path().join("lock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(open_nofollow(&link).is_err());
        assert!(read_regular(&link, 100).is_err());
        assert!(read_regular(&d.path().join("missing"), 100).unwrap().is_none());
        assert!(read_regular(&victim, 3).is_err());
    }
}
