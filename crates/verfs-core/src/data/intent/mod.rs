//! `intent.log`: the intent log that makes a small fsync'd write durable with one
//! sequential append and one flush, the way ZFS's ZIL does.
//!
//! A file that fsyncs often (a database) has every data change it makes — writes, size
//! changes, zeroed ranges — appended here as the batcher applies it; its `fsync` then
//! flushes this file alone instead of storing its held tail in a pack and syncing the
//! pack and the metadata WAL. The normal path catches up in the background; a
//! checkpoint (every held tail stored, packs and metadata synced) empties the log. After
//! a crash, startup replays the log's records over the recovered metadata: per inode
//! they are every change since the last checkpoint, in order, so replaying them over any
//! state reached by a prefix of them gives the state after the last one.
//!
//! Layout (little-endian; byte tables in `docs/format.md`): a 32-byte header (magic,
//! version, generation, checksum), then records, each checksummed and tagged with the
//! header's generation. Reading stops at the first record that is torn, fails its
//! checksum or carries another generation: only the log's end can be torn, since every
//! fsync flushes what came before it.
//!
//! Nothing here knows inodes beyond their numbers: the batcher decides what is logged
//! (`write/intent.rs`), startup replays it (`fs/replay.rs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use xxhash_rust::xxh3::xxh3_64;

use crate::types::Ino;

/// The log's file name in the data dir.
pub const INTENT_FILE: &str = "intent.log";
/// The header's magic bytes.
const MAGIC: &[u8; 8] = b"VFSINTLG";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Header length.
pub const HEADER_LEN: u64 = 32;
/// Bytes the file is given (as zeros) when it is smaller, so appends do not grow it.
const PREALLOC_BYTES: u64 = 8 << 20;
/// Size past which a reset cuts the file back to its header (a log that grew large
/// once does not keep its space).
const KEEP_BYTES: u64 = 128 << 20;
/// A record's magic bytes.
const RECORD_MAGIC: &[u8; 4] = b"VIR1";
/// A record's fixed part before its data: magic, kind, 3 reserved, generation, inode,
/// two arguments, data length.
const RECORD_FIXED: usize = 4 + 1 + 3 + 8 + 8 + 8 + 8 + 4;
/// Longest write a record carries (a FUSE write is at most 1 MiB; the batcher's
/// messages are FUSE writes): anything longer is corruption.
pub const MAX_RECORD_DATA: usize = 16 << 20;

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    /// Reading, writing or syncing the file failed.
    #[error("intent.log: {cause}")]
    Io {
        /// The underlying error.
        #[source]
        cause: io::Error,
    },
    /// The header is not one this build understands.
    #[error("intent.log: {0}")]
    BadHeader(String),
    /// An earlier flush failed: what it covered may be lost, and no later flush can
    /// tell (fsyncgate), so every later one fails too until a remount.
    #[error("intent.log: an earlier flush failed ({0}); unmount and remount")]
    Poisoned(String),
}

fn io_err(cause: io::Error) -> IntentError {
    IntentError::Io { cause }
}

/// One logged data change of a file, holding its written bytes as `D`: owned when
/// read back ([`IntentOp`]), borrowed when logged ([`OpRef`], so a write is not copied
/// twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<D> {
    /// `data` written at `offset`.
    Write {
        /// The file.
        ino: Ino,
        /// Where.
        offset: u64,
        /// What.
        data: D,
    },
    /// The file's size set (truncate or extend).
    SetSize {
        /// The file.
        ino: Ino,
        /// The new size.
        size: u64,
    },
    /// `[offset, offset + len)` zeroed; `extend` grows the file to its end.
    Zero {
        /// The file.
        ino: Ino,
        /// Where.
        offset: u64,
        /// How long.
        len: u64,
        /// Whether the file grows to the range's end.
        extend: bool,
    },
}

/// A change read back from the log.
pub type IntentOp = Change<Vec<u8>>;

/// A change to log, borrowing its data.
pub type OpRef<'a> = Change<&'a [u8]>;

impl<D> Change<D> {
    /// The file the change is to.
    pub fn ino(&self) -> Ino {
        match self {
            Change::Write { ino, .. } | Change::SetSize { ino, .. } | Change::Zero { ino, .. } => {
                *ino
            }
        }
    }
}

const KIND_WRITE: u8 = 1;
const KIND_SET_SIZE: u8 = 2;
const KIND_ZERO: u8 = 3;
const KIND_ZERO_EXTEND: u8 = 4;

/// Appends the record of a change to `out`: the borrowed form of [`IntentOp`], so the
/// batcher logs a write without copying it twice.
pub fn encode_record(out: &mut Vec<u8>, generation: u64, op: OpRef<'_>) {
    let start = out.len();
    let (kind, ino, a, b, data): (u8, Ino, u64, u64, &[u8]) = match op {
        OpRef::Write { ino, offset, data } => (KIND_WRITE, ino, offset, 0, data),
        OpRef::SetSize { ino, size } => (KIND_SET_SIZE, ino, size, 0, &[]),
        OpRef::Zero {
            ino,
            offset,
            len,
            extend,
        } => {
            let kind = if extend { KIND_ZERO_EXTEND } else { KIND_ZERO };
            (kind, ino, offset, len, &[])
        }
    };
    out.extend_from_slice(RECORD_MAGIC);
    out.push(kind);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&ino.0.to_le_bytes());
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let sum = xxh3_64(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Decodes the record at the start of `buf` if it is whole, intact and of `generation`:
/// the change and the record's length. `None` marks the log's end (torn, corrupt, of
/// another generation, or an unknown kind: nothing after it is trusted).
pub fn decode_record(buf: &[u8], generation: u64) -> Option<(IntentOp, usize)> {
    let fixed = buf.get(..RECORD_FIXED)?;
    if &fixed[..4] != RECORD_MAGIC || u64_at(fixed, 8) != generation {
        return None;
    }
    let data_len = u32_at(fixed, 40) as usize;
    if data_len > MAX_RECORD_DATA {
        return None;
    }
    let end = RECORD_FIXED + data_len;
    let sum = buf.get(end..end + 8)?;
    if xxh3_64(&buf[..end]) != u64_at(sum, 0) {
        return None;
    }
    let (ino, a, b) = (Ino(u64_at(fixed, 16)), u64_at(fixed, 24), u64_at(fixed, 32));
    let op = match (fixed[4], data_len) {
        (KIND_WRITE, _) => IntentOp::Write {
            ino,
            offset: a,
            data: buf[RECORD_FIXED..end].to_vec(),
        },
        (KIND_SET_SIZE, 0) => IntentOp::SetSize { ino, size: a },
        (KIND_ZERO | KIND_ZERO_EXTEND, 0) => IntentOp::Zero {
            ino,
            offset: a,
            len: b,
            extend: fixed[4] == KIND_ZERO_EXTEND,
        },
        _ => return None,
    };
    Some((op, end + 8))
}

/// Encodes the header of `generation`.
pub fn encode_header(generation: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&generation.to_le_bytes());
    let sum = xxh3_64(&h[..24]);
    h[24..32].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Decodes a header: its generation.
///
/// Fails on anything else: another file, a torn header, a version this build does not
/// read, reserved bits set.
pub fn decode_header(h: &[u8]) -> Result<u64, IntentError> {
    let bad = |m: &str| Err(IntentError::BadHeader(m.to_string()));
    if h.len() < HEADER_LEN as usize {
        return bad("header cut short");
    }
    if &h[..8] != MAGIC {
        return bad("not an intent log (bad magic)");
    }
    if xxh3_64(&h[..24]) != u64_at(h, 24) {
        return bad("header checksum mismatch");
    }
    let version = u32_at(h, 8);
    if version != VERSION {
        return Err(IntentError::BadHeader(format!(
            "version {version}; this build reads version {VERSION}"
        )));
    }
    if u32_at(h, 12) != 0 {
        return bad("unknown header flags");
    }
    Ok(u64_at(h, 16))
}

/// The open log: appends, flushes, resets. Shared by the batcher (append, flush,
/// reset) and the sync paths (flush), so its state sits behind a mutex and atomics.
pub struct IntentLog {
    path: PathBuf,
    file: File,
    /// Where the next record goes, and the generation records carry.
    tail: Mutex<Tail>,
    /// Records appended since the last flush.
    unflushed: AtomicBool,
    /// Bytes of records in the log (for the checkpoint policy and `stats`).
    bytes: AtomicU64,
    /// The first flush failure, if any (see [`IntentError::Poisoned`]).
    failed: OnceLock<String>,
    /// Records a crash left are in the log and not yet replayed: until they are,
    /// [`IntentLog::reset`] keeps them (a shutdown before replay must not drop them).
    unreplayed: AtomicBool,
}

struct Tail {
    end: u64,
    generation: u64,
}

impl IntentLog {
    /// Opens the log in `dir` (created empty with mode `file_mode` if missing) and
    /// returns it with the records a crash left, for replay. The records are read
    /// whole: the log holds at most a checkpoint's worth (see `write/intent.rs`).
    ///
    /// A header this build cannot read is kept aside as `intent.log.bad` (and logged)
    /// and a fresh log started: refusing to mount over it would make the data dir
    /// unusable, and the file is kept for inspection.
    ///
    /// Fails if the file cannot be opened, read or created.
    pub fn open(dir: &Path, file_mode: u32) -> Result<(IntentLog, Vec<IntentOp>), IntentError> {
        let path = dir.join(INTENT_FILE);
        let existing = match std::fs::read(&path) {
            // Created but never given its header (a crash at first mount): fresh.
            Ok(b) if b.is_empty() => None,
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(e)),
        };
        let (generation, ops) = match existing.as_deref().map(read_log) {
            None => (1, Vec::new()),
            Some(Ok((generation, ops))) => (generation, ops),
            Some(Err(e)) => {
                tracing::error!(error = %e, "intent log unreadable; kept as intent.log.bad, starting a fresh one");
                std::fs::rename(&path, dir.join(format!("{INTENT_FILE}.bad"))).map_err(io_err)?;
                (1, Vec::new())
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(file_mode)
            .open(&path)
            .map_err(io_err)?;
        let log = IntentLog {
            path,
            file,
            tail: Mutex::new(Tail {
                end: HEADER_LEN,
                generation,
            }),
            unflushed: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            failed: OnceLock::new(),
            unreplayed: AtomicBool::new(!ops.is_empty()),
        };
        if existing.is_none() || ops.is_empty() {
            // Nothing to replay: start the next generation now (a fresh file gets its
            // header), so stale bytes can never be read as records.
            log.reset()?;
        } else {
            // Replay resets it once the records are applied and synced; until then
            // the records stay as they are.
            let end = existing.as_deref().map_or(HEADER_LEN, |b| {
                HEADER_LEN + records_len(&b[HEADER_LEN as usize..], generation)
            });
            log.lock_tail().end = end;
            log.bytes.store(end - HEADER_LEN, Ordering::Relaxed);
        }
        Ok((log, ops))
    }

    fn lock_tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation new records must carry.
    pub fn generation(&self) -> u64 {
        self.lock_tail().generation
    }

    /// Bytes of records in the log.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether a flush has failed (the fast fsync path is then closed for good).
    pub fn is_poisoned(&self) -> bool {
        self.failed.get().is_some()
    }

    /// Appends encoded records (see [`encode_record`], with [`IntentLog::generation`])
    /// without flushing them.
    ///
    /// Fails if the write fails; the log's end does not move then, so a torn append is
    /// overwritten by the next one.
    pub fn append(&self, records: &[u8]) -> Result<(), IntentError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tail = self.lock_tail();
        self.file.write_all_at(records, tail.end).map_err(io_err)?;
        tail.end += records.len() as u64;
        self.bytes
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes every appended record durable (one `fdatasync`); nothing to do if none
    /// was appended since the last flush.
    ///
    /// Fails if the sync fails, and from then on every time ([`IntentError::Poisoned`]).
    pub fn flush(&self) -> Result<(), IntentError> {
        if let Some(first) = self.failed.get() {
            return Err(IntentError::Poisoned(first.clone()));
        }
        if !self.unflushed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| {
            self.unflushed.store(true, Ordering::Release);
            if self.failed.set(e.to_string()).is_ok() {
                tracing::error!(path = %self.path.display(), error = %e, "intent log flush failed: every later fsync fails too until a remount");
            }
            IntentError::Poisoned(e.to_string())
        })
    }

    /// Keeps the file's blocks for the next generation: records are overwritten in
    /// place, so an append changes no file size or block map and its `fdatasync`
    /// writes the record's blocks alone (not the inode too). The first
    /// [`PREALLOC_BYTES`] are written as zeros once, at the first reset after records
    /// were appended (a mount that never logs does not pay for it); a file grown past
    /// [`KEEP_BYTES`] is cut back to its header. Old records left past the new end
    /// carry the old generation and are never read.
    fn make_room(&self, used: bool) -> io::Result<()> {
        let mut len = self.file.metadata()?.len();
        if len > KEEP_BYTES {
            self.file.set_len(HEADER_LEN)?;
            len = HEADER_LEN;
        }
        if !used {
            return Ok(());
        }
        let zeros = vec![0u8; 1 << 20];
        while len < PREALLOC_BYTES {
            let n = (PREALLOC_BYTES - len).min(zeros.len() as u64);
            self.file.write_all_at(&zeros[..n as usize], len)?;
            len += n;
        }
        Ok(())
    }

    /// Notes that the records [`IntentLog::open`] returned are applied (and synced):
    /// the next [`IntentLog::reset`] may drop them.
    pub fn mark_replayed(&self) {
        self.unreplayed.store(false, Ordering::Release);
    }

    /// Empties the log: called once everything it holds is stored and synced the
    /// normal way. The next generation's header is written and the file cut to it,
    /// then synced; records of the old generation can never be read again.
    ///
    /// Does nothing while records a crash left wait for replay.
    ///
    /// Fails if the file cannot be written, cut or synced; the old records then stay
    /// (replaying them is harmless, see the module docs).
    pub fn reset(&self) -> Result<(), IntentError> {
        if self.unreplayed.load(Ordering::Acquire) {
            tracing::debug!("intent log holds records not yet replayed; not reset");
            return Ok(());
        }
        let mut tail = self.lock_tail();
        let generation = tail.generation.wrapping_add(1);
        // A log never appended to (a fresh or idle mount) is left small.
        let used = tail.end > HEADER_LEN;
        if let Err(e) = self.make_room(used) {
            // Only a cost: appends then grow the file (and sync its size) again.
            tracing::warn!(error = %e, "intent log: could not keep its blocks");
        }
        self.file
            .write_all_at(&encode_header(generation), 0)
            .map_err(io_err)?;
        self.file.sync_data().map_err(io_err)?;
        tail.generation = generation;
        tail.end = HEADER_LEN;
        self.bytes.store(0, Ordering::Relaxed);
        self.unflushed.store(false, Ordering::Release);
        Ok(())
    }
}

/// Reads a whole log: its generation and its records up to the first bad one.
///
/// Fails if the header is bad.
pub fn read_log(bytes: &[u8]) -> Result<(u64, Vec<IntentOp>), IntentError> {
    let generation = decode_header(bytes)?;
    let mut ops = Vec::new();
    let mut at = HEADER_LEN as usize;
    while let Some((op, len)) = decode_record(&bytes[at..], generation) {
        ops.push(op);
        at += len;
    }
    Ok((generation, ops))
}

/// Length of the valid records at the start of `buf`.
fn records_len(buf: &[u8], generation: u64) -> u64 {
    let mut at = 0usize;
    while let Some((_, len)) = decode_record(&buf[at..], generation) {
        at += len;
    }
    at as u64
}

#[cfg(test)]
mod tests;
