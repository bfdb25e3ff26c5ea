//! Replaying the intent log at startup: the data changes fsync'd through the log whose
//! normal storing a crash cut short (see `data/intent` and `write/intent.rs`).
//!
//! Runs after the batcher starts and before the mount serves anything. Each record goes
//! through the batcher like the original change did; then every held tail is stored,
//! packs and metadata are synced, and the log is emptied — before any new change, since
//! a later change the log does not carry would be undone by replaying it again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc;

use crate::data::intent::{IntentOp, INTENT_FILE};
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Reader, INODE_FLAG_VAULT};
use crate::types::{FileKind, Ino};
use crate::write::Batcher;

/// What a replay did, for the startup log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    /// Records applied.
    pub applied: usize,
    /// Records skipped: their file is gone, not a regular file, or in the vault.
    pub skipped: usize,
    /// Files whose replay failed (their records are kept in `intent.log.unreplayed`).
    pub failed: usize,
}

/// Applies `ops` (the records [`crate::data::intent::IntentLog::open`] returned), makes
/// the result durable and empties the log.
///
/// Fails if the result cannot be synced or the log not emptied; the log then keeps its
/// records for the next start. A file whose records fail to apply does not fail the
/// replay: the error is logged and the log is copied aside first.
pub(crate) fn replay(
    engine: &Engine,
    batcher: &Batcher,
    data_dir: &Path,
    ops: Vec<IntentOp>,
) -> FsResult<ReplayReport> {
    let mut report = ReplayReport::default();
    if ops.is_empty() {
        return Ok(report);
    }
    tracing::warn!(
        records = ops.len(),
        "intent log holds fsync'd changes a crash left unstored; replaying"
    );
    let eligible = eligible_files(engine, &ops)?;
    let mut touched = HashSet::new();
    for op in ops {
        let ino = op.ino();
        if !eligible.get(&ino).copied().unwrap_or(false) {
            report.skipped += 1;
            continue;
        }
        touched.insert(ino);
        queue(batcher, op);
        report.applied += 1;
    }
    wait_stored(batcher)?;
    let failed: Vec<(Ino, FsError)> = touched
        .into_iter()
        .filter_map(|ino| batcher.take_error(ino).map(|e| (ino, e)))
        .collect();
    report.failed = failed.len();
    if !failed.is_empty() {
        keep_copy(data_dir);
        for (ino, e) in &failed {
            tracing::error!(ino = ino.0, error = %e, "replaying the intent log for this file failed; its records are kept in intent.log.unreplayed");
        }
    }
    engine.sync_durable()?;
    engine.intent.mark_replayed();
    engine.intent.reset()?;
    tracing::info!(
        applied = report.applied,
        skipped = report.skipped,
        failed = report.failed,
        "intent log replayed"
    );
    Ok(report)
}

/// Per file named by a record: whether its records apply (an existing regular file
/// outside the vault; vault files are never logged, and a locked vault cannot be
/// written).
fn eligible_files(engine: &Engine, ops: &[IntentOp]) -> FsResult<HashMap<Ino, bool>> {
    let view = engine.meta.view()?;
    let mut out = HashMap::new();
    for op in ops {
        let ino = op.ino();
        if out.contains_key(&ino) {
            continue;
        }
        let ok = view
            .inode(ino)?
            .is_some_and(|i| i.kind == FileKind::File && i.flags & INODE_FLAG_VAULT == 0);
        out.insert(ino, ok);
    }
    Ok(out)
}

/// Queues one record's change with the batcher (errors are collected per file).
fn queue(batcher: &Batcher, op: IntentOp) {
    match op {
        IntentOp::Write { ino, offset, data } => {
            batcher.write(ino, offset, &data, Box::new(|_| {}));
        }
        IntentOp::SetSize { ino, size } => {
            batcher.set_size(ino, size, Box::new(|_| {}), note_error(batcher, ino));
        }
        IntentOp::Zero {
            ino,
            offset,
            len,
            extend,
        } => {
            batcher.zero(ino, offset, len, extend, note_error(batcher, ino));
        }
    }
}

/// A completion that reports a failed size change or zeroing like a failed write.
fn note_error<T: 'static>(batcher: &Batcher, ino: Ino) -> crate::write::Done<T> {
    let errors = batcher.error_sink();
    Box::new(move |res| {
        if let Err(e) = res {
            errors(ino, e);
        }
    })
}

/// Waits until everything queued is committed and every held tail stored.
fn wait_stored(batcher: &Batcher) -> FsResult<()> {
    let (tx, rx) = mpsc::channel();
    batcher.freeze(Box::new(move || {
        let _ = tx.send(());
    }))?;
    rx.recv().map_err(|_| FsError::ShuttingDown)
}

/// Copies the log aside before it is emptied, for a file whose replay failed.
fn keep_copy(data_dir: &Path) {
    let from = data_dir.join(INTENT_FILE);
    let to = data_dir.join(format!("{INTENT_FILE}.unreplayed"));
    if let Err(e) = std::fs::copy(&from, &to) {
        tracing::error!(error = %e, "could not keep a copy of the intent log");
    }
}
