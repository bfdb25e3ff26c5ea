//! The storage engine shared by the filesystem layer and the write batcher: metadata,
//! packs, the chunk cache, the overlay of uncommitted writes and the counters.
//!
//! File contents are read in `read` (extents → chunk records → packs, plus the
//! overlay), so the read path of `fs` and the read-modify-write of the batcher use the
//! same code.

pub mod pending;
pub mod read;
pub mod stats;

use bytes::Bytes;
use moka::sync::Cache;

use crate::data::{PackStore, UltraCdc};
use crate::error::{FsError, FsResult};
use crate::meta::{Inode, Reader, Store};
use crate::types::{ChunkHash, Ino, PackId, Timestamp};
pub use pending::{Pending, PendingOp};
pub use read::WindowSlot;
pub use stats::Stats;

/// How many times `inode_with_pending` retries when a batch commits while it reads.
const READ_RETRIES: usize = 64;

/// Known chunks kept for dedup lookups (about 100 bytes each, so at most ~25 MiB; at
/// the 64 KiB mean chunk this covers the last ~16 GiB of distinct data).
const KNOWN_CHUNK_ENTRIES: u64 = 256 * 1024;

/// Where a stored chunk is and how it is stored: the part of its chunk record that
/// never changes once the chunk is in a pack. Enough to recreate the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlace {
    /// The pack holding it.
    pub pack_id: PackId,
    /// Payload bytes in the pack.
    pub stored_len: u32,
    /// Plain length.
    pub plain_len: u32,
    /// Codec byte of the payload.
    pub codec: u8,
}

/// Metadata, packs and caches of one mounted filesystem.
pub struct Engine {
    /// The metadata store.
    pub meta: Store,
    /// The pack store.
    pub packs: PackStore,
    /// Where chunk boundaries fall.
    pub chunker: UltraCdc,
    /// zstd level for new chunks.
    pub zstd_level: i32,
    /// Writes accepted but not committed.
    pub pending: Pending,
    /// Counters for `stats`.
    pub stats: Stats,
    chunk_cache: Option<Cache<ChunkHash, Bytes>>,
    /// Chunks known to be stored, so dedup skips the `C hash` lookup for them. Anything
    /// that removes a chunk from the packs (pack rewrite in GC) must evict it here.
    known_chunks: Cache<ChunkHash, ChunkPlace>,
    max_extent_len: u64,
}

impl Engine {
    /// Assembles the engine; `chunk_cache_bytes` of 0 disables the chunk cache.
    pub fn new(
        meta: Store,
        packs: PackStore,
        chunker: UltraCdc,
        zstd_level: i32,
        chunk_cache_bytes: u64,
        max_extent_len: u64,
    ) -> Engine {
        let chunk_cache = (chunk_cache_bytes > 0).then(|| {
            Cache::builder()
                .weigher(|_, v: &Bytes| v.len().min(u32::MAX as usize) as u32 + 64)
                .max_capacity(chunk_cache_bytes)
                .build()
        });
        Engine {
            meta,
            packs,
            chunker,
            zstd_level,
            pending: Pending::default(),
            stats: Stats::default(),
            chunk_cache,
            known_chunks: Cache::new(KNOWN_CHUNK_ENTRIES),
            max_extent_len: max_extent_len.max(chunker.max_size() as u64),
        }
    }

    /// Where a chunk is stored, if the dedup cache knows it (counted in the stats).
    pub fn known_chunk(&self, hash: &ChunkHash) -> Option<ChunkPlace> {
        let hit = self.known_chunks.get(hash);
        self.stats.dedup_cache(hit.is_some());
        hit
    }

    /// Whether the dedup cache knows `hash` (a peek: not counted in the stats).
    pub fn is_known_chunk(&self, hash: &ChunkHash) -> bool {
        self.known_chunks.contains_key(hash)
    }

    /// Remembers that a chunk is stored at `place` (it is in a pack: appended by this
    /// daemon, or named by a committed chunk record).
    pub fn remember_chunk(&self, hash: ChunkHash, place: ChunkPlace) {
        self.known_chunks.insert(hash, place);
    }

    /// How far back from an offset the extent covering it may start: the largest chunk
    /// this filesystem has ever cut.
    pub fn max_extent_len(&self) -> u64 {
        self.max_extent_len
    }

    /// Remembers a chunk just written, so reading it back soon needs no pack read.
    pub fn cache_chunk(&self, hash: ChunkHash, data: Bytes) {
        if let Some(c) = &self.chunk_cache {
            c.insert(hash, data);
        }
    }

    /// The inode with its size and times as they will be once pending writes commit.
    ///
    /// Fails with `NotFound` if the inode is gone.
    pub fn inode_with_pending(&self, ino: Ino) -> FsResult<Inode> {
        for _ in 0..READ_RETRIES {
            let snap = self.pending.snapshot(ino);
            let mut inode = self.meta.view()?.inode(ino)?.ok_or(FsError::NotFound)?;
            if snap.ops.is_empty() {
                return Ok(inode);
            }
            inode.size = snap.ops.iter().fold(inode.size, |s, op| op.size_after(s));
            if snap
                .ops
                .iter()
                .any(|op| !matches!(op, PendingOp::Held { .. }))
            {
                let now = Timestamp::now();
                inode.mtime = now;
                inode.ctime = now;
            }
            if self.pending.commits() == snap.commits {
                return Ok(inode);
            }
        }
        Err(FsError::Io(format!(
            "{ino}: getattr kept racing with commits"
        )))
    }

    /// File ranges written but not yet committed (in the batcher or held back).
    pub fn pending_data_ranges(&self, ino: Ino) -> Vec<(u64, u64)> {
        self.pending
            .snapshot(ino)
            .ops
            .iter()
            .filter_map(|op| match op {
                PendingOp::Write { offset, data } | PendingOp::Held { offset, data } => {
                    Some((*offset, offset + data.len() as u64))
                }
                PendingOp::Truncate { .. } | PendingOp::Zero { .. } => None,
            })
            .collect()
    }

    /// Makes everything committed so far durable: packs first, then the metadata WAL, so
    /// metadata never becomes durable before the bytes it points to.
    ///
    /// Fails if either sync fails.
    pub fn sync_durable(&self) -> FsResult<()> {
        self.packs.sync()?;
        self.meta.sync()?;
        Ok(())
    }
}
