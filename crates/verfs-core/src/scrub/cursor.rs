//! The saved state of an interrupted scrub pass: where it stopped and what it had found,
//! kept as the system value `scrub.cursor` so a pass cut short by an unmount or a
//! `scrub cancel` goes on from there (byte table in `docs/format.md`).
//!
//! ```text
//! cursor := version:u8(=1) pack:u64 offset:u64 records:u64 bytes:u64 crc_only:u64
//!           damaged:u64 n:u32 entry*n                                   53 + 33·n bytes
//! entry  := pack:u64 offset:u64 chunk:[16] kind:u8                      33 bytes
//! ```
//!
//! Little-endian. Records of pack `pack` at offsets below `offset`, and of every lower
//! pack, were verified. An entry's offset is `u64::MAX` when the record was not found.

use serde::{Deserialize, Serialize};

use crate::data::pack::Damage;
use crate::types::{ChunkHash, PackId};

/// The system key the cursor is stored under.
pub(crate) const CURSOR_KEY: &str = "scrub.cursor";
/// The only version this build writes and reads.
const VERSION: u8 = 1;
const FIXED_LEN: usize = 53;
const ENTRY_LEN: usize = 33;
/// Damaged records listed in a cursor; more are only counted.
pub(crate) const MAX_ENTRIES: usize = 1024;

/// Where a scrub pass stands: the next record to verify is the first one of pack
/// `pack` at or after `offset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScrubCursor {
    /// The pack.
    pub pack: u64,
    /// The byte offset inside it.
    pub offset: u64,
}

/// One damaged record as the cursor keeps it (paths are looked up at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    /// The pack named by the chunk record.
    pub pack: PackId,
    /// The record's offset; `None` when the pack holds no record of the chunk.
    pub offset: Option<u64>,
    /// The chunk.
    pub hash: ChunkHash,
    /// The check it failed.
    pub kind: Damage,
}

/// Everything a pass needs to go on after an interruption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Saved {
    /// Where to go on.
    pub at: ScrubCursor,
    /// Records verified so far.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Encrypted records only CRC-checked (vault locked).
    pub crc_only: u64,
    /// Damaged records found so far (may exceed `found.len()`).
    pub damaged: u64,
    /// The first [`MAX_ENTRIES`] of them.
    pub found: Vec<Found>,
}

impl Saved {
    /// The stored bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let found = &self.found[..self.found.len().min(MAX_ENTRIES)];
        let mut out = Vec::with_capacity(FIXED_LEN + ENTRY_LEN * found.len());
        out.push(VERSION);
        for v in [
            self.at.pack,
            self.at.offset,
            self.records,
            self.bytes,
            self.crc_only,
            self.damaged,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(found.len() as u32).to_le_bytes());
        for f in found {
            out.extend_from_slice(&f.pack.0.to_le_bytes());
            out.extend_from_slice(&f.offset.unwrap_or(u64::MAX).to_le_bytes());
            out.extend_from_slice(&f.hash.0);
            out.push(f.kind.to_byte());
        }
        out
    }

    /// Decodes stored bytes; `None` for another version, a wrong length or an unknown
    /// damage kind (the caller then starts a new pass and says so).
    pub(crate) fn decode(b: &[u8]) -> Option<Saved> {
        if b.len() < FIXED_LEN || b[0] != VERSION {
            return None;
        }
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
        };
        let n = u32::from_le_bytes(b.get(49..53)?.try_into().ok()?) as usize;
        if n > MAX_ENTRIES || b.len() != FIXED_LEN + ENTRY_LEN * n {
            return None;
        }
        let mut found = Vec::with_capacity(n);
        for i in 0..n {
            let e = FIXED_LEN + ENTRY_LEN * i;
            let offset = u64_at(e + 8)?;
            found.push(Found {
                pack: PackId(u64_at(e)?),
                offset: (offset != u64::MAX).then_some(offset),
                hash: ChunkHash(b.get(e + 16..e + 32)?.try_into().ok()?),
                kind: Damage::from_byte(*b.get(e + 32)?)?,
            });
        }
        Some(Saved {
            at: ScrubCursor {
                pack: u64_at(1)?,
                offset: u64_at(9)?,
            },
            records: u64_at(17)?,
            bytes: u64_at(25)?,
            crc_only: u64_at(33)?,
            damaged: u64_at(41)?,
            found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Saved {
        Saved {
            at: ScrubCursor {
                pack: 7,
                offset: 4096,
            },
            records: 10,
            bytes: 1 << 20,
            crc_only: 2,
            damaged: 2,
            found: vec![
                Found {
                    pack: PackId(3),
                    offset: Some(16),
                    hash: ChunkHash([9; 16]),
                    kind: Damage::Checksum,
                },
                Found {
                    pack: PackId(5),
                    offset: None,
                    hash: ChunkHash([1; 16]),
                    kind: Damage::Missing,
                },
            ],
        }
    }

    #[test]
    fn round_trip_matches_the_table() {
        let s = sample();
        let b = s.encode();
        assert_eq!(b.len(), FIXED_LEN + 2 * ENTRY_LEN);
        assert_eq!(b[0], 1);
        assert_eq!(Saved::decode(&b), Some(s));
    }

    #[test]
    fn unknown_version_length_and_kind_are_refused() {
        let b = sample().encode();
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(Saved::decode(&v2), None);
        assert_eq!(Saved::decode(&b[..b.len() - 1]), None);
        assert_eq!(Saved::decode(&[]), None);
        let mut bad_kind = b.clone();
        let last = bad_kind.len() - 1;
        bad_kind[last] = 99;
        assert_eq!(Saved::decode(&bad_kind), None);
        for cut in 0..b.len() {
            let _ = Saved::decode(&b[..cut]);
        }
    }
}
