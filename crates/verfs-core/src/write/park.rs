//! Parking the writes of logged files: a logged file's writes are durable through the
//! intent log once it is flushed, so they need not be chunked and committed at once.
//!
//! A database that overwrites a preallocated file in place and fsyncs each write
//! (PostgreSQL's WAL segments, `fio --fsync=1` over a laid-out file) made every 4 KiB
//! write re-chunk, compress and store the whole chunk around it — a 64 KiB chunk per
//! 4 KiB written, each garbage a moment later. Parked writes stay in the overlay
//! (readers see them) and in the log (a crash replays them); they are applied together,
//! so sequential overwrites of a chunk store it once: when the file's parked writes
//! pass [`PARK_FILE_BYTES`] or [`PARK_FILE_OPS`], when another kind of change to the
//! file arrives, at a full fsync of it, at a barrier, a snapshot, a copy, the idle
//! timer, `batch_max_delay_ms` after the first was parked, past [`PARK_TOTAL_BYTES`]
//! in all, and at every checkpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::apply::{self, InodeOps, Op};
use crate::types::Ino;

/// Most bytes of writes parked per file.
pub(crate) const PARK_FILE_BYTES: u64 = 1 << 20;
/// Most writes parked per file (each is an overlay entry every read walks).
pub(crate) const PARK_FILE_OPS: usize = 256;
/// Most bytes parked in all before everything is applied.
pub(crate) const PARK_TOTAL_BYTES: u64 = 8 << 20;

/// One file's parked writes, in arrival order.
struct Parked {
    ops: Vec<Op>,
    bytes: u64,
}

/// The parked writes of every logged file.
#[derive(Default)]
pub(crate) struct ParkLot {
    by_ino: HashMap<Ino, Parked>,
    bytes: u64,
    since: Option<Instant>,
}

impl ParkLot {
    /// Whether everything parked must be applied now (too much, or parked too long).
    pub fn due(&self, max_delay: Duration) -> bool {
        self.bytes > PARK_TOTAL_BYTES || self.since.is_some_and(|t| t.elapsed() >= max_delay)
    }

    /// Puts parked writes back in front of their file's group (creating it) when they
    /// must be applied with this batch: `all` of them, those of the `forced` files, and
    /// those of files whose group cannot be parked on top of them. Each group records
    /// how many of its leading ops the log already holds.
    pub fn unpark(&mut self, groups: &mut Vec<InodeOps>, all: bool, forced: &[Ino]) {
        let inos: Vec<Ino> = self.by_ino.keys().copied().collect();
        for ino in inos {
            let parked = &self.by_ino[&ino];
            let blocked = groups
                .iter()
                .find(|g| g.ino == ino)
                .is_some_and(|g| !fits(g, parked));
            if !(all || blocked || forced.contains(&ino)) {
                continue;
            }
            let Some(parked) = self.by_ino.remove(&ino) else {
                continue;
            };
            self.bytes -= parked.bytes;
            let g = apply::group(groups, ino);
            let mut ops = parked.ops;
            g.prelogged = ops.len();
            ops.append(&mut g.ops);
            g.ops = ops;
        }
        if self.by_ino.is_empty() {
            self.since = None;
        }
    }

    /// Moves the groups `parkable` accepts (whose writes the caller logs) out of the
    /// batch, onto their file's parked writes; returns how many were parked.
    pub fn park(
        &mut self,
        groups: &mut Vec<InodeOps>,
        parkable: impl Fn(&InodeOps) -> bool,
        mut log: impl FnMut(&InodeOps),
    ) -> usize {
        let mut kept = Vec::with_capacity(groups.len());
        let mut n = 0;
        for g in groups.drain(..) {
            let empty = Parked {
                ops: Vec::new(),
                bytes: 0,
            };
            let fits = fits(&g, self.by_ino.get(&g.ino).unwrap_or(&empty));
            if !(fits && parkable(&g)) {
                kept.push(g);
                continue;
            }
            log(&g);
            let bytes = g.write_bytes();
            let p = self.by_ino.entry(g.ino).or_insert(Parked {
                ops: Vec::new(),
                bytes: 0,
            });
            p.ops.extend(g.ops);
            p.bytes += bytes;
            self.bytes += bytes;
            self.since.get_or_insert_with(Instant::now);
            n += 1;
        }
        *groups = kept;
        n
    }
}

/// Whether `g` may join `parked`: only writes, and the file stays under its limits.
fn fits(g: &InodeOps, parked: &Parked) -> bool {
    g.only_writes()
        && parked.bytes + g.write_bytes() <= PARK_FILE_BYTES
        && parked.ops.len() + g.ops.len() <= PARK_FILE_OPS
}
