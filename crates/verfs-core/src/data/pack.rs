//! The pack file format: the only place that knows it (byte tables in `docs/format.md`).
//!
//! ```text
//! file   := header record* [index footer]          (index + footer only once sealed)
//! header := "VFSPACK1" version:u32 reserved:u32                      16 bytes
//! record := "VREC" hash:[16] codec:u8 flags:u8 reserved:u16
//!           plain_len:u32 stored_len:u32 crc32c:u32 [nonce:24] payload
//! index  := (hash:[16] offset:u64 stored_len:u32 reserved:u32)*     sorted by hash
//! footer := index_offset:u64 entry_count:u64 index_crc:u32 version:u32 "VFSPIDX1"
//! ```
//!
//! All integers are little-endian. The record CRC covers the first 32 header bytes, the
//! nonce and the payload, so a record is self-checking and the index of any pack can be
//! rebuilt by scanning records from the header.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use thiserror::Error;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::compress::Codec;
use crate::types::{ChunkHash, PackId};

/// Pack file magic.
const FILE_MAGIC: &[u8; 8] = b"VFSPACK1";
/// Record magic.
const RECORD_MAGIC: &[u8; 4] = b"VREC";
/// Footer magic.
const FOOTER_MAGIC: &[u8; 8] = b"VFSPIDX1";
/// Format version written in the header and footer.
const FORMAT_VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_LEN: u64 = 16;
/// Size of a record header without nonce.
pub const RECORD_HEADER_LEN: usize = 36;
/// Size of the nonce that follows the header of an encrypted record.
pub const NONCE_LEN: usize = 24;
/// Record flag: the payload is encrypted and a nonce follows the header.
pub const FLAG_ENCRYPTED: u8 = 1;
/// Size of one index entry.
const INDEX_ENTRY_LEN: usize = 32;
/// Size of the footer.
const FOOTER_LEN: u64 = 32;
/// Largest payload a record may claim; anything larger is corruption.
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// Errors reading or writing a pack, with the pack and offset.
#[derive(Debug, Error)]
pub enum PackError {
    /// The OS failed a read, write or sync.
    #[error("{pack} at {offset}: {source}")]
    Io {
        /// The pack.
        pack: PackId,
        /// Where.
        offset: u64,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bytes on disk failed a magic, length or CRC check.
    #[error("{pack} at {offset}: corrupt: {what}")]
    Corrupt {
        /// The pack.
        pack: PackId,
        /// Where.
        offset: u64,
        /// Which check failed.
        what: String,
    },
    /// The chunk is not in the pack named by its chunk record.
    #[error("{pack}: chunk {hash} not found")]
    Missing {
        /// The pack.
        pack: PackId,
        /// The chunk.
        hash: ChunkHash,
    },
}

impl PackError {
    fn io(pack: PackId, offset: u64, source: std::io::Error) -> PackError {
        PackError::Io {
            pack,
            offset,
            source,
        }
    }

    fn corrupt(pack: PackId, offset: u64, what: impl Into<String>) -> PackError {
        PackError::Corrupt {
            pack,
            offset,
            what: what.into(),
        }
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct FileHeader {
    magic: [u8; 8],
    version: U32,
    reserved: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy)]
#[repr(C)]
struct RecordHeaderRaw {
    magic: [u8; 4],
    hash: [u8; 16],
    codec: u8,
    flags: u8,
    reserved: U16,
    plain_len: U32,
    stored_len: U32,
    crc: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct IndexEntryRaw {
    hash: [u8; 16],
    offset: U64,
    stored_len: U32,
    reserved: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct FooterRaw {
    index_offset: U64,
    entry_count: U64,
    index_crc: U32,
    version: U32,
    magic: [u8; 8],
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The chunk id.
    pub hash: ChunkHash,
    /// Payload codec.
    pub codec: Codec,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Decoded length.
    pub plain_len: u32,
    /// Payload length.
    pub stored_len: u32,
    /// CRC32C over header (without the crc field), nonce and payload.
    pub crc: u32,
}

impl RecordHeader {
    /// Bytes the record occupies (header, nonce, payload).
    pub fn record_len(&self) -> u64 {
        let nonce = if self.flags & FLAG_ENCRYPTED != 0 {
            NONCE_LEN
        } else {
            0
        };
        (RECORD_HEADER_LEN + nonce) as u64 + u64::from(self.stored_len)
    }

    fn raw(&self) -> RecordHeaderRaw {
        RecordHeaderRaw {
            magic: *RECORD_MAGIC,
            hash: self.hash.0,
            codec: self.codec.to_byte(),
            flags: self.flags,
            reserved: U16::new(0),
            plain_len: U32::new(self.plain_len),
            stored_len: U32::new(self.stored_len),
            crc: U32::new(self.crc),
        }
    }
}

/// Where a chunk's record sits in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Offset of the record header.
    pub offset: u64,
    /// Payload length.
    pub stored_len: u32,
}

/// The bytes of the file header of a new pack.
pub fn file_header() -> Vec<u8> {
    FileHeader {
        magic: *FILE_MAGIC,
        version: U32::new(FORMAT_VERSION),
        reserved: U32::new(0),
    }
    .as_bytes()
    .to_vec()
}

fn record_crc(header: &RecordHeaderRaw, nonce: &[u8], payload: &[u8]) -> u32 {
    let hb = header.as_bytes();
    let c = crc32c::crc32c(&hb[..32]);
    let c = crc32c::crc32c_append(c, nonce);
    crc32c::crc32c_append(c, payload)
}

/// Encodes a complete record (header, nonce, payload) ready to append.
pub fn encode_record(
    hash: ChunkHash,
    codec: Codec,
    plain_len: u32,
    nonce: Option<&[u8; NONCE_LEN]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = record_head(hash, codec, plain_len, nonce, payload);
    out.extend_from_slice(payload);
    out
}

/// The header and nonce of a record for `payload`, which is written right after them;
/// kept apart so appending never copies the payload into a record buffer.
pub fn record_head(
    hash: ChunkHash,
    codec: Codec,
    plain_len: u32,
    nonce: Option<&[u8; NONCE_LEN]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = RecordHeader {
        hash,
        codec,
        flags: if nonce.is_some() { FLAG_ENCRYPTED } else { 0 },
        plain_len,
        stored_len: payload.len() as u32,
        crc: 0,
    }
    .raw();
    let nonce_bytes: &[u8] = nonce.map(|n| &n[..]).unwrap_or(&[]);
    h.crc = U32::new(record_crc(&h, nonce_bytes, payload));
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + nonce_bytes.len() + payload.len());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(nonce_bytes);
    out
}

/// Decodes and sanity-checks a record header (magic, codec, lengths); the CRC is checked
/// when the payload is read.
pub fn decode_record_header(
    pack: PackId,
    offset: u64,
    bytes: &[u8],
) -> Result<RecordHeader, PackError> {
    let raw = RecordHeaderRaw::read_from_bytes(bytes)
        .map_err(|_| PackError::corrupt(pack, offset, "short record header"))?;
    if &raw.magic != RECORD_MAGIC {
        return Err(PackError::corrupt(pack, offset, "bad record magic"));
    }
    let codec = Codec::from_byte(raw.codec)
        .ok_or_else(|| PackError::corrupt(pack, offset, format!("codec byte {}", raw.codec)))?;
    if raw.stored_len.get() > MAX_PAYLOAD || raw.plain_len.get() > MAX_PAYLOAD {
        return Err(PackError::corrupt(
            pack,
            offset,
            "record length out of range",
        ));
    }
    Ok(RecordHeader {
        hash: ChunkHash(raw.hash),
        codec,
        flags: raw.flags,
        plain_len: raw.plain_len.get(),
        stored_len: raw.stored_len.get(),
        crc: raw.crc.get(),
    })
}

/// A record read back and CRC-checked: header, nonce (if encrypted) and payload.
#[derive(Debug)]
pub struct RecordData {
    /// The header.
    pub header: RecordHeader,
    /// The nonce of an encrypted record.
    pub nonce: Option<[u8; NONCE_LEN]>,
    /// The stored payload: a slice of the buffer the record was read into, no copy.
    pub payload: Bytes,
}

/// Reads the record at `loc` and verifies magic, hash and CRC.
///
/// Fails with `Corrupt` when a check fails, `Io` when the read fails.
pub fn read_record(
    file: &File,
    pack: PackId,
    loc: Location,
    expect: &ChunkHash,
) -> Result<RecordData, PackError> {
    let total = RECORD_HEADER_LEN + NONCE_LEN + loc.stored_len as usize;
    let mut buf =
        read_fresh(file, total, loc.offset).map_err(|e| PackError::io(pack, loc.offset, e))?;
    let got = buf.len();
    if got < RECORD_HEADER_LEN {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    let header = decode_record_header(pack, loc.offset, &buf[..RECORD_HEADER_LEN])?;
    if &header.hash != expect {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record hash differs from index",
        ));
    }
    let need = header.record_len() as usize;
    if got < need || header.stored_len != loc.stored_len {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    let (nonce, payload) = verify(pack, loc.offset, header, &buf[..need])?;
    buf.truncate(need);
    Ok(RecordData {
        header,
        nonce,
        payload: Bytes::from(buf).slice(payload),
    })
}

/// Reads the payload of the raw, unencrypted record at `loc` straight onto the end of
/// `out` and verifies magic, hash, codec and CRC: the sequential read path stores no
/// copy of the chunk and makes none (the header goes to a small buffer with the same
/// `preadv`). Returns `Ok(false)`, with nothing appended, when the record turns out to
/// be compressed or encrypted; the caller then reads it with [`read_record`].
///
/// Fails with `Corrupt` when a check fails, `Io` when the read fails; `out` keeps its
/// length on failure.
pub fn read_raw_payload_into(
    file: &File,
    pack: PackId,
    loc: Location,
    expect: &ChunkHash,
    out: &mut Vec<u8>,
) -> Result<bool, PackError> {
    let len = loc.stored_len as usize;
    let mut head = [0u8; RECORD_HEADER_LEN];
    out.reserve(len);
    let got = read_split_at(
        file,
        &mut head,
        &mut out.spare_capacity_mut()[..len],
        loc.offset,
    )
    .map_err(|e| PackError::io(pack, loc.offset, e))?;
    if got < RECORD_HEADER_LEN + len {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    let header = decode_record_header(pack, loc.offset, &head)?;
    if &header.hash != expect {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record hash differs from index",
        ));
    }
    if header.codec != Codec::Raw || header.flags & FLAG_ENCRYPTED != 0 {
        return Ok(false);
    }
    if header.stored_len != loc.stored_len || header.plain_len != loc.stored_len {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record length differs",
        ));
    }
    // SAFETY: read_split_at filled the first `len` spare bytes (checked above).
    let payload = unsafe { std::slice::from_raw_parts(out.as_ptr().add(out.len()), len) };
    if record_crc(&header.raw(), &[], payload) != header.crc {
        return Err(PackError::corrupt(pack, loc.offset, "record CRC mismatch"));
    }
    // SAFETY: the `len` bytes after the current length are initialised (see above).
    unsafe { out.set_len(out.len() + len) };
    Ok(true)
}

/// `preadv` of `head` then `tail` from `offset`, retried until both are full or the
/// file ends; returns how many bytes were read in all.
fn read_split_at(
    file: &File,
    head: &mut [u8],
    tail: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let total = head.len() + tail.len();
    let mut done = 0usize;
    while done < total {
        let mut iov = [
            libc::iovec {
                iov_base: head.as_mut_ptr().cast(),
                iov_len: 0,
            },
            libc::iovec {
                iov_base: tail.as_mut_ptr().cast(),
                iov_len: 0,
            },
        ];
        let (first, n_iov) = if done < head.len() {
            iov[0].iov_base = head[done..].as_mut_ptr().cast();
            iov[0].iov_len = head.len() - done;
            iov[1].iov_len = tail.len();
            (0, 2)
        } else {
            let t = done - head.len();
            iov[1].iov_base = tail[t..].as_mut_ptr().cast();
            iov[1].iov_len = tail.len() - t;
            (1, 1)
        };
        let off = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: each iovec points into memory borrowed mutably for this call, with its
        // stated length; preadv writes at most that much and reports how many bytes.
        let n = unsafe { libc::preadv(file.as_raw_fd(), iov[first..].as_ptr(), n_iov, off) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// Checks a whole record's CRC; returns its nonce and the range of its payload.
fn verify(
    pack: PackId,
    offset: u64,
    header: RecordHeader,
    rec: &[u8],
) -> Result<(Option<[u8; NONCE_LEN]>, std::ops::Range<usize>), PackError> {
    let nonce_len = if header.flags & FLAG_ENCRYPTED != 0 {
        NONCE_LEN
    } else {
        0
    };
    let nonce_bytes = &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + nonce_len];
    let payload = &rec[RECORD_HEADER_LEN + nonce_len..];
    let raw = header.raw();
    if record_crc(&raw, nonce_bytes, payload) != header.crc {
        return Err(PackError::corrupt(pack, offset, "record CRC mismatch"));
    }
    let nonce = if nonce_len > 0 {
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce_bytes);
        Some(n)
    } else {
        None
    };
    Ok((nonce, RECORD_HEADER_LEN + nonce_len..rec.len()))
}

/// Reads up to `len` bytes at `offset` into a new buffer without zero-filling it first
/// (zeroing showed up as a tenth of the sequential-read profile). Short at end of file.
fn read_fresh(file: &File, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        let off = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`; pread
        // writes at most that many bytes into it and reports how many.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                off,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
        // SAFETY: pread initialised the first `done` bytes of the buffer.
        unsafe { buf.set_len(done) };
    }
    Ok(buf)
}

/// Reads as many bytes as the file has at `offset`, up to `buf.len()`.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Checks the file header of a pack.
///
/// Fails with `Corrupt` on a wrong magic or version, `Io` on a failed read.
pub fn check_file_header(file: &File, pack: PackId) -> Result<(), PackError> {
    let mut b = [0u8; HEADER_LEN as usize];
    let got = read_at_most(file, &mut b, 0).map_err(|e| PackError::io(pack, 0, e))?;
    let h = FileHeader::read_from_bytes(&b[..got])
        .map_err(|_| PackError::corrupt(pack, 0, "short file header"))?;
    if &h.magic != FILE_MAGIC || h.version.get() != FORMAT_VERSION {
        return Err(PackError::corrupt(pack, 0, "bad pack file header"));
    }
    Ok(())
}

/// The result of scanning a pack's records from the start.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Every valid record, in file order (later duplicates of a hash win).
    pub entries: Vec<(ChunkHash, Location)>,
    /// End of the last valid record: where a torn tail would be cut.
    pub valid_end: u64,
    /// Whether bytes after the last valid record are not a record (torn or damaged tail).
    pub damaged_tail: bool,
    /// Damaged regions `[start, end)` that valid records follow (corruption, not a tail).
    pub damaged: Vec<(u64, u64)>,
}

/// Reads and fully checks the record at `off`; `None` if there is no valid record there.
fn record_at(
    file: &File,
    pack: PackId,
    off: u64,
    limit: u64,
) -> Result<Option<RecordHeader>, PackError> {
    if off + RECORD_HEADER_LEN as u64 > limit {
        return Ok(None);
    }
    let mut hbuf = [0u8; RECORD_HEADER_LEN];
    let got = read_at_most(file, &mut hbuf, off).map_err(|e| PackError::io(pack, off, e))?;
    let Ok(header) = decode_record_header(pack, off, &hbuf[..got]) else {
        return Ok(None);
    };
    let len = header.record_len();
    if off + len > limit {
        return Ok(None);
    }
    let mut rec = vec![0u8; len as usize];
    let got = read_at_most(file, &mut rec, off).map_err(|e| PackError::io(pack, off, e))?;
    if got as u64 != len || verify(pack, off, header, &rec).is_err() {
        return Ok(None);
    }
    Ok(Some(header))
}

/// The offset of the next valid record at or after `from`, searching for the record
/// magic and checking each candidate fully.
fn next_record(file: &File, pack: PackId, from: u64, limit: u64) -> Result<Option<u64>, PackError> {
    const BLOCK: usize = 1 << 20;
    let mut base = from;
    let mut buf = vec![0u8; BLOCK + RECORD_MAGIC.len()];
    while base < limit {
        let want = ((limit - base) as usize).min(buf.len());
        let got =
            read_at_most(file, &mut buf[..want], base).map_err(|e| PackError::io(pack, base, e))?;
        if got < RECORD_MAGIC.len() {
            return Ok(None);
        }
        for (i, w) in buf[..got].windows(RECORD_MAGIC.len()).enumerate() {
            if w == RECORD_MAGIC && record_at(file, pack, base + i as u64, limit)?.is_some() {
                return Ok(Some(base + i as u64));
            }
        }
        // Overlap by the magic's length so a magic across the block edge is found.
        base += (got - (RECORD_MAGIC.len() - 1)) as u64;
        if got < want {
            break;
        }
    }
    Ok(None)
}

/// Scans records in `[HEADER_LEN, limit)`. A record that fails its checks is skipped
/// by searching for the next valid record; the region is reported in `damaged` when
/// valid records follow it, else as a damaged tail. Never panics on any input.
///
/// Fails only on an I/O error of the read itself.
pub fn scan_records(file: &File, pack: PackId, limit: u64) -> Result<ScanResult, PackError> {
    let mut out = ScanResult {
        valid_end: HEADER_LEN,
        ..ScanResult::default()
    };
    let mut off = HEADER_LEN;
    while off < limit {
        match record_at(file, pack, off, limit)? {
            Some(h) => {
                out.entries.push((
                    h.hash,
                    Location {
                        offset: off,
                        stored_len: h.stored_len,
                    },
                ));
                off += h.record_len();
                out.valid_end = off;
            }
            None => match next_record(file, pack, off + 1, limit)? {
                Some(next) => {
                    out.damaged.push((off, next));
                    off = next;
                }
                None => {
                    out.damaged_tail = true;
                    break;
                }
            },
        }
    }
    Ok(out)
}

/// A sealed pack's index, sorted by hash for binary search.
#[derive(Debug, Default)]
pub struct SealedIndex {
    entries: Vec<(ChunkHash, Location)>,
    /// Where the records end (the index offset).
    pub records_end: u64,
}

impl SealedIndex {
    /// Finds a chunk's record.
    pub fn find(&self, hash: &ChunkHash) -> Option<Location> {
        self.entries
            .binary_search_by(|(h, _)| h.cmp(hash))
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// Approximate memory use, for cache weighting.
    pub fn weight(&self) -> u32 {
        (self.entries.len() * 40 + 64).min(u32::MAX as usize) as u32
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in hash order.
    pub fn entries(&self) -> &[(ChunkHash, Location)] {
        &self.entries
    }
}

/// Encodes the index and footer that seal a pack whose records end at `records_end`.
/// For duplicate hashes the last entry wins.
pub fn encode_seal(entries: &[(ChunkHash, Location)], records_end: u64) -> Vec<u8> {
    let sorted = index_from_scan(entries, records_end).entries;
    let mut index = Vec::with_capacity(sorted.len() * INDEX_ENTRY_LEN + FOOTER_LEN as usize);
    for (h, l) in &sorted {
        index.extend_from_slice(
            IndexEntryRaw {
                hash: h.0,
                offset: U64::new(l.offset),
                stored_len: U32::new(l.stored_len),
                reserved: U32::new(0),
            }
            .as_bytes(),
        );
    }
    let footer = FooterRaw {
        index_offset: U64::new(records_end),
        entry_count: U64::new(sorted.len() as u64),
        index_crc: U32::new(crc32c::crc32c(&index)),
        version: U32::new(FORMAT_VERSION),
        magic: *FOOTER_MAGIC,
    };
    index.extend_from_slice(footer.as_bytes());
    index
}

/// Reads the index of a sealed pack. Returns `Ok(None)` when the file has no valid footer
/// (not sealed, or the seal is damaged), so the caller can fall back to scanning.
///
/// Fails only on an I/O error.
pub fn read_sealed_index(
    file: &File,
    pack: PackId,
    file_len: u64,
) -> Result<Option<SealedIndex>, PackError> {
    if file_len < HEADER_LEN + FOOTER_LEN {
        return Ok(None);
    }
    let foff = file_len - FOOTER_LEN;
    let mut fb = [0u8; FOOTER_LEN as usize];
    let got = read_at_most(file, &mut fb, foff).map_err(|e| PackError::io(pack, foff, e))?;
    let Ok(footer) = FooterRaw::read_from_bytes(&fb[..got]) else {
        return Ok(None);
    };
    if &footer.magic != FOOTER_MAGIC || footer.version.get() != FORMAT_VERSION {
        return Ok(None);
    }
    let index_off = footer.index_offset.get();
    let count = footer.entry_count.get();
    let expect_len = count.checked_mul(INDEX_ENTRY_LEN as u64);
    if index_off < HEADER_LEN || expect_len.and_then(|l| index_off.checked_add(l)) != Some(foff) {
        return Ok(None);
    }
    let mut ib = vec![0u8; (foff - index_off) as usize];
    let got =
        read_at_most(file, &mut ib, index_off).map_err(|e| PackError::io(pack, index_off, e))?;
    if got != ib.len() || crc32c::crc32c(&ib) != footer.index_crc.get() {
        return Ok(None);
    }
    let mut entries = Vec::with_capacity(count as usize);
    for chunk in ib.chunks_exact(INDEX_ENTRY_LEN) {
        let Ok(e) = IndexEntryRaw::read_from_bytes(chunk) else {
            return Ok(None);
        };
        entries.push((
            ChunkHash(e.hash),
            Location {
                offset: e.offset.get(),
                stored_len: e.stored_len.get(),
            },
        ));
    }
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return Ok(None);
    }
    Ok(Some(SealedIndex {
        entries,
        records_end: index_off,
    }))
}

/// Builds a sealed-index structure from scanned entries (for unsealed packs).
pub fn index_from_scan(entries: &[(ChunkHash, Location)], records_end: u64) -> SealedIndex {
    // Reversed then stable-sorted, so dedup keeps the last record of each hash.
    let mut sorted: Vec<(ChunkHash, Location)> = entries.iter().rev().copied().collect();
    sorted.sort_by_key(|e| e.0);
    sorted.dedup_by(|b, a| a.0 == b.0);
    SealedIndex {
        entries: sorted,
        records_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn h(i: u8) -> ChunkHash {
        ChunkHash([i; 16])
    }

    fn write_pack(records: &[(ChunkHash, Vec<u8>)]) -> (tempfile::NamedTempFile, Vec<u64>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&file_header()).unwrap();
        let mut offs = Vec::new();
        let mut off = HEADER_LEN;
        for (hash, payload) in records {
            let rec = encode_record(*hash, Codec::Raw, payload.len() as u32, None, payload);
            offs.push(off);
            off += rec.len() as u64;
            f.write_all(&rec).unwrap();
        }
        f.flush().unwrap();
        (f, offs)
    }

    #[test]
    fn record_round_trip_and_crc_detects_flips() {
        let recs = vec![(h(1), b"hello".to_vec()), (h(2), vec![9u8; 1000])];
        let (f, offs) = write_pack(&recs);
        let file = f.reopen().unwrap();
        check_file_header(&file, PackId(1)).unwrap();
        let loc = Location {
            offset: offs[1],
            stored_len: 1000,
        };
        let r = read_record(&file, PackId(1), loc, &h(2)).unwrap();
        assert_eq!(r.payload, vec![9u8; 1000]);
        assert!(read_record(&file, PackId(1), loc, &h(1)).is_err());
        // Flip one payload byte: CRC must catch it.
        file.write_all_at(&[8], offs[1] + RECORD_HEADER_LEN as u64 + 10)
            .unwrap();
        let e = read_record(&file, PackId(1), loc, &h(2)).unwrap_err();
        assert!(matches!(e, PackError::Corrupt { .. }), "{e}");
    }

    #[test]
    fn encrypted_record_carries_its_nonce() {
        let nonce = [5u8; NONCE_LEN];
        let rec = encode_record(h(3), Codec::Zstd, 10, Some(&nonce), b"ciphertext");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&file_header()).unwrap();
        f.write_all(&rec).unwrap();
        let file = f.reopen().unwrap();
        let loc = Location {
            offset: HEADER_LEN,
            stored_len: 10,
        };
        let r = read_record(&file, PackId(1), loc, &h(3)).unwrap();
        assert_eq!(r.nonce, Some(nonce));
        assert_eq!(r.header.codec, Codec::Zstd);
        assert_eq!(&r.payload[..], b"ciphertext");
    }

    #[test]
    fn scan_rebuilds_index_and_stops_at_truncated_tail() {
        let recs: Vec<_> = (0..5u8)
            .map(|i| (h(i), vec![i; 100 + i as usize]))
            .collect();
        let (f, offs) = write_pack(&recs);
        let file = f.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        let full = scan_records(&file, PackId(1), len).unwrap();
        assert_eq!(full.entries.len(), 5);
        assert_eq!(full.valid_end, len);
        assert!(!full.damaged_tail);
        // Truncate mid-way through the last record.
        file.set_len(offs[4] + 50).unwrap();
        let cut = scan_records(&file, PackId(1), offs[4] + 50).unwrap();
        assert_eq!(cut.entries.len(), 4);
        assert_eq!(cut.valid_end, offs[4]);
        assert!(cut.damaged_tail);
        for (i, (hash, loc)) in cut.entries.iter().enumerate() {
            assert_eq!(*hash, h(i as u8));
            assert_eq!(loc.offset, offs[i]);
        }
        // Truncated inside a header.
        file.set_len(offs[3] + 7).unwrap();
        let cut = scan_records(&file, PackId(1), offs[3] + 7).unwrap();
        assert_eq!(cut.entries.len(), 3);
        assert_eq!(cut.valid_end, offs[3]);
    }

    #[test]
    fn damaged_record_in_the_middle_is_skipped_not_treated_as_tail() {
        let recs: Vec<_> = (0..4u8).map(|i| (h(i), vec![i; 300])).collect();
        let (f, offs) = write_pack(&recs);
        let file = f.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        file.write_all_at(&[0xEE; 40], offs[1] + 20).unwrap();
        let s = scan_records(&file, PackId(1), len).unwrap();
        let found: Vec<ChunkHash> = s.entries.iter().map(|e| e.0).collect();
        assert_eq!(found, vec![h(0), h(2), h(3)]);
        assert_eq!(s.damaged, vec![(offs[1], offs[2])]);
        assert_eq!(s.valid_end, len);
        assert!(!s.damaged_tail);
    }

    #[test]
    fn garbage_tail_is_not_a_record() {
        let (mut f, offs) = write_pack(&[(h(1), b"abc".to_vec())]);
        f.write_all(&[0xAB; 200]).unwrap();
        f.flush().unwrap();
        let file = f.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        let s = scan_records(&file, PackId(1), len).unwrap();
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.valid_end, offs[0] + RECORD_HEADER_LEN as u64 + 3);
        assert!(s.damaged_tail);
    }

    #[test]
    fn seal_round_trip_and_damaged_seal_is_detected() {
        let recs: Vec<_> = (0..20u8).rev().map(|i| (h(i), vec![i; 10])).collect();
        let (mut f, _) = write_pack(&recs);
        let file = f.reopen().unwrap();
        let end = file.metadata().unwrap().len();
        let scan = scan_records(&file, PackId(1), end).unwrap();
        f.write_all(&encode_seal(&scan.entries, end)).unwrap();
        f.flush().unwrap();
        let len = file.metadata().unwrap().len();
        let idx = read_sealed_index(&file, PackId(1), len).unwrap().unwrap();
        assert_eq!(idx.len(), 20);
        assert_eq!(idx.records_end, end);
        for (hash, loc) in &scan.entries {
            assert_eq!(idx.find(hash), Some(*loc));
        }
        assert_eq!(idx.find(&h(200)), None);
        // Flip a byte in the index: the seal is no longer trusted.
        file.write_all_at(&[0xFF], end + 3).unwrap();
        assert!(read_sealed_index(&file, PackId(1), len).unwrap().is_none());
        // An unsealed pack has no footer.
        assert!(read_sealed_index(&file, PackId(1), end).unwrap().is_none());
    }

    #[test]
    fn decoders_never_panic_on_short_or_random_input() {
        for n in 0..RECORD_HEADER_LEN + 2 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            let _ = decode_record_header(PackId(0), 0, &bytes);
        }
        let mut bad = encode_record(h(1), Codec::Raw, 3, None, b"abc");
        bad[20] = 77; // codec byte
        assert!(decode_record_header(PackId(0), 0, &bad[..RECORD_HEADER_LEN]).is_err());
    }
}
