//! Re-chunking the neighbourhood of a run of writes (DESIGN.md §5, steps 1–3).
//!
//! Each dirty range is widened to the start of the old extent it begins in (or of the
//! file's last extent when it appends at end of file, since that chunk was cut by EOF,
//! not by content). From there the chunker runs over old bytes overlaid with the writes,
//! streaming in pieces of at most two max-size chunks, until a cut lands at or after the
//! dirty end on an old extent boundary (or in a hole, or at end of file): from there on
//! the old chunks are still valid. So an overwrite rewrites only the chunks around it, an
//! insertion near the start shares all but a chunk or two with the original, and memory
//! is bounded by the batch, never by the file.
//!
//! The last chunk of a file is held back when the chunker cut it only because the
//! data ended (see [`Held`]): the next append re-chunks it anyway, so storing it now would
//! leave garbage in the pack on every batch of a sequential write.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::chunks::{self, HashedSpans, Memo};
use crate::data::Domain;
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Inode, Reader, WriteTxn};
use crate::types::Ino;

/// Largest file offset accepted (the kernel's `MAX_LFS_FILESIZE` on 64-bit).
pub(crate) const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// A file's last chunk, cut only by end of data, kept in memory instead of stored. The
/// inode's committed size stops at `offset` or stays where it was, whichever is larger;
/// the overlay makes the bytes visible. A held chunk may start before the committed
/// size (an append to a file whose last chunk was stored, as an fsync does) only on an
/// old extent boundary, and the old extents under it stay committed until it is stored:
/// what is committed never loses bytes it had (a crash loses at most unsynced bytes).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// File offset of the chunk.
    pub offset: u64,
    /// Its bytes.
    pub data: Arc<[u8]>,
}

/// Merges overlapping or touching `[start, end)` ranges.
pub(crate) fn merge_ranges(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(r.len());
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// One run of writes of one file, in arrival order.
pub(crate) struct Run<'a> {
    pub engine: &'a Engine,
    pub writes: &'a [(u64, &'a [u8])],
    /// Whether the file's final chunk may be held back (no later op in this batch).
    pub may_hold: bool,
    /// Offset of a previously held tail replayed as the first write: the chunk before it
    /// ended on a content cut, so it needs no re-chunking.
    pub tail_offset: Option<u64>,
    /// Change in the file's stored bytes so far.
    pub blocks_delta: std::cell::Cell<i64>,
    /// The file's chunk domain (vault files are sealed).
    pub domain: Domain,
}

impl Run<'_> {
    /// Applies the run to `inode` (size, extents) inside `txn`; returns the held tail.
    ///
    /// Fails with `TooBig` past the maximum file size, or if data or metadata cannot be
    /// read or written.
    pub(crate) fn apply(
        &self,
        txn: &mut WriteTxn,
        inode: &mut Inode,
        memo: &mut Memo,
    ) -> FsResult<Option<Held>> {
        let mut ranges = Vec::with_capacity(self.writes.len());
        for (off, data) in self.writes {
            let end = off
                .checked_add(data.len() as u64)
                .filter(|e| *e <= MAX_FILE_SIZE)
                .ok_or(FsError::TooBig)?;
            ranges.push((*off, end));
        }
        let old_size = inode.size;
        let new_size = ranges.iter().fold(old_size, |s, r| s.max(r.1));
        let ranges = merge_ranges(ranges);
        let mut cursor = 0u64;
        let mut next = 0usize;
        let mut held = None;
        while next < ranges.len() {
            let (s, e) = ranges[next];
            next += 1;
            if e <= cursor {
                continue;
            }
            let ws = self
                .region_start(txn, inode.ino, s.max(cursor), old_size)?
                .max(cursor);
            let (end, tail) = self.rechunk(
                txn, inode.ino, ws, e, &ranges, &mut next, old_size, new_size, memo,
            )?;
            cursor = end;
            held = tail;
        }
        inode.size = match &held {
            Some(h) => h.offset.max(old_size),
            None => new_size,
        };
        chunks::add_blocks(inode, self.blocks_delta.take());
        Ok(held)
    }

    /// Where re-chunking must start so a dirty range beginning at `s` lands on chunk
    /// boundaries: the start of the old extent `s` falls inside, or of the last extent
    /// when `s` is its end at end of file.
    fn region_start(&self, txn: &WriteTxn, ino: Ino, s: u64, old_size: u64) -> FsResult<u64> {
        // Extents never reach past the committed size, so past it there is none to find.
        if self.tail_offset == Some(s) || s > old_size || old_size == 0 {
            return Ok(s);
        }
        let max = self.engine.max_extent_len();
        for e in txn.extents_overlapping(ino, s.saturating_sub(1), s + 1, max)? {
            if (e.offset < s && s < e.end()) || (e.end() == s && s == old_size) {
                return Ok(e.offset);
            }
        }
        Ok(s)
    }

    /// Whether `p` is a safe place to stop: not strictly inside an old extent.
    fn is_boundary(&self, txn: &WriteTxn, ino: Ino, p: u64, old_size: u64) -> FsResult<bool> {
        if p >= old_size {
            return Ok(true);
        }
        let max = self.engine.max_extent_len();
        let inside = txn
            .extents_overlapping(ino, p, p + 1, max)?
            .iter()
            .any(|e| e.offset < p);
        Ok(!inside)
    }

    /// File bytes `[pos, pos + len)` as they are after this run: old bytes (zeros past
    /// `old_size` and in holes) overlaid with the writes in order.
    fn bytes(
        &self,
        txn: &WriteTxn,
        ino: Ino,
        pos: u64,
        len: usize,
        old_size: u64,
    ) -> FsResult<Vec<u8>> {
        let end = pos + len as u64;
        let covered = self
            .writes
            .iter()
            .any(|(o, d)| *o <= pos && o + d.len() as u64 >= end);
        let mut buf = Vec::with_capacity(len);
        if covered {
            buf.resize(len, 0);
        } else {
            self.engine
                .read_committed(txn, ino, pos, len, old_size, &mut buf)?;
        }
        for (off, data) in self.writes {
            overlay(&mut buf, pos, *off, data);
        }
        Ok(buf)
    }

    /// Chunks from `ws` until a safe stop at or after the dirty end (absorbing later
    /// ranges it reaches), stores the chunks and drops the old extents they replace.
    /// Returns where it stopped and the held tail, if any.
    #[allow(clippy::too_many_arguments)]
    fn rechunk(
        &self,
        txn: &mut WriteTxn,
        ino: Ino,
        ws: u64,
        dirty_end: u64,
        ranges: &[(u64, u64)],
        next: &mut usize,
        old_size: u64,
        new_size: u64,
        memo: &mut Memo,
    ) -> FsResult<(u64, Option<Held>)> {
        let cdc = &self.engine.chunker;
        let max = cdc.max_size();
        let mut dirty_end = dirty_end;
        // `buf[head..]` holds the bytes from `start` on; consumed bytes are dropped only
        // when more are loaded, so cutting a chunk never shifts the rest.
        let mut buf: Vec<u8> = Vec::new();
        let mut head = 0usize;
        let mut start = ws;
        let mut spans: HashedSpans = Vec::new();
        let mut held = None;
        while start < new_size {
            let avail = buf.len() - head;
            let loaded = start + avail as u64;
            if avail < max && loaded < new_size {
                buf.drain(..head);
                head = 0;
                let want = (2 * max - avail).min((new_size - loaded) as usize);
                buf.extend(self.bytes(txn, ino, loaded, want, old_size)?);
            }
            let rest = &buf[head..];
            let eof = start + rest.len() as u64 >= new_size;
            let cut = cdc.cut(rest, eof).unwrap_or(rest.len()).min(rest.len());
            if cut == 0 {
                break;
            }
            // Cut by the end of the data rather than by content (a content cut exactly at
            // the end is treated the same; holding it back costs nothing).
            let forced_by_eof = eof && cut == rest.len() && cut < max;
            let chunk = Bytes::copy_from_slice(&rest[..cut]);
            head += cut;
            let chunk_start = start;
            start += cut as u64;
            while *next < ranges.len() && ranges[*next].0 <= start {
                dirty_end = dirty_end.max(ranges[*next].1);
                *next += 1;
            }
            // A chunk starting before the committed size is held only on an old extent
            // boundary, and the old extents from there on stay committed under it: the
            // size is never cut back and no stored extent is dropped for bytes that live
            // only in memory, so a crash before the tail is stored loses nothing an
            // earlier fsync made durable. Without this, every fsync'd append stored (and
            // later garbage-collected) a fresh copy of the file's growing last chunk.
            if start >= new_size
                && forced_by_eof
                && self.may_hold
                && self.is_boundary(txn, ino, chunk_start, old_size)?
            {
                held = Some(Held {
                    offset: chunk_start,
                    data: Arc::from(&chunk[..]),
                });
                break;
            }
            let hash = memo.precompress(self.engine, &self.domain, &chunk);
            spans.push((chunk_start, hash, chunk));
            if start >= new_size
                || (start >= dirty_end && self.is_boundary(txn, ino, start, old_size)?)
            {
                break;
            }
        }
        let stop = start;
        // Old extents under a held chunk stay until it is stored.
        let replaced_to = held.as_ref().map_or(stop, |h| h.offset);
        self.replace(txn, ino, (ws, replaced_to), old_size, spans, memo)?;
        Ok((stop, held))
    }

    /// Writes `spans` as the extents of `[ws, stop)` and drops old extents there that no
    /// new chunk starts at (there are none at or past the committed `old_size`).
    fn replace(
        &self,
        txn: &mut WriteTxn,
        ino: Ino,
        (ws, stop): (u64, u64),
        old_size: u64,
        spans: HashedSpans,
        memo: &mut Memo,
    ) -> FsResult<()> {
        let max = self.engine.max_extent_len();
        let old: Vec<u64> = if ws < old_size {
            txn.extents_overlapping(ino, ws, stop, max)?
                .iter()
                .map(|e| e.offset)
                .filter(|o| *o >= ws)
                .collect()
        } else {
            Vec::new()
        };
        let fresh: HashSet<u64> = spans.iter().map(|(o, ..)| *o).collect();
        let mut delta = chunks::put_hashed(self.engine, txn, (ino, &self.domain), spans, memo)?;
        for off in old {
            if !fresh.contains(&off) {
                delta -= chunks::remove_extent(txn, ino, off)? as i64;
            }
        }
        self.blocks_delta.set(self.blocks_delta.get() + delta);
        Ok(())
    }
}

/// Copies the part of a write at `off` that falls in the buffer holding `[pos, ..)`.
fn overlay(buf: &mut [u8], pos: u64, off: u64, data: &[u8]) {
    let end = pos + buf.len() as u64;
    let s = pos.max(off);
    let e = end.min(off + data.len() as u64);
    if s < e {
        buf[(s - pos) as usize..(e - pos) as usize]
            .copy_from_slice(&data[(s - off) as usize..(e - off) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_touching() {
        assert_eq!(
            merge_ranges(vec![(5, 10), (0, 5), (20, 30), (25, 26)]),
            vec![(0, 10), (20, 30)]
        );
    }

    #[test]
    fn overlay_copies_only_the_intersection() {
        let a = [1u8; 10];
        let b = [2u8; 10];
        let mut buf = vec![0u8; 8];
        overlay(&mut buf, 6, 0, &a);
        assert_eq!(buf, [1, 1, 1, 1, 0, 0, 0, 0]);
        overlay(&mut buf, 6, 10, &b);
        assert_eq!(buf, [1, 1, 1, 1, 2, 2, 2, 2]);
        overlay(&mut buf, 6, 100, &b);
        assert_eq!(buf, [1, 1, 1, 1, 2, 2, 2, 2]);
    }
}
