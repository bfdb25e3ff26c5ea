//! Typed reads shared by read views and write transactions.

use surrealkv::Transaction;

use super::keys;
use super::records::{ChunkRecord, Dirent, Extent, Inode, SnapshotRecord};
use super::versioned::{get_visible, scan_visible, ViewAt};
use super::{last_raw_key, scan_raw, MetaError};
use crate::types::{ChunkHash, Ino};

/// Typed read accessors over a transaction at a generation.
///
/// Implemented by [`View`] (read-only) and [`super::WriteTxn`] (which also sees its own
/// uncommitted writes).
pub trait Reader {
    /// The underlying transaction.
    #[doc(hidden)]
    fn tx(&self) -> &Transaction;

    /// Which versions this reader sees: the live tree or a snapshot's generation.
    fn at(&self) -> ViewAt;

    /// The payload of a versioned logical key visible here.
    #[doc(hidden)]
    fn versioned_get(&self, logical: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        get_visible(self.tx(), logical, self.at())
    }

    /// A raw (unversioned) value.
    #[doc(hidden)]
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        self.tx().get(key).map_err(|e| MetaError::kv("get", e))
    }

    /// The inode `ino`, if it exists in this view.
    fn inode(&self, ino: Ino) -> Result<Option<Inode>, MetaError> {
        match self.versioned_get(&keys::inode(ino))? {
            Some(v) => Ok(Some(Inode::decode(ino, &v)?)),
            None => Ok(None),
        }
    }

    /// The entry `name` of directory `parent`, if present.
    fn dirent(&self, parent: Ino, name: &[u8]) -> Result<Option<Dirent>, MetaError> {
        match self.versioned_get(&keys::dirent(parent, name))? {
            Some(v) => Ok(Some(Dirent::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` entries of `parent` whose names sort strictly after `after`.
    fn dir_entries_after(
        &self,
        parent: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Dirent)>, MetaError> {
        let prefix = keys::dirent_prefix(parent);
        let start = match after {
            // The first stored key after every version of `after`.
            Some(name) => keys::prefix_end(&keys::dirent(parent, name))
                .ok_or_else(|| MetaError::corrupt("dirent key overflow".into()))?,
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        scan_visible(self.tx(), &prefix, &start, self.at(), |lk, v| {
            let name = keys::dirent_name(lk)
                .ok_or_else(|| MetaError::corrupt(format!("dirent key {lk:02x?}")))?;
            out.push((name.to_vec(), Dirent::decode(v)?));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Whether directory `parent` has no entries.
    fn dir_is_empty(&self, parent: Ino) -> Result<bool, MetaError> {
        Ok(self.dir_entries_after(parent, None, 1)?.is_empty())
    }

    /// The extents of `ino` that overlap `[start, end)`, in offset order.
    ///
    /// One extent may begin before `start`; it is found by looking back at most
    /// `max_extent_len` bytes.
    fn extents_overlapping(
        &self,
        ino: Ino,
        start: u64,
        end: u64,
        max_extent_len: u64,
    ) -> Result<Vec<Extent>, MetaError> {
        let prefix = keys::extent_prefix(ino);
        let from = keys::extent(ino, start.saturating_sub(max_extent_len));
        let mut out = Vec::new();
        scan_visible(self.tx(), &prefix, &from, self.at(), |lk, v| {
            let off = keys::extent_offset(lk)
                .ok_or_else(|| MetaError::corrupt(format!("extent key {lk:02x?}")))?;
            if off >= end {
                return Ok(false);
            }
            let e = Extent::decode(off, v)?;
            if e.end() > start {
                out.push(e);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every extent of `ino`, in offset order.
    fn all_extents(&self, ino: Ino) -> Result<Vec<Extent>, MetaError> {
        self.extents_overlapping(ino, 0, u64::MAX, 0)
    }

    /// The value of extended attribute `name` of `ino`.
    fn xattr(&self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        self.versioned_get(&keys::xattr(ino, name))
    }

    /// The names of every extended attribute of `ino`, in byte order.
    fn xattr_names(&self, ino: Ino) -> Result<Vec<Vec<u8>>, MetaError> {
        let prefix = keys::xattr_prefix(ino);
        let mut out = Vec::new();
        scan_visible(self.tx(), &prefix, &prefix, self.at(), |lk, _| {
            let name = keys::xattr_name(lk)
                .ok_or_else(|| MetaError::corrupt(format!("xattr key {lk:02x?}")))?;
            out.push(name.to_vec());
            Ok(true)
        })?;
        Ok(out)
    }

    /// The target of symlink `ino`.
    fn symlink(&self, ino: Ino) -> Result<Option<Vec<u8>>, MetaError> {
        self.versioned_get(&keys::symlink(ino))
    }

    /// The chunk record of `hash`.
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<ChunkRecord>, MetaError> {
        match self.raw_get(&keys::chunk(hash))? {
            Some(v) => Ok(Some(ChunkRecord::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// A raw system value.
    fn system(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.raw_get(&keys::system(name))
    }

    /// Up to `limit` inodes with numbers above `after`, in number order.
    fn inodes_after(&self, after: Ino, limit: usize) -> Result<Vec<Inode>, MetaError> {
        let prefix = [keys::prefix::INODE];
        let start = keys::prefix_end(&keys::inode(after))
            .ok_or_else(|| MetaError::corrupt("inode key overflow".into()))?;
        let mut out = Vec::new();
        scan_visible(self.tx(), &prefix, &start, self.at(), |lk, v| {
            let ino = keys::inode_ino(lk)
                .ok_or_else(|| MetaError::corrupt(format!("inode key {lk:02x?}")))?;
            out.push(Inode::decode(ino, v)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Every snapshot, in name order.
    fn snapshots(&self) -> Result<Vec<(Vec<u8>, SnapshotRecord)>, MetaError> {
        let start = [keys::prefix::SNAPSHOT];
        let end = [keys::prefix::SNAPSHOT + 1];
        let mut out = Vec::new();
        scan_raw(self.tx(), &start, &end, |k, v| {
            let name = keys::snapshot_name(k)
                .ok_or_else(|| MetaError::corrupt(format!("snapshot key {k:02x?}")))?;
            out.push((name.to_vec(), SnapshotRecord::decode(v)?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every inode with an orphan marker (unlinked while open).
    fn orphans(&self) -> Result<Vec<Ino>, MetaError> {
        let start = keys::orphan(Ino(0));
        let end = keys::prefix_end(&[keys::prefix::ORPHAN])
            .ok_or_else(|| MetaError::corrupt("orphan key overflow".into()))?;
        let mut out = Vec::new();
        scan_raw(self.tx(), &start, &end, |k, _| {
            if let Some(ino) = keys::orphan_ino(k) {
                out.push(ino);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Visits every chunk record until `visit` returns `false`.
    fn for_each_chunk(
        &self,
        mut visit: impl FnMut(ChunkHash, ChunkRecord) -> Result<bool, MetaError>,
    ) -> Result<(), MetaError>
    where
        Self: Sized,
    {
        let start = [keys::prefix::CHUNK];
        let end = [keys::prefix::CHUNK + 1];
        scan_raw(self.tx(), &start, &end, |k, v| {
            let hash = keys::chunk_hash(k)
                .ok_or_else(|| MetaError::corrupt(format!("chunk key {k:02x?}")))?;
            visit(hash, ChunkRecord::decode(v)?)
        })
    }

    /// The highest inode number that has an inode record version.
    fn max_ino(&self) -> Result<Ino, MetaError> {
        let start = [keys::prefix::INODE];
        let end = [keys::prefix::INODE + 1];
        match last_raw_key(self.tx(), &start, &end)? {
            Some(k) => {
                let (lk, _) = keys::split_stored(&k)
                    .ok_or_else(|| MetaError::corrupt(format!("inode key {k:02x?}")))?;
                keys::inode_ino(lk).ok_or_else(|| MetaError::corrupt(format!("inode key {k:02x?}")))
            }
            None => Ok(Ino(0)),
        }
    }
}

/// A consistent read-only view: an MVCC snapshot of the live tree or of one frozen
/// generation. Holding it never blocks writers; it sees nothing committed after it was
/// taken.
pub struct View {
    tx: Transaction,
    at: ViewAt,
}

impl View {
    pub(crate) fn new(tx: Transaction, at: ViewAt) -> View {
        View { tx, at }
    }
}

impl Reader for View {
    fn tx(&self) -> &Transaction {
        &self.tx
    }

    fn at(&self) -> ViewAt {
        self.at
    }
}
