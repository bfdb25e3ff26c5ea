//! `packs/.DISCARD`: GC's log of chunks whose records were deleted, so stage 2 knows
//! which packs hold how many dead bytes without scanning every chunk record (byte
//! table in `docs/format.md`).
//!
//! Entries are hints, never trusted for safety: stage 2 keeps every record whose chunk
//! record still names its pack, whatever the log says. So recovery may cut the log
//! freely; the worst a lost entry costs is space not reclaimed.
//!
//! ```text
//! file   := header entry*
//! header := "VFSDISC1" version:u32 reserved:u32 epoch:u64                  24 bytes
//! entry  := run:u64 pack_id:u64 hash:[16] stored_len:u32 crc32c:u32       40 bytes
//! ```
//!
//! Little-endian; the entry CRC covers its first 36 bytes. The checkpoint (`Y
//! gc.discard_checkpoint`, committed with the chunk-record deletes the entries
//! describe) names the file epoch and the length up to which entries count. Compaction
//! writes a new file with the next epoch and renames it over the old one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::datadir::DataDirPerms;
use crate::types::{ChunkHash, PackId};

/// The file name inside the pack directory.
pub const DISCARD_FILE: &str = ".DISCARD";
const MAGIC: &[u8; 8] = b"VFSDISC1";
const VERSION: u32 = 1;
/// Header bytes.
pub const HEADER_LEN: u64 = 24;
/// Bytes per entry.
pub const ENTRY_LEN: u64 = 40;

/// Errors of the discard log.
#[derive(Debug, Error)]
pub enum DiscardError {
    /// The OS failed a read, write or sync.
    #[error(".DISCARD: {0}")]
    Io(#[from] std::io::Error),
    /// The file is of a version this build does not read.
    #[error(".DISCARD is version {0}; this build reads version {VERSION}")]
    Version(u32),
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct HeaderRaw {
    magic: [u8; 8],
    version: U32,
    reserved: U32,
    epoch: U64,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct EntryRaw {
    run: U64,
    pack_id: U64,
    hash: [u8; 16],
    stored_len: U32,
    crc: U32,
}

/// One chunk GC deleted: which pack holds its (now dead) record, and how big it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscardEntry {
    /// The GC run that deleted it.
    pub run: u64,
    /// The pack holding the record.
    pub pack: PackId,
    /// The chunk.
    pub hash: ChunkHash,
    /// Its payload length.
    pub stored_len: u32,
}

impl DiscardEntry {
    /// The 40 bytes of the entry.
    pub fn encode(&self) -> [u8; ENTRY_LEN as usize] {
        let mut raw = EntryRaw {
            run: U64::new(self.run),
            pack_id: U64::new(self.pack.0),
            hash: self.hash.0,
            stored_len: U32::new(self.stored_len),
            crc: U32::new(0),
        };
        raw.crc = U32::new(crc32c::crc32c(&raw.as_bytes()[..36]));
        let mut out = [0u8; ENTRY_LEN as usize];
        out.copy_from_slice(raw.as_bytes());
        out
    }

    /// Decodes one entry; `None` if its CRC does not match (a torn or damaged entry).
    pub fn decode(bytes: &[u8]) -> Option<DiscardEntry> {
        let raw = EntryRaw::read_from_bytes(bytes).ok()?;
        if crc32c::crc32c(&bytes[..36]) != raw.crc.get() {
            return None;
        }
        Some(DiscardEntry {
            run: raw.run.get(),
            pack: PackId(raw.pack_id.get()),
            hash: ChunkHash(raw.hash),
            stored_len: raw.stored_len.get(),
        })
    }
}

/// Up to where the log counts: file epoch and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The epoch in the file header.
    pub epoch: u64,
    /// Bytes of the file that count (header included).
    pub len: u64,
}

impl Checkpoint {
    /// The 16-byte value stored in metadata (big-endian epoch, length).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.epoch.to_be_bytes().to_vec();
        v.extend_from_slice(&self.len.to_be_bytes());
        v
    }

    /// Decodes a stored value; `None` for a wrong length.
    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        let (e, l) = (b.get(..8)?, b.get(8..16)?);
        if b.len() != 16 {
            return None;
        }
        Some(Checkpoint {
            epoch: u64::from_be_bytes(e.try_into().ok()?),
            len: u64::from_be_bytes(l.try_into().ok()?),
        })
    }
}

/// The open discard log.
pub struct DiscardLog {
    dir: PathBuf,
    perms: DataDirPerms,
    file: File,
    epoch: u64,
    len: u64,
}

fn header(epoch: u64) -> Vec<u8> {
    HeaderRaw {
        magic: *MAGIC,
        version: U32::new(VERSION),
        reserved: U32::new(0),
        epoch: U64::new(epoch),
    }
    .as_bytes()
    .to_vec()
}

/// Reads a header: `Ok(Some(epoch))`, `Ok(None)` if it is not a discard header at all.
fn read_header(file: &mut File) -> Result<Option<u64>, DiscardError> {
    let mut b = [0u8; HEADER_LEN as usize];
    if file.read_exact(&mut b).is_err() {
        return Ok(None);
    }
    let Ok(h) = HeaderRaw::read_from_bytes(&b) else {
        return Ok(None);
    };
    if &h.magic != MAGIC {
        return Ok(None);
    }
    if h.version.get() != VERSION {
        return Err(DiscardError::Version(h.version.get()));
    }
    Ok(Some(h.epoch.get()))
}

fn round_down(len: u64) -> u64 {
    HEADER_LEN + (len.saturating_sub(HEADER_LEN) / ENTRY_LEN) * ENTRY_LEN
}

impl DiscardLog {
    /// Opens the log in pack directory `dir` against the stored checkpoint, cutting what
    /// lies past it (entries whose deletes never committed). Returns the log and the
    /// checkpoint to store if it differs from `stored` (a compaction that finished
    /// renaming but not recording, or a log recreated after damage).
    ///
    /// Fails if the file cannot be read or written, or is of an unknown version.
    pub fn open(
        dir: &Path,
        perms: DataDirPerms,
        stored: Option<Checkpoint>,
    ) -> Result<(DiscardLog, Option<Checkpoint>), DiscardError> {
        let path = dir.join(DISCARD_FILE);
        let _ = std::fs::remove_file(dir.join(format!("{DISCARD_FILE}.tmp")));
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let epoch = stored.map_or(1, |c| c.epoch);
                return Self::create(dir, perms, epoch, stored);
            }
            Err(e) => return Err(e.into()),
        };
        let file_len = file.metadata()?.len();
        let at = match (read_header(&mut file)?, stored) {
            (Some(e), Some(c)) if e == c.epoch => Checkpoint {
                epoch: e,
                len: round_down(c.len.min(file_len)),
            },
            (Some(e), Some(c)) if e == c.epoch + 1 => Checkpoint {
                epoch: e,
                len: round_down(file_len),
            },
            (Some(e), None) => Checkpoint {
                epoch: e,
                len: HEADER_LEN,
            },
            (found, _) => {
                tracing::warn!(?found, ?stored, "GC discard log does not match its checkpoint; starting a new one (space of chunks it listed is found again by fsck)");
                let epoch = stored.map_or(1, |c| c.epoch) + 1;
                return Self::create(dir, perms, epoch, stored);
            }
        };
        if file_len != at.len {
            file.set_len(at.len)?;
            file.sync_all()?;
        }
        let log = DiscardLog {
            dir: dir.to_path_buf(),
            perms,
            file,
            epoch: at.epoch,
            len: at.len,
        };
        Ok((log, (Some(at) != stored).then_some(at)))
    }

    fn create(
        dir: &Path,
        perms: DataDirPerms,
        epoch: u64,
        stored: Option<Checkpoint>,
    ) -> Result<(DiscardLog, Option<Checkpoint>), DiscardError> {
        let file = write_new(dir, perms, epoch, &[])?;
        let at = Checkpoint {
            epoch,
            len: HEADER_LEN,
        };
        let log = DiscardLog {
            dir: dir.to_path_buf(),
            perms,
            file,
            epoch,
            len: HEADER_LEN,
        };
        Ok((log, (Some(at) != stored).then_some(at)))
    }

    /// Appends entries (not yet synced, not yet counted: see [`DiscardLog::checkpoint`]).
    ///
    /// Fails if the write fails; the log is cut back to its last whole entry then.
    pub fn append(&mut self, entries: &[DiscardEntry]) -> Result<(), DiscardError> {
        let mut buf = Vec::with_capacity(entries.len() * ENTRY_LEN as usize);
        for e in entries {
            buf.extend_from_slice(&e.encode());
        }
        if let Err(e) = self.file.write_all_at(&buf, self.len) {
            let _ = self.file.set_len(self.len);
            return Err(e.into());
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Makes the appended entries durable.
    ///
    /// Fails if the sync fails.
    pub fn sync(&self) -> Result<(), DiscardError> {
        Ok(self.file.sync_data()?)
    }

    /// The checkpoint covering everything appended so far.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            epoch: self.epoch,
            len: self.len,
        }
    }

    /// Number of entries in the log.
    pub fn entry_count(&self) -> u64 {
        (self.len - HEADER_LEN) / ENTRY_LEN
    }

    /// Every intact entry; damaged ones are skipped with one log line.
    ///
    /// Fails if the file cannot be read.
    pub fn entries(&self) -> Result<Vec<DiscardEntry>, DiscardError> {
        let mut buf = vec![0u8; (self.len - HEADER_LEN) as usize];
        self.file.read_exact_at(&mut buf, HEADER_LEN)?;
        let mut out = Vec::with_capacity(buf.len() / ENTRY_LEN as usize);
        let mut damaged = 0usize;
        for chunk in buf.chunks_exact(ENTRY_LEN as usize) {
            match DiscardEntry::decode(chunk) {
                Some(e) => out.push(e),
                None => damaged += 1,
            }
        }
        if damaged > 0 {
            tracing::error!(damaged, "damaged entries in the GC discard log skipped");
        }
        Ok(out)
    }

    /// Replaces the log with one holding only `keep`, under the next epoch: written to a
    /// temporary file, synced, renamed over the log, directory synced. Returns the new
    /// checkpoint, which the caller stores.
    ///
    /// Fails if any step fails; the old log stays in place until the rename.
    pub fn compact(&mut self, keep: &[DiscardEntry]) -> Result<Checkpoint, DiscardError> {
        let epoch = self.epoch + 1;
        self.file = write_new(&self.dir, self.perms, epoch, keep)?;
        self.epoch = epoch;
        self.len = HEADER_LEN + keep.len() as u64 * ENTRY_LEN;
        Ok(self.checkpoint())
    }
}

/// Writes a log of `entries` with `epoch` to a temporary file, syncs it and renames it
/// over the log; returns it open.
fn write_new(
    dir: &Path,
    perms: DataDirPerms,
    epoch: u64,
    entries: &[DiscardEntry],
) -> Result<File, DiscardError> {
    let tmp = dir.join(format!("{DISCARD_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(perms.file_mode())
        .open(&tmp)?;
    let mut buf = header(epoch);
    for e in entries {
        buf.extend_from_slice(&e.encode());
    }
    f.write_all(&buf)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(DISCARD_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> DiscardEntry {
        DiscardEntry {
            run: 3,
            pack: PackId(u64::from(i)),
            hash: ChunkHash([i; 16]),
            stored_len: 1000 + u32::from(i),
        }
    }

    fn open(d: &Path, cp: Option<Checkpoint>) -> (DiscardLog, Option<Checkpoint>) {
        DiscardLog::open(d, DataDirPerms::OWNER_ONLY, cp).unwrap()
    }

    #[test]
    fn entries_round_trip_and_a_flipped_bit_is_rejected() {
        let e = entry(9);
        let mut b = e.encode();
        assert_eq!(DiscardEntry::decode(&b), Some(e));
        b[20] ^= 1;
        assert_eq!(DiscardEntry::decode(&b), None);
        assert_eq!(DiscardEntry::decode(&b[..39]), None);
    }

    #[test]
    fn entries_past_the_checkpoint_are_cut_at_open() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, cp) = open(d.path(), None);
        let cp = cp.unwrap();
        log.append(&[entry(1), entry(2)]).unwrap();
        let at = log.checkpoint();
        log.append(&[entry(3)]).unwrap();
        drop(log);
        let (log, changed) = open(d.path(), Some(at));
        assert_eq!(changed, None);
        assert_eq!(log.entries().unwrap(), vec![entry(1), entry(2)]);
        drop(log);
        let (log, _) = open(d.path(), Some(cp));
        assert!(log.entries().unwrap().is_empty());
    }

    #[test]
    fn a_compaction_not_yet_recorded_is_taken_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = open(d.path(), None);
        log.append(&[entry(1), entry(2)]).unwrap();
        let before = log.checkpoint();
        let after = log.compact(&[entry(2)]).unwrap();
        drop(log);
        let (log, changed) = open(d.path(), Some(before));
        assert_eq!(changed, Some(after));
        assert_eq!(log.entries().unwrap(), vec![entry(2)]);
    }

    #[test]
    fn unknown_version_is_refused_and_garbage_replaced() {
        let d = tempfile::tempdir().unwrap();
        let mut h = header(1);
        h[8] = 9;
        std::fs::write(d.path().join(DISCARD_FILE), &h).unwrap();
        assert!(matches!(
            DiscardLog::open(d.path(), DataDirPerms::OWNER_ONLY, None),
            Err(DiscardError::Version(9))
        ));
        std::fs::write(d.path().join(DISCARD_FILE), b"not a log at all, really").unwrap();
        let cp = Checkpoint { epoch: 4, len: 64 };
        let (log, changed) = open(d.path(), Some(cp));
        assert_eq!(changed.map(|c| c.epoch), Some(5));
        assert_eq!(log.entry_count(), 0);
    }

    #[test]
    fn checkpoint_value_round_trips() {
        let c = Checkpoint { epoch: 7, len: 999 };
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c));
        assert_eq!(Checkpoint::decode(&[0; 15]), None);
    }
}
