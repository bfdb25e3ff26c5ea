//! Stage 1 (metadata): every chunk at refcount 0 gets a `.DISCARD` entry, synced, and
//! then loses its chunk record and `Z` mark in a transaction that re-checks the
//! refcount and records the new checkpoint.
//!
//! What a crash leaves: entries appended but not checkpointed are cut at the next
//! start (their deletes did not commit, stage 1 redoes them); once the transaction is
//! durable, entries and deletes are both there. Stage 2 only runs after the metadata
//! WAL is synced, so a pack record is never dropped for a delete that a crash could
//! undo.

use crate::crash;
use crate::data::discard::{DiscardEntry, DiscardLog};
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::Reader;
use crate::types::ChunkHash;

use super::{Progress, CHECKPOINT_KEY};

/// Zero-ref chunks handled per transaction.
const BATCH: usize = 4096;

/// Runs stage 1 to the end of the `Z` index; returns (chunks deleted, their stored bytes).
///
/// Fails if the log or metadata cannot be written; what was done so far stays done.
pub(super) fn free_zero_ref_chunks(
    engine: &Engine,
    log: &mut DiscardLog,
    run: u64,
    progress: &Progress,
) -> FsResult<(u64, u64)> {
    let (mut freed, mut bytes) = (0u64, 0u64);
    loop {
        let (entries, dangling) = collect(engine, run)?;
        if entries.is_empty() && dangling.is_empty() {
            return Ok((freed, bytes));
        }
        log.append(&entries).map_err(discard_err)?;
        crash::point("gc-discard-appended");
        log.sync().map_err(discard_err)?;
        crash::point("gc-discard-synced");
        let cp = log.checkpoint().encode();
        let deleted = engine.meta.write(|txn| {
            txn.set_system(CHECKPOINT_KEY, &cp)?;
            let mut n = (0u64, 0u64);
            for h in entries.iter().map(|e| &e.hash).chain(&dangling) {
                if let Some(c) = txn.delete_unreferenced_chunk(h)? {
                    n.0 += 1;
                    n.1 += u64::from(c.stored_len);
                }
            }
            Ok::<_, FsError>(n)
        })?;
        crash::point("gc-checkpoint-advanced");
        engine.meta.sync()?;
        crash::point("gc-chunks-deleted");
        for e in &entries {
            engine.forget_chunk(&e.hash);
        }
        freed += deleted.0;
        bytes += deleted.1;
        progress.chunks(deleted.0);
        if entries.len() + dangling.len() < BATCH {
            return Ok((freed, bytes));
        }
    }
}

/// Up to [`BATCH`] zero-ref chunks: entries for those still at refcount 0, and the
/// hashes of `Z` marks whose record is missing or referenced (dropped without entry).
fn collect(engine: &Engine, run: u64) -> FsResult<(Vec<DiscardEntry>, Vec<ChunkHash>)> {
    let view = engine.meta.view()?;
    let mut hashes = Vec::new();
    let mut bad = None;
    view.for_each_zero_ref(|h| match h {
        Ok(h) => {
            hashes.push(h);
            hashes.len() < BATCH
        }
        Err(e) => {
            bad = Some(e);
            false
        }
    })?;
    if let Some(e) = bad {
        return Err(e.into());
    }
    let (mut entries, mut dangling) = (Vec::new(), Vec::new());
    for hash in hashes {
        match view.chunk(&hash)? {
            Some(c) if c.refcount == 0 => entries.push(DiscardEntry {
                run,
                pack: c.pack_id,
                hash,
                stored_len: c.stored_len,
            }),
            _ => dangling.push(hash),
        }
    }
    Ok((entries, dangling))
}

/// The errno-carrying error of a discard log failure.
pub(super) fn discard_err(e: crate::data::discard::DiscardError) -> FsError {
    match e {
        crate::data::discard::DiscardError::Io(io) => FsError::from_io("GC discard log", &io),
        other => FsError::Corrupt(other.to_string()),
    }
}
