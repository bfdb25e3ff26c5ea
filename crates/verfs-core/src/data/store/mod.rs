//! The pack store: one active pack that records are appended to, sealed packs that are
//! only read, rotation at `pack_max_size`, and the second index of the two-index rule
//! (chunk hash → offset inside the pack named by the metadata).
//!
//! Readers never wait for writers: the appender holds its mutex across `pwrite`,
//! sealing and creating packs, but a reader only takes the pointer to the active pack's
//! view and that view's index lock, each for one access (`active`), or the sealed-pack
//! cache (`sealed`). GC's pack rewrite and removal live in `rewrite`.

mod active;
mod encrypted;
#[cfg(test)]
pub(crate) mod fault_tests;
mod rewrite;
mod sealed;
mod space;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;

use super::compress::{self, Stored};
use super::hash::ChunkHasher;
use super::pack::{self, Location, PackError};
use super::packio::{FileIo, OpenMode, PackFile, PackIo};
use crate::datadir::DataDirPerms;
use crate::types::{ChunkHash, PackId};
use active::{ActivePack, ActiveView};
pub use rewrite::{Rewritten, TEMP_SUFFIX};
use sealed::SealedCache;
pub(crate) use space::disk_space;

/// Where a chunk record is: in the active pack or in a sealed one.
enum Located {
    Active(Arc<dyn PackFile>, Location),
    Sealed(Arc<sealed::SealedPack>, Location),
}

impl Located {
    fn file(&self) -> &dyn PackFile {
        match self {
            Located::Active(f, _) => &**f,
            Located::Sealed(s, _) => s.file.file(),
        }
    }

    fn loc(&self) -> Location {
        match self {
            Located::Active(_, l) | Located::Sealed(_, l) => *l,
        }
    }
}

/// What startup found in the pack directory.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// The active pack after opening.
    pub active: Option<PackId>,
    /// Bytes cut from the active pack's damaged or half-written tail.
    pub truncated_bytes: u64,
    /// Unsealed packs that were sealed at startup (left behind by a crash mid-rotation).
    pub sealed_at_startup: Vec<PackId>,
    /// Temporary packs of an interrupted GC rewrite that were removed.
    pub temp_removed: usize,
}

/// Appends chunk records to packs and reads them back by (pack id, hash).
pub struct PackStore {
    dir: PathBuf,
    /// Where pack files live: the local directory, or a fault-injecting one in tests.
    fio: Arc<dyn PackIo>,
    perms: DataDirPerms,
    max_bytes: u64,
    hasher: ChunkHasher,
    /// The appender's state; held across appends, seals and rotations.
    writer: Mutex<ActivePack>,
    /// What readers of the active pack see; swapped (briefly locked) at rotation.
    current: RwLock<Arc<ActiveView>>,
    dirty: AtomicBool,
    /// Set by the first failed sync, for the rest of the process (fsyncgate): after a
    /// failed fsync Linux may have dropped the dirty pages and marked them clean, so a
    /// retry could succeed without the data; every later sync fails instead.
    sync_failed: std::sync::OnceLock<String>,
    sealed: SealedCache,
    reserve_bytes: u64,
    /// Bumped by GC before it decides which records of a pack to drop (see
    /// [`PackStore::drop_epoch`]).
    drop_epoch: AtomicU64,
    /// What opens encrypted records, with the plain chunks it opened: set while the
    /// vault is unlocked, dropped whole when it locks.
    unlocked: RwLock<Option<Arc<encrypted::Unlocked>>>,
    /// Capacity of the vault's plain-chunk cache at the next unlock.
    vault_cache_bytes: u64,
}

/// The file of pack `id` in pack directory `dir`: the one place that names pack files,
/// shared with the offline checker.
pub fn pack_path(dir: &Path, id: PackId) -> PathBuf {
    dir.join(format!("{:016x}.vpk", id.0))
}

fn io(pack: PackId, offset: u64, cause: std::io::Error) -> PackError {
    PackError::io(pack, offset, cause)
}

/// The error of every sync after a failed one: EIO (an error without an OS code
/// becomes EIO at the errno edge), naming the first failure and what to do.
fn sync_poisoned(pack: PackId, first: &str) -> PackError {
    let cause = std::io::Error::other(format!(
        "an earlier sync failed ({first}); data written before it may not be on disk: \
         unmount and run `verfsnext fsck --read-data`"
    ));
    io(pack, 0, cause)
}

/// Pack ids present in `dir`, ascending; other files are ignored.
///
/// Fails if the directory cannot be read.
pub fn list_packs(dir: &Path) -> std::io::Result<Vec<PackId>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name.strip_suffix(".vpk") else {
            continue;
        };
        if hex.len() == 16 {
            if let Ok(v) = u64::from_str_radix(hex, 16) {
                ids.push(PackId(v));
            }
        }
    }
    ids.sort();
    Ok(ids)
}

impl PackStore {
    /// Opens the pack directory: removes temporary packs of an interrupted GC rewrite,
    /// seals stray unsealed packs and rebuilds the active pack's index by scanning it.
    /// After an unclean shutdown (`clean == false`) a torn tail past the last valid
    /// record is cut; damaged records followed by valid ones are never cut (they read
    /// as corrupt, the rest stays readable).
    ///
    /// The directory and new packs get `perms`' modes.
    ///
    /// Fails if the directory cannot be created or read, or a pack cannot be opened.
    pub fn open(
        dir: &Path,
        perms: DataDirPerms,
        max_bytes: u64,
        hasher: ChunkHasher,
        clean: bool,
    ) -> Result<(PackStore, OpenReport), PackError> {
        Self::open_with_io(FileIo::shared(), dir, perms, max_bytes, hasher, clean)
    }

    /// [`PackStore::open`] on the storage `fio` (tests pass a fault-injecting one).
    ///
    /// Fails as [`PackStore::open`] does.
    pub fn open_with_io(
        fio: Arc<dyn PackIo>,
        dir: &Path,
        perms: DataDirPerms,
        max_bytes: u64,
        hasher: ChunkHasher,
        clean: bool,
    ) -> Result<(PackStore, OpenReport), PackError> {
        perms.create_dir_all(dir).map_err(|e| io(PackId(0), 0, e))?;
        let removed = rewrite::remove_temp_packs(&*fio, dir).map_err(|e| io(PackId(0), 0, e))?;
        let mut report = OpenReport {
            temp_removed: removed,
            ..OpenReport::default()
        };
        let ids = list_packs(dir).map_err(|e| io(PackId(0), 0, e))?;
        let active = Self::open_active(&*fio, dir, perms, &ids, clean, &mut report)?;
        report.active = Some(active.id());
        let store = PackStore {
            dir: dir.to_path_buf(),
            sealed: SealedCache::new(dir, fio.clone()),
            fio,
            perms,
            max_bytes,
            hasher,
            current: RwLock::new(active.view.clone()),
            writer: Mutex::new(active),
            dirty: AtomicBool::new(false),
            sync_failed: std::sync::OnceLock::new(),
            reserve_bytes: space::reserve_for(dir),
            drop_epoch: AtomicU64::new(0),
            unlocked: RwLock::new(None),
            vault_cache_bytes: encrypted::PLAIN_CACHE_BYTES,
        };
        Ok((store, report))
    }

    /// Seals every unsealed pack but the newest (left by a crash between appending a
    /// pack's last record and sealing it) and reopens the newest unsealed one, or
    /// creates a new active pack.
    fn open_active(
        fio: &dyn PackIo,
        dir: &Path,
        perms: DataDirPerms,
        ids: &[PackId],
        clean: bool,
        report: &mut OpenReport,
    ) -> Result<ActivePack, PackError> {
        let mut unsealed = Vec::new();
        for &id in ids {
            let f = fio
                .open(&pack_path(dir, id), OpenMode::Read)
                .map_err(|e| io(id, 0, e))?;
            let len = f.size().map_err(|e| io(id, 0, e))?;
            if !pack::is_sealed(&*f, id, len)? {
                unsealed.push(id);
            }
        }
        let newest_unsealed = unsealed.last().copied().filter(|id| Some(id) == ids.last());
        for &id in &unsealed {
            if Some(id) != newest_unsealed {
                ActivePack::seal_existing(fio, dir, id, !clean)?;
                report.sealed_at_startup.push(id);
            }
        }
        match newest_unsealed {
            Some(id) => {
                let (a, cut) = ActivePack::reopen(fio, dir, id, !clean)?;
                report.truncated_bytes = cut;
                Ok(a)
            }
            None => {
                let next = ids.last().map(|p| PackId(p.0 + 1)).unwrap_or(PackId(1));
                ActivePack::create(fio, dir, perms, next)
            }
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, ActivePack> {
        // A panic while holding the lock cannot leave the pack half-updated in memory in a
        // way later appends misread (len is only advanced after a successful write), so a
        // poisoned lock is taken over.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Arc<ActiveView> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The hasher that names chunks in this store.
    pub fn hasher(&self) -> &ChunkHasher {
        &self.hasher
    }

    /// Appends one compressed chunk and returns the pack it landed in. Rotates to a new
    /// pack (sealing the old one, synced) when the active pack reached its size limit.
    ///
    /// Fails on a write error (ENOSPC included); the pack length is not advanced then, so
    /// the next append overwrites the partial record.
    pub fn append(
        &self,
        hash: ChunkHash,
        plain_len: u32,
        stored: &Stored,
    ) -> Result<PackId, PackError> {
        let head = pack::record_head(
            hash,
            stored.codec,
            plain_len,
            stored.nonce.as_ref(),
            &stored.bytes,
        );
        let rec_len = (head.len() + stored.bytes.len()) as u64;
        self.check_space(rec_len)?;
        let mut a = self.lock_writer();
        a.append(hash, &head, &stored.bytes)?;
        let id = a.id();
        self.dirty.store(true, Ordering::Release);
        if a.len >= self.max_bytes {
            self.rotate(&mut a)?;
        } else {
            a.flush_behind();
        }
        Ok(id)
    }

    /// Refuses an append that would eat into the space kept free for metadata commits
    /// and a clean shutdown, so a full disk fails writes with ENOSPC but never the WAL.
    fn check_space(&self, need: u64) -> Result<(), PackError> {
        let Some((avail, _)) = disk_space(&self.dir) else {
            return Ok(());
        };
        if avail < need.saturating_add(self.reserve_bytes) {
            return Err(io(
                self.active_id(),
                0,
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        Ok(())
    }

    /// Seals the active pack and starts the next one. Readers keep finding the sealed
    /// pack's records: in the old view until the swap, in the sealed cache after it.
    fn rotate(&self, a: &mut ActivePack) -> Result<(), PackError> {
        a.seal()?;
        let next = ActivePack::create(&*self.fio, &self.dir, self.perms, PackId(a.id().0 + 1))?;
        let old = std::mem::replace(a, next);
        let index = pack::index_from_scan(&old.order, old.len);
        if let Err(e) = self.sealed.insert_sealed(old.id(), index) {
            tracing::warn!(error = %e, "sealed pack not cached; opened on first read");
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = a.view.clone();
        tracing::debug!(sealed = %old.id(), active = %a.id(), "rotated pack");
        Ok(())
    }

    /// Reads a chunk back: locate it in the pack's index, check the record's magic, its
    /// hash field against `hash` and its CRC32C (which covers the hash field and the
    /// payload), and decode. Plain bytes are not re-hashed: the CRC already ties the
    /// payload to the id it was stored under.
    ///
    /// Fails with `Missing` if the pack does not hold the chunk, `Corrupt` if a check
    /// fails, `Io` on a read error.
    pub fn read(
        &self,
        pack_id: PackId,
        hash: &ChunkHash,
        plain_len: u32,
    ) -> Result<Bytes, PackError> {
        if let Some(plain) = self.unlocked().and_then(|u| u.cached(hash)) {
            return Ok(plain);
        }
        let at = self.locate(pack_id, hash)?;
        let (offset, rec) = (
            at.loc().offset,
            pack::read_record(at.file(), pack_id, at.loc(), hash)?,
        );
        let codec = rec.header.codec;
        let payload = match rec.nonce {
            None => rec.payload,
            Some(nonce) => {
                let u = self.unlocked().ok_or(PackError::Locked {
                    pack: pack_id,
                    offset,
                })?;
                if let Some(plain) = u.cached(hash) {
                    return Ok(plain);
                }
                let plain = u.open(pack_id, offset, &rec.header, &nonce, &rec.payload)?;
                let plain = compress::decompress(codec, plain, plain_len as usize)
                    .map_err(|e| PackError::corrupt_at(pack_id, offset, e.to_string()))?;
                u.remember(*hash, plain.clone());
                return Ok(plain);
            }
        };
        let plain = compress::decompress(codec, payload, plain_len as usize).map_err(|e| {
            PackError::Corrupt {
                pack: pack_id,
                offset,
                what: e.to_string(),
            }
        })?;
        Ok(plain)
    }

    /// Appends the plain bytes of a chunk to `out`. A raw record is read straight into
    /// `out` (no buffer of its own, no copy); a compressed one is decoded and copied.
    ///
    /// Fails as [`PackStore::read`] does; `out` keeps its length on failure.
    pub fn read_into(
        &self,
        pack_id: PackId,
        hash: &ChunkHash,
        plain_len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), PackError> {
        let at = self.locate(pack_id, hash)?;
        if at.loc().stored_len == plain_len
            && pack::read_raw_payload_into(at.file(), pack_id, at.loc(), hash, out)?
        {
            return Ok(());
        }
        if at.loc().stored_len as usize == plain_len as usize + encrypted::TAG_LEN {
            if let Some(u) = self.unlocked() {
                if u.read_raw_into(&at, (pack_id, hash, plain_len), out)? {
                    return Ok(());
                }
            }
        }
        let plain = self.read(pack_id, hash, plain_len)?;
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Lookups in sealed-pack indexes so far: (answered from memory, read from disk).
    pub fn index_cache_counts(&self) -> (u64, u64) {
        self.sealed.counts()
    }

    /// Sizes the two caches to their shares of the daemon's memory budget: sealed pack
    /// indexes (`index_bytes`, emptied by this call, so call it before serving) and the
    /// vault's plain chunks (`vault_bytes`, from the next unlock on).
    pub fn set_cache_limits(&mut self, index_bytes: u64, vault_bytes: u64) {
        self.sealed = SealedCache::with_capacity(&self.dir, self.fio.clone(), index_bytes);
        self.vault_cache_bytes = vault_bytes;
    }

    /// Bytes the caches hold now: (sealed pack indexes, vault plain chunks).
    pub fn cache_bytes(&self) -> (u64, u64) {
        let vault = self.unlocked().map_or(0, |u| u.cached_bytes());
        (self.sealed.weighted_size(), vault)
    }

    /// Whether the pack holds a readable record of `hash` (used by recovery).
    pub fn contains(&self, pack_id: PackId, hash: &ChunkHash) -> bool {
        self.locate(pack_id, hash).is_ok()
    }

    /// The active pack's id.
    pub fn active_id(&self) -> PackId {
        self.current().id
    }

    fn locate(&self, pack_id: PackId, hash: &ChunkHash) -> Result<Located, PackError> {
        let missing = || PackError::Missing {
            pack: pack_id,
            hash: *hash,
        };
        let view = self.current();
        if view.id == pack_id {
            let loc = view.find(hash).ok_or_else(missing)?;
            return Ok(Located::Active(view.file.clone(), loc));
        }
        let sealed = self.sealed.get(pack_id)?;
        let loc = sealed.index.find(hash).ok_or_else(missing)?;
        sealed.file.note_read(loc.offset, u64::from(loc.stored_len));
        Ok(Located::Sealed(sealed, loc))
    }

    /// Whether a pack sync has failed (every later one fails too: fsyncgate).
    pub fn sync_has_failed(&self) -> bool {
        self.sync_failed.get().is_some()
    }

    /// Makes every appended record durable (fdatasync of the active pack). Sealed packs
    /// were synced when they were sealed.
    ///
    /// Fails if the sync fails, and from then on every time (EIO naming the first
    /// failure): records appended before it may not be on disk, and no later sync can
    /// tell (PostgreSQL's "fsyncgate"). A remount re-checks the pack's records.
    pub fn sync(&self) -> Result<(), PackError> {
        if let Some(first) = self.sync_failed.get() {
            return Err(sync_poisoned(self.current().id, first));
        }
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let view = self.current();
        view.file.sync_data().map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            let first = format!("{}: {e}", view.id);
            if self.sync_failed.set(first).is_ok() {
                tracing::error!(pack = %view.id, error = %e, "pack sync failed: every later fsync fails too until a remount re-checks the pack (unmount, then `verfsnext fsck --read-data`)");
            }
            io(view.id, 0, e)
        })
    }

    /// Number of pack files and their total bytes on disk (for stats).
    pub fn usage(&self) -> (u64, u64) {
        let Ok(ids) = list_packs(&self.dir) else {
            return (0, 0);
        };
        let bytes = ids
            .iter()
            .filter_map(|id| std::fs::metadata(pack_path(&self.dir, *id)).ok())
            .map(|m| m.len())
            .sum();
        (ids.len() as u64, bytes)
    }
}

#[cfg(test)]
mod tests;
