//! Write transactions: typed writes that follow the versioned-record rules.

use std::sync::Arc;

use surrealkv::Transaction;

use super::keys;
use super::reader::Reader;
use super::records::{ChunkRecord, Dirent, Extent, Inode};
use super::versioned::{encode, get_live, seen_by_snapshot, ViewAt};
use super::MetaError;
use crate::types::{ChunkHash, Generation, Ino};

/// What a versioned write did to the previously visible version of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Nothing was visible (absent or a tombstone).
    Absent,
    /// The previous version (payload given) no longer exists in storage: its references
    /// (chunk refcounts) must be dropped.
    Replaced(Vec<u8>),
    /// The previous version (payload given) is kept for an older view (snapshot): its
    /// references stay.
    Retained(Vec<u8>),
}

/// What replacing or removing one extent did to the one visible before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtentChange {
    /// The previous extent, if its version is gone from storage: its chunk loses a
    /// reference. (A version kept for a snapshot keeps its reference.)
    pub dropped: Option<Extent>,
    /// Length of the previously visible extent (0 if there was none).
    pub previous_len: u64,
}

impl ExtentChange {
    fn from_prior(offset: u64, prior: Prior) -> Result<ExtentChange, MetaError> {
        Ok(match prior {
            Prior::Replaced(old) => {
                let e = Extent::decode(offset, &old)?;
                ExtentChange {
                    dropped: Some(e),
                    previous_len: u64::from(e.len),
                }
            }
            Prior::Retained(old) => ExtentChange {
                dropped: None,
                previous_len: u64::from(Extent::decode(offset, &old)?.len),
            },
            Prior::Absent => ExtentChange::default(),
        })
    }
}

/// A write transaction at the live generation; see [`super::Store::write`].
pub struct WriteTxn {
    tx: Transaction,
    gen: Generation,
    /// Generations of the snapshots that exist, sorted: a replaced version is kept
    /// (frozen) only if one of them sees it.
    snapshots: Arc<Vec<u64>>,
    /// Inodes written, for the unsynced-inode set (see `unsynced.rs`).
    touched: Vec<Ino>,
    /// Inodes whose writes here stay out of that set: files whose data changes the
    /// intent log carries (see `write/intent.rs`).
    untracked: Vec<Ino>,
}

impl Reader for WriteTxn {
    fn tx(&self) -> &Transaction {
        &self.tx
    }

    fn at(&self) -> ViewAt {
        ViewAt::Live
    }
}

impl WriteTxn {
    pub(crate) fn new(tx: Transaction, gen: Generation, snapshots: Arc<Vec<u64>>) -> WriteTxn {
        WriteTxn {
            tx,
            gen,
            snapshots,
            touched: Vec::new(),
            untracked: Vec::new(),
        }
    }

    /// Leaves `ino` out of the unsynced-inode set when this transaction commits: the
    /// batcher's data change to a file whose changes the intent log carries, so that
    /// file's next fsync may still take the log's fast path (`write/intent.rs`).
    pub fn untrack(&mut self, ino: Ino) {
        self.untracked.push(ino);
    }

    /// The inodes to add to the unsynced-inode set once this transaction commits.
    pub(crate) fn take_touched(&mut self) -> Vec<Ino> {
        let mut touched = std::mem::take(&mut self.touched);
        touched.retain(|ino| !self.untracked.contains(ino));
        touched
    }

    pub(crate) async fn commit(mut self) -> Result<(), MetaError> {
        self.tx
            .commit()
            .await
            .map_err(|e| MetaError::kv("commit", e))
    }

    pub(crate) fn rollback(mut self) {
        self.tx.rollback();
    }

    /// Generations of the snapshots that exist, sorted.
    pub(crate) fn snapshot_gens(&self) -> &[u64] {
        &self.snapshots
    }

    pub(crate) fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), MetaError> {
        self.tx.set(key, value).map_err(|e| MetaError::kv("set", e))
    }

    pub(crate) fn del(&mut self, key: &[u8]) -> Result<(), MetaError> {
        self.tx.delete(key).map_err(|e| MetaError::kv("delete", e))
    }

    /// Ends the live version `(birth, old)` of `logical` now: freezes it when a snapshot
    /// still sees it, else reports it gone from storage.
    fn retire(
        &mut self,
        logical: &[u8],
        birth: Generation,
        old: Vec<u8>,
    ) -> Result<Prior, MetaError> {
        if birth < self.gen && seen_by_snapshot(&self.snapshots, birth, self.gen) {
            self.set(&keys::frozen(logical, birth), &encode(self.gen, &old))?;
            Ok(Prior::Retained(old))
        } else {
            Ok(Prior::Replaced(old))
        }
    }

    /// Writes a new live version of `logical`, born at the live generation.
    fn put_versioned(&mut self, logical: &[u8], value: &[u8]) -> Result<Prior, MetaError> {
        let prior = match get_live(&self.tx, logical)? {
            Some((birth, old)) => self.retire(logical, birth, old)?,
            None => Prior::Absent,
        };
        self.set(&keys::live(logical), &encode(self.gen, value))?;
        Ok(prior)
    }

    /// Removes `logical` from the live view; a snapshot that saw it keeps it.
    fn delete_versioned(&mut self, logical: &[u8]) -> Result<Prior, MetaError> {
        let Some((birth, old)) = get_live(&self.tx, logical)? else {
            return Ok(Prior::Absent);
        };
        self.del(&keys::live(logical))?;
        self.retire(logical, birth, old)
    }

    /// Writes inode `inode.ino`.
    pub fn put_inode(&mut self, inode: &Inode) -> Result<(), MetaError> {
        self.touched.push(inode.ino);
        self.put_versioned(&keys::inode(inode.ino), &inode.encode())
            .map(|_| ())
    }

    /// Removes inode `ino` from the live view.
    pub fn delete_inode(&mut self, ino: Ino) -> Result<(), MetaError> {
        self.touched.push(ino);
        self.delete_versioned(&keys::inode(ino)).map(|_| ())
    }

    /// Writes entry `name` of `parent`.
    pub fn put_dirent(&mut self, parent: Ino, name: &[u8], d: &Dirent) -> Result<(), MetaError> {
        self.put_versioned(&keys::dirent(parent, name), &d.encode())
            .map(|_| ())
    }

    /// Removes entry `name` of `parent`.
    pub fn delete_dirent(&mut self, parent: Ino, name: &[u8]) -> Result<(), MetaError> {
        self.delete_versioned(&keys::dirent(parent, name))
            .map(|_| ())
    }

    /// Writes an extent; reports the extent it replaces (for chunk refcounts and the
    /// inode's stored bytes).
    pub fn put_extent(&mut self, ino: Ino, e: &Extent) -> Result<ExtentChange, MetaError> {
        let prior = self.put_versioned(&keys::extent(ino, e.offset), &e.encode())?;
        ExtentChange::from_prior(e.offset, prior)
    }

    /// Removes the extent at `offset`; reports what it removed.
    pub fn delete_extent(&mut self, ino: Ino, offset: u64) -> Result<ExtentChange, MetaError> {
        let prior = self.delete_versioned(&keys::extent(ino, offset))?;
        ExtentChange::from_prior(offset, prior)
    }

    /// Sets extended attribute `name` of `ino`.
    pub fn put_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<(), MetaError> {
        self.put_versioned(&keys::xattr(ino, name), value)
            .map(|_| ())
    }

    /// Removes extended attribute `name` of `ino`; returns whether it existed.
    pub fn delete_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<bool, MetaError> {
        Ok(self.delete_versioned(&keys::xattr(ino, name))? != Prior::Absent)
    }

    /// Writes the target of symlink `ino`.
    pub fn put_symlink(&mut self, ino: Ino, target: &[u8]) -> Result<(), MetaError> {
        self.put_versioned(&keys::symlink(ino), target).map(|_| ())
    }

    /// Removes the target of symlink `ino`.
    pub fn delete_symlink(&mut self, ino: Ino) -> Result<(), MetaError> {
        self.delete_versioned(&keys::symlink(ino)).map(|_| ())
    }

    /// Writes a chunk record and keeps the zero-ref index in step with its refcount;
    /// `prev` is the record this replaces (if any), so the `Z` key is only touched when
    /// the refcount crosses zero.
    pub fn put_chunk(
        &mut self,
        hash: &ChunkHash,
        c: &ChunkRecord,
        prev: Option<&ChunkRecord>,
    ) -> Result<(), MetaError> {
        self.set(&keys::chunk(hash), &c.encode())?;
        let was_zero = prev.map(|p| p.refcount == 0);
        match (c.refcount == 0, was_zero) {
            (true, Some(false) | None) => self.set(&keys::zero_ref(hash), &[]),
            (false, Some(true)) => self.del(&keys::zero_ref(hash)),
            _ => Ok(()),
        }
    }

    /// GC stage 1: deletes the record and `Z` mark of `hash` if it is still at
    /// refcount 0 (inside this transaction, so a reference taken concurrently either
    /// commits first and keeps the chunk, or conflicts and retries after the delete,
    /// finding no record and storing the bytes again). A `Z` mark without a record is
    /// dropped too. Returns the deleted record.
    ///
    /// Fails only if SurrealKV fails.
    pub fn delete_unreferenced_chunk(
        &mut self,
        hash: &ChunkHash,
    ) -> Result<Option<ChunkRecord>, MetaError> {
        match self.chunk(hash)? {
            Some(c) if c.refcount == 0 => {
                self.del(&keys::chunk(hash))?;
                self.del(&keys::zero_ref(hash))?;
                Ok(Some(c))
            }
            Some(_) => Ok(None),
            None => {
                self.del(&keys::zero_ref(hash))?;
                Ok(None)
            }
        }
    }

    /// `fsck --repair`: removes one stored version of the extent at `offset` of `ino`
    /// (the live one, or the frozen one born at `frozen`), so every view that saw it sees
    /// a hole there. Unlike [`WriteTxn::delete_extent`] nothing is retired for snapshots:
    /// the version's bytes are gone and a snapshot must not keep pointing at them.
    pub fn purge_extent_version(
        &mut self,
        ino: Ino,
        offset: u64,
        frozen: Option<Generation>,
    ) -> Result<(), MetaError> {
        let logical = keys::extent(ino, offset);
        match frozen {
            None => self.del(&keys::live(&logical)),
            Some(birth) => self.del(&keys::frozen(&logical, birth)),
        }
    }

    /// `fsck --repair`: sets the refcount of `hash`'s record to `refcount` and its `Z`
    /// mark to match, whatever they were.
    pub fn force_chunk_refcount(
        &mut self,
        hash: &ChunkHash,
        c: &ChunkRecord,
        refcount: u64,
    ) -> Result<(), MetaError> {
        let fixed = ChunkRecord { refcount, ..*c };
        self.set(&keys::chunk(hash), &fixed.encode())?;
        self.set_zero_mark(hash, refcount == 0)
    }

    /// `fsck --repair`: sets or clears the `Z` mark of `hash`.
    pub fn set_zero_mark(&mut self, hash: &ChunkHash, marked: bool) -> Result<(), MetaError> {
        if marked {
            self.set(&keys::zero_ref(hash), &[])
        } else {
            self.del(&keys::zero_ref(hash))
        }
    }

    /// `fsck --repair`: removes the record and `Z` mark of a chunk nothing references
    /// and whose bytes are gone (GC could not free it: its pack is missing or damaged).
    pub fn drop_chunk_record(&mut self, hash: &ChunkHash) -> Result<(), MetaError> {
        self.del(&keys::chunk(hash))?;
        self.del(&keys::zero_ref(hash))
    }

    /// Marks `ino` as unlinked while open.
    pub fn set_orphan(&mut self, ino: Ino) -> Result<(), MetaError> {
        self.set(&keys::orphan(ino), &[])
    }

    /// Clears the orphan mark of `ino`.
    pub fn clear_orphan(&mut self, ino: Ino) -> Result<(), MetaError> {
        self.del(&keys::orphan(ino))
    }

    /// Writes a system value.
    pub fn set_system(&mut self, name: &str, value: &[u8]) -> Result<(), MetaError> {
        self.set(&keys::system(name), value)
    }

    /// Removes a system value (a state that ended, e.g. a finished scrub's cursor);
    /// removing an absent one is not an error.
    pub fn delete_system(&mut self, name: &str) -> Result<(), MetaError> {
        self.del(&keys::system(name))
    }
}
