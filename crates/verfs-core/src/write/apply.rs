//! Applying one batch: per inode, in arrival order, in one metadata transaction.
//!
//! Runs of writes are re-chunked by [`Run`] (`region.rs`); size changes cut or drop
//! extents. Each file's final chunk may be held back in memory ([`Held`]) until the next
//! write or size change of the file, or a flush of all held tails (fsync, idle timer,
//! memory cap, shutdown) — so many small files written one after another are stored in
//! one batch. If the batch
//! transaction fails, each inode is retried in its own transaction so one bad file cannot
//! fail the writes of another.

use std::sync::Arc;

use super::chunks::{self, Memo};
use super::region::{Held, Run, MAX_FILE_SIZE};
use super::{AttrEdit, Batch, Done, Msg};
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Inode, Reader, WriteTxn};
use crate::types::{FileKind, Ino, Timestamp};

use super::commit;
use super::intent::IntentState;
pub(crate) use super::tails::{HeldTail, Tails};

/// Batches writing at most this much (held tails they store included) compress on the
/// batcher thread (see `Memo::serial`).
const SERIAL_BATCH_BYTES: u64 = 256 << 10;

/// A data op of one inode, with its completion.
pub(super) enum Op {
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
    Zero {
        seq: u64,
        offset: u64,
        len: u64,
        extend: bool,
        done: Done<Inode>,
    },
}

impl Op {
    /// The op's overlay sequence number.
    pub(super) fn seq(&self) -> u64 {
        match self {
            Op::Write { seq, .. } | Op::SetSize { seq, .. } | Op::Zero { seq, .. } => *seq,
        }
    }
}

/// The ops of one inode in a batch, and whether its held tail must be stored.
pub(super) struct InodeOps {
    pub ino: Ino,
    pub ops: Vec<Op>,
    pub flush: bool,
    /// How many leading ops the intent log already holds (parked writes, `park.rs`).
    pub prelogged: usize,
}

impl InodeOps {
    /// Whether every op is a write (only writes may be parked).
    pub fn only_writes(&self) -> bool {
        self.ops.iter().all(|op| matches!(op, Op::Write { .. }))
    }

    /// Bytes the group writes.
    pub fn write_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Write { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Whether committing the group leaves its inode's metadata record as the intent
    /// log would rebuild it: a size change may carry attribute edits (mode, owner)
    /// the log does not record.
    pub fn logged_whole(&self) -> bool {
        !self.ops.iter().any(|op| matches!(op, Op::SetSize { .. }))
    }
}

/// What applying a group produced.
pub(super) struct Applied {
    pub inode: Inode,
    pub held: Option<Held>,
}

/// The group of `ino`, created empty if the batch has none yet.
pub(super) fn group(groups: &mut Vec<InodeOps>, ino: Ino) -> &mut InodeOps {
    match groups.iter().position(|g| g.ino == ino) {
        Some(i) => &mut groups[i],
        None => {
            groups.push(InodeOps {
                ino,
                ops: Vec::new(),
                flush: false,
                prelogged: 0,
            });
            let last = groups.len() - 1;
            &mut groups[last]
        }
    }
}

/// A batch's messages sorted out: data ops per inode, and the barriers answered after
/// they commit.
#[derive(Default)]
struct Sorted {
    groups: Vec<InodeOps>,
    /// fsyncs: the file and the completion.
    syncs: Vec<(Ino, Done<()>)>,
    barriers: Vec<Done<()>>,
}

fn sort_messages(msgs: Vec<Msg>) -> Sorted {
    let mut s = Sorted::default();
    for m in msgs {
        match m {
            Msg::Write {
                ino,
                seq,
                offset,
                data,
                done,
            } => group(&mut s.groups, ino).ops.push(Op::Write {
                seq,
                offset,
                data,
                done,
            }),
            Msg::SetSize {
                ino,
                seq,
                size,
                edit,
                done,
            } => group(&mut s.groups, ino).ops.push(Op::SetSize {
                seq,
                size,
                edit,
                done,
            }),
            Msg::Zero {
                ino,
                seq,
                offset,
                len,
                extend,
                done,
            } => group(&mut s.groups, ino).ops.push(Op::Zero {
                seq,
                offset,
                len,
                extend,
                done,
            }),
            Msg::Barrier { done } => s.barriers.push(done),
            Msg::Sync { ino, done } => s.syncs.push((ino, done)),
            Msg::Stop | Msg::Clone { .. } | Msg::Freeze { .. } => {}
        }
    }
    s
}

/// Applies a batch and completes every message in it. `flush_all` stores every held
/// tail (sync, stop, idle timer, memory cap). fsyncs of logged files are answered by
/// flushing the intent log when they can (see `intent.rs`), else by storing their held
/// tails and syncing packs and metadata.
///
/// Returns whether every group committed: a checkpoint needs every held tail stored.
pub(crate) fn apply_batch(
    engine: &Engine,
    batch: Batch,
    tails: &mut Tails,
    flush_all: bool,
    intent: &mut IntentState,
) -> bool {
    let flush_all = flush_all || batch.closed();
    let Sorted {
        mut groups,
        syncs,
        barriers,
    } = sort_messages(batch.msgs);
    let synced: Vec<Ino> = syncs.iter().map(|(ino, _)| *ino).collect();
    let fast = !flush_all && !synced.is_empty() && intent.fast_path(engine, &synced);
    let plan = Plan {
        flush_all,
        apply_parked: flush_all || !barriers.is_empty(),
        // Files fsync'd the full way: their parked writes are applied and their tails
        // stored with this batch.
        full: if fast { &[] } else { &synced },
    };
    plan.arrange(engine, &mut groups, tails, intent);
    let mut memo = batch_memo(&groups, tails, flush_all);
    let results = commit::commit_groups(engine, &groups, tails, &mut memo, intent);
    let logged = intent.log_groups(engine, &groups, &results);
    let all_ok = results
        .iter()
        .all(|r| matches!(r, Ok(_) | Err(FsError::NotFound)));
    let entries: Vec<SyncEntry> = synced
        .iter()
        .filter_map(|ino| sync_entry(*ino, &groups, &results))
        .collect();
    engine.stats.add_batch(batch.blocks as u64, batch.bytes);
    for (g, res) in groups.into_iter().zip(results) {
        complete(g, res.map(|a| a.inode));
    }
    if let Some((req, done)) = batch.clone {
        done(clone_after(engine, intent, &req, all_ok));
    }
    for done in barriers {
        done(Ok(()));
    }
    if let Some(run) = batch.freeze {
        run();
    }
    if !syncs.is_empty() {
        let how = if logged.is_err() {
            SyncHow::Checkpoint
        } else if fast {
            SyncHow::Log
        } else {
            SyncHow::Full(entries)
        };
        answer_syncs(engine, tails, intent, syncs, how);
    }
    all_ok
}

/// Which of a batch's groups are applied now and which tails are stored.
struct Plan<'a> {
    flush_all: bool,
    /// Every parked write is applied (a barrier, snapshot, copy, timer, shutdown).
    apply_parked: bool,
    /// Files fsync'd the full way.
    full: &'a [Ino],
}

impl Plan<'_> {
    /// Puts back the parked writes that must be applied, marks the tails to store and
    /// parks the logged files' writes that may wait.
    fn arrange(
        &self,
        engine: &Engine,
        groups: &mut Vec<InodeOps>,
        tails: &Tails,
        intent: &mut IntentState,
    ) {
        intent.unpark(groups, self.apply_parked, self.full);
        if self.flush_all {
            mark_flush(groups, tails, |_| true);
        } else if !self.full.is_empty() {
            // Only the fsync'd files' tails: storing another file's tail early costs a
            // chunk that its next append rewrites, at every fsync of a database.
            mark_flush(groups, tails, |ino| self.full.contains(&ino));
        }
        if !self.apply_parked {
            intent.park(engine, groups, self.full);
        }
    }
}

/// The chunk memo for a batch: serial when it stores little (see `Memo::serial`).
fn batch_memo(groups: &[InodeOps], tails: &Tails, flush_all: bool) -> Memo {
    let flushed = if flush_all { tails.bytes() } else { 0 };
    let written: u64 = groups.iter().map(InodeOps::write_bytes).sum();
    if written + flushed <= SERIAL_BATCH_BYTES {
        Memo::serial()
    } else {
        Memo::new()
    }
}

/// How a batch's fsyncs are made durable.
enum SyncHow {
    /// Flushing the intent log alone (every synced file logged, see `intent.rs`).
    Log,
    /// Syncing packs and metadata; the files that qualify become logged.
    Full(Vec<SyncEntry>),
    /// A checkpoint: the log missed this batch's records (an append failed).
    Checkpoint,
}

/// Makes the batch's fsyncs durable the way `how` says and answers them.
fn answer_syncs(
    engine: &Engine,
    tails: &mut Tails,
    intent: &mut IntentState,
    syncs: Vec<(Ino, Done<()>)>,
    how: SyncHow,
) {
    let synced: Vec<Ino> = syncs.iter().map(|(ino, _)| *ino).collect();
    let logged = matches!(how, SyncHow::Log);
    let res = match how {
        SyncHow::Checkpoint => super::intent::checkpoint(engine, tails, intent),
        SyncHow::Log => {
            let res = engine.intent.flush().map_err(FsError::from);
            if res.is_ok() {
                intent.fast_synced(&synced);
            }
            res
        }
        SyncHow::Full(entries) => {
            let res = engine.sync_durable();
            if res.is_ok() {
                intent.slow_synced(engine, &entries);
            }
            res
        }
    };
    if let Err(e) = &res {
        tracing::error!(error = %e, "fsync: making data durable failed");
    }
    engine.stats.fsync_batch(logged);
    for (_, done) in syncs {
        done(res.clone());
    }
    if logged {
        // Crash tests: the fsyncs above were answered from the log alone.
        crate::crash::point("intent-answered");
    }
}

/// An fsync'd file that may become logged: its number, the bytes it wrote in the
/// batch, and its flags if the batch read them.
pub(super) type SyncEntry = (Ino, u64, Option<u32>);

/// The [`SyncEntry`] of `ino`, unless its group failed (its held tail then stays
/// unstored, so it cannot become logged).
fn sync_entry(ino: Ino, groups: &[InodeOps], results: &[FsResult<Applied>]) -> Option<SyncEntry> {
    match groups.iter().position(|g| g.ino == ino) {
        None => Some((ino, 0, None)),
        Some(i) => match &results[i] {
            Ok(a) => Some((ino, groups[i].write_bytes(), Some(a.inode.flags))),
            Err(_) => None,
        },
    }
}

/// Runs a copy that closed the batch (every held tail stored with it). A copy into a
/// logged file comes after a checkpoint: the log does not carry it, and replaying the
/// file's older records over it would undo it.
fn clone_after(
    engine: &Engine,
    intent: &mut IntentState,
    req: &super::clone::CloneReq,
    all_stored: bool,
) -> FsResult<u32> {
    if intent.must_checkpoint_before_clone(req.ino_out) {
        intent.finish_checkpoint(engine, all_stored)?;
    }
    let mut memo = Memo::new();
    let (n, gate) = engine.meta.write_fenced(
        |txn| super::clone::clone_range(engine, txn, req, &mut memo),
        || engine.commit_gate(&[req.ino_in, req.ino_out]),
    )?;
    engine.pending.committed(&[], Vec::new());
    drop(gate);
    Ok(n as u32)
}

/// Marks for storing the held tail of every file `which` selects: those in the batch
/// too, not only those already holding a tail, since with write-back a file's writes
/// and its fsync can share a batch, and a tail held here would be left out of the sync
/// the caller is waiting for.
fn mark_flush(groups: &mut Vec<InodeOps>, tails: &Tails, which: impl Fn(Ino) -> bool) {
    for g in groups.iter_mut().filter(|g| which(g.ino)) {
        g.flush = true;
    }
    for ino in tails.inos() {
        if which(ino) {
            group(groups, ino).flush = true;
        }
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
            (Op::SetSize { done, .. } | Op::Zero { done, .. }, Ok(inode)) => {
                done(Ok(inode.clone()))
            }
            (Op::SetSize { done, .. } | Op::Zero { done, .. }, Err(e)) => done(Err(e.clone())),
        }
    }
}

/// Applies one inode's ops (after its held tail) inside `txn`.
pub(super) fn apply_group(
    engine: &Engine,
    txn: &mut WriteTxn,
    g: &InodeOps,
    tail: Option<&HeldTail>,
    memo: &mut Memo,
) -> FsResult<Applied> {
    let mut inode = txn.inode(g.ino)?.ok_or(FsError::NotFound)?;
    match inode.kind {
        FileKind::File => {}
        FileKind::Dir => return Err(FsError::IsDir),
        _ => return Err(FsError::Inval),
    }
    let mut run: Vec<(u64, &[u8])> = Vec::new();
    let mut tail_offset = None;
    if let Some(t) = tail {
        run.push((t.held.offset, &t.held.data[..]));
        tail_offset = Some(t.held.offset);
    }
    for op in &g.ops {
        if let Op::Write { offset, data, .. } = op {
            run.push((*offset, &data[..]));
            continue;
        }
        // A size change or zeroed range applies after the writes queued before it.
        apply_run(
            engine,
            txn,
            &mut inode,
            (&run, tail_offset.take()),
            false,
            memo,
        )?;
        run.clear();
        match op {
            Op::SetSize { size, edit, .. } => {
                set_size(engine, txn, &mut inode, *size, memo)?;
                edit(&mut inode);
            }
            Op::Zero {
                offset,
                len,
                extend,
                ..
            } => zero_range(engine, txn, &mut inode, *offset, *len, *extend, memo)?,
            Op::Write { .. } => {}
        }
    }
    let held = apply_run(engine, txn, &mut inode, (&run, tail_offset), !g.flush, memo)?;
    if g.ops.iter().any(|op| matches!(op, Op::Write { .. })) {
        touch_data(&mut inode);
    }
    inode.data_version += 1;
    txn.put_inode(&inode)?;
    Ok(Applied { inode, held })
}

fn apply_run(
    engine: &Engine,
    txn: &mut WriteTxn,
    inode: &mut Inode,
    (writes, tail_offset): (&[(u64, &[u8])], Option<u64>),
    may_hold: bool,
    memo: &mut Memo,
) -> FsResult<Option<Held>> {
    if writes.is_empty() {
        return Ok(None);
    }
    Run {
        engine,
        writes,
        may_hold,
        tail_offset,
        blocks_delta: Default::default(),
        domain: engine.domain_for(inode)?,
    }
    .apply(txn, inode, memo)
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
        let max = engine.max_extent_len();
        for e in txn.extents_overlapping(inode.ino, size, u64::MAX, max)? {
            if e.offset >= size {
                let gone = chunks::remove_extent(txn, inode.ino, e.offset)?;
                chunks::add_blocks(inode, -(gone as i64));
            } else {
                let cut = engine
                    .read_chunk(txn, &e)?
                    .slice(..(size - e.offset) as usize);
                let domain = engine.domain_for(inode)?;
                let delta = chunks::put_spans(
                    engine,
                    txn,
                    (inode.ino, &domain),
                    vec![(e.offset, cut)],
                    memo,
                )?;
                chunks::add_blocks(inode, delta);
            }
        }
    }
    inode.size = size;
    touch_data(inode);
    Ok(())
}

/// Sets `[offset, offset + len)` to zeros: extents wholly inside are dropped, the ones
/// across an edge are rewritten with their inside part zeroed (all-zero ones become
/// holes). Chunk boundaries stay where they were.
fn zero_range(
    engine: &Engine,
    txn: &mut WriteTxn,
    inode: &mut Inode,
    offset: u64,
    len: u64,
    extend: bool,
    memo: &mut Memo,
) -> FsResult<()> {
    let end = offset
        .checked_add(len)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or(FsError::TooBig)?;
    let max = engine.max_extent_len();
    for e in txn.extents_overlapping(inode.ino, offset, end, max)? {
        if e.offset >= offset && e.end() <= end {
            let gone = chunks::remove_extent(txn, inode.ino, e.offset)?;
            chunks::add_blocks(inode, -(gone as i64));
            continue;
        }
        let mut data = engine.read_chunk(txn, &e)?.to_vec();
        let s = (offset.max(e.offset) - e.offset) as usize;
        let t = (end.min(e.end()) - e.offset) as usize;
        data[s..t].fill(0);
        let domain = engine.domain_for(inode)?;
        let spans = vec![(e.offset, data.into())];
        let delta = chunks::put_spans(engine, txn, (inode.ino, &domain), spans, memo)?;
        chunks::add_blocks(inode, delta);
    }
    if extend && end > inode.size {
        inode.size = end;
    }
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
        chunks::remove_extent(txn, ino, e.offset)?;
    }
    Ok(())
}
