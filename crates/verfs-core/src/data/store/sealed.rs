//! Sealed packs kept open for reading: the file handle and its index in one cache
//! entry, so a reader always pairs an index with the file it describes, and GC can
//! replace a pack (rename a rewritten one over it) by invalidating one entry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;

use super::{io, pack_path};
use crate::data::pack::{self, PackError, SealedIndex};
use crate::data::packio::{OpenMode, PackFile, PackIo};
use crate::data::readahead::SealedFile;
use crate::types::PackId;

/// Bytes of sealed-pack indexes kept in memory until the daemon's memory budget sets it
/// ([`SealedCache::with_capacity`]).
pub(super) const INDEX_CACHE_BYTES: u64 = 64 << 20;
/// Least weight of one entry, so at most `capacity / MIN_WEIGHT` (256 at 64 MiB) pack
/// files are held open.
const MIN_WEIGHT: u32 = 256 << 10;

/// An open sealed pack and its index.
pub(crate) struct SealedPack {
    pub file: SealedFile,
    pub index: SealedIndex,
}

/// The cache of open sealed packs.
pub(super) struct SealedCache {
    dir: PathBuf,
    fio: Arc<dyn PackIo>,
    cache: Cache<PackId, Arc<SealedPack>>,
    /// Bumped whenever a pack file is replaced or removed: a reader that opened a pack
    /// before the bump does not cache what it opened (it may be the old file).
    replaced: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SealedCache {
    pub fn new(dir: &Path, fio: Arc<dyn PackIo>) -> SealedCache {
        SealedCache::with_capacity(dir, fio, INDEX_CACHE_BYTES)
    }

    /// An empty cache holding at most `capacity` bytes of indexes.
    pub fn with_capacity(dir: &Path, fio: Arc<dyn PackIo>, capacity: u64) -> SealedCache {
        SealedCache {
            dir: dir.to_path_buf(),
            fio,
            cache: Cache::builder()
                .weigher(|_, v: &Arc<SealedPack>| v.index.weight().max(MIN_WEIGHT))
                .max_capacity(capacity.max(u64::from(MIN_WEIGHT)))
                .build(),
            replaced: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The open pack `id`, opening it and loading its index on a miss (rebuilding the
    /// index by a scan when the stored one is unreadable).
    ///
    /// Fails if the pack cannot be opened or read.
    pub fn get(&self, id: PackId) -> Result<Arc<SealedPack>, PackError> {
        if let Some(p) = self.cache.get(&id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(p);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stamp = self.replaced.load(Ordering::SeqCst);
        let file = self.open(id)?;
        let index = load_index(&*file, id)?;
        let p = Arc::new(SealedPack {
            file: SealedFile::new(file),
            index,
        });
        if self.replaced.load(Ordering::SeqCst) == stamp {
            self.cache.insert(id, p.clone());
        }
        Ok(p)
    }

    /// Caches a pack just sealed with the index built while appending to it.
    ///
    /// Fails if the sealed file cannot be reopened for reading.
    pub fn insert_sealed(&self, id: PackId, index: SealedIndex) -> Result<(), PackError> {
        let file = self.open(id)?;
        let p = SealedPack {
            file: SealedFile::new(file),
            index,
        };
        self.cache.insert(id, Arc::new(p));
        Ok(())
    }

    fn open(&self, id: PackId) -> Result<Arc<dyn PackFile>, PackError> {
        self.fio
            .open(&pack_path(&self.dir, id), OpenMode::Read)
            .map_err(|e| io(id, 0, e))
    }

    /// Drops the entry of a pack whose file was replaced or removed; readers holding
    /// the old entry finish on the old file, new readers open the new one.
    pub fn invalidate(&self, id: PackId) {
        self.replaced.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(&id);
        // moka keeps a removed value until its housekeeping runs; the file handle it
        // holds would keep a deleted pack's space from coming back.
        self.cache.run_pending_tasks();
    }

    /// Bytes of indexes held now (each pack weighs at least 256 KiB).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Index lookups so far: (answered from memory, read from disk).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

fn load_index(file: &dyn PackFile, id: PackId) -> Result<SealedIndex, PackError> {
    let len = file.size().map_err(|e| io(id, 0, e))?;
    match pack::read_sealed_index(file, id, len)? {
        Some(i) => Ok(i),
        None => {
            tracing::warn!(%id, "sealed pack index unreadable; rebuilding it by scanning");
            let scan = pack::scan_records(file, id, len)?;
            Ok(pack::index_from_scan(&scan.entries, scan.valid_end))
        }
    }
}
