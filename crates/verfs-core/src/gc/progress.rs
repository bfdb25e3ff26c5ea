//! How far the GC run in progress is, for `gc status` and the progress bar of
//! `gc run --wait`: written by the run with relaxed atomics, read at any time.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of a run's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcProgress {
    /// 1 while chunk records are freed (stage 1), 2 while packs are reclaimed.
    pub stage: u8,
    /// Chunk records freed so far.
    pub chunks_freed: u64,
    /// Packs stage 2 decided to remove or rewrite (0 before it decided).
    pub packs_total: u64,
    /// Of those, packs dealt with so far.
    pub packs_done: u64,
    /// Pack bytes given back so far.
    pub bytes_reclaimed: u64,
}

/// The run's counters.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    stage: AtomicU64,
    chunks_freed: AtomicU64,
    packs_total: AtomicU64,
    packs_done: AtomicU64,
    bytes_reclaimed: AtomicU64,
}

impl Progress {
    /// Zeroes every counter at the start of a run.
    pub fn start(&self) {
        for c in [
            &self.chunks_freed,
            &self.packs_total,
            &self.packs_done,
            &self.bytes_reclaimed,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.stage.store(1, Ordering::Relaxed);
    }

    /// Stage 1 freed `n` more chunk records.
    pub fn chunks(&self, n: u64) {
        self.chunks_freed.fetch_add(n, Ordering::Relaxed);
    }

    /// Stage 2 begins with `packs` packs to remove or rewrite.
    pub fn packs_planned(&self, packs: u64) {
        self.stage.store(2, Ordering::Relaxed);
        self.packs_total.store(packs, Ordering::Relaxed);
    }

    /// One pack was dealt with, giving back `bytes`.
    pub fn pack_done(&self, bytes: u64) {
        self.packs_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_reclaimed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> GcProgress {
        GcProgress {
            stage: self.stage.load(Ordering::Relaxed) as u8,
            chunks_freed: self.chunks_freed.load(Ordering::Relaxed),
            packs_total: self.packs_total.load(Ordering::Relaxed),
            packs_done: self.packs_done.load(Ordering::Relaxed),
            bytes_reclaimed: self.bytes_reclaimed.load(Ordering::Relaxed),
        }
    }
}
