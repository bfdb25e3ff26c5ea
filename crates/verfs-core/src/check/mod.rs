//! The offline checker behind `verfsnext fsck`: verifies, without writing anything, that
//! metadata and packs agree.
//!
//! 1. every stored extent version (live or frozen for a snapshot) names a `C` record;
//! 2. every `C` record names an existing pack holding a record of its chunk;
//! 3. every refcount equals the extent versions naming the chunk;
//! 4. `Z` marks exactly the chunks at refcount 0;
//! 5. dirents and inodes agree in the live view (kinds, link counts, parents, orphans);
//! 6. with `read_data`, every pack record passes its CRC, decodes, and hashes to its id.
//!
//! It runs only while no daemon holds the data dir: it takes the data-dir lock shared
//! (so no daemon can start meanwhile) and opens the store read-only. Each concern is one
//! file: `tree` (5, and paths for messages), `chunks` (1, 3, 4), `packs` (2), `verify`
//! (6), `report` (what is returned).

mod chunks;
mod packs;
mod repair;
mod repair_tree;
mod report;
mod tree;
mod verify;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use repair::{repair, Change, RepairReport};
pub use report::{Counts, Problem, ProblemKind, Report};

use crate::data::ChunkHasher;
use crate::meta::{MetaError, Reader, Store, View, SYS_HASH_SECRET};
use crate::service::{DataDirLock, LockError};

/// What to check beyond the metadata and pack indexes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Read every pack record back (CRC, decoding, keyed hash), like
    /// `restic check --read-data`.
    pub read_data: bool,
}

/// Where the checker reports how far it got, so a terminal can show progress; every
/// method has a no-op default.
pub trait Progress {
    /// A new phase begins; `total` is the amount of work in it, 0 when unknown.
    fn phase(&mut self, _name: &str, _total: u64) {}
    /// `done` units of the current phase are finished.
    fn advance(&mut self, _done: u64) {}
}

/// A [`Progress`] that shows nothing (not a terminal, or tests).
pub struct NoProgress;

impl Progress for NoProgress {}

/// Why the check could not run (as opposed to problems it found).
#[derive(Debug, Error)]
pub enum CheckError {
    /// A daemon holds the data dir, or its lock file cannot be used.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The path is not a data dir.
    #[error("{path}: {message}")]
    NotADataDir {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The metadata store cannot be opened or read.
    #[error("metadata in {path}: {cause}")]
    Meta {
        /// The metadata directory.
        path: PathBuf,
        /// The store's error.
        cause: MetaError,
    },
    /// A directory of the data dir cannot be read.
    #[error("{path}: {cause}")]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
}

/// Checks the data dir `data_dir` and returns what it found.
///
/// Fails (with nothing checked, or the check cut short) when a daemon holds the data
/// dir, it is not a data dir, or the store cannot be opened or read; problems found in
/// the data are never errors, they are in the report.
pub fn run(
    data_dir: &Path,
    opts: Options,
    progress: &mut dyn Progress,
) -> Result<Report, CheckError> {
    if !data_dir.is_dir() {
        return Err(not_a_data_dir(data_dir, "not a directory"));
    }
    let _lock = DataDirLock::acquire_shared_existing(data_dir)?;
    run_locked(data_dir, opts, progress)
}

fn not_a_data_dir(path: &Path, message: &str) -> CheckError {
    CheckError::NotADataDir {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// [`run`] for a caller that holds the data-dir lock already (`--repair` holds it
/// exclusively from its first check to its last).
fn run_locked(
    data_dir: &Path,
    opts: Options,
    progress: &mut dyn Progress,
) -> Result<Report, CheckError> {
    let not_data_dir = |message: &str| not_a_data_dir(data_dir, message);
    let meta_dir = data_dir.join("meta");
    if !meta_dir.is_dir() {
        return Err(not_data_dir(
            "no meta/ directory (not a verfsnext data dir)",
        ));
    }
    let meta_err = |cause| CheckError::Meta {
        path: meta_dir.clone(),
        cause,
    };
    let store = Store::open_read_only(&meta_dir).map_err(meta_err)?;
    let result = check_store(&store, data_dir, opts, progress).map_err(|e| match e {
        Failed::Meta(cause) => meta_err(cause),
        Failed::Other(e) => e,
    });
    let closed = store.close().map_err(meta_err);
    let report = result?;
    closed?;
    Ok(report)
}

/// An error inside the check, before it is given the metadata path.
enum Failed {
    Meta(MetaError),
    Other(CheckError),
}

impl From<MetaError> for Failed {
    fn from(e: MetaError) -> Failed {
        Failed::Meta(e)
    }
}

/// Runs the checks over an open store and the data dir's packs.
fn check_store(
    store: &Store,
    data_dir: &Path,
    opts: Options,
    progress: &mut dyn Progress,
) -> Result<Report, Failed> {
    let view = store.view()?;
    let mut report = Report::default();
    report.counts.snapshots = view.snapshots()?.len() as u64;
    let ns = tree::Namespace::load(&view, &mut report, progress)?;
    let refs = chunks::References::collect(&view, &ns, &mut report, progress)?;
    let table = chunks::ChunkTable::load(&view, &mut report)?;
    chunks::check_references(&refs, &table, &ns, &mut report);
    chunks::check_zero_refs(&view, &table, &mut report)?;
    tree::check(&ns, &view.orphans()?, &mut report);
    let hasher = if opts.read_data {
        Some(hasher(&view, &mut report)?)
    } else {
        None
    };
    let cx = packs::Context {
        table: &table,
        refs: &refs,
        ns: &ns,
        read_data: hasher.as_ref().map(Option::as_ref),
    };
    packs::check(&data_dir.join("packs"), &cx, &mut report, progress).map_err(Failed::Other)?;
    Ok(report)
}

/// The keyed chunk hasher from `Y hash_secret`; `None` (reported) when it is unusable.
fn hasher(view: &View, report: &mut Report) -> Result<Option<ChunkHasher>, MetaError> {
    let secret = view.system(SYS_HASH_SECRET)?;
    let seed: Option<[u8; 16]> = secret.as_deref().and_then(|s| s.try_into().ok());
    if seed.is_none() && report.counts.chunks > 0 {
        let msg = match secret {
            Some(s) => format!("hash secret is {} bytes, not 16", s.len()),
            None => "no hash secret".into(),
        };
        let msg = format!("{msg}: chunk ids cannot be re-derived (CRCs still checked)");
        report.problem(ProblemKind::CorruptRecord, msg, None);
    }
    Ok(seed.map(|s| ChunkHasher::new(&s)))
}
