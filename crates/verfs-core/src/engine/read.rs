//! Reading file contents: extents → chunk records → packs, with the overlay of writes
//! not yet committed on top.
//!
//! A sequential reader goes through an open handle, which keeps an [`ExtentWindow`]:
//! the extents of the next few MiB with the pack of each chunk, read once from
//! metadata. Later reads inside the window touch no metadata at all. The window stays
//! valid while the batcher's commit counter stands still, because every change to a
//! file's extents (write, truncate, hole punch, clone) commits through the batcher;
//! anything that moves chunks between packs must commit through it too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Extent, Reader, View, CHUNK_FLAG_ENCRYPTED};
use crate::types::{ChunkHash, Ino, PackId};

/// How much of a file an extent window covers past the read that loaded it.
const WINDOW_BYTES: u64 = 8 << 20;

/// Where a chunk's record is: what the read path needs of a chunk record.
#[derive(Clone, Copy, Debug)]
struct ChunkLoc {
    pack_id: PackId,
    plain_len: u32,
    /// An encrypted (vault) chunk: its plain bytes never enter the chunk cache.
    sealed: bool,
}

/// The committed extents of one file range with their chunks located, as of one
/// commit-counter value.
#[derive(Debug)]
pub struct ExtentWindow {
    ino: Ino,
    commits: u64,
    size: u64,
    start: u64,
    end: u64,
    extents: Vec<(Extent, ChunkLoc)>,
}

impl ExtentWindow {
    /// Whether the window answers a read of `[offset, offset + len)` of `ino` taken at
    /// commit counter `commits`.
    fn covers(&self, ino: Ino, commits: u64, offset: u64, len: u64) -> bool {
        let end = (offset + len).min(self.size);
        self.ino == ino
            && self.commits == commits
            && offset >= self.start
            && (end <= self.end || self.end >= self.size)
    }
}

/// An open handle's window (none until its first read) and where its last read ended.
/// Only a reader that continues where it stopped gets a window reaching past its
/// request: a random reader would otherwise look up megabytes of extents per 4 KiB read.
#[derive(Debug, Default)]
pub struct WindowSlot {
    window: Mutex<Option<Arc<ExtentWindow>>>,
    next_offset: AtomicU64,
}

impl WindowSlot {
    fn current(&self) -> Option<Arc<ExtentWindow>> {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, w: Option<Arc<ExtentWindow>>) {
        *self.window.lock().unwrap_or_else(|p| p.into_inner()) = w;
    }
}

/// Where a read finds committed extents: a handle's window still valid, or a view
/// opened together with the overlay snapshot.
enum Base {
    Window(Arc<ExtentWindow>),
    View(View),
}

/// Committed inode size and extents a read is served from.
struct Source<'a> {
    size: u64,
    extents: &'a [(Extent, ChunkLoc)],
}

impl Engine {
    /// The plain bytes of the chunk an extent points at, through the chunk cache.
    ///
    /// Fails with `Corrupt` if the chunk record is missing or the pack record fails its
    /// checks, `Io` if the pack cannot be read.
    pub fn read_chunk(&self, r: &impl Reader, e: &Extent) -> FsResult<Bytes> {
        if let Some(c) = self.cached_chunk(&e.hash) {
            return Ok(c);
        }
        let loc = chunk_loc(r, e)?;
        self.load_chunk(e, loc)
    }

    fn cached_chunk(&self, hash: &ChunkHash) -> Option<Bytes> {
        let hit = self.chunk_cache.as_ref().and_then(|c| c.get(hash));
        if hit.is_some() {
            self.stats.chunk_cache_hit();
        } else {
            self.stats.chunk_cache_miss();
        }
        hit
    }

    fn load_chunk(&self, e: &Extent, loc: ChunkLoc) -> FsResult<Bytes> {
        let data = self
            .packs
            .read(loc.pack_id, &e.hash, loc.plain_len)
            .map_err(|err| self.damaged(err.into()))?;
        if !loc.sealed {
            self.cache_chunk(e.hash, data.clone());
        }
        Ok(data)
    }

    /// Appends the whole chunk of `e` to `out`: from the cache if it is there, else
    /// read straight from its pack into `out` without passing through the cache (a
    /// streaming reader would only evict what random readers need).
    fn append_chunk(&self, e: &Extent, loc: ChunkLoc, out: &mut Vec<u8>) -> FsResult<()> {
        if let Some(c) = self.cached_chunk(&e.hash) {
            out.extend_from_slice(&c);
            return Ok(());
        }
        self.packs
            .read_into(loc.pack_id, &e.hash, loc.plain_len, out)
            .map_err(|err| self.damaged(err.into()))
    }

    /// Counts a failed pack read in `stats` (the error itself is logged once, with
    /// pack and offset, where it becomes an errno).
    fn damaged(&self, err: FsError) -> FsError {
        if matches!(err, FsError::Corrupt(_) | FsError::Io(_)) {
            self.stats.damaged_read();
        }
        err
    }

    /// Appends bytes `[start, start + len)` to `out` from `src`; holes and bytes past
    /// the size read as zeros. Only gaps are zero-filled: zeroing whole buffers first
    /// was a tenth of the sequential-read profile.
    fn fill(&self, src: &Source<'_>, start: u64, len: usize, out: &mut Vec<u8>) -> FsResult<()> {
        let want_end = start + len as u64;
        let end = want_end.min(src.size);
        let mut pos = start;
        for (e, loc) in src.extents {
            let s = start.max(e.offset);
            let t = end.min(e.end());
            if s >= t {
                continue;
            }
            out.resize(out.len() + (s - pos) as usize, 0);
            if s == e.offset && t == e.end() {
                self.append_chunk(e, *loc, out)?;
            } else {
                let data = match self.cached_chunk(&e.hash) {
                    Some(d) => d,
                    None => self.load_chunk(e, *loc)?,
                };
                out.extend_from_slice(&data[(s - e.offset) as usize..(t - e.offset) as usize]);
            }
            pos = t;
        }
        out.resize(out.len() + (want_end - pos) as usize, 0);
        Ok(())
    }

    /// Appends committed bytes `[start, start + len)` of `ino` (committed size `size`)
    /// to `out`, reading metadata through `r`.
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
        let end = (start + len as u64).min(size);
        let extents = if start < end {
            located_extents(r, ino, start, end, self.max_extent_len)?
        } else {
            Vec::new()
        };
        self.fill(
            &Source {
                size,
                extents: &extents,
            },
            start,
            len,
            out,
        )
    }

    /// Reads up to `len` bytes of `ino` at `offset` as `view` sees it, with no write
    /// overlay: how a snapshot's files are read (nothing is ever pending there).
    ///
    /// Fails with `NotFound` if the inode is not in the view, or as
    /// [`Engine::read_chunk`] does.
    pub fn read_at(&self, view: &View, ino: Ino, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        let size = view.inode(ino)?.ok_or(FsError::NotFound)?.size;
        let n = size.saturating_sub(offset).min(u64::from(len)) as usize;
        let mut out = Vec::with_capacity(n);
        if n > 0 {
            self.read_committed(view, ino, offset, n, size, &mut out)?;
            self.stats.add_read(n as u64);
        }
        Ok(out)
    }

    /// Reads up to `len` bytes of `ino` at `offset`, committed data overlaid with writes
    /// still in a batch. Without a window slot every read looks up its extents.
    ///
    /// Fails with `NotFound` if the inode is gone, or as [`Engine::read_chunk`] does.
    pub fn read(&self, ino: Ino, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        self.read_windowed(ino, offset, len, &WindowSlot::default())
            .map(|(data, _)| data)
    }

    /// Reads like [`Engine::read`], keeping extents for the reads that follow in
    /// `slot`. Also returns whether the window was (re)loaded from metadata for this
    /// read. Reads through one handle run in parallel (the kernel sends several
    /// readahead requests at once); they share the window, never a lock while reading.
    ///
    /// Fails as [`Engine::read`] does.
    pub fn read_windowed(
        &self,
        ino: Ino,
        offset: u64,
        len: u32,
        slot: &WindowSlot,
    ) -> FsResult<(Vec<u8>, bool)> {
        let sequential = slot.next_offset.load(Ordering::Relaxed) == offset;
        let (snap, base) = {
            // A handle's window is valid while the commit counter stands still;
            // otherwise the view is opened under the same gate as the overlay snapshot.
            let _gate = self.read_gate(ino);
            let snap = self.pending.snapshot(ino);
            let base = match slot.current() {
                Some(w) if w.covers(ino, snap.commits, offset, u64::from(len)) => Base::Window(w),
                _ => Base::View(self.meta.view()?),
            };
            (snap, base)
        };
        let (w, loaded) = match base {
            Base::Window(w) => (w, false),
            Base::View(view) => {
                let ahead = if sequential { WINDOW_BYTES } else { 0 };
                let w = Arc::new(self.load_window(&view, ino, offset, len, ahead, snap.commits)?);
                slot.set(Some(w.clone()));
                (w, true)
            }
        };
        let size = snap.ops.iter().fold(w.size, |s, op| op.size_after(s));
        let n = size.saturating_sub(offset).min(u64::from(len)) as usize;
        let mut buf = Vec::with_capacity(n);
        if n > 0 {
            let src = Source {
                size: w.size,
                extents: &w.extents,
            };
            self.fill(&src, offset, n, &mut buf)?;
            let mut cur = w.size;
            for op in &snap.ops {
                cur = op.apply(offset, &mut buf, cur);
            }
        }
        self.stats.add_read(n as u64);
        slot.next_offset.store(offset + n as u64, Ordering::Relaxed);
        Ok((buf, loaded))
    }

    /// Reads the committed size and the located extents of `[offset, offset + len +
    /// ahead)` of `ino` from the current metadata view.
    fn load_window(
        &self,
        view: &View,
        ino: Ino,
        offset: u64,
        len: u32,
        ahead: u64,
        commits: u64,
    ) -> FsResult<ExtentWindow> {
        let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
        let end = offset
            .saturating_add(u64::from(len))
            .saturating_add(ahead)
            .min(inode.size);
        let extents = if offset < end {
            located_extents(view, ino, offset, end, self.max_extent_len)?
        } else {
            Vec::new()
        };
        Ok(ExtentWindow {
            ino,
            commits,
            size: inode.size,
            start: offset,
            end,
            extents,
        })
    }
}

/// The extents overlapping `[start, end)` with their chunks located.
fn located_extents(
    r: &impl Reader,
    ino: Ino,
    start: u64,
    end: u64,
    max_extent_len: u64,
) -> FsResult<Vec<(Extent, ChunkLoc)>> {
    r.extents_overlapping(ino, start, end, max_extent_len)?
        .into_iter()
        .map(|e| chunk_loc(r, &e).map(|loc| (e, loc)))
        .collect()
}

/// The pack and length of the chunk an extent names, checked against the extent.
fn chunk_loc(r: &impl Reader, e: &Extent) -> FsResult<ChunkLoc> {
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
    Ok(ChunkLoc {
        pack_id: rec.pack_id,
        plain_len: rec.plain_len,
        sealed: rec.flags & CHUNK_FLAG_ENCRYPTED != 0,
    })
}
