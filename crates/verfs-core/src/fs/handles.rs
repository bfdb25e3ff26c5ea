//! Open file and directory handles, per-inode open counts, and the guard that keeps an
//! `open` from racing with the unlink that frees an inode.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::engine::WindowSlot;
use crate::error::{FsError, FsResult};
use crate::fs::node::Tree;
use crate::meta::View;
use crate::types::{FileHandle, Ino};

/// What an open file handle allows, and its read state.
#[derive(Debug, Clone)]
pub struct FileOpen {
    /// The inode.
    pub ino: Ino,
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// Extents located by earlier reads through this handle.
    pub window: Arc<WindowSlot>,
    /// For a file inside the vault, the vault epoch it was opened in (it works only
    /// until the vault locks); `None` outside the vault.
    pub vault: Option<u64>,
}

/// A directory stream: a snapshot of the directory taken at `opendir`, plus where the
/// last `readdir` stopped, so a directory changing underneath (rm -rf) never makes the
/// listing skip or repeat entries.
pub struct DirStream {
    /// The directory (the stored inode in `tree`).
    pub ino: Ino,
    /// The tree the directory is in.
    pub tree: Tree,
    /// For `/.snapshots`: the snapshots when it was opened (name, root inode number).
    pub listing: Option<Vec<(Vec<u8>, Ino)>>,
    /// The MVCC snapshot the listing reads.
    pub view: View,
    /// Offset of the next entry after the last one returned, with that entry's name.
    pub cursor: Option<(u64, Vec<u8>)>,
    /// For a directory inside the vault, the vault epoch it was opened in.
    pub vault: Option<u64>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    files: HashMap<u64, FileOpen>,
    dirs: HashMap<u64, Arc<Mutex<DirStream>>>,
    open_count: HashMap<Ino, u32>,
    unlinking: HashSet<Ino>,
}

/// The handle table.
#[derive(Default)]
pub struct Handles {
    inner: Mutex<Inner>,
    unlinked: Condvar,
}

impl Handles {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an open file; waits while an unlink of the same inode is deciding
    /// whether to free it, so the caller can then check the inode still exists.
    pub fn open_file(&self, f: FileOpen) -> FileHandle {
        let mut g = self.lock();
        while g.unlinking.contains(&f.ino) {
            g = self.unlinked.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.next += 1;
        let fh = g.next;
        *g.open_count.entry(f.ino).or_default() += 1;
        g.files.insert(fh, f);
        FileHandle(fh)
    }

    /// The state of an open file handle; fails with `BadHandle` if unknown.
    pub fn file(&self, fh: FileHandle) -> FsResult<FileOpen> {
        self.lock()
            .files
            .get(&fh.0)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// The inodes of open files inside the vault (whose kernel caches a lock must drop).
    pub fn vault_inodes(&self) -> Vec<Ino> {
        let g = self.lock();
        let mut v: Vec<Ino> = g
            .files
            .values()
            .filter(|f| f.vault.is_some())
            .map(|f| f.ino)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Forgets a file handle; returns its inode and whether it was the inode's last.
    pub fn close_file(&self, fh: FileHandle) -> Option<(Ino, bool)> {
        let mut g = self.lock();
        let f = g.files.remove(&fh.0)?;
        let last = match g.open_count.get_mut(&f.ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                g.open_count.remove(&f.ino);
                true
            }
        };
        Some((f.ino, last))
    }

    /// Marks `ino` as being unlinked and reports whether it is open. While marked, opens
    /// of it wait; [`Handles::end_unlink`] lifts the mark.
    pub fn begin_unlink(&self, ino: Ino) -> bool {
        let mut g = self.lock();
        while g.unlinking.contains(&ino) {
            g = self.unlinked.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.unlinking.insert(ino);
        g.open_count.contains_key(&ino)
    }

    /// Ends an unlink started with [`Handles::begin_unlink`].
    pub fn end_unlink(&self, ino: Ino) {
        self.lock().unlinking.remove(&ino);
        self.unlinked.notify_all();
    }

    /// Registers a directory stream.
    pub fn open_dir(&self, d: DirStream) -> FileHandle {
        let mut g = self.lock();
        g.next += 1;
        let fh = g.next;
        g.dirs.insert(fh, Arc::new(Mutex::new(d)));
        FileHandle(fh)
    }

    /// A directory stream; fails with `BadHandle` if unknown.
    pub fn dir(&self, fh: FileHandle) -> FsResult<Arc<Mutex<DirStream>>> {
        self.lock()
            .dirs
            .get(&fh.0)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// Forgets a directory stream.
    pub fn close_dir(&self, fh: FileHandle) {
        self.lock().dirs.remove(&fh.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_counts_track_last_close() {
        let h = Handles::default();
        let f = FileOpen::from_flags(Ino(9), libc::O_RDONLY);
        let a = h.open_file(f.clone());
        let b = h.open_file(f);
        assert_eq!(h.close_file(a), Some((Ino(9), false)));
        assert_eq!(h.close_file(b), Some((Ino(9), true)));
        assert_eq!(h.close_file(b), None);
        assert!(h.file(a).is_err());
    }

    #[test]
    fn unlink_mark_reports_open_state() {
        let h = Handles::default();
        assert!(!h.begin_unlink(Ino(3)));
        h.end_unlink(Ino(3));
        let _fh = h.open_file(FileOpen::from_flags(Ino(3), libc::O_RDWR));
        assert!(h.file(_fh).is_ok());
        assert!(h.begin_unlink(Ino(3)));
        h.end_unlink(Ino(3));
    }
}
