//! The last parse of a file vland reads again and again: the state and the front-end fragments,
//! read by every apply and every engine call, whose parsing grows with the number of endpoints.
//! A parse is reused only while the file is the very same one (device, inode, size, change and
//! modification times): any write, replacement or rename changes at least one of them, and the
//! change time cannot be set from user space. (vland saves by rename, so each save is a new
//! inode; only an in-place edit of the same size within one tick of a file system that keeps
//! whole seconds could go unseen, and both files live in root's own state dir.)
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Clone, PartialEq, Eq)]
struct Identity {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
}

/// The file at `path` as it is now, if it is a regular file (not followed through a symlink).
fn identity(path: &Path) -> Option<Identity> {
    let m = std::fs::symlink_metadata(path).ok()?;
    m.is_file().then(|| Identity {
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        ctime: (m.ctime(), m.ctime_nsec()),
        mtime: (m.mtime(), m.mtime_nsec()),
    })
}

/// One file's last parse (a single entry: the daemon has one state dir).
pub struct FileCache<T> {
    last: Mutex<Option<Entry<T>>>,
}

struct Entry<T> {
    id: Identity,
    value: T,
    /// Written (and synced) by this process, rather than found on disk.
    written: bool,
}

impl<T: Clone> Default for FileCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> FileCache<T> {
    pub const fn new() -> Self {
        Self { last: Mutex::new(None) }
    }

    /// What `read` returns for `path`, or the parse kept from the last time, if the file has not
    /// changed since. The identity is taken before reading: a change while `read` runs only
    /// means the next call reads again.
    pub fn read_through<E>(&self, path: &Path, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let before = identity(path);
        if let Some(id) = &before
            && let Some(kept) = &*self.lock()
            && kept.id == *id
        {
            return Ok(kept.value.clone());
        }
        let value = read()?;
        if let Some(id) = before {
            *self.lock() = Some(Entry { id, value: value.clone(), written: false });
        }
        Ok(value)
    }

    /// Records that `path` now holds `value` (called right after writing and syncing it).
    pub fn wrote(&self, path: &Path, value: &T) {
        *self.lock() = identity(path).map(|id| Entry { id, value: value.clone(), written: true });
    }

    /// Whether `path` is still the very file this process last wrote, holding `value`: writing
    /// `value` again would change nothing on disk (and what it holds was synced then). A file
    /// only read, not written, does not count: its writer may have crashed before syncing it.
    pub fn still_holds(&self, path: &Path, value: &T) -> bool
    where
        T: PartialEq,
    {
        let now = identity(path);
        self.lock().as_ref().is_some_and(|kept| kept.written && Some(&kept.id) == now.as_ref() && kept.value == *value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Entry<T>>> {
        // A panic while holding it leaves at worst a stale entry, which the identity check refuses.
        self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_file_is_parsed_again_only_after_it_changed() {
        let dir = tempfile::Builder::new().prefix("vland-cache-").tempdir_in("/tmp").unwrap();
        let path = dir.path().join("f");
        let cache = FileCache::<String>::new();
        let reads = Cell::new(0);
        let read = || -> Result<String, std::io::Error> {
            reads.set(reads.get() + 1);
            std::fs::read_to_string(&path)
        };
        std::fs::write(&path, "one").unwrap();
        assert_eq!(cache.read_through(&path, read).unwrap(), "one");
        assert_eq!(cache.read_through(&path, read).unwrap(), "one");
        assert_eq!(reads.get(), 1);
        // Same size, written in place: the change time tells.
        std::fs::write(&path, "two").unwrap();
        assert_eq!(cache.read_through(&path, read).unwrap(), "two");
        assert_eq!(reads.get(), 2);
        // Replaced by rename, as vland saves.
        std::fs::write(dir.path().join("g"), "six").unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        assert_eq!(cache.read_through(&path, read).unwrap(), "six");
        assert_eq!(reads.get(), 3);
        cache.wrote(&path, &"six, as written".to_string());
        assert_eq!(cache.read_through(&path, read).unwrap(), "six, as written");
        assert_eq!(reads.get(), 3);
        std::fs::remove_file(&path).unwrap();
        assert!(cache.read_through(&path, read).is_err(), "a missing file is read, not remembered");
    }

    #[test]
    fn only_the_file_last_written_unchanged_still_holds_a_value() {
        let dir = tempfile::Builder::new().prefix("vland-cache-").tempdir_in("/tmp").unwrap();
        let path = dir.path().join("f");
        let cache = FileCache::<String>::new();
        std::fs::write(&path, "one").unwrap();
        cache.read_through(&path, || std::fs::read_to_string(&path)).unwrap();
        assert!(!cache.still_holds(&path, &"one".to_string()), "read, not written by this process");
        cache.wrote(&path, &"one".to_string());
        assert!(cache.still_holds(&path, &"one".to_string()));
        assert!(!cache.still_holds(&path, &"two".to_string()), "another value");
        std::fs::write(dir.path().join("g"), "one").unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        assert!(!cache.still_holds(&path, &"one".to_string()), "replaced since, even by the same bytes");
        std::fs::remove_file(&path).unwrap();
        assert!(!cache.still_holds(&path, &"one".to_string()), "gone");
    }
}
