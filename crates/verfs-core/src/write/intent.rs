//! The batcher's side of the intent log (`data/intent`): which files have their data
//! changes logged, when an fsync may be answered by flushing the log alone, and when
//! the log is emptied.
//!
//! A file becomes *logged* at an fsync answered the normal way (its held tail stored,
//! packs and metadata synced) that carried little data: from then on, every change the
//! batcher commits to it is also appended to the log, and its next fsync — if its
//! metadata record has not changed outside the batcher since the last sync — stores
//! nothing and syncs nothing but the log: one sequential write, one flush. Its held tail
//! stays in memory and reaches the packs with the next batch, timer or checkpoint.
//!
//! A file stays logged until the next *checkpoint*: every held tail stored, packs and
//! metadata synced, the log emptied. Only then may its records go, since replaying a
//! file's records is correct only if none of its changes since the log began is
//! missing (see `data/intent`). A checkpoint runs when the log passes
//! [`MAX_LOG_BYTES`], [`CHECKPOINT_AFTER`] after the last one, when a logged file wrote
//! [`BULK_BYTES`] without an fsync (a bulk writer: logging it doubles its writes), before
//! a copy into a logged file (which the log does not carry), and at shutdown.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::apply::{self, Applied, InodeOps, Op, Tails};
use super::park::ParkLot;
use super::Batch;
use crate::data::intent::{encode_record, OpRef};
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Reader, INODE_FLAG_VAULT};
use crate::types::Ino;

/// Log size that triggers a checkpoint: bounds replay time and the log's disk use.
pub(crate) const MAX_LOG_BYTES: u64 = 4 << 20;
/// Time after the last checkpoint that triggers one when the log holds records.
pub(crate) const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);
/// Bytes a logged file may write without an fsync before a checkpoint ends its logging.
pub(crate) const BULK_BYTES: u64 = 8 << 20;
/// Most bytes a file may write in the batch of a normal fsync and still become logged:
/// a file that writes much between fsyncs gains nothing from the log.
pub(crate) const ENTRY_BYTES: u64 = 1 << 20;

/// Which files are logged, and the checkpoint policy's counters.
pub(crate) struct IntentState {
    /// Files every data change of which since the log began is in the log.
    logged: HashSet<Ino>,
    /// Bytes logged per logged file since its last fsync.
    since_sync: HashMap<Ino, u64>,
    last_checkpoint: Instant,
    /// Bytes this batcher appended since the last checkpoint (records a crash left
    /// are replayed and checkpointed by startup, not here).
    appended: u64,
    /// A checkpoint is due whatever the counters say (an append failed, a bulk writer).
    wanted: bool,
    /// Logged files' writes not applied yet (`park.rs`).
    parked: ParkLot,
    /// Records encoded for parked writes, appended with the batch's others.
    encoded: Vec<u8>,
}

impl Default for IntentState {
    fn default() -> Self {
        IntentState {
            logged: HashSet::new(),
            since_sync: HashMap::new(),
            last_checkpoint: Instant::now(),
            appended: 0,
            wanted: false,
            parked: ParkLot::default(),
            encoded: Vec::new(),
        }
    }
}

impl IntentState {
    /// Whether `ino`'s data changes go to the log.
    pub fn is_logged(&self, ino: Ino) -> bool {
        self.logged.contains(&ino)
    }

    /// Whether the fsyncs of `synced` may all be answered by flushing the log alone:
    /// every file is logged and its metadata record unchanged since the last sync.
    pub fn fast_path(&self, engine: &Engine, synced: &[Ino]) -> bool {
        !self.wanted
            && !engine.sync_has_failed()
            && synced
                .iter()
                .all(|ino| self.is_logged(*ino) && engine.meta.inode_synced(*ino))
    }

    /// Puts parked writes back into the batch where they must be applied now (see
    /// `ParkLot::unpark`).
    pub fn unpark(&mut self, groups: &mut Vec<InodeOps>, all: bool, forced: &[Ino]) {
        self.parked.unpark(groups, all, forced);
    }

    /// Parks the writes of logged files that need not be applied now (not fsync'd the
    /// full way, not storing their tail) and encodes their records.
    pub fn park(&mut self, engine: &Engine, groups: &mut Vec<InodeOps>, forced: &[Ino]) {
        let generation = engine.intent.generation();
        let logged = &self.logged;
        let encoded = &mut self.encoded;
        let since_sync = &mut self.since_sync;
        let wanted = &mut self.wanted;
        let parkable =
            |g: &InodeOps| logged.contains(&g.ino) && !g.flush && !forced.contains(&g.ino);
        self.parked.park(groups, parkable, |g| {
            let start = encoded.len();
            encode_ops(encoded, generation, g);
            *wanted |= count_logged(since_sync, g.ino, (encoded.len() - start) as u64);
        });
    }

    /// Whether parked writes must all be applied now.
    pub fn parked_due(&self, max_delay: Duration) -> bool {
        self.parked.due(max_delay)
    }

    /// Appends the changes of every committed group of a logged file and of the writes
    /// parked in this batch (not flushed).
    ///
    /// Fails if the append fails; a checkpoint is then due, since the log misses them.
    pub fn log_groups(
        &mut self,
        engine: &Engine,
        groups: &[InodeOps],
        results: &[FsResult<Applied>],
    ) -> FsResult<()> {
        let generation = engine.intent.generation();
        let mut out = std::mem::take(&mut self.encoded);
        for (g, res) in groups.iter().zip(results) {
            if res.is_err() || !self.is_logged(g.ino) {
                continue;
            }
            let start = out.len();
            encode_ops(&mut out, generation, g);
            self.wanted |= count_logged(&mut self.since_sync, g.ino, (out.len() - start) as u64);
        }
        engine.intent.append(&out).map_err(|e| {
            tracing::error!(error = %e, "intent log append failed; checkpointing");
            self.wanted = true;
            FsError::from(e)
        })?;
        self.appended += out.len() as u64;
        Ok(())
    }

    /// Whether this batcher appended records since the last checkpoint.
    pub fn has_records(&self) -> bool {
        self.appended > 0
    }

    /// After fsyncs answered through the log.
    pub fn fast_synced(&mut self, synced: &[Ino]) {
        for ino in synced {
            self.since_sync.insert(*ino, 0);
        }
    }

    /// After fsyncs answered the normal way: the files that wrote little in the batch
    /// (`batch_bytes`) become logged, unless they are in the vault (whose plaintext must
    /// never reach the disk unsealed).
    pub fn slow_synced(&mut self, engine: &Engine, synced: &[(Ino, u64, Option<u32>)]) {
        if engine.sync_has_failed() {
            return;
        }
        for (ino, batch_bytes, flags) in synced {
            if *batch_bytes > ENTRY_BYTES || self.is_logged(*ino) {
                continue;
            }
            let flags = match flags {
                Some(f) => Some(*f),
                None => engine
                    .meta
                    .view()
                    .ok()
                    .and_then(|v| v.inode(*ino).ok().flatten())
                    .map(|i| i.flags),
            };
            if flags.is_some_and(|f| f & INODE_FLAG_VAULT == 0) {
                self.logged.insert(*ino);
                self.since_sync.insert(*ino, 0);
            }
        }
    }

    /// Whether a checkpoint is due (see the module docs).
    pub fn checkpoint_due(&self) -> bool {
        self.wanted
            || self.appended > MAX_LOG_BYTES
            || (self.has_records() && self.last_checkpoint.elapsed() >= CHECKPOINT_AFTER)
    }

    /// Whether a checkpoint must come before a copy into `ino_out`.
    pub fn must_checkpoint_before_clone(&self, ino_out: Ino) -> bool {
        self.is_logged(ino_out)
    }

    /// Empties the log once everything is stored the normal way: the caller stored
    /// every held tail (`all_stored`); this syncs packs and metadata and resets the log.
    ///
    /// Fails if a tail could not be stored or a sync or the reset fails; the log then
    /// keeps its records and its files stay logged.
    pub fn finish_checkpoint(&mut self, engine: &Engine, all_stored: bool) -> FsResult<()> {
        if !all_stored {
            return Err(FsError::Io(
                "checkpoint: a held tail could not be stored".into(),
            ));
        }
        engine.sync_durable()?;
        engine.intent.reset()?;
        engine.stats.intent_checkpoint();
        self.logged.clear();
        self.since_sync.clear();
        self.last_checkpoint = Instant::now();
        self.appended = 0;
        self.wanted = false;
        Ok(())
    }
}

/// Stores every held tail, syncs, and empties the log (see the module docs).
///
/// Fails as [`IntentState::finish_checkpoint`] does.
pub(crate) fn checkpoint(
    engine: &Engine,
    tails: &mut Tails,
    state: &mut IntentState,
) -> FsResult<()> {
    let all_stored = apply::apply_batch(engine, Batch::default(), tails, true, state);
    let res = state.finish_checkpoint(engine, all_stored);
    if let Err(e) = &res {
        tracing::error!(error = %e, "intent log checkpoint failed; retried later");
    }
    res
}

/// Adds `bytes` logged for `ino` since its last fsync; true once past [`BULK_BYTES`].
fn count_logged(since_sync: &mut HashMap<Ino, u64>, ino: Ino, bytes: u64) -> bool {
    let n = since_sync.entry(ino).or_default();
    *n += bytes;
    *n > BULK_BYTES
}

/// Appends the log records of one group's ops (those the log does not hold yet).
fn encode_ops(out: &mut Vec<u8>, generation: u64, g: &InodeOps) {
    let ino = g.ino;
    for op in &g.ops[g.prelogged.min(g.ops.len())..] {
        let op = match op {
            Op::Write { offset, data, .. } => OpRef::Write {
                ino,
                offset: *offset,
                data,
            },
            Op::SetSize { size, .. } => OpRef::SetSize { ino, size: *size },
            Op::Zero {
                offset,
                len,
                extend,
                ..
            } => OpRef::Zero {
                ino,
                offset: *offset,
                len: *len,
                extend: *extend,
            },
        };
        encode_record(out, generation, op);
    }
}
