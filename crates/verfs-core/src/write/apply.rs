//! Applying one batch: per inode, in arrival order, in one metadata transaction.
//!
//! Runs of writes are merged into dirty ranges, widened to whole chunks, read back where
//! they only partly change, re-chunked and stored (`chunks::put_spans`). Size changes cut
//! or drop extents. If the batch transaction fails, each inode is retried in its own
//! transaction so one bad file cannot fail the writes of another.

use std::sync::Arc;

use super::chunks::{self, ChunkSpans, Memo};
use super::{AttrEdit, Batch, Done, Msg};
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Inode, Reader, WriteTxn};
use crate::types::{FileKind, Ino, Timestamp};

/// Largest file offset accepted (the kernel's `MAX_LFS_FILESIZE` on 64-bit).
pub(crate) const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// A data op of one inode, with its completion.
enum Op {
    Write {
        seq: u64,
        offset: u64,
        data: Arc<[u8]>,
        done: Done<u32>,
    },
    SetSize {
        seq: u64,
        size: u64,
        edit: AttrEdit,
        done: Done<Inode>,
    },
}

impl Op {
    fn seq(&self) -> u64 {
        match self {
            Op::Write { seq, .. } | Op::SetSize { seq, .. } => *seq,
        }
    }
}

/// The ops of one inode in a batch.
struct InodeOps {
    ino: Ino,
    ops: Vec<Op>,
}

/// Applies a batch and completes every message in it.
pub(crate) fn apply_batch(engine: &Engine, batch: Batch) {
    let mut groups: Vec<InodeOps> = Vec::new();
    let mut syncs: Vec<Done<()>> = Vec::new();
    for m in batch.msgs {
        let (ino, op) = match m {
            Msg::Write {
                ino,
                seq,
                offset,
                data,
                done,
            } => (
                ino,
                Op::Write {
                    seq,
                    offset,
                    data,
                    done,
                },
            ),
            Msg::SetSize {
                ino,
                seq,
                size,
                edit,
                done,
            } => (
                ino,
                Op::SetSize {
                    seq,
                    size,
                    edit,
                    done,
                },
            ),
            Msg::Sync { done } => {
                syncs.push(done);
                continue;
            }
            Msg::Stop => continue,
        };
        match groups.iter_mut().find(|g| g.ino == ino) {
            Some(g) => g.ops.push(op),
            None => groups.push(InodeOps { ino, ops: vec![op] }),
        }
    }
    let mut memo = Memo::new();
    let results = commit_groups(engine, &groups, &mut memo);
    let seqs: Vec<(Ino, u64)> = groups
        .iter()
        .flat_map(|g| g.ops.iter().map(move |op| (g.ino, op.seq())))
        .collect();
    engine.pending.committed(&seqs);
    engine.stats.add_batch(batch.blocks as u64, batch.bytes);
    for (g, res) in groups.into_iter().zip(results) {
        complete(g, res);
    }
    if !syncs.is_empty() {
        let res = engine.sync_durable();
        if let Err(e) = &res {
            tracing::error!(error = %e, "fsync: making data durable failed");
        }
        for done in syncs {
            done(res.clone());
        }
    }
}

/// Commits every group in one transaction, or — if that fails — each group alone.
fn commit_groups(engine: &Engine, groups: &[InodeOps], memo: &mut Memo) -> Vec<FsResult<Inode>> {
    if groups.is_empty() {
        return Vec::new();
    }
    let all = engine.meta.write(|txn| {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups.iter() {
            out.push(apply_group(engine, txn, g, memo)?);
        }
        Ok::<_, FsError>(out)
    });
    match all {
        Ok(v) => v.into_iter().map(Ok).collect(),
        Err(e) if groups.len() == 1 => vec![Err(e)],
        Err(_) => groups
            .iter()
            .map(|g| engine.meta.write(|txn| apply_group(engine, txn, g, memo)))
            .collect(),
    }
}

/// Completes the ops of a group with the group's outcome.
fn complete(g: InodeOps, res: FsResult<Inode>) {
    if let Err(e) = &res {
        if e.is_fault() {
            tracing::error!(ino = g.ino.0, error = %e, "write batch failed");
        }
    }
    for op in g.ops {
        match (op, &res) {
            (Op::Write { data, done, .. }, Ok(_)) => done(Ok(data.len() as u32)),
            (Op::Write { done, .. }, Err(e)) => done(Err(e.clone())),
            (Op::SetSize { done, .. }, Ok(inode)) => done(Ok(inode.clone())),
            (Op::SetSize { done, .. }, Err(e)) => done(Err(e.clone())),
        }
    }
}

/// Applies one inode's ops inside `txn` and returns the inode as written.
fn apply_group(
    engine: &Engine,
    txn: &mut WriteTxn,
    g: &InodeOps,
    memo: &mut Memo,
) -> FsResult<Inode> {
    let mut inode = txn.inode(g.ino)?.ok_or(FsError::NotFound)?;
    match inode.kind {
        FileKind::File => {}
        FileKind::Dir => return Err(FsError::IsDir),
        _ => return Err(FsError::Inval),
    }
    let mut i = 0;
    while i < g.ops.len() {
        let run_end = g.ops[i..]
            .iter()
            .position(|op| !matches!(op, Op::Write { .. }))
            .map_or(g.ops.len(), |p| i + p);
        if run_end > i {
            let writes: Vec<(u64, &[u8])> = g.ops[i..run_end]
                .iter()
                .filter_map(|op| match op {
                    Op::Write { offset, data, .. } => Some((*offset, &data[..])),
                    Op::SetSize { .. } => None,
                })
                .collect();
            write_run(engine, txn, &mut inode, &writes, memo)?;
            i = run_end;
            continue;
        }
        if let Op::SetSize { size, edit, .. } = &g.ops[i] {
            set_size(engine, txn, &mut inode, *size, memo)?;
            edit(&mut inode);
        }
        i += 1;
    }
    inode.data_version += 1;
    txn.put_inode(&inode)?;
    Ok(inode)
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

/// Applies a run of writes (in arrival order) to the file.
fn write_run(
    engine: &Engine,
    txn: &mut WriteTxn,
    inode: &mut Inode,
    writes: &[(u64, &[u8])],
    memo: &mut Memo,
) -> FsResult<()> {
    let mut ranges = Vec::with_capacity(writes.len());
    for (off, data) in writes {
        let end = off
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::TooBig)?;
        ranges.push((*off, end));
    }
    let new_size = ranges.iter().fold(inode.size, |s, r| s.max(r.1));
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (s, e) in merge_ranges(ranges) {
        for span in engine.chunker.chunks_covering(s, e, new_size) {
            if spans.last().is_none_or(|l| l.0 < span.0) {
                spans.push(span);
            }
        }
    }
    let mut built: ChunkSpans = Vec::with_capacity(spans.len());
    for (cs, ce) in spans {
        let mut buf = vec![0u8; (ce - cs) as usize];
        let old_end = ce.min(inode.size);
        if cs < old_end && !fully_covered(writes, cs, ce) {
            engine.read_committed(
                txn,
                inode.ino,
                cs,
                &mut buf[..(old_end - cs) as usize],
                inode.size,
            )?;
        }
        for (off, data) in writes {
            overlay(&mut buf, cs, *off, data);
        }
        built.push((cs, buf));
    }
    chunks::put_spans(engine, txn, inode.ino, built, memo)?;
    inode.size = new_size;
    touch_data(inode);
    Ok(())
}

/// Whether the writes together cover all of `[s, e)` (so the old bytes need no read).
fn fully_covered(writes: &[(u64, &[u8])], s: u64, e: u64) -> bool {
    let ranges: Vec<(u64, u64)> = writes
        .iter()
        .map(|(o, d)| (*o, o + d.len() as u64))
        .filter(|(o, end)| *end > s && *o < e)
        .collect();
    let merged = merge_ranges(ranges);
    merged.iter().any(|(a, b)| *a <= s && *b >= e)
}

/// Copies the part of a write at `off` that falls in the chunk buffer starting at `cs`.
fn overlay(buf: &mut [u8], cs: u64, off: u64, data: &[u8]) {
    let ce = cs + buf.len() as u64;
    let s = cs.max(off);
    let e = ce.min(off + data.len() as u64);
    if s < e {
        buf[(s - cs) as usize..(e - cs) as usize]
            .copy_from_slice(&data[(s - off) as usize..(e - off) as usize]);
    }
}

/// Sets the file size: drops extents past it and cuts the one that straddles it.
fn set_size(
    engine: &Engine,
    txn: &mut WriteTxn,
    inode: &mut Inode,
    size: u64,
    memo: &mut Memo,
) -> FsResult<()> {
    if size > MAX_FILE_SIZE {
        return Err(FsError::TooBig);
    }
    if size < inode.size {
        let max = engine.chunker.max_chunk_len();
        for e in txn.extents_overlapping(inode.ino, size, u64::MAX, max)? {
            if e.offset >= size {
                if let Some(old) = txn.delete_extent(inode.ino, e.offset)? {
                    chunks::drop_ref(txn, &old.hash)?;
                }
            } else {
                let data = engine.read_chunk(txn, &e)?;
                let cut = data[..(size - e.offset) as usize].to_vec();
                chunks::put_spans(engine, txn, inode.ino, vec![(e.offset, cut)], memo)?;
            }
        }
    }
    inode.size = size;
    touch_data(inode);
    Ok(())
}

/// Marks a data change: mtime and ctime become now.
fn touch_data(inode: &mut Inode) {
    let now = Timestamp::now();
    inode.mtime = now;
    inode.ctime = now;
}

/// Removes every extent of a file (last link gone), dropping chunk references.
///
/// Fails if metadata cannot be read or written.
pub(crate) fn drop_all_extents(txn: &mut WriteTxn, ino: Ino) -> FsResult<()> {
    for e in txn.all_extents(ino)? {
        if let Some(old) = txn.delete_extent(ino, e.offset)? {
            chunks::drop_ref(txn, &old.hash)?;
        }
    }
    Ok(())
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
    fn coverage_and_overlay() {
        let a = [1u8; 10];
        let b = [2u8; 10];
        let w: Vec<(u64, &[u8])> = vec![(0, &a), (10, &b)];
        assert!(fully_covered(&w, 0, 20));
        assert!(!fully_covered(&w, 0, 21));
        let mut buf = vec![0u8; 8];
        overlay(&mut buf, 6, 0, &a);
        assert_eq!(buf, [1, 1, 1, 1, 0, 0, 0, 0]);
        overlay(&mut buf, 6, 10, &b);
        assert_eq!(buf, [1, 1, 1, 1, 2, 2, 2, 2]);
    }
}
