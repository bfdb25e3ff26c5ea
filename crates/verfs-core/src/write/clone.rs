//! copy_file_range by sharing chunks: whole source extents inside the range become
//! destination extents pointing at the same chunks (refcount +1, nothing read or
//! written), and only the bytes before the first and after the last whole extent are
//! copied and re-chunked.
//!
//! Runs on the batcher thread after every held tail was stored, so both files' data is
//! in extents and later writes to the destination are ordered after the clone.

use std::collections::HashMap;

use super::chunks::{self, add_ref_shared, Memo};
use super::region::{Run, MAX_FILE_SIZE};
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Extent, Inode, Reader, WriteTxn};
use crate::types::{FileKind, Ino, Timestamp};

/// Most bytes one copy_file_range call clones (callers loop on short counts).
const MAX_CLONE: u64 = 1 << 30;

/// A clone request.
pub(crate) struct CloneReq {
    pub ino_in: Ino,
    pub off_in: u64,
    pub ino_out: Ino,
    pub off_out: u64,
    pub len: u64,
}

/// Clones the range inside `txn`; returns the bytes cloned (0 at or past the source's
/// end).
///
/// Fails with `NotFound`, `IsDir`/`Inval` for non-files, `TooBig` past the maximum file
/// size, or if metadata or packs fail.
pub(crate) fn clone_range(
    engine: &Engine,
    txn: &mut WriteTxn,
    r: &CloneReq,
    memo: &mut Memo,
) -> FsResult<u64> {
    let src = file(txn, r.ino_in)?;
    let mut dst = file(txn, r.ino_out)?;
    let end_in = src.size.min(r.off_in.saturating_add(r.len.min(MAX_CLONE)));
    if end_in <= r.off_in {
        return Ok(0);
    }
    let n = end_in - r.off_in;
    let end_out = r
        .off_out
        .checked_add(n)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or(FsError::TooBig)?;
    let shift = |off: u64| off - r.off_in + r.off_out;
    let max = engine.max_extent_len();
    let whole: Vec<Extent> = txn
        .extents_overlapping(r.ino_in, r.off_in, end_in, max)?
        .into_iter()
        .filter(|e| e.offset >= r.off_in && e.end() <= end_in)
        .collect();
    let (cs, ce) = match (whole.first(), whole.last()) {
        (Some(f), Some(l)) => (f.offset, l.end()),
        _ => (end_in, end_in),
    };
    // Bytes around the shared middle, read before anything of the destination changes.
    let head = read_src(engine, txn, &src, r.off_in, cs)?;
    let tail = read_src(engine, txn, &src, ce.max(cs), end_in)?;
    if cs < ce {
        clear_dst(engine, txn, &mut dst, shift(cs), shift(ce), memo)?;
        for e in &whole {
            let placed = Extent {
                offset: shift(e.offset),
                ..*e
            };
            add_ref_shared(txn, &e.hash)?;
            let change = txn.put_extent(r.ino_out, &placed)?;
            if let Some(old) = change.dropped {
                chunks::drop_ref(txn, &old.hash)?;
            }
            chunks::add_blocks(&mut dst, i64::from(e.len) - change.previous_len as i64);
        }
        dst.size = dst.size.max(shift(ce));
    }
    let mut writes: Vec<(u64, &[u8])> = Vec::new();
    if !head.is_empty() {
        writes.push((r.off_out, &head));
    }
    if !tail.is_empty() {
        writes.push((shift(ce.max(cs)), &tail));
    }
    if !writes.is_empty() {
        let run = Run {
            engine,
            writes: &writes,
            may_hold: false,
            tail_offset: None,
            blocks_delta: Default::default(),
            domain: engine.domain_for(&dst)?,
        };
        run.apply(txn, &mut dst, memo)?;
    }
    dst.size = dst.size.max(end_out);
    let now = Timestamp::now();
    dst.mtime = now;
    dst.ctime = now;
    dst.data_version += 1;
    txn.put_inode(&dst)?;
    Ok(n)
}

fn file(txn: &WriteTxn, ino: Ino) -> FsResult<Inode> {
    let i = txn.inode(ino)?.ok_or(FsError::NotFound)?;
    match i.kind {
        FileKind::File => Ok(i),
        FileKind::Dir => Err(FsError::IsDir),
        _ => Err(FsError::Inval),
    }
}

fn read_src(engine: &Engine, txn: &WriteTxn, src: &Inode, from: u64, to: u64) -> FsResult<Vec<u8>> {
    let mut out = Vec::new();
    if from < to {
        engine.read_committed(txn, src.ino, from, (to - from) as usize, src.size, &mut out)?;
    }
    Ok(out)
}

/// Empties `[ds, de)` of the destination: extents inside are dropped, extents across an
/// edge keep only their part outside (rewritten as new chunks).
fn clear_dst(
    engine: &Engine,
    txn: &mut WriteTxn,
    dst: &mut Inode,
    ds: u64,
    de: u64,
    memo: &mut Memo,
) -> FsResult<()> {
    let max = engine.max_extent_len();
    let mut rewrites: HashMap<u64, bytes::Bytes> = HashMap::new();
    for e in txn.extents_overlapping(dst.ino, ds, de, max)? {
        let gone = chunks::remove_extent(txn, dst.ino, e.offset)?;
        chunks::add_blocks(dst, -(gone as i64));
        if e.offset < ds || e.end() > de {
            let data = engine.read_chunk(txn, &e)?;
            if e.offset < ds {
                rewrites.insert(e.offset, data.slice(..(ds - e.offset) as usize));
            }
            if e.end() > de {
                rewrites.insert(de, data.slice((de - e.offset) as usize..));
            }
        }
    }
    if !rewrites.is_empty() {
        let mut spans: Vec<(u64, bytes::Bytes)> = rewrites.into_iter().collect();
        spans.sort_by_key(|(o, _)| *o);
        let domain = engine.domain_for(dst)?;
        let delta = chunks::put_spans(engine, txn, (dst.ino, &domain), spans, memo)?;
        chunks::add_blocks(dst, delta);
    }
    Ok(())
}
