//! Snapshots as the filesystem shows them: the in-memory table of snapshot names, view
//! slots and generations, and the virtual `/.snapshots` directory built from it.

use std::collections::{BTreeMap, HashMap};

use crate::error::{FsError, FsResult};
use crate::fs::node::{SnapView, Tree, SNAPDIR_INO};
use crate::fs::{Attr, Fs};
use crate::meta::{MetaError, Reader, SnapshotRecord, View};
use crate::types::{FileKind, Ino};

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
