//! What one batch knows about the chunks it stores: where the ones it appended went,
//! and compressions started early.
//!
//! Re-chunking a batch is serial (one chunker pass per file), compression is parallel.
//! Waiting to compress until a region is fully chunked left the compression pool idle
//! while the batcher chunked, and the batcher idle while the pool compressed. So each
//! chunk the batcher cuts is hashed and, unless it is already known to be stored, sent
//! to the pool at once ([`Memo::precompress`]); storing it later takes the finished
//! result. A chunk that turns out to be stored already (found in metadata) just wastes
//! its compression. Results outlive transaction retries, like the placements.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, Sender};

use bytes::Bytes;

use crate::data::compress::Stored;
use crate::data::Domain;
use crate::engine::{ChunkPlace, Engine};
use crate::types::ChunkHash;

/// An encoded chunk: its id, plain length and stored form (or why encoding failed).
type Compressed = (ChunkHash, u32, Encoded);

/// A chunk's stored form, or why it could not be made (encryption failed).
pub(crate) type Encoded = Result<Stored, String>;

/// Per-batch chunk state, kept across transaction retries.
pub(crate) struct Memo {
    /// Where this batch appended each chunk, with the pack store's drop epoch then.
    placed: HashMap<ChunkHash, (ChunkPlace, u64)>,
    started: HashSet<ChunkHash>,
    ready: HashMap<ChunkHash, (u32, Encoded)>,
    tx: Sender<Compressed>,
    rx: Receiver<Compressed>,
    /// Compress on the calling thread, never in the pool: for small batches, where a
    /// hand-off costs more than it saves and leaves the pool's threads spinning for
    /// work after every one (an fsync'd 4 KiB write profiled 17% of its CPU there).
    serial: bool,
}

impl Memo {
    /// An empty memo for one batch.
    pub fn new() -> Memo {
        let (tx, rx) = mpsc::channel();
        Memo {
            placed: HashMap::new(),
            started: HashSet::new(),
            ready: HashMap::new(),
            tx,
            rx,
            serial: false,
        }
    }

    /// An empty memo that compresses on the calling thread (see `serial`).
    pub fn serial() -> Memo {
        Memo {
            serial: true,
            ..Memo::new()
        }
    }

    /// Where this batch appended `hash`, if it did.
    pub fn placed(&self, hash: &ChunkHash) -> Option<ChunkPlace> {
        self.placed.get(hash).map(|(p, _)| *p)
    }

    /// Where this batch appended `hash`, if it did so while the pack store's drop epoch
    /// was `epoch` (so GC cannot have dropped the record since: see
    /// `PackStore::drop_epoch`).
    pub fn placed_at(&self, hash: &ChunkHash, epoch: u64) -> Option<ChunkPlace> {
        self.placed
            .get(hash)
            .filter(|(_, e)| *e == epoch)
            .map(|(p, _)| *p)
    }

    /// Records that `hash` was appended at `place` under drop epoch `epoch`.
    pub fn place(&mut self, hash: ChunkHash, place: ChunkPlace, epoch: u64) {
        self.placed.insert(hash, (place, epoch));
    }

    /// Names a chunk just cut (its id in `domain`) and starts encoding it, unless it is
    /// already placed, started or known to the engine's dedup cache. Returns its id, or
    /// `None` for an all-zero chunk (a hole, never stored).
    pub fn precompress(
        &mut self,
        engine: &Engine,
        domain: &Domain,
        bytes: &Bytes,
    ) -> Option<ChunkHash> {
        if is_zero(bytes) {
            return None;
        }
        let hash = domain.chunk_id(engine.packs.hasher(), bytes);
        let known = self.placed.contains_key(&hash)
            || self.started.contains(&hash)
            || engine.is_known_chunk(&hash);
        if !known && !self.serial {
            self.start(hash, bytes.clone(), engine.zstd_level, domain);
        }
        Some(hash)
    }

    fn start(&mut self, hash: ChunkHash, bytes: Bytes, level: i32, domain: &Domain) {
        self.started.insert(hash);
        let tx = self.tx.clone();
        let domain = domain.clone();
        rayon::spawn(move || {
            let stored = domain.encode(&hash, &bytes, level);
            // The memo may be gone (batch over, chunk not needed): nothing to do then.
            let _ = tx.send((hash, bytes.len() as u32, stored));
        });
    }

    /// Compresses `todo` (those not started yet are started now) and hands each result
    /// to `sink` as soon as it is ready, in completion order. A lone chunk nobody
    /// started, or every chunk of a serial memo, is compressed here: a hand-off to the
    /// pool would cost more than it saves.
    pub fn compress_all(
        &mut self,
        mut todo: Vec<(ChunkHash, Bytes)>,
        level: i32,
        domain: &Domain,
        mut sink: impl FnMut(&mut Memo, ChunkHash, u32, Encoded),
    ) {
        if self.serial || todo.len() == 1 {
            let (here, pooled): (Vec<_>, Vec<_>) = todo.into_iter().partition(|(hash, _)| {
                !self.started.contains(hash) && !self.ready.contains_key(hash)
            });
            for (hash, bytes) in here {
                let stored = domain.encode(&hash, &bytes, level);
                sink(self, hash, bytes.len() as u32, stored);
            }
            if pooled.is_empty() {
                return;
            }
            // Those already in the pool are collected below.
            todo = pooled;
        }
        let mut wanted: HashSet<ChunkHash> = HashSet::with_capacity(todo.len());
        for (hash, bytes) in todo {
            if !self.started.contains(&hash) && !self.ready.contains_key(&hash) {
                self.start(hash, bytes, level, domain);
            }
            wanted.insert(hash);
        }
        // Results that came in while waiting for an earlier region's chunks.
        for hash in wanted.clone() {
            if let Some((len, stored)) = self.ready.remove(&hash) {
                wanted.remove(&hash);
                self.started.remove(&hash);
                sink(self, hash, len, stored);
            }
        }
        while !wanted.is_empty() {
            // Every sender lives in a task that sends before ending, and `tx` is ours:
            // the channel cannot close while a chunk is wanted.
            let Ok((hash, len, stored)) = self.rx.recv() else {
                return;
            };
            if wanted.remove(&hash) {
                self.started.remove(&hash);
                sink(self, hash, len, stored);
            } else {
                self.ready.insert(hash, (len, stored));
            }
        }
    }
}

/// Whether `b` is all zeros (such chunks are holes, never stored).
pub(crate) fn is_zero(b: &[u8]) -> bool {
    // Eight bytes at a time keeps the zero test off the profile for large chunks.
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .all(|w| w == 0)
        && tail.iter().all(|&x| x == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::compress;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 17]));
        let mut v = vec![0u8; 17];
        v[16] = 1;
        assert!(!is_zero(&v));
        v[16] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
    }

    #[test]
    fn results_arrive_for_every_wanted_chunk_early_or_late() {
        let mut m = Memo::new();
        let chunks: Vec<(ChunkHash, Bytes)> = (0..20u8)
            .map(|i| {
                (
                    ChunkHash([i; 16]),
                    Bytes::from(vec![i; 5000 + usize::from(i)]),
                )
            })
            .collect();
        // Half started early, as if cut by the chunker; plus one never wanted.
        for (h, b) in &chunks[..10] {
            m.start(*h, b.clone(), 3, &Domain::Plain);
        }
        m.start(
            ChunkHash([99; 16]),
            Bytes::from(vec![1; 100]),
            3,
            &Domain::Plain,
        );
        let mut got = Vec::new();
        m.compress_all(chunks.clone(), 3, &Domain::Plain, |_, h, len, stored| {
            got.push((h, len, stored));
        });
        got.sort_by_key(|(h, ..)| h.0);
        assert_eq!(got.len(), 20);
        for ((h, b), (gh, len, stored)) in chunks.iter().zip(&got) {
            assert_eq!((h, b.len() as u32), (gh, *len));
            let stored = stored.as_ref().unwrap();
            let plain = compress::decompress(stored.codec, stored.bytes.clone(), b.len());
            assert_eq!(plain.unwrap(), *b);
        }
        // A lone chunk is compressed in place.
        let lone = (ChunkHash([50; 16]), Bytes::from(vec![7; 3000]));
        let mut n = 0;
        m.compress_all(vec![lone], 3, &Domain::Plain, |_, _, _, _| n += 1);
        assert_eq!(n, 1);
    }
}
