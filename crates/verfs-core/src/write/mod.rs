//! The write batcher: group commit of file data changes.
//!
//! A FUSE `write` (or a size change, or an `fsync`) becomes a message with a completion
//! callback; the FUSE thread returns at once. Writes are answered when queued (see
//! `flow`: bounded bytes in flight, commit errors reported by the next write, fsync or
//! close); the other messages are answered when committed. One batcher thread moves
//! whatever is queued into its backlog and takes the next batch from it — up to
//! `batch_max_blocks` or `batch_max_memory_mb`, in arrival order except that fsync'd
//! files go first (see `backlog`) — applies it in one metadata transaction and then
//! calls the completions. Because a batch is whatever is queued, no operation ever
//! waits for a timer: under load, what arrived while one batch was being applied is the
//! next batch. `batch_max_delay_ms` bounds how long a held tail stays in memory.

mod apply;
mod backlog;
mod chunks;
mod clone;
mod commit;
mod flow;
mod intent;
mod memo;
mod park;
mod region;
mod tails;

pub(crate) use apply::drop_all_extents;
use apply::Tails;
pub(crate) use chunks::drop_ref;
pub(crate) use region::merge_ranges;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{Engine, PendingOp};
use crate::error::{FsError, FsResult};
use crate::meta::Inode;
use crate::types::Ino;

/// A completion: called exactly once with the outcome, from the batcher thread.
pub type Done<T> = Box<dyn FnOnce(FsResult<T>) + Send + 'static>;

/// Attribute changes applied together with a size change in the same transaction; it
/// may run more than once when the transaction is retried.
pub type AttrEdit = Box<dyn Fn(&mut Inode) + Send + 'static>;

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most write blocks per batch.
    pub max_blocks: usize,
    /// Most write bytes per batch.
    pub max_bytes: u64,
    /// Longest a held tail stays in memory without new writes to its file.
    pub max_delay: Duration,
}

pub(crate) enum Msg {
    Write {
        ino: Ino,
        seq: u64,
        offset: u64,
        data: Arc<[u8]>,
        done: Done<u32>,
    },
    SetSize {
        ino: Ino,
        seq: u64,
        size: u64,
        edit: AttrEdit,
        done: Done<Inode>,
    },
    Zero {
        ino: Ino,
        seq: u64,
        offset: u64,
        len: u64,
        extend: bool,
        done: Done<Inode>,
    },
    Sync {
        ino: Ino,
        done: Done<()>,
    },
    Barrier {
        done: Done<()>,
    },
    Clone {
        req: clone::CloneReq,
        done: Done<u32>,
    },
    Freeze {
        run: Freeze,
    },
    Stop,
}

/// Work run on the batcher thread once everything queued before it is committed, held
/// tails included, and before anything queued after it (a snapshot's create).
pub type Freeze = Box<dyn FnOnce() + Send>;

/// The handle FUSE threads use to queue data changes.
pub struct Batcher {
    engine: Arc<Engine>,
    flow: Arc<flow::Flow>,
    tx: Sender<Msg>,
    stopped: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Batcher {
    /// Starts the batcher thread.
    ///
    /// Fails if the thread cannot be spawned.
    pub fn start(engine: Arc<Engine>, limits: BatchLimits) -> std::io::Result<Batcher> {
        let (tx, rx) = mpsc::channel();
        let e = engine.clone();
        let thread = std::thread::Builder::new()
            .name("verfs-batcher".into())
            .spawn(move || run(&e, &rx, limits))?;
        Ok(Batcher {
            engine,
            // One batch being applied while the next one fills.
            flow: Arc::new(flow::Flow::new(2 * limits.max_bytes.max(1 << 20))),
            tx,
            stopped: AtomicBool::new(false),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Bytes accepted by `write` and not yet committed (the write-back share's use).
    pub fn in_flight_bytes(&self) -> u64 {
        self.flow.in_flight()
    }

    /// Queues a write of `data` at `offset` and answers `done` with the byte count at
    /// once: readers see it through the overlay, and a commit failure is reported by the
    /// file's next write, fsync or flush ([`Batcher::take_error`]). Blocks while too
    /// many bytes wait for a commit.
    pub fn write(&self, ino: Ino, offset: u64, data: &[u8], done: Done<u32>) {
        if self.stopped.load(Ordering::Acquire) {
            return done(Err(FsError::ShuttingDown));
        }
        if let Some(e) = self.flow.take_error(ino) {
            return done(Err(e));
        }
        let len = data.len() as u64;
        self.flow
            .admit(ino, len, || self.stopped.load(Ordering::Acquire));
        let flow = self.flow.clone();
        let settle: Done<u32> = Box::new(move |res| {
            flow.release(ino, len);
            if let Err(e) = res {
                flow.record_error(ino, e);
            }
        });
        let data: Arc<[u8]> = Arc::from(data);
        let op = PendingOp::Write {
            offset,
            data: data.clone(),
        };
        let sent = self.engine.pending.record(ino, op, |seq| {
            let msg = Msg::Write {
                ino,
                seq,
                offset,
                data,
                done: settle,
            };
            self.tx.send(msg).map_err(|mpsc::SendError(msg)| msg)
        });
        match sent {
            Ok(()) => done(Ok(len as u32)),
            Err(msg) => {
                fail(msg, FsError::ShuttingDown);
                done(Err(FsError::ShuttingDown));
            }
        }
    }

    /// Where a failure of a change to a file goes so that the file's next write,
    /// fsync or flush reports it (startup replay's size changes use it).
    pub(crate) fn error_sink(&self) -> impl Fn(Ino, FsError) + Send + 'static {
        let flow = self.flow.clone();
        move |ino, e| flow.record_error(ino, e)
    }

    /// The commit failure of `ino`'s earlier writes not yet reported, if any; reporting
    /// it clears it.
    pub fn take_error(&self, ino: Ino) -> Option<FsError> {
        self.flow.take_error(ino)
    }

    /// Queues a size change (truncate or extend) plus attribute edits made in the same
    /// transaction; `done` gets the resulting inode.
    pub fn set_size(&self, ino: Ino, size: u64, edit: AttrEdit, done: Done<Inode>) {
        if self.stopped.load(Ordering::Acquire) {
            return done(Err(FsError::ShuttingDown));
        }
        self.engine
            .pending
            .record(ino, PendingOp::Truncate { size }, |seq| {
                let msg = Msg::SetSize {
                    ino,
                    seq,
                    size,
                    edit,
                    done,
                };
                if let Err(mpsc::SendError(msg)) = self.tx.send(msg) {
                    fail(msg, FsError::ShuttingDown);
                }
            });
    }

    /// Queues setting `[offset, offset + len)` to zeros (punching a hole: whole chunks
    /// inside are dropped, chunks at the edges are rewritten); `extend` also grows the
    /// file to the end of the range.
    pub fn zero(&self, ino: Ino, offset: u64, len: u64, extend: bool, done: Done<Inode>) {
        if self.stopped.load(Ordering::Acquire) {
            return done(Err(FsError::ShuttingDown));
        }
        let op = PendingOp::Zero {
            offset,
            len,
            extend,
        };
        self.engine.pending.record(ino, op, |seq| {
            let msg = Msg::Zero {
                ino,
                seq,
                offset,
                len,
                extend,
                done,
            };
            if let Err(mpsc::SendError(msg)) = self.tx.send(msg) {
                fail(msg, FsError::ShuttingDown);
            }
        });
    }

    /// Queues a copy of `len` bytes from `ino_in` at `off_in` to `ino_out` at `off_out`
    /// that shares whole chunks instead of copying them; `done` gets the bytes copied.
    #[allow(clippy::too_many_arguments)]
    pub fn clone_range(
        &self,
        ino_in: Ino,
        off_in: u64,
        ino_out: Ino,
        off_out: u64,
        len: u64,
        done: Done<u32>,
    ) {
        if self.stopped.load(Ordering::Acquire) {
            return done(Err(FsError::ShuttingDown));
        }
        let req = clone::CloneReq {
            ino_in,
            off_in,
            ino_out,
            off_out,
            len,
        };
        if let Err(mpsc::SendError(msg)) = self.tx.send(Msg::Clone { req, done }) {
            fail(msg, FsError::ShuttingDown);
        }
    }

    /// Queues an ordering barrier: `done` runs once everything queued before it is
    /// committed (not synced). Used by changes that must land after earlier writes, such
    /// as setting times explicitly: a write committing later would reset mtime.
    pub fn barrier(&self, done: Done<()>) {
        if self.stopped.load(Ordering::Acquire) {
            return done(Err(FsError::ShuttingDown));
        }
        if let Err(mpsc::SendError(msg)) = self.tx.send(Msg::Barrier { done }) {
            fail(msg, FsError::ShuttingDown);
        }
    }

    /// Queues `run` behind every change queued so far: it runs on the batcher thread
    /// once they and every held tail are committed, and no change queued after it
    /// commits first. What every reader saw when this was called is then in metadata,
    /// which is what a snapshot must freeze.
    ///
    /// Fails (without running `run`) with `ShuttingDown` once the batcher stopped.
    pub fn freeze(&self, run: Freeze) -> FsResult<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(FsError::ShuttingDown);
        }
        self.tx
            .send(Msg::Freeze { run })
            .map_err(|_| FsError::ShuttingDown)
    }

    /// Queues a durability barrier for `ino` (fsync): `done` runs once `ino`'s changes
    /// queued before it are committed, and then everything committed is synced to disk.
    /// It may be taken ahead of other files' queued changes (see `backlog`); barriers
    /// in one batch share one sync.
    pub fn sync(&self, ino: Ino, done: Done<()>) {
        if self.stopped.load(Ordering::Acquire) {
            // Nothing can be queued any more; what was queued is drained by `stop`.
            return done(self.engine.sync_durable());
        }
        if let Err(mpsc::SendError(msg)) = self.tx.send(Msg::Sync { ino, done }) {
            fail(msg, FsError::ShuttingDown);
        }
    }

    /// Applies everything queued, then stops the thread. Later calls fail with
    /// `ShuttingDown`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("write batcher thread panicked");
            }
        }
    }
}

/// Completes a message that will never be applied.
fn fail(msg: Msg, e: FsError) {
    match msg {
        Msg::Write { done, .. } => done(Err(e)),
        Msg::SetSize { done, .. } | Msg::Zero { done, .. } => done(Err(e)),
        Msg::Sync { done, .. } | Msg::Barrier { done } => done(Err(e)),
        Msg::Clone { done, .. } => done(Err(e)),
        // Dropped unrun: its caller sees its reply channel close.
        Msg::Freeze { .. } | Msg::Stop => {}
    }
}

/// One batch being collected.
#[derive(Default)]
pub(crate) struct Batch {
    pub msgs: Vec<Msg>,
    pub blocks: usize,
    pub bytes: u64,
    pub stop: bool,
    /// A clone closes the batch: it runs after the batch (and every held tail) committed.
    pub clone: Option<(clone::CloneReq, Done<u32>)>,
    /// A freeze closes the batch too: it runs after the batch and every held tail.
    pub freeze: Option<Freeze>,
}

impl Batch {
    fn push(&mut self, m: Msg) {
        match &m {
            Msg::Write { data, .. } => {
                self.blocks += 1;
                self.bytes += data.len() as u64;
            }
            Msg::SetSize { .. } | Msg::Zero { .. } => self.blocks += 1,
            Msg::Sync { .. } | Msg::Barrier { .. } => {}
            Msg::Stop => {
                self.stop = true;
                return;
            }
            Msg::Clone { .. } | Msg::Freeze { .. } => {}
        }
        match m {
            Msg::Clone { req, done } => self.clone = Some((req, done)),
            Msg::Freeze { run } => self.freeze = Some(run),
            m => self.msgs.push(m),
        }
    }

    fn closed(&self) -> bool {
        self.stop || self.clone.is_some() || self.freeze.is_some()
    }

    fn full(&self, l: &BatchLimits) -> bool {
        self.blocks >= l.max_blocks || self.bytes >= l.max_bytes || self.closed()
    }
}

fn run(engine: &Engine, rx: &Receiver<Msg>, limits: BatchLimits) {
    let mut tails = Tails::default();
    let mut backlog = backlog::Backlog::default();
    let mut logged = intent::IntentState::default();
    loop {
        if logged.checkpoint_due() {
            let _ = intent::checkpoint(engine, &mut tails, &mut logged);
            engine.stats.set_held_tail_bytes(tails.bytes());
        }
        if backlog.is_empty() {
            // With held tails, wake after the delay to store them: a file being written
            // slowly still reaches the packs within `batch_max_delay_ms`.
            // A log with records wakes it too, for its timed checkpoint.
            let first = if tails.is_empty() && !logged.has_records() {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(limits.max_delay) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        apply::apply_batch(engine, Batch::default(), &mut tails, true, &mut logged);
                        // The gauge `stats` reports: tails stored by the timer too.
                        engine.stats.set_held_tail_bytes(tails.bytes());
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            };
            let Some(first) = first else {
                let _ = intent::checkpoint(engine, &mut tails, &mut logged);
                return;
            };
            backlog.push(first);
        }
        // Everything queued so far, so that an fsync queued behind a bulk writer is seen
        // (the flow bound keeps this to a few batches' worth of data).
        while let Ok(m) = rx.try_recv() {
            backlog.push(m);
        }
        let batch = backlog.next_batch(&limits);
        let stop = batch.stop;
        let due =
            tails.due(limits.max_bytes, limits.max_delay) || logged.parked_due(limits.max_delay);
        apply::apply_batch(engine, batch, &mut tails, due, &mut logged);
        engine.stats.set_held_tail_bytes(tails.bytes());
        if stop {
            // Everything is stored: the log's records are no longer needed.
            let _ = intent::checkpoint(engine, &mut tails, &mut logged);
            // Anything that raced in after Stop is answered, never dropped silently.
            for m in backlog.drain() {
                fail(m, FsError::ShuttingDown);
            }
            while let Ok(m) = rx.try_recv() {
                fail(m, FsError::ShuttingDown);
            }
            return;
        }
    }
}
