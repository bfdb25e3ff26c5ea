//! The memory budget: `memory_limit_mb` divided into shares, one per thing the daemon
//! keeps in memory, so one number bounds the daemon as a whole.
//!
//! Shares are in 32nds of the limit (at the default 256 MiB one 32nd is 8 MiB):
//!
//! | share | 32nds | at 256 MiB | what it bounds |
//! |---|---:|---:|---|
//! | write-back in flight | 8 | 64 MiB | bytes accepted but not committed (the flow limit; a batch is half of it) |
//! | compression buffers | 4 | 32 MiB | compressed copies of one batch's chunks waiting for their append (at most one batch) |
//! | held tails | 1 | 8 MiB | partial last chunks held back (bounded by `batch_max_delay_ms`, not enforced) |
//! | chunk cache | 4 | 32 MiB | decompressed chunks for reads (`chunk_cache_mb` caps it further) |
//! | dedup cache | 2 | 16 MiB | known chunks (~[`KNOWN_CHUNK_BYTES`] each) |
//! | pack index cache | 2 | 16 MiB | indexes of open sealed packs |
//! | vault plain cache | 1 | 8 MiB | opened vault chunks while unlocked |
//! | SurrealKV memtables | 6 | 48 MiB | two memtables (the stall threshold), each half of it |
//! | SurrealKV block cache | 2 | 16 MiB | metadata blocks read from SSTables |
//! | runtime | 2 | 16 MiB | thread stacks, allocator slack (free heap pages are returned every second, `verfs::heap`), the binary: not enforced |
//!
//! The write-back share sets how far a bulk writer runs ahead of commits, so it takes
//! the largest part; `batch_max_memory_mb` and `chunk_cache_mb` stay as caps below their
//! share (a config that set them keeps working, clamped when the limit is smaller).

use serde::{Deserialize, Serialize};

/// Bytes one dedup cache entry costs (key, place and moka's own bookkeeping); measured
/// in `engine` as about 100, rounded up.
pub const KNOWN_CHUNK_BYTES: u64 = 128;

/// Fewest dedup cache entries, whatever the limit (a few MiB).
const MIN_KNOWN_CHUNKS: u64 = 16 * 1024;

/// One 32nd of the limit in bytes.
fn part(limit: u64, n: u64) -> u64 {
    limit / 32 * n
}

/// The shares of `memory_limit_mb`, in bytes; see the module docs for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MemoryBudget {
    /// The whole limit.
    pub limit: u64,
    /// Bytes accepted but not committed (the write-back flow limit).
    pub write_back: u64,
    /// Compressed chunks of the batch being applied.
    pub compression: u64,
    /// Partial chunks held back for `batch_max_delay_ms`.
    pub held_tails: u64,
    /// Decompressed chunks kept for reads.
    pub chunk_cache: u64,
    /// Known-chunk (dedup) cache.
    pub dedup_cache: u64,
    /// Sealed pack indexes.
    pub pack_index_cache: u64,
    /// Plain vault chunks while the vault is unlocked.
    pub vault_cache: u64,
    /// SurrealKV memtables (both: the active one and one being flushed).
    pub meta_memtables: u64,
    /// SurrealKV block cache.
    pub meta_block_cache: u64,
    /// What is left for stacks, allocator slack and code.
    pub runtime: u64,
}

impl MemoryBudget {
    /// Divides `limit_mb` MiB; `chunk_cache_mb` and `batch_max_memory_mb` cap their
    /// shares (the batch is half the write-back share, so the write-back share is at most
    /// twice the batch).
    pub fn new(limit_mb: u64, chunk_cache_mb: u64, batch_max_memory_mb: u64) -> MemoryBudget {
        let limit = limit_mb.saturating_mul(1 << 20);
        let write_back = part(limit, 8).min(batch_max_memory_mb.saturating_mul(2 << 20));
        MemoryBudget {
            limit,
            write_back,
            compression: part(limit, 4).min(write_back / 2),
            held_tails: part(limit, 1),
            chunk_cache: part(limit, 4).min(chunk_cache_mb.saturating_mul(1 << 20)),
            dedup_cache: part(limit, 2),
            pack_index_cache: part(limit, 2),
            vault_cache: part(limit, 1),
            meta_memtables: part(limit, 6),
            meta_block_cache: part(limit, 2),
            runtime: part(limit, 2),
        }
    }

    /// Most write bytes per batch: half the write-back share (a second batch may be
    /// queued while one is applied).
    pub fn batch_bytes(&self) -> u64 {
        (self.write_back / 2).max(1 << 20)
    }

    /// Entries of the dedup cache its share pays for.
    pub fn known_chunk_entries(&self) -> u64 {
        (self.dedup_cache / KNOWN_CHUNK_BYTES).max(MIN_KNOWN_CHUNKS)
    }

    /// Size of one SurrealKV memtable: half the memtable share, since a second one may
    /// fill while the first is flushed.
    pub fn memtable_bytes(&self) -> u64 {
        (self.meta_memtables / 2).max(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_limit() {
        let b = MemoryBudget::new(256, u64::MAX / 2, u64::MAX / 2);
        let sum = b.write_back
            + b.compression
            + b.held_tails
            + b.chunk_cache
            + b.dedup_cache
            + b.pack_index_cache
            + b.vault_cache
            + b.meta_memtables
            + b.meta_block_cache
            + b.runtime;
        assert_eq!(sum, b.limit);
        assert_eq!(b.write_back, 64 << 20);
        assert_eq!(b.batch_bytes(), 32 << 20);
        assert_eq!(b.memtable_bytes(), 24 << 20);
    }

    #[test]
    fn old_caps_clamp_their_shares() {
        // The old defaults (64, 64) are larger than the shares at 256: the shares win.
        let b = MemoryBudget::new(256, 64, 64);
        assert_eq!(b.chunk_cache, 32 << 20);
        assert_eq!(b.batch_bytes(), 32 << 20);
        // Smaller caps win over a large limit.
        let b = MemoryBudget::new(4096, 8, 4);
        assert_eq!(b.chunk_cache, 8 << 20);
        assert_eq!(b.batch_bytes(), 4 << 20);
        assert_eq!(b.compression, 4 << 20);
        let b = MemoryBudget::new(256, 0, 64);
        assert_eq!(b.chunk_cache, 0);
    }
}
