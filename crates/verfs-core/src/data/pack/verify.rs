//! Verifying one stored record end to end: CRC and header, decryption (with a key),
//! decoding, and the plain bytes hashed back to the id the record is stored under.
//! Shared by the offline `fsck --read-data` and the online scrub, so both judge a
//! record by the same rules.

use serde::{Deserialize, Serialize};

use super::read::read_at_most;
use super::{decode_record_header, read_record, Location, PackError, RECORD_HEADER_LEN};
use crate::data::cipher::ChunkCipher;
use crate::data::compress::decompress;
use crate::data::hash::ChunkHasher;
use crate::data::packio::PackFile;
use crate::types::{ChunkHash, PackId};

/// How far a sound record could be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Every check passed, the keyed hash included (unless no hasher was given).
    Full,
    /// An encrypted record read without its key: its CRC (which covers the ciphertext
    /// and the header) passed; decryption, decoding and the hash were not checked.
    CrcOnly,
}

/// Which check a damaged record failed; the names are part of the scrub report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Damage {
    /// Magic, header, length or CRC check failed: the bytes on disk changed.
    Checksum,
    /// The CRC passed but the payload does not decompress to its plain length.
    Decode,
    /// The plain bytes do not hash to the record's chunk id.
    Hash,
    /// An encrypted record failed authentication with the vault key.
    Auth,
    /// The pack (or its index) holds no record of the chunk.
    Missing,
    /// The OS failed the read.
    Io,
}

impl Damage {
    /// A short description for reports and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Damage::Checksum => "record fails its checksum",
            Damage::Decode => "payload does not decode",
            Damage::Hash => "plain bytes hash to another id",
            Damage::Auth => "encrypted payload fails authentication",
            Damage::Missing => "record missing from its pack",
            Damage::Io => "read error",
        }
    }

    /// The byte that stands for this kind in the scrub cursor (`docs/format.md`).
    pub fn to_byte(self) -> u8 {
        match self {
            Damage::Checksum => 1,
            Damage::Decode => 2,
            Damage::Hash => 3,
            Damage::Auth => 4,
            Damage::Missing => 5,
            Damage::Io => 6,
        }
    }

    /// The kind a cursor byte stands for; `None` for an unknown byte.
    pub fn from_byte(b: u8) -> Option<Damage> {
        Some(match b {
            1 => Damage::Checksum,
            2 => Damage::Decode,
            3 => Damage::Hash,
            4 => Damage::Auth,
            5 => Damage::Missing,
            6 => Damage::Io,
            _ => return None,
        })
    }

    /// The kind of a failed pack read: an OS error is `Io`, anything else the bytes.
    pub fn of(e: &PackError) -> Damage {
        match e {
            PackError::Io { .. } => Damage::Io,
            PackError::Missing { .. } => Damage::Missing,
            PackError::Corrupt { .. } | PackError::Locked { .. } => Damage::Checksum,
        }
    }
}

/// A record that failed verification: which check, and the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The check that failed.
    pub kind: Damage,
    /// What exactly went wrong: the pack error (which names pack and offset), or for
    /// `Decode`, `Hash` and `Auth` what was found.
    pub detail: String,
}

/// A record that passed: how far, and its size on disk (for rates and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// How far it was verified.
    pub checked: Checked,
    /// Bytes of the record (header, nonce, payload).
    pub record_len: u64,
}

/// Reads the record of `expect` at `loc` in `file` (pack `pack`) and verifies it:
/// header and CRC always; then, for a plain record, decoding and (with `hasher`) the
/// keyed hash; for an encrypted one, with `cipher`, authentication, decoding and the
/// vault's id, else nothing more ([`Checked::CrcOnly`]).
///
/// Fails with the check that failed; never panics on any bytes.
pub fn verify_record(
    file: &dyn PackFile,
    pack: PackId,
    loc: Location,
    expect: &ChunkHash,
    hasher: Option<&ChunkHasher>,
    cipher: Option<&dyn ChunkCipher>,
) -> Result<Verified, Fault> {
    let fault = |kind, detail: String| Fault { kind, detail };
    let rec =
        read_record(file, pack, loc, expect).map_err(|e| fault(Damage::of(&e), e.to_string()))?;
    let h = rec.header;
    let verified = |checked| Verified {
        checked,
        record_len: h.record_len(),
    };
    let payload = match (rec.nonce, cipher) {
        (None, _) => rec.payload,
        (Some(_), None) => return Ok(verified(Checked::CrcOnly)),
        (Some(nonce), Some(c)) => c
            .open(expect, h.codec, h.plain_len, &nonce, &rec.payload)
            .map(bytes::Bytes::from)
            .ok_or_else(|| fault(Damage::Auth, "authentication failed".into()))?,
    };
    let plain = decompress(h.codec, payload, h.plain_len as usize)
        .map_err(|e| fault(Damage::Decode, e.to_string()))?;
    let got = match (rec.nonce, cipher) {
        (Some(_), Some(c)) => Some(c.chunk_id(&plain)),
        _ => hasher.map(|hs| hs.hash(&plain)),
    };
    match got {
        Some(got) if &got != expect => Err(fault(
            Damage::Hash,
            format!("its plain bytes hash to {got}"),
        )),
        _ => Ok(verified(Checked::Full)),
    }
}

/// Finds the damaged records among the first `len` bytes of `file` whose headers still
/// name a chunk `wanted` accepts: records an index lost because a scan found them
/// failing their checks. Returns each one's chunk, offset and the check it fails. Reads
/// the whole pack once, so it is meant for chunks already known to be missing.
///
/// Fails only if a read fails.
pub fn find_damaged_records(
    file: &dyn PackFile,
    pack: PackId,
    len: u64,
    wanted: &dyn Fn(&ChunkHash) -> bool,
) -> Result<Vec<(ChunkHash, u64, Fault)>, PackError> {
    let scan = super::scan_records(file, pack, len)?;
    let mut starts: Vec<u64> = scan.damaged.iter().map(|&(a, _)| a).collect();
    if scan.damaged_tail {
        starts.push(scan.valid_end);
    }
    let mut out = Vec::new();
    for start in starts {
        let mut b = [0u8; RECORD_HEADER_LEN];
        let got = read_at_most(file, &mut b, start).map_err(|e| PackError::io(pack, start, e))?;
        let Ok(h) = decode_record_header(pack, start, &b[..got]) else {
            continue;
        };
        if !wanted(&h.hash) {
            continue;
        }
        let loc = Location {
            offset: start,
            stored_len: h.stored_len,
        };
        let fault = match read_record(file, pack, loc, &h.hash) {
            Err(e) => Fault {
                kind: Damage::of(&e),
                detail: e.to_string(),
            },
            Ok(_) => Fault {
                kind: Damage::Checksum,
                detail: format!("{pack} at {start}: record is sound but was cut from the index"),
            },
        };
        out.push((h.hash, start, fault));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::super::{encode_record, file_header, HEADER_LEN, NONCE_LEN};
    use super::*;
    use crate::data::compress::Codec;

    /// A pack of one raw record of `payload` under its keyed id; returns the file, the
    /// id and the record's location.
    fn one_record(
        hasher: &ChunkHasher,
        payload: &[u8],
        nonce: Option<&[u8; NONCE_LEN]>,
    ) -> (tempfile::NamedTempFile, ChunkHash, Location) {
        let id = hasher.hash(payload);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&file_header()).unwrap();
        let rec = encode_record(id, Codec::Raw, payload.len() as u32, nonce, payload);
        f.write_all(&rec).unwrap();
        f.flush().unwrap();
        let loc = Location {
            offset: HEADER_LEN,
            stored_len: payload.len() as u32,
        };
        (f, id, loc)
    }

    #[test]
    fn each_check_names_its_failure() {
        let hasher = ChunkHasher::new(&[7; 16]);
        let (f, id, loc) = one_record(&hasher, &[5u8; 4000], None);
        let file = f.as_file();
        let ok = verify_record(file, PackId(1), loc, &id, Some(&hasher), None).unwrap();
        assert_eq!(ok.checked, Checked::Full);
        assert_eq!(ok.record_len, 36 + 4000);
        // Another filesystem's secret: the bytes are sound but hash to another id.
        let other = ChunkHasher::new(&[8; 16]);
        let e = verify_record(file, PackId(1), loc, &id, Some(&other), None).unwrap_err();
        assert_eq!(e.kind, Damage::Hash);
        // A flipped payload byte fails the CRC, and a scan finds the record by header.
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, HEADER_LEN + 36 + 100).unwrap();
        FileExt::write_all_at(file, &[!b[0]], HEADER_LEN + 36 + 100).unwrap();
        let e = verify_record(file, PackId(1), loc, &id, Some(&hasher), None).unwrap_err();
        assert_eq!(e.kind, Damage::Checksum);
        let len = file.metadata().unwrap().len();
        let found = find_damaged_records(file, PackId(1), len, &|h| h == &id).unwrap();
        assert_eq!(found.len(), 1);
        let (h, off, fault) = &found[0];
        assert_eq!((*h, *off, fault.kind), (id, HEADER_LEN, Damage::Checksum));
        let none = find_damaged_records(file, PackId(1), len, &|h| h == &ChunkHash([0; 16]));
        assert!(none.unwrap().is_empty());
    }

    #[test]
    fn encrypted_record_without_a_key_is_checked_by_crc_only() {
        let hasher = ChunkHasher::new(&[7; 16]);
        let (f, id, mut loc) = one_record(&hasher, &[3u8; 500], Some(&[1; NONCE_LEN]));
        loc.stored_len = 500;
        let v = verify_record(f.as_file(), PackId(1), loc, &id, Some(&hasher), None).unwrap();
        assert_eq!(v.checked, Checked::CrcOnly);
        assert_eq!(v.record_len, (36 + NONCE_LEN + 500) as u64);
    }

    #[test]
    fn damage_kinds_round_trip_through_their_byte() {
        for k in [
            Damage::Checksum,
            Damage::Decode,
            Damage::Hash,
            Damage::Auth,
            Damage::Missing,
            Damage::Io,
        ] {
            assert_eq!(Damage::from_byte(k.to_byte()), Some(k));
        }
        assert_eq!(Damage::from_byte(0), None);
        assert_eq!(Damage::from_byte(7), None);
    }
}
