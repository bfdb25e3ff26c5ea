//! Writes and truncates accepted but not yet committed, so reads and `getattr` see them.
//!
//! Ops are recorded here and sent to the batcher under one lock, so the order here is
//! the order the batcher applies them. After a batch commits, its ops are removed (and
//! the held tails it kept back put in their place) and the commit counter moves, all
//! under the engine's commit gate, which readers share while they take their overlay
//! snapshot and their metadata view: the two always describe the same state. Replaying
//! committed ops over a newer view would not be enough — a commit that holds back a
//! file's last chunk stores the size up to that chunk only, and the bytes past it
//! (zeros of an extending truncate, old bytes around a write) are in no pending write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::types::Ino;

/// One uncommitted data change.
#[derive(Clone, Debug)]
pub enum PendingOp {
    /// Bytes written at an offset.
    Write {
        /// File offset.
        offset: u64,
        /// The bytes, shared with the batcher's message.
        data: Arc<[u8]>,
    },
    /// A file's last chunk held in memory by the batcher after its write committed
    /// (reads like a write, but its time change is already committed).
    Held {
        /// File offset.
        offset: u64,
        /// The bytes.
        data: Arc<[u8]>,
    },
    /// A range set to zeros (hole punched); `extend` grows the file to its end.
    Zero {
        /// File offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Whether the size grows to `offset + len`.
        extend: bool,
    },
    /// The file's size set (truncate or extend).
    Truncate {
        /// New size.
        size: u64,
    },
}

impl PendingOp {
    /// The file size after this op, given the size before it.
    pub fn size_after(&self, size: u64) -> u64 {
        match self {
            PendingOp::Write { offset, data } | PendingOp::Held { offset, data } => {
                size.max(offset + data.len() as u64)
            }
            PendingOp::Zero {
                offset,
                len,
                extend,
            } => {
                if *extend {
                    size.max(offset + len)
                } else {
                    size
                }
            }
            PendingOp::Truncate { size: s } => *s,
        }
    }

    /// Applies the op to `buf`, which holds file bytes `[start, start + buf.len())` of a
    /// file currently `size` bytes long; returns the new size.
    pub fn apply(&self, start: u64, buf: &mut [u8], size: u64) -> u64 {
        let end = start + buf.len() as u64;
        match self {
            PendingOp::Write { offset, data } | PendingOp::Held { offset, data } => {
                let wend = offset + data.len() as u64;
                let s = start.max(*offset);
                let e = end.min(wend);
                if s < e {
                    let src = &data[(s - offset) as usize..(e - offset) as usize];
                    buf[(s - start) as usize..(e - start) as usize].copy_from_slice(src);
                }
            }
            PendingOp::Zero { offset, len, .. } => {
                let s = start.max(*offset);
                let e = end.min(offset + len);
                if s < e {
                    buf[(s - start) as usize..(e - start) as usize].fill(0);
                }
            }
            PendingOp::Truncate { size: s } => {
                if *s < end {
                    let from = (s.saturating_sub(start) as usize).min(buf.len());
                    buf[from..].fill(0);
                }
            }
        }
        self.size_after(size)
    }
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    commits: u64,
    by_ino: HashMap<Ino, Vec<(u64, PendingOp)>>,
}

/// The overlay of uncommitted ops, per inode, in apply order.
#[derive(Default)]
pub struct Pending {
    inner: Mutex<Inner>,
}

/// A consistent copy of an inode's pending ops and the commit counter it was taken at.
pub struct OverlaySnapshot {
    /// Ops in apply order.
    pub ops: Vec<PendingOp>,
    /// The commit counter when taken.
    pub commits: u64,
}

impl OverlaySnapshot {
    /// File ranges written but not yet committed (in the batcher or held back).
    pub fn data_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ops.iter().filter_map(|op| match op {
            PendingOp::Write { offset, data } | PendingOp::Held { offset, data } => {
                Some((*offset, offset + data.len() as u64))
            }
            PendingOp::Truncate { .. } | PendingOp::Zero { .. } => None,
        })
    }
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `op` for `ino` and, under the same lock, hands its sequence number to
    /// `send`, which queues it for the batcher.
    pub fn record<R>(&self, ino: Ino, op: PendingOp, send: impl FnOnce(u64) -> R) -> R {
        let mut g = self.lock();
        g.next_seq += 1;
        let seq = g.next_seq;
        g.by_ino.entry(ino).or_default().push((seq, op));
        send(seq)
    }

    /// Removes the ops of a committed batch and moves the commit counter; each entry of
    /// `keep` instead replaces the op with that sequence number (a held tail taking the
    /// place of the write it came from, so the overlay order stays the apply order).
    pub fn committed(&self, done: &[(Ino, u64)], keep: Vec<(Ino, u64, PendingOp)>) {
        let mut g = self.lock();
        let kept: Vec<(Ino, u64)> = keep.iter().map(|(i, s, _)| (*i, *s)).collect();
        for (ino, seq, op) in keep {
            if let Some(slot) = g
                .by_ino
                .get_mut(&ino)
                .and_then(|v| v.iter_mut().find(|(s, _)| *s == seq))
            {
                slot.1 = op;
            }
        }
        for (ino, seq) in done {
            if kept.contains(&(*ino, *seq)) {
                continue;
            }
            if let Some(v) = g.by_ino.get_mut(ino) {
                v.retain(|(s, _)| s != seq);
                if v.is_empty() {
                    g.by_ino.remove(ino);
                }
            }
        }
        g.commits += 1;
    }

    /// The pending ops of `ino` and the commit counter.
    pub fn snapshot(&self, ino: Ino) -> OverlaySnapshot {
        let g = self.lock();
        OverlaySnapshot {
            ops: g
                .by_ino
                .get(&ino)
                .map(|v| v.iter().map(|(_, op)| op.clone()).collect())
                .unwrap_or_default(),
            commits: g.commits,
        }
    }

    /// The commit counter.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// Whether `ino` has uncommitted ops.
    pub fn has_pending(&self, ino: Ino) -> bool {
        self.lock().by_ino.contains_key(&ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(offset: u64, bytes: &[u8]) -> PendingOp {
        PendingOp::Write {
            offset,
            data: Arc::from(bytes),
        }
    }

    #[test]
    fn ops_overlay_in_order() {
        let mut buf = vec![1u8; 10];
        let mut size = 10;
        size = w(2, b"abc").apply(0, &mut buf, size);
        assert_eq!(&buf[..6], &[1, 1, b'a', b'b', b'c', 1]);
        size = PendingOp::Truncate { size: 3 }.apply(0, &mut buf, size);
        assert_eq!(size, 3);
        assert_eq!(&buf[..5], &[1, 1, b'a', 0, 0]);
        size = w(12, b"zz").apply(0, &mut buf, size);
        assert_eq!(size, 14);
    }

    #[test]
    fn replay_is_idempotent() {
        let ops = vec![
            w(0, b"hello world"),
            PendingOp::Truncate { size: 4 },
            w(6, b"xy"),
        ];
        let mut a = vec![0u8; 16];
        let mut sa = 0;
        for op in &ops {
            sa = op.apply(0, &mut a, sa);
        }
        let mut b = a.clone();
        let mut sb = sa;
        for op in &ops {
            sb = op.apply(0, &mut b, sb);
        }
        assert_eq!((a, sa), (b, sb));
    }

    #[test]
    fn committed_removes_only_named_ops() {
        let p = Pending::default();
        let s1 = p.record(Ino(5), w(0, b"a"), |s| s);
        let s2 = p.record(Ino(5), w(1, b"b"), |s| s);
        let c0 = p.commits();
        p.committed(&[(Ino(5), s1)], Vec::new());
        let snap = p.snapshot(Ino(5));
        assert_eq!(snap.ops.len(), 1);
        assert_eq!(snap.commits, c0 + 1);
        p.committed(&[(Ino(5), s2)], Vec::new());
        assert!(!p.has_pending(Ino(5)));
    }

    #[test]
    fn a_kept_op_becomes_a_held_tail_in_place() {
        let p = Pending::default();
        let s1 = p.record(Ino(5), w(0, b"abcdef"), |s| s);
        let s2 = p.record(Ino(5), PendingOp::Truncate { size: 2 }, |s| s);
        let held = PendingOp::Held {
            offset: 4,
            data: Arc::from(&b"ef"[..]),
        };
        p.committed(&[(Ino(5), s1)], vec![(Ino(5), s1, held)]);
        let snap = p.snapshot(Ino(5));
        assert!(matches!(snap.ops[0], PendingOp::Held { offset: 4, .. }));
        assert!(matches!(snap.ops[1], PendingOp::Truncate { size: 2 }));
        p.committed(&[(Ino(5), s2)], Vec::new());
        assert!(p.has_pending(Ino(5)));
    }
}
