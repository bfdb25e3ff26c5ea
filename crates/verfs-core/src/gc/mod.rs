//! Garbage collection: give back the space of chunks nothing references (DESIGN.md §7).
//!
//! Stage 1 (`stage1`) turns zero-refcount chunks into `.DISCARD` entries and deletes
//! their records; stage 2 (`stage2`) removes or rewrites the packs holding enough dead
//! bytes. Safety never rests on the log: a pack record is dropped only when, after a
//! write barrier, no chunk record names its pack, and no batch creates a record from an
//! append made before the barrier (`PackStore::drop_epoch`).
//!
//! Runs are serialized; the idle scheduler and `verfsnext gc run` share
//! [`Collector::run`].

mod progress;
mod stage1;
mod stage2;

pub use progress::GcProgress;
use progress::Progress;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::discard::{Checkpoint, DiscardLog};
use crate::datadir::DataDirPerms;
use crate::engine::Engine;
use crate::error::{FsError, FsResult};

/// The system key holding the `.DISCARD` checkpoint.
pub(crate) const CHECKPOINT_KEY: &str = "gc.discard_checkpoint";
/// The system key holding the number of the last GC run.
const RUNS_KEY: &str = "gc.runs";

/// When a pack is worth rewriting (config `gc_pack_rewrite_min_reclaim_*`).
#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// Share of the pack that must be dead, in percent.
    pub min_reclaim_percent: u64,
    /// Or this many dead bytes, whatever the share.
    pub min_reclaim_bytes: u64,
}

impl GcConfig {
    /// Whether `dead` bytes of a pack of `len` bytes justify rewriting it.
    pub fn worth_rewriting(&self, dead: u64, len: u64) -> bool {
        dead > 0
            && (dead >= self.min_reclaim_bytes
                || u128::from(dead) * 100 >= u128::from(len) * u128::from(self.min_reclaim_percent))
    }
}

/// What one GC run did (the `gc run --json` answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Chunk records deleted (stage 1).
    pub chunks_freed: u64,
    /// Stored bytes of those chunks.
    pub chunk_bytes_freed: u64,
    /// Packs rewritten with only their survivors.
    pub packs_rewritten: u64,
    /// Packs removed whole.
    pub packs_deleted: u64,
    /// Pack bytes given back to the disk.
    pub bytes_reclaimed: u64,
    /// Pack bytes written by rewrites.
    pub bytes_written: u64,
    /// Wall time of the run.
    pub millis: u64,
}

/// State of the collector (the `gc status` answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcStatus {
    /// Whether a run is in progress.
    pub running: bool,
    /// Runs finished since the daemon started.
    pub runs: u64,
    /// The last finished run.
    pub last: Option<GcReport>,
    /// Entries in `.DISCARD` (chunks deleted whose pack bytes are not yet reclaimed).
    pub discard_entries: u64,
    /// How far the run in progress is (`None` when none runs).
    #[serde(default)]
    pub progress: Option<GcProgress>,
}

/// The collector of one mounted filesystem.
pub struct Collector {
    cfg: GcConfig,
    log: Mutex<DiscardLog>,
    running: AtomicBool,
    runs: AtomicU64,
    last: Mutex<Option<GcReport>>,
    progress: Progress,
}

impl Collector {
    /// Opens the `.DISCARD` log against its checkpoint (cutting entries whose deletes
    /// never committed) and stores a corrected checkpoint.
    ///
    /// Fails if the log cannot be opened or metadata written.
    pub fn open(engine: &Engine, perms: DataDirPerms, cfg: GcConfig) -> FsResult<Collector> {
        let stored = engine
            .meta
            .read_system(CHECKPOINT_KEY)?
            .map(|b| {
                Checkpoint::decode(&b)
                    .ok_or_else(|| FsError::Corrupt(format!("{CHECKPOINT_KEY}: {} bytes", b.len())))
            })
            .transpose()?;
        let (log, changed) =
            DiscardLog::open(engine.packs.dir(), perms, stored).map_err(stage1::discard_err)?;
        if let Some(cp) = changed {
            engine.meta.set_system(CHECKPOINT_KEY, &cp.encode())?;
            engine.meta.sync()?;
        }
        Ok(Collector {
            cfg,
            log: Mutex::new(log),
            running: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            last: Mutex::new(None),
            progress: Progress::default(),
        })
    }

    /// Runs both stages to the end; waits for a run in progress to finish first.
    ///
    /// Fails if a stage fails; what was done before stays done, and the next run goes
    /// on from there.
    pub fn run(&self, engine: &Engine) -> FsResult<GcReport> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        self.progress.start();
        self.running.store(true, Ordering::SeqCst);
        let res = self.run_locked(engine, &mut log);
        self.running.store(false, Ordering::SeqCst);
        match &res {
            Ok(r) => {
                self.runs.fetch_add(1, Ordering::SeqCst);
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(*r);
                tracing::info!(?r, "GC run finished");
            }
            Err(e) => tracing::error!(error = %e, "GC run failed"),
        }
        res
    }

    fn run_locked(&self, engine: &Engine, log: &mut DiscardLog) -> FsResult<GcReport> {
        let start = Instant::now();
        let run = engine.meta.read_system_u64(RUNS_KEY)?.unwrap_or(0) + 1;
        engine.meta.set_system_u64(RUNS_KEY, run)?;
        let mut report = GcReport::default();
        (report.chunks_freed, report.chunk_bytes_freed) =
            stage1::free_zero_ref_chunks(engine, log, run, &self.progress)?;
        stage2::reclaim_packs(engine, log, &self.cfg, &mut report, &self.progress)?;
        report.millis = start.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The collector's state.
    pub fn status(&self) -> GcStatus {
        let discard_entries = self
            .log
            .try_lock()
            .map(|l| l.entry_count())
            .unwrap_or_default();
        let running = self.running.load(Ordering::SeqCst);
        GcStatus {
            running,
            progress: running.then(|| self.progress.snapshot()),
            runs: self.runs.load(Ordering::SeqCst),
            last: *self.last.lock().unwrap_or_else(|p| p.into_inner()),
            discard_entries,
        }
    }

    /// Whether stage 1 has work: some chunk is at refcount 0.
    ///
    /// Fails only if metadata cannot be read.
    pub fn has_zero_ref_chunks(engine: &Engine) -> FsResult<bool> {
        let mut any = false;
        engine.meta.view()?.for_each_zero_ref(|_| {
            any = true;
            false
        })?;
        Ok(any)
    }
}
