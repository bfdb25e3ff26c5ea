//! The pack file format: the only place that knows it (byte tables in `docs/format.md`).
//! Record layout and encoding live here, reading records back in `read`, scanning and
//! the sealed index in `scan`, verifying a record end to end (fsck and scrub) in
//! `verify`.
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

use thiserror::Error;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::compress::Codec;
use crate::types::{ChunkHash, PackId};

mod read;
mod scan;
mod verify;

pub use read::{read_raw_payload_into, read_record, read_sealed_payload_into, RecordData};
pub use scan::{
    check_file_header, encode_seal, index_from_scan, is_sealed, read_sealed_index, rebuild_seal,
    scan_records, ScanResult, SealedIndex,
};
pub use verify::{find_damaged_records, verify_record, Checked, Damage, Fault, Verified};

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
    #[error("{pack} at {offset}: {cause}")]
    Io {
        /// The pack.
        pack: PackId,
        /// Where.
        offset: u64,
        /// The OS error (in the message only, so a printed chain names it once).
        cause: std::io::Error,
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
    /// The record is encrypted and no key for it is loaded (the vault is locked).
    #[error("{pack} at {offset}: encrypted chunk and the vault is locked")]
    Locked {
        /// The pack.
        pack: PackId,
        /// Where.
        offset: u64,
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
    pub(crate) fn io(pack: PackId, offset: u64, cause: std::io::Error) -> PackError {
        PackError::Io {
            pack,
            offset,
            cause,
        }
    }

    /// A `Corrupt` error at `offset` of `pack`.
    pub(crate) fn corrupt_at(pack: PackId, offset: u64, what: impl Into<String>) -> PackError {
        Self::corrupt(pack, offset, what)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

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
        assert!(is_sealed(&file, PackId(1), len).unwrap());
        // Flip a byte in the index: the index is no longer trusted, but the footer still
        // says the pack was sealed (the index is then rebuilt by scanning).
        file.write_all_at(&[0xFF], end + 3).unwrap();
        assert!(read_sealed_index(&file, PackId(1), len).unwrap().is_none());
        assert!(is_sealed(&file, PackId(1), len).unwrap());
        // An unsealed pack has no footer, nor has one whose footer was cut short.
        assert!(read_sealed_index(&file, PackId(1), end).unwrap().is_none());
        assert!(!is_sealed(&file, PackId(1), end).unwrap());
        assert!(!is_sealed(&file, PackId(1), len - 1).unwrap());
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
