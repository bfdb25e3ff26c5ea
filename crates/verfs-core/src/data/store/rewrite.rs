//! GC's side of the pack store: sealing the active pack early, rewriting a sealed pack
//! with only the records still in use, and removing a pack nothing uses.
//!
//! A rewrite keeps the pack's id (metadata names packs, never offsets, so nothing in
//! metadata changes): the survivors are copied byte for byte (an encrypted record stays
//! ciphertext) into `ID.vpk.gc`, which is synced, renamed over `ID.vpk` and made
//! durable with a directory sync; then the cached reader is invalidated. A crash at any
//! instant leaves either the old pack or the new one under the pack's name, both
//! holding every survivor, plus at most a temporary file removed at the next start.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{io, pack_path, space, PackStore};
use crate::crash;
use crate::data::pack::{self, Location, PackError};
use crate::data::packio::{OpenMode, PackFile, PackIo};
use crate::types::{ChunkHash, PackId};

/// Suffix of a pack being rewritten by GC.
pub const TEMP_SUFFIX: &str = ".vpk.gc";

/// What one rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Bytes of the pack before.
    pub old_len: u64,
    /// Bytes of the pack after.
    pub new_len: u64,
    /// Records copied.
    pub kept: usize,
    /// Records found damaged and left out (they read as EIO before and after).
    pub damaged: usize,
}

fn temp_path(dir: &Path, id: PackId) -> PathBuf {
    dir.join(format!("{:016x}{TEMP_SUFFIX}", id.0))
}

/// Removes every temporary pack left by an interrupted rewrite; returns how many.
///
/// Fails if the directory cannot be read or a file cannot be removed.
pub(super) fn remove_temp_packs(fio: &dyn PackIo, dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|s| s.ends_with(TEMP_SUFFIX)) {
            tracing::info!(file = ?name, "removing temporary pack of an interrupted GC");
            fio.remove(&entry.path())?;
            n += 1;
        }
    }
    if n > 0 {
        fio.sync_dir(dir)?;
    }
    Ok(n)
}

impl PackStore {
    /// Bumped by GC before it decides which records of sealed packs to drop. A batch
    /// that appended a chunk under an earlier value must not create a chunk record
    /// from that append in a later transaction: GC may have dropped the record
    /// meanwhile (no chunk record named it when GC looked). Appends made while the
    /// batch holds the generation fence are safe whatever the value: GC decides only
    /// after waiting for every write transaction in flight.
    pub fn drop_epoch(&self) -> u64 {
        self.drop_epoch.load(Ordering::SeqCst)
    }

    /// See [`PackStore::drop_epoch`].
    pub fn bump_drop_epoch(&self) {
        self.drop_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The pack directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of pack `id` on disk, if it exists.
    pub fn pack_len(&self, id: PackId) -> Option<u64> {
        std::fs::metadata(pack_path(&self.dir, id))
            .ok()
            .map(|m| m.len())
    }

    /// Seals the active pack now, unless it holds no records, so GC can rewrite it.
    /// Returns the id sealed.
    ///
    /// Fails if sealing or creating the next pack fails.
    pub fn seal_active_now(&self) -> Result<Option<PackId>, PackError> {
        let mut a = self.lock_writer();
        if a.order.is_empty() {
            return Ok(None);
        }
        let id = a.id();
        self.rotate(&mut a)?;
        Ok(Some(id))
    }

    /// The records of sealed pack `id`, in file order.
    ///
    /// Fails if the pack cannot be opened or its index read.
    pub fn sealed_records(&self, id: PackId) -> Result<Vec<(ChunkHash, Location)>, PackError> {
        let p = self.sealed.get(id)?;
        let mut v = p.index.entries().to_vec();
        v.sort_by_key(|(_, l)| l.offset);
        Ok(v)
    }

    /// Removes sealed pack `id` (nothing uses any of its records); returns its size.
    /// Refuses the active pack.
    ///
    /// Fails if the file cannot be removed or the directory synced.
    pub fn remove_pack(&self, id: PackId) -> Result<u64, PackError> {
        self.refuse_active(id)?;
        let path = pack_path(&self.dir, id);
        let len = std::fs::metadata(&path).map_err(|e| io(id, 0, e))?.len();
        self.fio.remove(&path).map_err(|e| io(id, 0, e))?;
        crash::point("gc-pack-deleted");
        self.fio.sync_dir(&self.dir).map_err(|e| io(id, 0, e))?;
        self.sealed.invalidate(id);
        Ok(len)
    }

    /// Whether `need` bytes may be written by GC: it may use half of the space kept
    /// back from appends, the rest stays for metadata.
    pub fn gc_may_write(&self, need: u64) -> bool {
        match space::disk_space(&self.dir) {
            Some((avail, _)) => avail >= need.saturating_add(self.reserve_bytes / 2),
            None => true,
        }
    }

    /// Rewrites sealed pack `id` with only the records in `keep` (as listed by
    /// [`PackStore::sealed_records`]), under the same id.
    ///
    /// Fails if reading, writing, syncing or renaming fails; the old pack is intact then
    /// and a temporary file may remain until the next start (or the next rewrite).
    pub fn rewrite_pack(
        &self,
        id: PackId,
        keep: &[(ChunkHash, Location)],
    ) -> Result<Rewritten, PackError> {
        self.refuse_active(id)?;
        let old = self.sealed.get(id)?;
        let old_len = old.file.file().size().map_err(|e| io(id, 0, e))?;
        let tmp = temp_path(&self.dir, id);
        let (f, entries, end, damaged) = copy_records(&tmp, self, id, old.file.file(), keep)?;
        let seal = pack::encode_seal(&entries, end);
        f.write_all_at(&seal, end).map_err(|e| io(id, end, e))?;
        crash::point("gc-temp-written");
        f.sync_all().map_err(|e| io(id, 0, e))?;
        crash::point("gc-temp-synced");
        self.fio
            .rename(&tmp, &pack_path(&self.dir, id))
            .map_err(|e| io(id, 0, e))?;
        crash::point("gc-renamed");
        self.fio.sync_dir(&self.dir).map_err(|e| io(id, 0, e))?;
        crash::point("gc-dir-synced");
        self.sealed.invalidate(id);
        drop(old);
        crash::point("gc-reader-dropped");
        Ok(Rewritten {
            old_len,
            new_len: end + seal.len() as u64,
            kept: entries.len(),
            damaged,
        })
    }

    fn refuse_active(&self, id: PackId) -> Result<(), PackError> {
        if self.active_id() == id {
            return Err(io(
                id,
                0,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "pack is active"),
            ));
        }
        Ok(())
    }
}

/// What [`copy_records`] wrote: the new file, its index entries, where the records end,
/// and how many records were found damaged and left out.
type Copied = (
    std::sync::Arc<dyn PackFile>,
    Vec<(ChunkHash, Location)>,
    u64,
    usize,
);

/// Bytes gathered before one positional write into the temporary pack.
const COPY_BUFFER: usize = 1 << 20;

/// Positional writes into a new file through a buffer of [`COPY_BUFFER`] bytes.
struct BufferedAt<'a> {
    file: &'a dyn PackFile,
    buf: Vec<u8>,
    /// Where `buf` starts in the file.
    at: u64,
}

impl BufferedAt<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + bytes.len() > COPY_BUFFER {
            self.flush()?;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all_at(&self.buf, self.at)?;
        self.at += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Copies the records `keep` of pack `id` from `from` into a new file at `tmp`, each
/// checked (magic, hash, CRC) and re-encoded to the identical bytes at its new offset.
fn copy_records(
    tmp: &Path,
    store: &PackStore,
    id: PackId,
    from: &dyn PackFile,
    keep: &[(ChunkHash, Location)],
) -> Result<Copied, PackError> {
    let _ = store.fio.remove(tmp);
    let file = store
        .fio
        .open(tmp, OpenMode::CreateNew(store.perms.file_mode()))
        .map_err(|e| io(id, 0, e))?;
    let mut out = BufferedAt {
        file: &*file,
        buf: Vec::with_capacity(COPY_BUFFER),
        at: 0,
    };
    let header = pack::file_header();
    out.write(&header).map_err(|e| io(id, 0, e))?;
    let mut end = header.len() as u64;
    let (mut entries, mut damaged) = (Vec::with_capacity(keep.len()), 0);
    for (hash, loc) in keep {
        let rec = match pack::read_record(from, id, *loc, hash) {
            Ok(r) => r,
            Err(e @ PackError::Corrupt { .. }) => {
                tracing::error!(error = %e, "damaged record left out of rewritten pack");
                damaged += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let h = rec.header;
        let head = pack::record_head(
            h.hash,
            h.codec,
            h.plain_len,
            rec.nonce.as_ref(),
            &rec.payload,
        );
        out.write(&head)
            .and_then(|_| out.write(&rec.payload))
            .map_err(|e| io(id, end, e))?;
        entries.push((
            *hash,
            Location {
                offset: end,
                stored_len: loc.stored_len,
            },
        ));
        end += (head.len() + rec.payload.len()) as u64;
    }
    out.flush().map_err(|e| io(id, end, e))?;
    Ok((file, entries, end, damaged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::compress;
    use crate::data::hash::ChunkHasher;
    use crate::datadir::DataDirPerms;
    use bytes::Bytes;

    fn store(dir: &Path) -> PackStore {
        let h = ChunkHasher::new(&[3; 16]);
        PackStore::open(dir, DataDirPerms::OWNER_ONLY, 1 << 30, h, true)
            .unwrap()
            .0
    }

    fn put(s: &PackStore, i: u32) -> (ChunkHash, Vec<u8>) {
        let data: Vec<u8> = (0..5000u32).map(|j| (j * 7 + i * 13) as u8).collect();
        let h = s.hasher().hash(&data);
        let stored = compress::compress(&Bytes::copy_from_slice(&data), 3);
        s.append(h, data.len() as u32, &stored).unwrap();
        (h, data)
    }

    #[test]
    fn rewrite_keeps_survivors_drops_the_rest_and_survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let chunks: Vec<_> = (0..10).map(|i| put(&s, i)).collect();
        let id = s.seal_active_now().unwrap().unwrap();
        assert_ne!(s.active_id(), id);
        let recs = s.sealed_records(id).unwrap();
        let keep: Vec<_> = recs
            .iter()
            .filter(|(h, _)| chunks.iter().step_by(3).any(|(c, _)| c == h))
            .copied()
            .collect();
        // A reader opened before the rewrite keeps reading the old file.
        assert_eq!(s.read(id, &chunks[1].0, 5000).unwrap(), chunks[1].1);
        let r = s.rewrite_pack(id, &keep).unwrap();
        assert_eq!(r.kept, 4);
        assert!(r.new_len < r.old_len);
        for (i, (h, data)) in chunks.iter().enumerate() {
            let got = s.read(id, h, 5000);
            if i % 3 == 0 {
                assert_eq!(&got.unwrap(), data);
            } else {
                assert!(matches!(got, Err(PackError::Missing { .. })), "{i}");
            }
        }
        drop(s);
        let s = store(d.path());
        assert_eq!(s.read(id, &chunks[9].0, 5000).unwrap(), chunks[9].1);
        assert!(s.remove_pack(s.active_id()).is_err(), "active pack refused");
        assert_eq!(s.remove_pack(id).unwrap(), r.new_len);
        assert!(s.read(id, &chunks[0].0, 5000).is_err());
    }

    #[test]
    fn temp_packs_are_removed_at_open() {
        let d = tempfile::tempdir().unwrap();
        drop(store(d.path()));
        std::fs::write(temp_path(d.path(), PackId(7)), b"half").unwrap();
        let h = ChunkHasher::new(&[3; 16]);
        let (_, report) =
            PackStore::open(d.path(), DataDirPerms::OWNER_ONLY, 1 << 30, h, true).unwrap();
        assert_eq!(report.temp_removed, 1);
        assert!(!temp_path(d.path(), PackId(7)).exists());
    }
}
