//! The pack store: one active pack that records are appended to, sealed packs that are
//! only read, rotation at `pack_max_size`, and the second index of the two-index rule
//! (chunk hash → offset inside the pack named by the metadata).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use moka::sync::Cache;

use super::compress::{self, Stored};
use super::hash::ChunkHasher;
use super::pack::{self, Location, PackError, SealedIndex};
use super::readahead::SealedFile;
use crate::datadir::DataDirPerms;
use crate::types::{ChunkHash, PackId};

/// Open read handles kept for sealed packs.
const READER_CACHE_ENTRIES: u64 = 256;
/// Bytes of sealed-pack indexes kept in memory.
const INDEX_CACHE_BYTES: u64 = 64 << 20;
/// Writeback of the active pack is started every time this much was appended since the
/// last start (flush-behind). Without it the page cache collects everything appended
/// between syncs, and an `fsync` of one small file waits for all of it to reach the
/// disk (one of the causes in `architecture.md`, "fsync under load"). 1 MiB rather
/// than 8: 15.7-16.9 sqlite commits/s during a copy against 12.8-14.9, alternating, and
/// the same 1 GiB write time (3.9-4.9 s against 4.3-4.6 s).
const FLUSH_BEHIND: u64 = 1 << 20;

/// The pack being appended to.
struct ActivePack {
    id: PackId,
    file: Arc<File>,
    len: u64,
    /// Writeback has been started for everything below this offset.
    writeback_from: u64,
    index: HashMap<ChunkHash, Location>,
    order: Vec<(ChunkHash, Location)>,
}

impl ActivePack {
    /// Starts writeback of what was appended since the last start once that reaches
    /// [`FLUSH_BEHIND`]; it does not wait for it, and durability still comes from
    /// [`PackStore::sync`].
    fn flush_behind(&mut self) {
        let len = self.len - self.writeback_from;
        if len < FLUSH_BEHIND {
            return;
        }
        let (Ok(off), Ok(n)) = (
            libc::off64_t::try_from(self.writeback_from),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: sync_file_range only reads its integer arguments; a failure (e.g. a
        // filesystem without support) leaves the pages to normal writeback.
        let rc = unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE)
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "sync_file_range");
        }
        self.writeback_from = self.len;
    }
}

/// Where a chunk record is: in the active pack or in a sealed one.
enum Located {
    Active(Arc<File>, Location),
    Sealed(Arc<SealedFile>, Location),
}

impl Located {
    fn file(&self) -> &File {
        match self {
            Located::Active(f, _) => f,
            Located::Sealed(s, _) => s.file(),
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
}

/// Appends chunk records to packs and reads them back by (pack id, hash).
pub struct PackStore {
    dir: PathBuf,
    perms: DataDirPerms,
    max_bytes: u64,
    hasher: ChunkHasher,
    active: Mutex<ActivePack>,
    dirty: AtomicBool,
    readers: Cache<PackId, Arc<SealedFile>>,
    indexes: Cache<PackId, Arc<SealedIndex>>,
    index_hits: AtomicU64,
    index_misses: AtomicU64,
    reserve_bytes: u64,
}

/// Available and total bytes of the filesystem holding `dir`.
fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a zeroed out-parameter of the
    // type statvfs(3) writes.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let f = st.f_frsize.max(1);
    Some((st.f_bavail.saturating_mul(f), st.f_blocks.saturating_mul(f)))
}

/// Space kept free for metadata: 2% of the disk, at least 4 MiB, at most 256 MiB.
fn reserve_for(dir: &Path) -> u64 {
    let total = disk_space(dir).map_or(0, |(_, t)| t);
    (total / 50).clamp(4 << 20, 256 << 20)
}

/// The file of pack `id` in pack directory `dir`: the one place that names pack files,
/// shared with the offline checker.
pub fn pack_path(dir: &Path, id: PackId) -> PathBuf {
    dir.join(format!("{:016x}.vpk", id.0))
}

fn io(pack: PackId, offset: u64, cause: std::io::Error) -> PackError {
    PackError::io(pack, offset, cause)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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
    /// Opens the pack directory: seals stray unsealed packs and rebuilds the active
    /// pack's index by scanning it. After an unclean shutdown (`clean == false`) a torn
    /// tail past the last valid record is cut; damaged records followed by valid ones
    /// are never cut (they read as corrupt, the rest stays readable).
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
        perms.create_dir_all(dir).map_err(|e| io(PackId(0), 0, e))?;
        let ids = list_packs(dir).map_err(|e| io(PackId(0), 0, e))?;
        let mut report = OpenReport::default();
        let mut unsealed = Vec::new();
        for &id in &ids {
            let f = File::open(pack_path(dir, id)).map_err(|e| io(id, 0, e))?;
            let len = f.metadata().map_err(|e| io(id, 0, e))?.len();
            if !pack::is_sealed(&f, id, len)? {
                unsealed.push(id);
            }
        }
        // Every unsealed pack but the newest was left by a crash between appending its
        // last record and sealing it: seal it now.
        let newest_unsealed = unsealed.last().copied().filter(|id| Some(id) == ids.last());
        for &id in &unsealed {
            if Some(id) != newest_unsealed {
                Self::seal_existing(dir, id, !clean)?;
                report.sealed_at_startup.push(id);
            }
        }
        let active = match newest_unsealed {
            Some(id) => {
                let (a, cut) = Self::reopen_active(dir, id, !clean)?;
                report.truncated_bytes = cut;
                a
            }
            None => {
                let next = ids.last().map(|p| PackId(p.0 + 1)).unwrap_or(PackId(1));
                Self::create_pack(dir, perms, next)?
            }
        };
        report.active = Some(active.id);
        let store = PackStore {
            dir: dir.to_path_buf(),
            perms,
            max_bytes,
            hasher,
            active: Mutex::new(active),
            dirty: AtomicBool::new(false),
            readers: Cache::new(READER_CACHE_ENTRIES),
            indexes: Cache::builder()
                .weigher(|_, v: &Arc<SealedIndex>| v.weight())
                .max_capacity(INDEX_CACHE_BYTES)
                .build(),
            index_hits: AtomicU64::new(0),
            index_misses: AtomicU64::new(0),
            reserve_bytes: reserve_for(dir),
        };
        Ok((store, report))
    }

    fn create_pack(dir: &Path, perms: DataDirPerms, id: PackId) -> Result<ActivePack, PackError> {
        let path = pack_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(perms.file_mode())
            .open(&path)
            .map_err(|e| io(id, 0, e))?;
        let header = pack::file_header();
        file.write_all_at(&header, 0).map_err(|e| io(id, 0, e))?;
        file.sync_all().map_err(|e| io(id, 0, e))?;
        sync_dir(dir).map_err(|e| io(id, 0, e))?;
        Ok(ActivePack {
            id,
            file: Arc::new(file),
            len: header.len() as u64,
            writeback_from: header.len() as u64,
            index: HashMap::new(),
            order: Vec::new(),
        })
    }

    fn reopen_active(
        dir: &Path,
        id: PackId,
        cut_torn_tail: bool,
    ) -> Result<(ActivePack, u64), PackError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(pack_path(dir, id))
            .map_err(|e| io(id, 0, e))?;
        let len = file.metadata().map_err(|e| io(id, 0, e))?.len();
        if len < pack::HEADER_LEN {
            // Crash while creating it: rewrite the header.
            file.write_all_at(&pack::file_header(), 0)
                .map_err(|e| io(id, 0, e))?;
            file.set_len(pack::HEADER_LEN).map_err(|e| io(id, 0, e))?;
        } else if let Err(e) = pack::check_file_header(&file, id) {
            tracing::error!(error = %e, "active pack header damaged; scanning its records anyway");
        }
        let len = len.max(pack::HEADER_LEN);
        let scan = pack::scan_records(&file, id, len)?;
        for (from, to) in &scan.damaged {
            tracing::error!(%id, from, to, "damaged records in pack; chunks there read as EIO");
        }
        let mut end = len;
        let mut cut = 0;
        if scan.damaged_tail {
            if cut_torn_tail {
                cut = len - scan.valid_end;
                tracing::warn!(%id, cut, "cutting half-written tail of active pack");
                file.set_len(scan.valid_end)
                    .map_err(|e| io(id, scan.valid_end, e))?;
                file.sync_all().map_err(|e| io(id, 0, e))?;
                end = scan.valid_end;
            } else {
                tracing::error!(%id, from = scan.valid_end, "damaged bytes after the last record of an unsealed pack kept; appending after them");
            }
        }
        let index = scan.entries.iter().copied().collect();
        Ok((
            ActivePack {
                id,
                file: Arc::new(file),
                len: end,
                writeback_from: end,
                index,
                order: scan.entries,
            },
            cut,
        ))
    }

    fn seal_existing(dir: &Path, id: PackId, cut_torn_tail: bool) -> Result<(), PackError> {
        let (a, _) = Self::reopen_active(dir, id, cut_torn_tail)?;
        Self::seal(&a)
    }

    /// Appends the index and footer and syncs the pack, making it immutable.
    fn seal(a: &ActivePack) -> Result<(), PackError> {
        let seal = pack::encode_seal(&a.order, a.len);
        a.file
            .write_all_at(&seal, a.len)
            .map_err(|e| io(a.id, a.len, e))?;
        a.file.sync_all().map_err(|e| io(a.id, a.len, e))
    }

    fn lock_active(&self) -> MutexGuard<'_, ActivePack> {
        // A panic while holding the lock cannot leave the pack half-updated in memory in a
        // way later appends misread (len is only advanced after a successful write), so a
        // poisoned lock is taken over.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
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
        let head = pack::record_head(hash, stored.codec, plain_len, None, &stored.bytes);
        let rec_len = (head.len() + stored.bytes.len()) as u64;
        self.check_space(rec_len)?;
        let mut a = self.lock_active();
        let off = a.len;
        let written = a
            .file
            .write_all_at(&head, off)
            .and_then(|_| a.file.write_all_at(&stored.bytes, off + head.len() as u64));
        if let Err(e) = written {
            // Drop the partial record so the pack ends at its last whole record.
            let _ = a.file.set_len(off);
            return Err(io(a.id, off, e));
        }
        let loc = Location {
            offset: off,
            stored_len: stored.bytes.len() as u32,
        };
        a.len += rec_len;
        a.index.insert(hash, loc);
        a.order.push((hash, loc));
        let id = a.id;
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

    fn rotate(&self, a: &mut ActivePack) -> Result<(), PackError> {
        Self::seal(a)?;
        let next = Self::create_pack(&self.dir, self.perms, PackId(a.id.0 + 1))?;
        let old = std::mem::replace(a, next);
        tracing::debug!(sealed = %old.id, active = %a.id, "rotated pack");
        self.indexes
            .insert(old.id, Arc::new(pack::index_from_scan(&old.order, old.len)));
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
        let at = self.locate(pack_id, hash)?;
        let (offset, rec) = (
            at.loc().offset,
            pack::read_record(at.file(), pack_id, at.loc(), hash)?,
        );
        let plain = compress::decompress(rec.header.codec, rec.payload, plain_len as usize)
            .map_err(|e| PackError::Corrupt {
                pack: pack_id,
                offset,
                what: e.to_string(),
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
        let plain = self.read(pack_id, hash, plain_len)?;
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Lookups in sealed-pack indexes so far: (answered from memory, read from disk).
    pub fn index_cache_counts(&self) -> (u64, u64) {
        (
            self.index_hits.load(Ordering::Relaxed),
            self.index_misses.load(Ordering::Relaxed),
        )
    }

    /// Whether the pack holds a readable record of `hash` (used by recovery).
    pub fn contains(&self, pack_id: PackId, hash: &ChunkHash) -> bool {
        self.locate(pack_id, hash).is_ok()
    }

    /// The active pack's id.
    pub fn active_id(&self) -> PackId {
        self.lock_active().id
    }

    fn locate(&self, pack_id: PackId, hash: &ChunkHash) -> Result<Located, PackError> {
        {
            let a = self.lock_active();
            if a.id == pack_id {
                let loc = a.index.get(hash).copied().ok_or(PackError::Missing {
                    pack: pack_id,
                    hash: *hash,
                })?;
                return Ok(Located::Active(a.file.clone(), loc));
            }
        }
        let sealed = self.sealed_reader(pack_id)?;
        let index = self.sealed_index(pack_id, sealed.file())?;
        let loc = index.find(hash).ok_or(PackError::Missing {
            pack: pack_id,
            hash: *hash,
        })?;
        sealed.note_read(loc.offset, u64::from(loc.stored_len));
        Ok(Located::Sealed(sealed, loc))
    }

    fn sealed_reader(&self, id: PackId) -> Result<Arc<SealedFile>, PackError> {
        if let Some(f) = self.readers.get(&id) {
            return Ok(f);
        }
        let file = File::open(pack_path(&self.dir, id)).map_err(|e| io(id, 0, e))?;
        let f = Arc::new(SealedFile::new(file));
        self.readers.insert(id, f.clone());
        Ok(f)
    }

    fn sealed_index(&self, id: PackId, file: &File) -> Result<Arc<SealedIndex>, PackError> {
        if let Some(i) = self.indexes.get(&id) {
            self.index_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(i);
        }
        self.index_misses.fetch_add(1, Ordering::Relaxed);
        let len = file.metadata().map_err(|e| io(id, 0, e))?.len();
        let index = match pack::read_sealed_index(file, id, len)? {
            Some(i) => i,
            None => {
                tracing::warn!(%id, "sealed pack index unreadable; rebuilding it by scanning");
                let scan = pack::scan_records(file, id, len)?;
                pack::index_from_scan(&scan.entries, scan.valid_end)
            }
        };
        let index = Arc::new(index);
        self.indexes.insert(id, index.clone());
        Ok(index)
    }

    /// Makes every appended record durable (fdatasync of the active pack). Sealed packs
    /// were synced when they were sealed.
    ///
    /// Fails if the sync fails; the data may then not be on disk.
    pub fn sync(&self) -> Result<(), PackError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let (file, id) = {
            let a = self.lock_active();
            (a.file.clone(), a.id)
        };
        file.sync_data().map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            io(id, 0, e)
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
mod tests {
    use super::*;

    fn store(dir: &Path, max: u64) -> PackStore {
        PackStore::open(
            dir,
            DataDirPerms::OWNER_ONLY,
            max,
            ChunkHasher::new(&[9; 16]),
            true,
        )
        .unwrap()
        .0
    }

    fn put(s: &PackStore, data: &[u8]) -> (ChunkHash, PackId) {
        let h = s.hasher().hash(data);
        let stored = compress::compress(&Bytes::copy_from_slice(data), 3);
        (h, s.append(h, data.len() as u32, &stored).unwrap())
    }

    #[test]
    fn append_read_rotate_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 4096);
        let mut chunks = Vec::new();
        for i in 0..50u32 {
            let data: Vec<u8> = (0..1000u32)
                .map(|j| ((i * 7919 + j * 31) % 251) as u8)
                .collect();
            let (h, p) = put(&s, &data);
            chunks.push((h, p, data));
        }
        assert!(s.active_id().0 > 1, "should have rotated");
        for (h, p, data) in &chunks {
            assert_eq!(&s.read(*p, h, data.len() as u32).unwrap(), data);
        }
        s.sync().unwrap();
        drop(s);
        let s = store(d.path(), 4096);
        for (h, p, data) in &chunks {
            assert_eq!(&s.read(*p, h, data.len() as u32).unwrap(), data);
        }
        let missing = ChunkHash([0xEE; 16]);
        assert!(matches!(
            s.read(PackId(1), &missing, 1),
            Err(PackError::Missing { .. })
        ));
    }

    #[test]
    fn packs_are_created_with_the_data_dir_file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("packs");
        let s = store(&dir, 4096);
        for i in 0..50u32 {
            let data: Vec<u8> = (0..1000u32)
                .map(|j| ((i * 7919 + j * 31) % 251) as u8)
                .collect();
            put(&s, &data);
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let ids = list_packs(&dir).unwrap();
        assert!(ids.len() > 1, "no rotation");
        for id in ids {
            assert_eq!(mode(&pack_path(&dir, id)), 0o600, "{id}");
        }
    }

    #[test]
    fn torn_active_tail_is_cut_at_reopen() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 1 << 30);
        let (h1, p1) = put(&s, &[1u8; 5000]);
        let (h2, _) = put(&s, &vec![2u8; 7000]);
        let id = s.active_id();
        drop(s);
        let path = pack_path(d.path(), id);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (s, report) = PackStore::open(
            d.path(),
            DataDirPerms::OWNER_ONLY,
            1 << 30,
            ChunkHasher::new(&[9; 16]),
            false,
        )
        .unwrap();
        assert!(report.truncated_bytes > 0);
        assert_eq!(s.read(p1, &h1, 5000).unwrap(), vec![1u8; 5000]);
        assert!(!s.contains(id, &h2));
        // Appending continues cleanly after the cut.
        let (h3, p3) = put(&s, &[3u8; 100]);
        assert_eq!(s.read(p3, &h3, 100).unwrap(), vec![3u8; 100]);
    }

    #[test]
    fn unsealed_older_pack_is_sealed_at_open() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 1 << 30);
        let (h1, p1) = put(&s, &[4u8; 300]);
        drop(s);
        // Simulate a crash after creating the next pack but before sealing the first.
        PackStore::create_pack(d.path(), DataDirPerms::OWNER_ONLY, PackId(p1.0 + 1)).unwrap();
        let (s, report) = PackStore::open(
            d.path(),
            DataDirPerms::OWNER_ONLY,
            1 << 30,
            ChunkHasher::new(&[9; 16]),
            false,
        )
        .unwrap();
        assert_eq!(report.sealed_at_startup, vec![p1]);
        assert_eq!(s.read(p1, &h1, 300).unwrap(), vec![4u8; 300]);
    }

    #[test]
    fn clean_open_keeps_records_after_a_damaged_one() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 1 << 30);
        let noise = |seed: u32| -> Vec<u8> {
            (0..3000u32)
                .map(|j| (j.wrapping_mul(2654435761).wrapping_add(seed) >> 11) as u8)
                .collect()
        };
        let (d1, d2) = (noise(1), noise(2));
        let (h1, p1) = put(&s, &d1);
        let (h2, p2) = put(&s, &d2);
        drop(s);
        let f = OpenOptions::new()
            .write(true)
            .open(pack_path(d.path(), p1))
            .unwrap();
        f.write_all_at(&[0xAB; 64], pack::HEADER_LEN + 100).unwrap();
        let len = f.metadata().unwrap().len();
        let (s, report) = PackStore::open(
            d.path(),
            DataDirPerms::OWNER_ONLY,
            1 << 30,
            ChunkHasher::new(&[9; 16]),
            true,
        )
        .unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(
            std::fs::metadata(pack_path(d.path(), p1)).unwrap().len(),
            len
        );
        assert!(s.read(p1, &h1, 3000).is_err());
        assert_eq!(s.read(p2, &h2, 3000).unwrap(), d2);
    }

    #[test]
    fn corrupted_record_reads_as_corrupt_not_wrong_bytes() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 1 << 30);
        let data = vec![7u8; 2000];
        let (h, p) = put(&s, &data);
        let f = OpenOptions::new()
            .write(true)
            .open(pack_path(d.path(), p))
            .unwrap();
        f.write_all_at(&[0x55; 4], pack::HEADER_LEN + 40).unwrap();
        assert!(matches!(
            s.read(p, &h, 2000),
            Err(PackError::Corrupt { .. })
        ));
    }
}
