//! One scrub pass: plan from the chunk records, then packs in id order and records in
//! offset order, each verified at the configured rate, the cursor saved every second
//! and whenever the pass stops early.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::cursor::{Found, Saved, ScrubCursor, CURSOR_KEY, MAX_ENTRIES};
use super::{paths, DamagedChunk, ScrubReport, Scrubber};
use crate::data::pack::{Checked, Damage, Fault, PackError, NONCE_LEN, RECORD_HEADER_LEN};
use crate::engine::Engine;
use crate::error::FsResult;
use crate::meta::{MetaError, Reader, CHUNK_FLAG_ENCRYPTED, CHUNK_FLAG_LOST};
use crate::types::{ChunkHash, PackId};

/// How often the cursor is saved while a pass runs.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The chunks each pack should hold, with the bytes of their records.
type Plan = BTreeMap<PackId, Vec<(ChunkHash, u64)>>;

/// The saved cursor, if there is one that decodes.
///
/// Fails only if metadata cannot be read.
pub(super) fn load_saved(engine: &Engine) -> Result<Option<Saved>, MetaError> {
    Ok(engine
        .meta
        .read_system(CURSOR_KEY)?
        .and_then(|b| Saved::decode(&b)))
}

/// Runs pass `run` and reports it; failures end up in `error`, never a panic.
pub(super) fn run(sc: &Scrubber, engine: &Engine, run: u64, restart: bool) -> ScrubReport {
    let start = Instant::now();
    let mut report = ScrubReport {
        run,
        ..ScrubReport::default()
    };
    if let Err(e) = go(sc, engine, restart, &mut report) {
        tracing::error!(error = %e, "scrub failed");
        report.error = Some(e.to_string());
    }
    report.millis = start.elapsed().as_millis() as u64;
    tracing::info!(
        run,
        complete = report.complete,
        records = report.records_verified,
        damaged = report.damaged_count,
        "scrub run ended"
    );
    report
}

/// The cursor to go on from: none with `restart`; an undecodable one is noted and
/// dropped.
fn starting_point(engine: &Engine, restart: bool, report: &mut ScrubReport) -> FsResult<Saved> {
    let raw = engine.meta.read_system(CURSOR_KEY)?;
    if restart || raw.is_none() {
        if raw.is_some() {
            engine.meta.delete_system(CURSOR_KEY)?;
        }
        return Ok(Saved::default());
    }
    match raw.as_deref().and_then(Saved::decode) {
        Some(s) => {
            report.resumed_from = Some(s.at);
            Ok(s)
        }
        None => {
            report
                .notes
                .push("the saved scrub cursor is of an unknown version or damaged; started from the first pack".into());
            Ok(Saved::default())
        }
    }
}

/// Every chunk record that should be in a pack, by pack (chunks marked lost at a
/// crash recovery are known damage and skipped).
fn plan(engine: &Engine) -> FsResult<Plan> {
    let mut plan = Plan::new();
    engine.meta.view()?.for_each_chunk(|hash, c| {
        if c.flags & CHUNK_FLAG_LOST == 0 {
            let nonce = if c.flags & CHUNK_FLAG_ENCRYPTED != 0 {
                NONCE_LEN
            } else {
                0
            };
            let len = (RECORD_HEADER_LEN + nonce) as u64 + u64::from(c.stored_len);
            plan.entry(c.pack_id).or_default().push((hash, len));
        }
        Ok(true)
    })?;
    Ok(plan)
}

fn go(sc: &Scrubber, engine: &Engine, restart: bool, report: &mut ScrubReport) -> FsResult<()> {
    let saved = starting_point(engine, restart, report)?;
    let plan = plan(engine)?;
    let records = plan.values().map(Vec::len).sum::<usize>() as u64;
    let bytes = plan.values().flatten().map(|(_, l)| l).sum();
    sc.progress.planned(records, bytes);
    let mut w = Walk {
        sc,
        engine,
        saved,
        details: HashMap::new(),
        moved: 0,
        pacer: Pacer::new(sc.cfg.rate_bytes_per_s),
        last_save: Instant::now(),
    };
    let mut halted = None;
    for (pack, chunks) in plan {
        if pack.0 < w.saved.at.pack {
            chunks.iter().for_each(|(_, l)| sc.progress.done(*l));
            continue;
        }
        halted = w.pack(pack, chunks)?;
        if halted.is_some() {
            break;
        }
    }
    match halted {
        Some(why) => {
            w.save();
            report.stopped_at = Some(w.saved.at);
            report.notes.push(format!(
                "stopped ({why}) at pack {} offset {}; the next `verfsnext scrub` goes on from there",
                w.saved.at.pack, w.saved.at.offset
            ));
        }
        None => {
            engine.meta.delete_system(CURSOR_KEY)?;
            report.complete = true;
        }
    }
    w.finish(report)
}

/// A pass in progress.
struct Walk<'a> {
    sc: &'a Scrubber,
    engine: &'a Engine,
    saved: Saved,
    /// Failure details of damage found in this run (earlier runs kept only the kind).
    details: HashMap<(PackId, ChunkHash), String>,
    moved: u64,
    pacer: Pacer,
    last_save: Instant,
}

impl Walk<'_> {
    /// Verifies the records of `pack` from the cursor on; `Some(why)` if it stopped
    /// early, the cursor then at the first record not verified.
    fn pack(
        &mut self,
        pack: PackId,
        chunks: Vec<(ChunkHash, u64)>,
    ) -> FsResult<Option<&'static str>> {
        let mut recs = Vec::with_capacity(chunks.len());
        let mut lost = Vec::new();
        for (hash, len) in chunks {
            match self.engine.packs.record_location(pack, &hash) {
                Ok(loc) => recs.push((loc.offset, hash, len)),
                Err(e) => lost.push((hash, len, e)),
            }
        }
        if !lost.is_empty() {
            self.report_lost(pack, lost)?;
        }
        recs.sort();
        let from = if pack.0 == self.saved.at.pack {
            self.saved.at.offset
        } else {
            0
        };
        for (offset, hash, len) in recs {
            if offset < from {
                self.sc.progress.done(len);
                continue;
            }
            if let Some(why) = self.sc.halted() {
                self.saved.at = ScrubCursor {
                    pack: pack.0,
                    offset,
                };
                return Ok(Some(why));
            }
            match self.engine.packs.verify_chunk(pack, &hash) {
                Ok(v) => {
                    self.saved.records += 1;
                    self.saved.bytes += v.record_len;
                    if v.checked == Checked::CrcOnly {
                        self.saved.crc_only += 1;
                    }
                }
                Err(f) => self.failed(pack, Some(offset), hash, f)?,
            }
            self.sc.progress.done(len);
            self.saved.at = ScrubCursor {
                pack: pack.0,
                offset: offset + 1,
            };
            self.pacer.pace(len, || self.sc.halted().is_some());
            if self.last_save.elapsed() >= SAVE_EVERY {
                self.save();
            }
        }
        Ok(None)
    }

    /// Reports the chunks `pack`'s index has no record of: a damaged record the scan at
    /// open cut from the index is found by its header (one scan of the pack for all of
    /// them) and reported with its offset, anything else with the lookup's error.
    fn report_lost(
        &mut self,
        pack: PackId,
        lost: Vec<(ChunkHash, u64, PackError)>,
    ) -> FsResult<()> {
        let missing: HashSet<ChunkHash> = lost
            .iter()
            .filter(|(_, _, e)| matches!(e, PackError::Missing { .. }))
            .map(|(h, _, _)| *h)
            .collect();
        let mut found = HashMap::new();
        if !missing.is_empty() {
            match self.engine.packs.find_damaged_records(pack, &missing) {
                Ok(f) => found = f,
                Err(e) => {
                    tracing::warn!(error = %e, "scrub: cannot scan {pack} for damaged records")
                }
            }
        }
        for (hash, len, e) in lost {
            let (offset, fault) = match found.remove(&hash) {
                Some((offset, fault)) => (Some(offset), fault),
                None => (
                    None,
                    Fault {
                        kind: Damage::of(&e),
                        detail: e.to_string(),
                    },
                ),
            };
            self.failed(pack, offset, hash, fault)?;
            self.sc.progress.done(len);
        }
        Ok(())
    }

    /// A record failed: damage, unless GC moved or freed the chunk meanwhile (its
    /// chunk record, read again, no longer names this pack).
    fn failed(
        &mut self,
        pack: PackId,
        offset: Option<u64>,
        hash: ChunkHash,
        f: Fault,
    ) -> FsResult<()> {
        let now = self.engine.meta.view()?.chunk(&hash)?;
        if now.is_none_or(|c| c.pack_id != pack || c.flags & CHUNK_FLAG_LOST != 0) {
            self.moved += 1;
            return Ok(());
        }
        if self
            .saved
            .found
            .iter()
            .any(|x| x.pack == pack && x.hash == hash)
        {
            return Ok(());
        }
        let at = offset.map_or_else(|| "-".to_string(), |o| o.to_string());
        tracing::error!(pack = %pack, offset = %at, chunk = %hash, kind = f.kind.describe(), "scrub: damaged chunk record in {pack} at offset {at}: {}", f.detail);
        self.engine.stats.scrub_damaged();
        self.sc.progress.damaged();
        self.saved.damaged += 1;
        if self.saved.found.len() < MAX_ENTRIES {
            self.saved.found.push(Found {
                pack,
                offset,
                hash,
                kind: f.kind,
            });
        }
        self.details.insert((pack, hash), f.detail);
        Ok(())
    }

    /// Saves the cursor; a failure (a full disk) is logged and the pass goes on, at
    /// worst repeating work after an interruption.
    fn save(&mut self) {
        self.last_save = Instant::now();
        if let Err(e) = self
            .engine
            .meta
            .set_system(CURSOR_KEY, &self.saved.encode())
        {
            tracing::warn!(error = %e, "scrub cursor not saved");
        }
    }

    /// Fills the report: counts, and each damaged record with the files using it.
    fn finish(self, report: &mut ScrubReport) -> FsResult<()> {
        let s = &self.saved;
        report.records_verified = s.records;
        report.bytes_verified = s.bytes;
        report.crc_only = s.crc_only;
        report.damaged_count = s.damaged;
        report.moved = self.moved;
        if s.crc_only > 0 {
            report.notes.push(format!(
                "{} encrypted (vault) chunk records were checked by CRC only because the vault is locked; unlock it and scrub again to verify them fully",
                s.crc_only
            ));
        }
        let hashes: BTreeSet<ChunkHash> = s.found.iter().map(|f| f.hash).collect();
        let mut files = paths::files_referencing(&self.engine.meta, &hashes)?;
        for f in &s.found {
            let detail = self
                .details
                .get(&(f.pack, f.hash))
                .cloned()
                .unwrap_or_else(|| {
                    format!(
                        "{} (found before the pass was interrupted)",
                        f.kind.describe()
                    )
                });
            report.damaged.push(DamagedChunk {
                pack: f.pack.0,
                offset: f.offset,
                chunk: f.hash.to_string(),
                kind: f.kind,
                detail,
                files: files.remove(&f.hash).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

/// Keeps the read rate at or below `rate` bytes per second, measured from the start
/// of the run; credit older than a second is dropped so a pause is no licence to burst.
struct Pacer {
    rate: u64,
    since: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            rate,
            since: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes read and sleeps until they are due (in steps of at most 100 ms,
    /// so `halted` is honoured quickly).
    fn pace(&mut self, n: u64, halted: impl Fn() -> bool) {
        if self.rate == 0 {
            return;
        }
        self.bytes += n;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let elapsed = self.since.elapsed();
        if elapsed > due + Duration::from_secs(1) {
            self.since = Instant::now();
            self.bytes = 0;
            return;
        }
        while !halted() {
            let elapsed = self.since.elapsed();
            if elapsed >= due {
                break;
            }
            std::thread::sleep((due - elapsed).min(Duration::from_millis(100)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_holds_the_rate() {
        let mut p = Pacer::new(10 << 20);
        let start = Instant::now();
        for _ in 0..4 {
            p.pace(1 << 20, || false);
        }
        // 4 MiB at 10 MiB/s: at least 0.4 s.
        assert!(
            start.elapsed() >= Duration::from_millis(390),
            "{:?}",
            start.elapsed()
        );
        let mut free = Pacer::new(0);
        let start = Instant::now();
        free.pace(1 << 30, || false);
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn pacer_stops_waiting_when_halted() {
        let mut p = Pacer::new(1 << 20);
        let start = Instant::now();
        p.pace(100 << 20, || true);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
