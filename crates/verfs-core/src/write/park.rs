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

/// Most bytes of writes parked per file: half the in-flight allowance a file with
/// little in flight keeps while a bulk writer fills the flow limit (`flow.rs`), so a
/// database's parked writes never cost it that allowance.
pub(crate) const PARK_FILE_BYTES: u64 = 512 << 10;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn write(seq: u64, offset: u64, len: usize) -> Op {
        Op::Write {
            seq,
            offset,
            data: Arc::from(vec![seq as u8; len]),
            done: Box::new(|_| {}),
        }
    }

    fn group_of(ino: u64, ops: Vec<Op>) -> InodeOps {
        InodeOps {
            ino: Ino(ino),
            ops,
            flush: false,
            prelogged: 0,
        }
    }

    fn seqs(g: &InodeOps) -> Vec<u64> {
        g.ops.iter().map(Op::seq).collect()
    }

    #[test]
    fn parked_writes_come_back_first_and_marked_logged() {
        let mut lot = ParkLot::default();
        let mut groups = vec![
            group_of(2, vec![write(1, 0, 4096)]),
            group_of(3, vec![write(2, 0, 4096)]),
        ];
        let mut logged = Vec::new();
        let n = lot.park(&mut groups, |g| g.ino == Ino(2), |g| logged.push(g.ino));
        assert_eq!((n, logged), (1, vec![Ino(2)]));
        assert_eq!(groups.len(), 1, "only the parkable group left the batch");
        // A later write to the same file parks on top; nothing is due yet.
        let mut later = vec![group_of(2, vec![write(5, 4096, 4096)])];
        lot.park(&mut later, |_| true, |_| {});
        assert!(later.is_empty());
        assert!(!lot.due(Duration::from_secs(60)));
        // A full fsync of the file brings both back, in order, ahead of its new ops.
        let mut batch = vec![group_of(2, vec![write(9, 0, 10)])];
        lot.unpark(&mut batch, false, &[Ino(2)]);
        assert_eq!(seqs(&batch[0]), vec![1, 5, 9]);
        assert_eq!(
            batch[0].prelogged, 2,
            "the parked ops are in the log already"
        );
        assert!(!lot.due(Duration::ZERO), "nothing parked is never due");
    }

    #[test]
    fn a_file_over_its_limit_or_another_kind_of_change_unparks() {
        let mut lot = ParkLot::default();
        let big = (PARK_FILE_BYTES / 2) as usize;
        let mut groups = vec![group_of(4, vec![write(1, 0, big)])];
        lot.park(&mut groups, |_| true, |_| {});
        assert!(groups.is_empty());
        // Another half plus a byte does not fit: it is not parked, and the parked
        // writes come back in front of it.
        let mut next = vec![group_of(4, vec![write(2, big as u64, big + 1)])];
        lot.unpark(&mut next, false, &[]);
        assert_eq!(seqs(&next[0]), vec![1, 2]);
        let parked = lot.park(&mut next, |_| true, |_| {});
        assert_eq!(parked, 0, "over the per-file limit");
        // A size change is never parked and unparks what waits.
        let mut groups = vec![group_of(5, vec![write(3, 0, 10)])];
        lot.park(&mut groups, |_| true, |_| {});
        let trunc = Op::SetSize {
            seq: 4,
            size: 0,
            edit: Box::new(|_| {}),
            done: Box::new(|_| {}),
        };
        let mut batch = vec![group_of(5, vec![trunc])];
        lot.unpark(&mut batch, false, &[]);
        assert_eq!(seqs(&batch[0]), vec![3, 4]);
        assert!(lot.by_ino.is_empty() && lot.bytes == 0);
    }
}
