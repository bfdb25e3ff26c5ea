//! Check 6 (`--read-data`): every record of every pack is read back, its CRC checked,
//! its payload decoded, and its plain bytes hashed with the filesystem's keyed hasher to
//! the id it is stored under, like `restic check --read-data`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::packs::Context;
use super::report::{ProblemKind, Report};
use super::Progress;
use crate::data::pack::{self, Checked, Damage, Location};
use crate::data::ChunkHasher;
use crate::types::{ChunkHash, PackId};

/// The chunk id in the header of the record at `offset`, if the header still decodes
/// (so a damaged record can name the chunk it held).
pub(super) fn claimed_hash(file: &File, id: PackId, offset: u64) -> Option<ChunkHash> {
    let mut b = [0u8; pack::RECORD_HEADER_LEN];
    file.read_exact_at(&mut b, offset).ok()?;
    pack::decode_record_header(id, offset, &b)
        .ok()
        .map(|h| h.hash)
}

/// Reads, decodes and re-hashes every record in `entries` (a scan of the pack, so
/// every record, older duplicates included); `hasher` is `None` when the hash secret is
/// unusable, and then only CRCs and decoding are checked.
pub(super) fn verify_records(
    file: &File,
    id: PackId,
    entries: &[(ChunkHash, Location)],
    hasher: Option<&ChunkHasher>,
    cx: &Context,
    report: &mut Report,
    progress: &mut dyn Progress,
) {
    if entries.is_empty() {
        // An empty pack (just rotated to) has nothing to read: no phase to show.
        return;
    }
    progress.phase(&format!("reading {id}"), entries.len() as u64);
    for (i, (hash, loc)) in entries.iter().enumerate() {
        if let Err((kind, msg)) = verify_one(file, id, hash, *loc, hasher, report) {
            let msg = format!("{id} at {}: chunk {hash}: {msg}", loc.offset);
            report.problem(kind, msg, cx.refs.user(hash, cx.ns));
            report.unreadable(*hash);
        }
        progress.advance(i as u64 + 1);
    }
}

/// Verifies one record with the check shared with the online scrub; the error says
/// which check failed and how.
fn verify_one(
    file: &File,
    id: PackId,
    hash: &ChunkHash,
    loc: Location,
    hasher: Option<&ChunkHasher>,
    report: &mut Report,
) -> Result<(), (ProblemKind, String)> {
    // Vault chunks decrypt only with the vault key, which an offline check lacks.
    match pack::verify_record(file, id, loc, hash, hasher, None) {
        Ok(v) => {
            report.counts.records_read += 1;
            report.counts.bytes_read += v.record_len;
            if v.checked == Checked::CrcOnly {
                report.counts.encrypted_unverified += 1;
            }
            Ok(())
        }
        Err(f) => {
            if matches!(f.kind, Damage::Decode | Damage::Hash) {
                // The record was read; only its contents are wrong.
                report.counts.records_read += 1;
                report.counts.bytes_read += u64::from(loc.stored_len);
            }
            let kind = match f.kind {
                Damage::Hash => ProblemKind::HashMismatch,
                _ => ProblemKind::DamagedRecord,
            };
            Err((kind, f.detail))
        }
    }
}
