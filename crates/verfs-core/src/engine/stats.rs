//! Counters reported by `verfsnext stats`; relaxed atomics, never a lock on a hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Running counters of one daemon's lifetime.
#[derive(Default, Debug)]
pub struct Stats {
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    batches: AtomicU64,
    batch_blocks: AtomicU64,
    dedup_hits: AtomicU64,
    dedup_misses: AtomicU64,
    chunk_cache_hits: AtomicU64,
    chunk_cache_misses: AtomicU64,
    dedup_cache_hits: AtomicU64,
    dedup_cache_misses: AtomicU64,
    damaged_reads: AtomicU64,
    scrub_damaged_chunks: AtomicU64,
    fsyncs_logged: AtomicU64,
    fsyncs_full: AtomicU64,
    intent_checkpoints: AtomicU64,
    /// A gauge, not a counter: bytes of file tails the batcher holds now.
    held_tail_bytes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Bytes returned by reads.
    pub bytes_read: u64,
    /// Bytes accepted by writes.
    pub bytes_written: u64,
    /// Batches committed.
    pub batches: u64,
    /// Write blocks in those batches.
    pub batch_blocks: u64,
    /// New chunks that were already stored.
    pub dedup_hits: u64,
    /// New chunks that had to be stored.
    pub dedup_misses: u64,
    /// Chunk reads served from memory.
    pub chunk_cache_hits: u64,
    /// Chunk reads that went to a pack.
    pub chunk_cache_misses: u64,
    /// Dedup lookups answered by the cache of known chunks.
    #[serde(default)]
    pub dedup_cache_hits: u64,
    /// Dedup lookups that had to read the chunk record.
    #[serde(default)]
    pub dedup_cache_misses: u64,
    /// Pack index lookups answered from memory.
    #[serde(default)]
    pub pack_index_hits: u64,
    /// Pack index lookups that had to read a pack's index from disk.
    #[serde(default)]
    pub pack_index_misses: u64,
    /// Chunk reads that failed: a damaged or missing pack record, a missing pack (each
    /// answered EIO and logged with pack and offset).
    #[serde(default)]
    pub damaged_reads: u64,
    /// Damaged chunk records the scrub found (each counted once per scrub pass).
    #[serde(default)]
    pub scrub_damaged_chunks: u64,
    /// fsync batches answered by flushing the intent log alone.
    #[serde(default)]
    pub fsyncs_logged: u64,
    /// fsync batches answered by storing tails and syncing packs and metadata.
    #[serde(default)]
    pub fsyncs_full: u64,
    /// Intent log checkpoints (everything stored and synced, the log emptied).
    #[serde(default)]
    pub intent_checkpoints: u64,
}

impl Stats {
    /// Records the bytes of held tails after a batch (the batcher thread owns them; this
    /// copy lets `stats` report the share's use).
    pub fn set_held_tail_bytes(&self, n: u64) {
        self.held_tail_bytes.store(n, Relaxed);
    }

    /// Bytes of file tails held at the end of the last batch.
    pub fn held_tail_bytes(&self) -> u64 {
        self.held_tail_bytes.load(Relaxed)
    }

    /// Counts bytes returned by a read.
    pub fn add_read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Relaxed);
    }
    /// Counts a committed batch of `blocks` writes holding `bytes`.
    pub fn add_batch(&self, blocks: u64, bytes: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.batch_blocks.fetch_add(blocks, Relaxed);
        self.bytes_written.fetch_add(bytes, Relaxed);
    }
    /// Counts a chunk found already stored.
    pub fn dedup_hit(&self) {
        self.dedup_hits.fetch_add(1, Relaxed);
    }
    /// Counts a chunk that had to be stored.
    pub fn dedup_miss(&self) {
        self.dedup_misses.fetch_add(1, Relaxed);
    }
    /// Counts a chunk read served from the cache.
    pub fn chunk_cache_hit(&self) {
        self.chunk_cache_hits.fetch_add(1, Relaxed);
    }
    /// Counts a chunk read that went to a pack.
    pub fn chunk_cache_miss(&self) {
        self.chunk_cache_misses.fetch_add(1, Relaxed);
    }
    /// Counts a dedup lookup in the known-chunk cache.
    pub fn dedup_cache(&self, hit: bool) {
        if hit {
            self.dedup_cache_hits.fetch_add(1, Relaxed);
        } else {
            self.dedup_cache_misses.fetch_add(1, Relaxed);
        }
    }
    /// Counts a chunk read that failed on damaged or missing stored data.
    pub fn damaged_read(&self) {
        self.damaged_reads.fetch_add(1, Relaxed);
    }
    /// Counts an fsync batch answered through the intent log (`logged`) or the full way.
    pub fn fsync_batch(&self, logged: bool) {
        let c = if logged {
            &self.fsyncs_logged
        } else {
            &self.fsyncs_full
        };
        c.fetch_add(1, Relaxed);
    }
    /// Counts an intent log checkpoint.
    pub fn intent_checkpoint(&self) {
        self.intent_checkpoints.fetch_add(1, Relaxed);
    }
    /// Counts a damaged chunk record found by the scrub.
    pub fn scrub_damaged(&self) {
        self.scrub_damaged_chunks.fetch_add(1, Relaxed);
    }
    /// Copies the counters (pack index counters are kept by the pack store and filled
    /// in by the caller).
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            batches: self.batches.load(Relaxed),
            batch_blocks: self.batch_blocks.load(Relaxed),
            dedup_hits: self.dedup_hits.load(Relaxed),
            dedup_misses: self.dedup_misses.load(Relaxed),
            chunk_cache_hits: self.chunk_cache_hits.load(Relaxed),
            chunk_cache_misses: self.chunk_cache_misses.load(Relaxed),
            dedup_cache_hits: self.dedup_cache_hits.load(Relaxed),
            dedup_cache_misses: self.dedup_cache_misses.load(Relaxed),
            pack_index_hits: 0,
            pack_index_misses: 0,
            damaged_reads: self.damaged_reads.load(Relaxed),
            scrub_damaged_chunks: self.scrub_damaged_chunks.load(Relaxed),
            fsyncs_logged: self.fsyncs_logged.load(Relaxed),
            fsyncs_full: self.fsyncs_full.load(Relaxed),
            intent_checkpoints: self.intent_checkpoints.load(Relaxed),
        }
    }
}
