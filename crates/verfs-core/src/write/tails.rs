//! The file tails the batcher holds in memory (see `region::Held`), with what it needs
//! to decide when to store them: their total size and how long the oldest has waited.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::region::Held;
use crate::types::Ino;

/// A held tail and the overlay entry that shows it to readers.
pub(crate) struct HeldTail {
    /// Sequence number of the overlay entry.
    pub seq: u64,
    /// The bytes.
    pub held: Held,
}

/// Held tails by inode. Creating many small files leaves one tail per file, thousands
/// of them, so the total is kept as a running sum instead of being added up per batch.
#[derive(Default)]
pub(crate) struct Tails {
    by_ino: HashMap<Ino, HeldTail>,
    bytes: u64,
    /// When the set last went from empty to non-empty.
    since: Option<Instant>,
}

impl Tails {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.by_ino.is_empty()
    }

    /// Bytes held, all files together.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The tail held for `ino`.
    pub fn get(&self, ino: &Ino) -> Option<&HeldTail> {
        self.by_ino.get(ino)
    }

    /// Holds `tail` for `ino` (replacing what was held).
    pub fn insert(&mut self, ino: Ino, tail: HeldTail) {
        if self.by_ino.is_empty() {
            self.since = Some(Instant::now());
        }
        self.bytes += tail.held.data.len() as u64;
        if let Some(old) = self.by_ino.insert(ino, tail) {
            self.bytes -= old.held.data.len() as u64;
        }
    }

    /// Stops holding the tail of `ino`.
    pub fn remove(&mut self, ino: &Ino) -> Option<HeldTail> {
        let old = self.by_ino.remove(ino)?;
        self.bytes -= old.held.data.len() as u64;
        if self.by_ino.is_empty() {
            self.since = None;
        }
        Some(old)
    }

    /// The inodes with a held tail.
    pub fn inos(&self) -> Vec<Ino> {
        self.by_ino.keys().copied().collect()
    }

    /// Whether the tails should all be stored now: they hold more than `max_bytes`, or
    /// tails have been held without a break for longer than `max_delay` (a busy batcher
    /// never sits idle long enough for the idle timer to store them).
    pub fn due(&self, max_bytes: u64, max_delay: Duration) -> bool {
        self.bytes > max_bytes || self.since.is_some_and(|t| t.elapsed() >= max_delay)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tail(len: usize) -> HeldTail {
        HeldTail {
            seq: 1,
            held: Held {
                offset: 0,
                data: Arc::from(vec![7u8; len]),
            },
        }
    }

    #[test]
    fn byte_total_follows_inserts_replacements_and_removals() {
        let mut t = Tails::default();
        t.insert(Ino(2), tail(100));
        t.insert(Ino(3), tail(50));
        t.insert(Ino(2), tail(10));
        assert!(t.due(59, Duration::from_secs(60)));
        assert!(!t.due(60, Duration::from_secs(60)));
        t.remove(&Ino(3));
        assert!(!t.due(10, Duration::from_secs(60)));
        assert!(t.due(10, Duration::ZERO));
        t.remove(&Ino(2));
        assert!(t.is_empty());
        assert!(!t.due(0, Duration::ZERO), "nothing held is never due");
    }
}
