//! The storage engine shared by the filesystem layer and the write batcher: metadata,
//! packs, the chunk cache, the overlay of uncommitted writes and the counters.
//!
//! File contents are read here (extents → chunk records → packs, plus the overlay), so
//! the read path of `fs` and the read-modify-write of the batcher use the same code.

pub mod pending;
pub mod stats;

use bytes::Bytes;
use moka::sync::Cache;

use crate::data::{PackStore, UltraCdc};
use crate::error::{FsError, FsResult};
use crate::meta::{Extent, Inode, Reader, Store};
use crate::types::{ChunkHash, Ino, Timestamp};
pub use pending::{Pending, PendingOp};
pub use stats::Stats;

/// How many times a read retries when a batch commits while it reads.
const READ_RETRIES: usize = 64;

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
            max_extent_len: max_extent_len.max(chunker.max_size() as u64),
        }
    }

    /// The plain bytes of the chunk an extent points at.
    ///
    /// Fails with `Corrupt` if the chunk record is missing or the pack record fails its
    /// checks, `Io` if the pack cannot be read.
    pub fn read_chunk(&self, r: &impl Reader, e: &Extent) -> FsResult<Bytes> {
        if let Some(c) = self.chunk_cache.as_ref().and_then(|c| c.get(&e.hash)) {
            self.stats.chunk_cache_hit();
            return Ok(c);
        }
        self.stats.chunk_cache_miss();
        let rec = r.chunk(&e.hash)?.ok_or_else(|| {
            FsError::Corrupt(format!(
                "extent at {} names unknown chunk {}",
                e.offset, e.hash
            ))
        })?;
        if rec.plain_len != e.len {
            return Err(FsError::Corrupt(format!(
                "chunk {} is {} bytes, extent says {}",
                e.hash, rec.plain_len, e.len
            )));
        }
        let data = self.packs.read(rec.pack_id, &e.hash, rec.plain_len)?;
        if let Some(c) = &self.chunk_cache {
            c.insert(e.hash, data.clone());
        }
        Ok(data)
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

    /// Appends committed bytes `[start, start + len)` of `ino` to `out`; holes and bytes
    /// past `size` read as zeros. Only gaps are zero-filled: on the sequential read path
    /// zeroing whole buffers first showed up as a tenth of the profile.
    ///
    /// Fails as [`Engine::read_chunk`] does.
    pub fn read_committed(
        &self,
        r: &impl Reader,
        ino: Ino,
        start: u64,
        len: usize,
        size: u64,
        out: &mut Vec<u8>,
    ) -> FsResult<()> {
        let want_end = start + len as u64;
        let end = want_end.min(size);
        let mut pos = start;
        if start < end {
            for e in r.extents_overlapping(ino, start, end, self.max_extent_len)? {
                let s = start.max(e.offset);
                let t = end.min(e.end());
                if s >= t {
                    continue;
                }
                let data = self.read_chunk(r, &e)?;
                out.resize(out.len() + (s - pos) as usize, 0);
                out.extend_from_slice(&data[(s - e.offset) as usize..(t - e.offset) as usize]);
                pos = t;
            }
        }
        out.resize(out.len() + (want_end - pos) as usize, 0);
        Ok(())
    }

    /// Reads up to `len` bytes of `ino` at `offset`, committed data overlaid with writes
    /// still in a batch.
    ///
    /// Fails with `NotFound` if the inode is gone, or as [`Engine::read_chunk`] does.
    pub fn read(&self, ino: Ino, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        for _ in 0..READ_RETRIES {
            let snap = self.pending.snapshot(ino);
            let view = self.meta.view()?;
            let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
            let size = snap.ops.iter().fold(inode.size, |s, op| op.size_after(s));
            if offset >= size {
                return Ok(Vec::new());
            }
            let n = (size - offset).min(u64::from(len)) as usize;
            let mut buf = Vec::with_capacity(n);
            self.read_committed(&view, ino, offset, n, inode.size, &mut buf)?;
            let mut cur = inode.size;
            for op in &snap.ops {
                cur = op.apply(offset, &mut buf, cur);
            }
            if self.pending.commits() == snap.commits {
                self.stats.add_read(n as u64);
                return Ok(buf);
            }
        }
        Err(FsError::Io(format!("{ino}: read kept racing with commits")))
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
