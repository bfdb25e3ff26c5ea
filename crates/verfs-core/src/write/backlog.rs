//! The batcher's backlog: messages taken off the channel but not yet applied, and the
//! choice of the next batch.
//!
//! Batches are taken in arrival order, with one exception. An fsync only needs its own
//! file's earlier changes committed (then everything committed is synced); queued
//! behind a bulk writer it would first wait for up to twice `batch_max_memory_mb` of
//! another file's data to be chunked, compressed and committed (with the other causes,
//! see `architecture.md`, "fsync under load": 0.4-0.9 sqlite commits/s during a 1 GiB
//! copy into the mount, against 36-43/s through bindfs). So
//! when the backlog holds fsyncs, the next batch is the fsync'd files' messages alone,
//! lifted out in their order; every other message keeps its place. Changes to
//! different files commute; the exceptions are a clone that touches an fsync'd file
//! (it reads one file and writes another) and a stop, where lifting ends. After a
//! lifted batch the next one is taken in order again, so a file that fsyncs without a
//! pause cannot starve the others. While fsyncs keep coming (one was lifted within
//! [`RECENT`]), in-order batches are kept to 1/[`SHARE_WHILE_SYNCING`] of the usual
//! limits, because the next fsync (a database commit makes several in a row) waits for
//! the batch being applied: a full 64 MiB batch of incompressible data took 110-210 ms
//! here, a 2 MiB one 3-6 ms.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{Batch, BatchLimits, Msg};
use crate::types::Ino;

/// In-order batches get this fraction of the usual limits while fsyncs keep coming...
const SHARE_WHILE_SYNCING: u64 = 32;
/// ... that is, while one was lifted at most this long ago.
const RECENT: Duration = Duration::from_millis(250);

/// Messages received and not yet batched, in arrival order.
#[derive(Default)]
pub(crate) struct Backlog {
    msgs: VecDeque<Msg>,
    /// The last batch was lifted out of order.
    lifted_last: bool,
    /// When a batch was last lifted.
    last_lift: Option<Instant>,
}

impl Backlog {
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Everything still waiting, in arrival order (to fail it at shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = Msg> + '_ {
        self.msgs.drain(..)
    }

    /// Adds a message at the end.
    pub fn push(&mut self, m: Msg) {
        self.msgs.push_back(m);
    }

    /// Takes the next batch: the fsync'd files' messages if there are fsyncs waiting
    /// (and the last batch was not such a one), else messages in arrival order until
    /// the batch is full (at smaller limits while fsyncs keep coming).
    pub fn next_batch(&mut self, limits: &BatchLimits) -> Batch {
        if !self.lifted_last {
            if let Some(batch) = self.lift_synced(limits) {
                self.lifted_last = true;
                self.last_lift = Some(Instant::now());
                return batch;
            }
        }
        self.lifted_last = false;
        let syncing = self.last_lift.is_some_and(|t| t.elapsed() < RECENT);
        let limits = if syncing {
            BatchLimits {
                max_blocks: (limits.max_blocks / SHARE_WHILE_SYNCING as usize).max(1),
                max_bytes: (limits.max_bytes / SHARE_WHILE_SYNCING).max(1),
                max_delay: limits.max_delay,
            }
        } else {
            *limits
        };
        let mut batch = Batch::default();
        while !batch.full(&limits) {
            let Some(m) = self.msgs.pop_front() else {
                break;
            };
            batch.push(m);
        }
        batch
    }

    /// The messages of files with a waiting fsync, taken out in order until a fence or
    /// the limits; `None` when there is no fsync, when every message is such a file's
    /// (arrival order takes the same batch), or when a fence comes first.
    fn lift_synced(&mut self, limits: &BatchLimits) -> Option<Batch> {
        let synced: HashSet<Ino> = self
            .msgs
            .iter()
            .filter_map(|m| match m {
                Msg::Sync { ino, .. } => Some(*ino),
                _ => None,
            })
            .collect();
        if synced.is_empty() || self.msgs.iter().all(|m| touches(m, &synced)) {
            // Taking them in order gives the same batch.
            return None;
        }
        let mut batch = Batch::default();
        let mut rest = VecDeque::with_capacity(self.msgs.len());
        while let Some(m) = self.msgs.pop_front() {
            if batch.full(limits) || is_fence(&m, &synced) {
                rest.push_back(m);
                break;
            }
            if touches(&m, &synced) {
                batch.push(m);
            } else {
                rest.push_back(m);
            }
        }
        rest.append(&mut self.msgs);
        self.msgs = rest;
        (!batch.msgs.is_empty()).then_some(batch)
    }
}

/// Whether `m` changes (or syncs) one of `files` and nothing else.
fn touches(m: &Msg, files: &HashSet<Ino>) -> bool {
    match m {
        Msg::Write { ino, .. }
        | Msg::SetSize { ino, .. }
        | Msg::Zero { ino, .. }
        | Msg::Sync { ino, .. } => files.contains(ino),
        Msg::Barrier { .. } | Msg::Clone { .. } | Msg::Freeze { .. } | Msg::Stop => false,
    }
}

/// Whether no message after `m` may be moved ahead of it.
fn is_fence(m: &Msg, files: &HashSet<Ino>) -> bool {
    match m {
        Msg::Stop | Msg::Freeze { .. } => true,
        Msg::Clone { req, .. } => files.contains(&req.ino_in) || files.contains(&req.ino_out),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::clone::CloneReq;
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_blocks: 3000,
        max_bytes: 64 << 20,
        max_delay: Duration::from_millis(500),
    };

    fn write(ino: u64, seq: u64) -> Msg {
        Msg::Write {
            ino: Ino(ino),
            seq,
            offset: 0,
            data: Arc::from(&[0u8; 16][..]),
            done: Box::new(|_| {}),
        }
    }

    fn sync(ino: u64) -> Msg {
        Msg::Sync {
            ino: Ino(ino),
            done: Box::new(|_| {}),
        }
    }

    /// `(ino, seq)` of writes and `(ino, 0)` of syncs, for comparing batches.
    fn shape(msgs: &[Msg]) -> Vec<(u64, u64)> {
        msgs.iter()
            .filter_map(|m| match m {
                Msg::Write { ino, seq, .. } => Some((ino.0, *seq)),
                Msg::Sync { ino, .. } => Some((ino.0, 0)),
                _ => None,
            })
            .collect()
    }

    fn backlog(msgs: Vec<Msg>) -> Backlog {
        let mut b = Backlog::default();
        for m in msgs {
            b.push(m);
        }
        b
    }

    #[test]
    fn fsynced_file_is_lifted_past_a_bulk_writer_in_order() {
        let mut b = backlog(vec![
            write(7, 1),
            write(7, 2),
            write(3, 3),
            write(7, 4),
            write(3, 5),
            sync(3),
            write(7, 6),
        ]);
        let first = b.next_batch(&LIMITS);
        assert_eq!(shape(&first.msgs), vec![(3, 3), (3, 5), (3, 0)]);
        let second = b.next_batch(&LIMITS);
        assert_eq!(shape(&second.msgs), vec![(7, 1), (7, 2), (7, 4), (7, 6)]);
        assert!(b.is_empty());
    }

    #[test]
    fn without_fsyncs_or_with_only_the_synced_file_order_is_kept() {
        let mut b = backlog(vec![write(7, 1), write(3, 2), write(7, 3)]);
        assert_eq!(
            shape(&b.next_batch(&LIMITS).msgs),
            vec![(7, 1), (3, 2), (7, 3)]
        );
        let mut b = backlog(vec![write(3, 1), write(3, 2), sync(3)]);
        assert_eq!(
            shape(&b.next_batch(&LIMITS).msgs),
            vec![(3, 1), (3, 2), (3, 0)]
        );
    }

    #[test]
    fn a_clone_touching_the_synced_file_is_a_fence() {
        let clone = Msg::Clone {
            req: CloneReq {
                ino_in: Ino(7),
                off_in: 0,
                ino_out: Ino(3),
                off_out: 0,
                len: 16,
            },
            done: Box::new(|_| {}),
        };
        let mut b = backlog(vec![write(7, 1), write(3, 2), clone, write(3, 3), sync(3)]);
        // Only what precedes the clone is lifted; the fsync waits behind it.
        assert_eq!(shape(&b.next_batch(&LIMITS).msgs), vec![(3, 2)]);
        let next = b.next_batch(&LIMITS);
        assert_eq!(shape(&next.msgs), vec![(7, 1)]);
        assert!(next.clone.is_some(), "the clone closes the in-order batch");
        assert_eq!(shape(&b.next_batch(&LIMITS).msgs), vec![(3, 3), (3, 0)]);
    }

    #[test]
    fn batches_are_smaller_while_fsyncs_keep_coming() {
        let small = BatchLimits {
            max_blocks: 64,
            ..LIMITS
        };
        let mut msgs: Vec<Msg> = (1..=100).map(|s| write(7, s)).collect();
        msgs.push(write(3, 101));
        msgs.push(sync(3));
        let mut b = backlog(msgs);
        assert_eq!(b.next_batch(&small).msgs.len(), 2, "the fsync'd file first");
        assert_eq!(b.next_batch(&small).msgs.len(), 2, "then 64 / 32 blocks");
        b.last_lift = Some(Instant::now() - RECENT);
        assert_eq!(b.next_batch(&small).msgs.len(), 64, "full size again");
    }

    #[test]
    fn an_fsync_loop_cannot_starve_other_files() {
        let mut b = backlog(vec![write(7, 1), write(3, 2), sync(3)]);
        assert_eq!(shape(&b.next_batch(&LIMITS).msgs), vec![(3, 2), (3, 0)]);
        b.push(write(3, 3));
        b.push(sync(3));
        // The file that was passed goes next, even though another fsync is waiting.
        assert_eq!(
            shape(&b.next_batch(&LIMITS).msgs),
            vec![(7, 1), (3, 3), (3, 0)]
        );
    }
}
