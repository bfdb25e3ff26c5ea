//! Snapshots as the filesystem shows them: the in-memory table of snapshot names, view
//! slots and generations, and the virtual `/.snapshots` directory built from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use crate::control::{SnapshotInfo, SnapshotList};
use crate::error::{FsError, FsResult};
use crate::fs::node::{SnapView, Tree, MAX_SLOT, SNAPDIR_INO};
use crate::fs::{Attr, Fs};
use crate::meta::{MetaError, Reader, SnapshotError, SnapshotRecord, View};
use crate::types::{FileKind, Ino, Timestamp};

/// The snapshots that exist, by name and by view slot.
#[derive(Default)]
pub struct SnapshotTable {
    by_name: BTreeMap<Vec<u8>, SnapshotRecord>,
    by_slot: HashMap<u32, SnapView>,
}

impl SnapshotTable {
    /// The table of the snapshots `view` holds.
    ///
    /// Fails if the snapshot records cannot be read.
    pub fn load(view: &View) -> Result<SnapshotTable, MetaError> {
        let mut t = SnapshotTable::default();
        for (name, rec) in view.snapshots()? {
            t.insert(name, rec);
        }
        Ok(t)
    }

    /// Adds a snapshot.
    pub fn insert(&mut self, name: Vec<u8>, rec: SnapshotRecord) {
        self.by_slot.insert(
            rec.slot,
            SnapView {
                slot: rec.slot,
                gen: rec.generation,
            },
        );
        self.by_name.insert(name, rec);
    }

    /// Removes a snapshot.
    pub fn remove(&mut self, name: &[u8]) {
        if let Some(rec) = self.by_name.remove(name) {
            self.by_slot.remove(&rec.slot);
        }
    }

    /// Every snapshot, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &SnapshotRecord)> {
        self.by_name.iter()
    }
}

impl Fs {
    fn table(&self) -> std::sync::RwLockReadGuard<'_, SnapshotTable> {
        self.snapshots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The read view of the snapshot with view slot `slot`, if it exists.
    pub(crate) fn snapshot_view(&self, slot: u32) -> Option<SnapView> {
        self.table().by_slot.get(&slot).copied()
    }

    /// The attributes of the root of snapshot `name` (a lookup in `/.snapshots`).
    ///
    /// Fails with `NotFound` if there is no such snapshot.
    pub(crate) fn lookup_snapshot(&self, name: &[u8]) -> FsResult<Attr> {
        match name {
            b"." => return self.snapdir_attr(),
            b".." => return self.getattr(Ino::ROOT),
            _ => {}
        }
        let rec = *self.table().by_name.get(name).ok_or(FsError::NotFound)?;
        let tree = Tree::Snap(SnapView {
            slot: rec.slot,
            gen: rec.generation,
        });
        let root = self
            .view_of(tree)?
            .inode(Ino::ROOT)?
            .ok_or_else(|| FsError::Corrupt("snapshot without a root directory".into()))?;
        Ok(tree.export_attr(root))
    }

    /// The snapshots as `/.snapshots` lists them: name and root inode number.
    pub(crate) fn snapshot_entries(&self) -> Vec<(Vec<u8>, Ino)> {
        self.table()
            .iter()
            .map(|(name, rec)| {
                let tree = Tree::Snap(SnapView {
                    slot: rec.slot,
                    gen: rec.generation,
                });
                (name.clone(), tree.export_ino(Ino::ROOT))
            })
            .collect()
    }

    /// The attributes of `/.snapshots`: a read-only directory owned by the root
    /// directory's owner, changed when the newest snapshot was taken.
    ///
    /// Fails if the root directory cannot be read.
    pub(crate) fn snapdir_attr(&self) -> FsResult<Attr> {
        let mut a = self
            .engine
            .meta
            .view()?
            .inode(Ino::ROOT)?
            .ok_or_else(|| FsError::Corrupt("no root directory".into()))?;
        let table = self.table();
        let newest = table
            .iter()
            .map(|(_, r)| r.created)
            .max()
            .unwrap_or(a.crtime);
        a.ino = SNAPDIR_INO;
        a.kind = FileKind::Dir;
        a.perm = 0o555;
        a.nlink = 2u32.saturating_add(u32::try_from(table.by_name.len()).unwrap_or(u32::MAX));
        a.size = 0;
        a.blocks = 0;
        a.parent = Ino::ROOT;
        a.atime = newest;
        a.mtime = newest;
        a.ctime = newest;
        a.rdev = 0;
        a.flags = 0;
        Ok(a)
    }
}

/// Why a snapshot command failed; the message names the snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotCmdError {
    /// The name is not a valid snapshot name.
    #[error("invalid snapshot name {0:?}: {1}")]
    BadName(String, &'static str),
    /// A snapshot of that name exists.
    #[error("snapshot {0:?} exists")]
    Exists(String),
    /// No snapshot has that name.
    #[error("no snapshot {0:?}")]
    NotFound(String),
    /// The filesystem failed.
    #[error("{0}")]
    Fs(#[from] FsError),
}

/// Checks a snapshot name: 1–255 bytes, no `/` or NUL, not `.` or `..` (it becomes a
/// directory name under `/.snapshots`).
///
/// Fails with `BadName` saying what is wrong.
pub fn check_snapshot_name(name: &str) -> Result<(), SnapshotCmdError> {
    let bad = |why| Err(SnapshotCmdError::BadName(name.to_string(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > crate::fs::NAME_MAX {
        return bad("longer than 255 bytes");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("contains '/' or NUL");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not names");
    }
    Ok(())
}

/// The control-plane description of snapshot `name`.
pub(crate) fn info(name: &[u8], rec: &SnapshotRecord) -> SnapshotInfo {
    SnapshotInfo {
        name: String::from_utf8_lossy(name).into_owned(),
        generation: rec.generation.0,
        created_secs: rec.created.secs,
        created_nanos: rec.created.nanos,
        referenced_bytes: None,
        unique_bytes: None,
        scheduled: None,
    }
}

impl Fs {
    /// Creates snapshot `name` of the live tree: queued behind every change queued so
    /// far, it freezes what every reader saw when it was called (held tails included);
    /// changes queued after it are not in it. O(1) in files and data; durable (packs
    /// and metadata synced) when it returns.
    ///
    /// Fails with `BadName`, `Exists`, or the store's error.
    pub fn create_snapshot(&self, name: &str) -> Result<SnapshotInfo, SnapshotCmdError> {
        check_snapshot_name(name)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let engine = self.engine.clone();
        let key = name.as_bytes().to_vec();
        self.batcher.freeze(Box::new(move || {
            let _ = tx.send(engine.meta.create_snapshot(&key, Timestamp::now()));
        }))?;
        let rec = match rx.recv().map_err(|_| FsError::ShuttingDown)? {
            Ok(rec) => rec,
            Err(SnapshotError::Exists) => return Err(SnapshotCmdError::Exists(name.into())),
            Err(SnapshotError::NotFound) => return Err(SnapshotCmdError::NotFound(name.into())),
            Err(SnapshotError::Meta(e)) => return Err(FsError::from(e).into()),
        };
        if rec.slot > MAX_SLOT {
            let _ = self.engine.meta.delete_snapshot(name.as_bytes());
            return Err(FsError::NoSpace.into());
        }
        self.snapshots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.as_bytes().to_vec(), rec);
        // Durable when it returns, like `zfs snapshot`: packs, then the metadata log.
        self.engine.sync_durable()?;
        tracing::info!(name, generation = rec.generation.0, "snapshot created");
        Ok(info(name.as_bytes(), &rec))
    }

    /// Waits until every change queued so far is committed, held tails included, so
    /// a metadata view shows what readers see.
    ///
    /// Fails with `ShuttingDown` once the batcher stopped.
    pub(crate) fn settle_writes(&self) -> FsResult<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.batcher.freeze(Box::new(move || {
            let _ = tx.send(());
        }))?;
        rx.recv().map_err(|_| FsError::ShuttingDown)
    }

    /// Deletes snapshot `name` at once (it leaves `/.snapshots` and `list`; its inodes
    /// answer ESTALE) and starts the sweep of the versions only it kept.
    ///
    /// Fails with `NotFound` or the store's error.
    pub fn delete_snapshot(&self, name: &str) -> Result<SnapshotInfo, SnapshotCmdError> {
        let rec = match self.engine.meta.delete_snapshot(name.as_bytes()) {
            Ok(rec) => rec,
            Err(SnapshotError::NotFound) => return Err(SnapshotCmdError::NotFound(name.into())),
            Err(SnapshotError::Exists) => return Err(SnapshotCmdError::Exists(name.into())),
            Err(SnapshotError::Meta(e)) => return Err(FsError::from(e).into()),
        };
        self.snapshots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name.as_bytes());
        self.sweeper.kick();
        // The delete survives a crash once it returns (the sweep resumes at mount).
        self.engine.sync_durable()?;
        tracing::info!(name, generation = rec.generation.0, "snapshot deleted");
        Ok(info(name.as_bytes(), &rec))
    }

    /// Every snapshot, in name order; with `space`, the bytes each references and the
    /// bytes only it holds (a walk of its extents, O(extents)).
    ///
    /// Fails if metadata cannot be read.
    pub fn list_snapshots(&self, space: bool) -> FsResult<SnapshotList> {
        let table: Vec<(Vec<u8>, SnapshotRecord)> =
            self.table().iter().map(|(n, r)| (n.clone(), *r)).collect();
        let mut out = Vec::with_capacity(table.len());
        for (name, rec) in &table {
            let mut i = info(name, rec);
            i.scheduled = self.schedule.kind_of(&i.name).map(String::from);
            if space {
                let (referenced, unique) = self.engine.meta.snapshot_space(rec.generation)?;
                i.referenced_bytes = Some(referenced);
                i.unique_bytes = Some(unique);
            }
            out.push(i);
        }
        Ok(SnapshotList {
            snapshots: out,
            sweep_pending: self.sweeper.figures().pending.load(Ordering::SeqCst),
        })
    }

    /// The generation snapshot `name` reads, if it exists.
    pub(crate) fn snapshot_generation(&self, name: &[u8]) -> Option<crate::types::Generation> {
        self.table().by_name.get(name).map(|r| r.generation)
    }

    /// How many snapshots exist.
    pub(crate) fn snapshot_count(&self) -> u64 {
        self.table().by_name.len() as u64
    }
}
