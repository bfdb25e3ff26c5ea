//! The online scrub (`verfsnext scrub`, like `zpool scrub`): reads every chunk record
//! the metadata names back from its pack while the filesystem is in use, verifies it
//! (CRC, decoding, keyed id; vault chunks by CRC only while the vault is locked) with the
//! checks `fsck --read-data` uses, and reports each damaged record with the paths of
//! every live and snapshot file that references it.
//!
//! A pass goes through packs in id order and through each pack in offset order, at no
//! more than `scrub_rate_mb_per_s`, so foreground I/O keeps most of the disk. Its cursor
//! (`cursor`) is saved every second and when the pass is cut short (unmount, `scrub
//! cancel`); the next `scrub` start goes on from there. `pass` runs a pass, `paths`
//! finds who references a damaged chunk.

mod cursor;
mod pass;
mod paths;

pub use cursor::ScrubCursor;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::data::pack::Damage;
use crate::engine::Engine;

/// How fast a pass may read (config `scrub_rate_mb_per_s`).
#[derive(Debug, Clone, Copy)]
pub struct ScrubConfig {
    /// Bytes per second of records read; 0 means no limit.
    pub rate_bytes_per_s: u64,
}

/// One damaged chunk record and the files it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedChunk {
    /// The pack its chunk record names.
    pub pack: u64,
    /// The record's offset in the pack; `None` when the pack holds no record of it.
    pub offset: Option<u64>,
    /// The chunk id (hex).
    pub chunk: String,
    /// The check that failed.
    pub kind: Damage,
    /// What exactly failed.
    pub detail: String,
    /// Paths of every live file and every snapshot file (`/.snapshots/NAME/...`)
    /// whose data includes the chunk, sorted; empty when nothing references it.
    pub files: Vec<String>,
}

/// What a scrub pass found (the `scrub --json` answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    /// The run's number since the daemon started (to match a report to its start).
    pub run: u64,
    /// Whether the pass reached the last record; `false` when it was cancelled, the
    /// daemon stopped, or it failed (`error`).
    pub complete: bool,
    /// Where this run went on from, when it resumed an interrupted pass.
    pub resumed_from: Option<ScrubCursor>,
    /// Where the pass stopped, when it did not complete (the next start goes on there).
    pub stopped_at: Option<ScrubCursor>,
    /// Chunk records verified in this pass (across resumed runs).
    pub records_verified: u64,
    /// Their bytes in the packs.
    pub bytes_verified: u64,
    /// Encrypted (vault) records checked by CRC only, because the vault was locked.
    pub crc_only: u64,
    /// Damaged chunk records found in this pass.
    pub damaged_count: u64,
    /// The damaged records (the first 1024), with the files that reference them.
    pub damaged: Vec<DamagedChunk>,
    /// Chunks GC moved or freed while the pass ran (not checked, not damage).
    pub moved: u64,
    /// What the reader should know (vault locked, a cursor that could not be used).
    pub notes: Vec<String>,
    /// Why the pass failed, if it did.
    pub error: Option<String>,
    /// Wall time of this run.
    pub millis: u64,
}

/// How far the running pass is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubProgress {
    /// Chunk records to go through in this pass.
    pub records_total: u64,
    /// Of those, done (verified, or skipped as verified before an interruption).
    pub records_done: u64,
    /// Bytes of those records.
    pub bytes_total: u64,
    /// Of those, done.
    pub bytes_done: u64,
    /// Damaged records found so far in this pass.
    pub damaged: u64,
}

/// The scrub's state (the `scrub status` answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubStatus {
    /// Whether a pass runs now.
    pub running: bool,
    /// The number of the last run started (0: none since the daemon started).
    pub run: u64,
    /// How far the running pass is.
    pub progress: Option<ScrubProgress>,
    /// The last run that ended.
    pub last: Option<ScrubReport>,
    /// Where an interrupted pass stands (the next start resumes there), if one does.
    pub saved: Option<ScrubCursor>,
}

/// Why a pass should stop early.
const GO: u8 = 0;
const CANCEL: u8 = 1;
const STOP: u8 = 2;

/// The scrub of one mounted filesystem: its settings, the state of the running pass
/// and the last report. Passes never overlap (the service starts one at a time).
pub struct Scrubber {
    cfg: ScrubConfig,
    running: AtomicBool,
    halt: AtomicU8,
    runs: AtomicU64,
    progress: Progress,
    last: Mutex<Option<ScrubReport>>,
}

impl Scrubber {
    /// A scrubber with nothing run yet.
    pub fn new(cfg: ScrubConfig) -> Scrubber {
        Scrubber {
            cfg,
            running: AtomicBool::new(false),
            halt: AtomicU8::new(GO),
            runs: AtomicU64::new(0),
            progress: Progress::default(),
            last: Mutex::new(None),
        }
    }

    /// Claims the next run: `Some(number)` if none runs (it is marked running), else
    /// `None`.
    pub fn claim(&self) -> Option<u64> {
        if self.running.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.halt.store(GO, Ordering::SeqCst);
        self.progress.reset();
        Some(self.runs.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Gives back a claim whose pass could not be started.
    pub fn unclaim(&self) {
        self.running.store(false, Ordering::SeqCst);
    }

    /// The number of the last run claimed.
    pub fn status_run(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// Runs the claimed pass `run` to its end (or until cancelled or stopped) and keeps
    /// its report; `restart` drops a saved cursor and begins at the first pack.
    pub fn run(&self, engine: &Engine, run: u64, restart: bool) -> ScrubReport {
        let report = pass::run(self, engine, run, restart);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        self.running.store(false, Ordering::SeqCst);
        report
    }

    /// Asks the running pass to stop after the record in progress, keeping its cursor.
    /// Returns whether one was running.
    pub fn cancel(&self) -> bool {
        self.halt.store(CANCEL, Ordering::SeqCst);
        self.running.load(Ordering::SeqCst)
    }

    /// Like [`Scrubber::cancel`], for a daemon that stops.
    pub fn stop(&self) {
        self.halt.store(STOP, Ordering::SeqCst);
    }

    fn halted(&self) -> Option<&'static str> {
        match self.halt.load(Ordering::Relaxed) {
            CANCEL => Some("cancelled"),
            STOP => Some("the daemon stopped"),
            _ => None,
        }
    }

    /// The scrub's state; `saved` comes from metadata (`None` if it cannot be read).
    pub fn status(&self, engine: &Engine) -> ScrubStatus {
        let running = self.running.load(Ordering::SeqCst);
        ScrubStatus {
            running,
            run: self.runs.load(Ordering::SeqCst),
            progress: running.then(|| self.progress.snapshot()),
            last: self.last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            saved: pass::load_saved(engine).ok().flatten().map(|s| s.at),
        }
    }
}

/// The running pass's counters, written with relaxed atomics.
#[derive(Debug, Default)]
struct Progress {
    records_total: AtomicU64,
    records_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    damaged: AtomicU64,
}

impl Progress {
    fn reset(&self) {
        for c in [
            &self.records_total,
            &self.records_done,
            &self.bytes_total,
            &self.bytes_done,
            &self.damaged,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn planned(&self, records: u64, bytes: u64) {
        self.records_total.store(records, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }

    fn done(&self, bytes: u64) {
        self.records_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    fn damaged(&self) {
        self.damaged.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ScrubProgress {
        ScrubProgress {
            records_total: self.records_total.load(Ordering::Relaxed),
            records_done: self.records_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            damaged: self.damaged.load(Ordering::Relaxed),
        }
    }
}
