//! Stage 2 (packs): sum the dead bytes per pack from `.DISCARD`, seal the active pack
//! if it holds enough of them, wait for writes in flight, then find each candidate
//! pack's survivors (records whose chunk record still names the pack) and remove the
//! packs without survivors, then rewrite the others in order of bytes freed per byte
//! written, as long as the disk has room for the copy. Entries of packs dealt with are
//! then compacted out of the log.

use std::collections::{BTreeMap, HashSet};

use crate::crash;
use crate::data::discard::{DiscardEntry, DiscardLog};
use crate::data::pack::{Location, RECORD_HEADER_LEN};
use crate::engine::Engine;
use crate::error::FsResult;
use crate::meta::Reader;
use crate::types::{ChunkHash, PackId};

use super::stage1::discard_err;
use super::{GcConfig, GcReport, Progress, CHECKPOINT_KEY};

/// One pack GC looked at: its size and the records to keep.
struct Plan {
    id: PackId,
    len: u64,
    keep: Vec<(ChunkHash, Location)>,
    keep_bytes: u64,
}

impl Plan {
    fn freed(&self) -> u64 {
        self.len.saturating_sub(self.keep_bytes)
    }
}

/// Runs stage 2, adding what it did to `report`.
///
/// Fails if a pack cannot be read or replaced, or the log cannot be compacted; packs
/// dealt with before the failure stay dealt with.
pub(super) fn reclaim_packs(
    engine: &Engine,
    log: &mut DiscardLog,
    cfg: &GcConfig,
    report: &mut GcReport,
    progress: &Progress,
) -> FsResult<()> {
    let entries = log.entries().map_err(discard_err)?;
    let dead = dead_bytes_per_pack(&entries);
    let packs = &engine.packs;
    let active = packs.active_id();
    if let Some(&d) = dead.get(&active) {
        let len = packs.pack_len(active).unwrap_or(0);
        if cfg.worth_rewriting(d, len) {
            packs.seal_active_now()?;
        }
    }
    let active = packs.active_id();
    let candidates: Vec<PackId> = dead
        .iter()
        .filter(|(id, d)| {
            **id != active
                && packs
                    .pack_len(**id)
                    .is_some_and(|l| cfg.worth_rewriting(**d, l))
        })
        .map(|(id, _)| *id)
        .collect();
    let done = if candidates.is_empty() {
        HashSet::new()
    } else {
        // No append to a candidate is in flight after this (they are all sealed, and
        // every transaction that appended to one has finished), and a batch holding an
        // append from before this point will not create a record from it.
        packs.bump_drop_epoch();
        engine.meta.write_barrier();
        let plans = plan(engine, &candidates)?;
        progress.packs_planned(plans.len() as u64);
        apply(engine, plans, report, progress)?
    };
    compact(engine, log, entries, &done)
}

/// Dead bytes per pack, each (pack, chunk) counted once.
fn dead_bytes_per_pack(entries: &[DiscardEntry]) -> BTreeMap<PackId, u64> {
    let mut seen = HashSet::new();
    let mut dead = BTreeMap::new();
    for e in entries {
        if seen.insert((e.pack, e.hash)) {
            *dead.entry(e.pack).or_insert(0) += u64::from(e.stored_len) + RECORD_HEADER_LEN as u64;
        }
    }
    dead
}

/// The survivors of every candidate, decided on one metadata view taken after the
/// write barrier.
fn plan(engine: &Engine, candidates: &[PackId]) -> FsResult<Vec<Plan>> {
    let view = engine.meta.view()?;
    let mut plans = Vec::with_capacity(candidates.len());
    for &id in candidates {
        let Some(len) = engine.packs.pack_len(id) else {
            continue;
        };
        let mut keep = Vec::new();
        let mut keep_bytes = 0;
        for (hash, loc) in engine.packs.sealed_records(id)? {
            if view.chunk(&hash)?.is_some_and(|c| c.pack_id == id) {
                keep_bytes += u64::from(loc.stored_len) + RECORD_HEADER_LEN as u64 + 32;
                keep.push((hash, loc));
            }
        }
        plans.push(Plan {
            id,
            len,
            keep,
            keep_bytes,
        });
    }
    Ok(plans)
}

/// Removes packs without survivors first (they need no space), then rewrites the rest,
/// best ratio of freed to written first. Returns the packs dealt with.
fn apply(
    engine: &Engine,
    mut plans: Vec<Plan>,
    report: &mut GcReport,
    progress: &Progress,
) -> FsResult<HashSet<PackId>> {
    let mut done = HashSet::new();
    for p in plans.iter().filter(|p| p.keep.is_empty()) {
        let freed = engine.packs.remove_pack(p.id)?;
        report.bytes_reclaimed += freed;
        report.packs_deleted += 1;
        progress.pack_done(freed);
        done.insert(p.id);
        tracing::debug!(pack = %p.id, "GC removed a pack nothing uses");
    }
    plans.retain(|p| !p.keep.is_empty());
    plans.sort_by(|a, b| {
        // freed_a / written_a > freed_b / written_b, without division.
        let l = u128::from(a.freed()) * u128::from(b.keep_bytes.max(1));
        let r = u128::from(b.freed()) * u128::from(a.keep_bytes.max(1));
        r.cmp(&l)
    });
    for p in &plans {
        if !engine.packs.gc_may_write(p.keep_bytes) {
            tracing::warn!(pack = %p.id, need = p.keep_bytes, "GC skips a rewrite: not enough free space for the copy");
            progress.pack_done(0);
            continue;
        }
        let r = engine.packs.rewrite_pack(p.id, &p.keep)?;
        report.bytes_reclaimed += r.old_len.saturating_sub(r.new_len);
        report.bytes_written += r.new_len;
        report.packs_rewritten += 1;
        progress.pack_done(r.old_len.saturating_sub(r.new_len));
        done.insert(p.id);
        tracing::debug!(pack = %p.id, old = r.old_len, new = r.new_len, "GC rewrote a pack");
    }
    Ok(done)
}

/// Drops from the log the entries of packs dealt with or gone, and duplicates.
fn compact(
    engine: &Engine,
    log: &mut DiscardLog,
    entries: Vec<DiscardEntry>,
    done: &HashSet<PackId>,
) -> FsResult<()> {
    let total = entries.len();
    let mut seen = HashSet::new();
    let keep: Vec<DiscardEntry> = entries
        .into_iter()
        .filter(|e| !done.contains(&e.pack) && engine.packs.pack_len(e.pack).is_some())
        .filter(|e| seen.insert((e.pack, e.hash)))
        .collect();
    if keep.len() == total {
        return Ok(());
    }
    let cp = log.compact(&keep).map_err(discard_err)?;
    crash::point("gc-discard-compacted");
    engine
        .meta
        .write(|txn| txn.set_system(CHECKPOINT_KEY, &cp.encode()))?;
    engine.meta.sync()?;
    Ok(())
}
