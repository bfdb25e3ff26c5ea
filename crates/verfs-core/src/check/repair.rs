//! `verfsnext fsck --repair`: makes a damaged data dir consistent again, offline, and
//! says exactly what it changed.
//!
//! With the data-dir lock held exclusively from the first check to the last (so no
//! daemon can start in between), it checks, copies `meta/` aside, then:
//!
//! 1. every extent version naming a chunk whose bytes cannot be served (the check's
//!    `unreadable` set: no chunk record, lost, pack missing or unusable, record absent,
//!    damaged or of another id) is removed, so that range of the file reads as a hole
//!    in every view that saw it; each affected file is named;
//! 2. refcounts are set to the extent versions naming each chunk, `Z` marks follow, and
//!    records of unreadable chunks nothing references any more are dropped;
//! 3. the namespace is repaired (`repair_tree`): dangling entries removed, link counts
//!    and directory parents set, inodes no entry names reattached under `/lost+found`.
//!
//! Then it checks again. Packs are never rewritten: a damaged record's bytes are simply
//! no longer referenced, and GC reclaims them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::report::Report;
use super::tree::Namespace;
use super::{run_locked, CheckError, NoProgress, Options, Progress};
use crate::data::store::pack_path;
use crate::datadir::DataDirPerms;
use crate::meta::{ChunkRecord, ExtentVersion, MetaError, Reader, Store, View};
use crate::service::DataDirLock;
use crate::types::{ChunkHash, Ino, PackId};

/// One change the repair made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What was changed, in words.
    pub what: String,
    /// The file or directory concerned, when there is one.
    pub path: Option<String>,
}

/// What `fsck --repair` found, did and left.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// The check before repairing.
    pub before: Report,
    /// Every change, in the order made (empty when the check was clean).
    pub changes: Vec<Change>,
    /// Where the metadata was copied before the first change.
    pub backup: Option<PathBuf>,
    /// The check after repairing: clean unless something could not be repaired.
    pub after: Report,
}

/// Checks `data_dir` and repairs what the check found (see the module doc).
///
/// Fails when a daemon holds the data dir, it is not a data dir, the backup cannot be
/// written, or the metadata store fails; nothing is changed before the backup exists.
pub fn repair(
    data_dir: &Path,
    opts: Options,
    perms: DataDirPerms,
    progress: &mut dyn Progress,
) -> Result<RepairReport, CheckError> {
    if !data_dir.join("meta").is_dir() {
        return Err(CheckError::NotADataDir {
            path: data_dir.to_path_buf(),
            message: "no meta/ directory (not a verfsnext data dir)".into(),
        });
    }
    let lock = DataDirLock::acquire(data_dir, perms)?;
    let before = run_locked(data_dir, opts, progress)?;
    let mut out = RepairReport {
        before,
        ..RepairReport::default()
    };
    if out.before.is_clean() {
        out.after = out.before.clone();
        return Ok(out);
    }
    let backup = backup_meta(data_dir, perms)?;
    rebuild_indexes(data_dir, &out.before.bad_index, &backup, &mut out.changes)?;
    out.backup = Some(backup);
    let meta_dir = data_dir.join("meta");
    let meta_err = |cause| CheckError::Meta {
        path: meta_dir.clone(),
        cause,
    };
    let store = Store::open(&meta_dir, perms).map_err(meta_err)?;
    progress.phase("repairing", 0);
    let fixed = fix_all(&store, &out.before.unreadable, &mut out.changes);
    let closed = store.sync().and_then(|()| store.close());
    fixed.map_err(meta_err)?;
    closed.map_err(meta_err)?;
    // SurrealKV creates its files with the process umask; the daemon refuses open modes.
    perms.tighten(&meta_dir).map_err(|cause| CheckError::Io {
        path: meta_dir.clone(),
        cause,
    })?;
    out.after = run_locked(data_dir, opts, &mut NoProgress)?;
    // Opening the store for the second check may have written (a WAL replay) too.
    perms.tighten(&meta_dir).map_err(|cause| CheckError::Io {
        path: meta_dir.clone(),
        cause,
    })?;
    drop(lock);
    Ok(out)
}

/// Step 0: packs whose sealed index is damaged get a new one from a scan of their
/// records (each copied to the backup first), so no chunk in them is lost.
fn rebuild_indexes(
    data_dir: &Path,
    packs: &BTreeSet<PackId>,
    backup: &Path,
    changes: &mut Vec<Change>,
) -> Result<(), CheckError> {
    let dir = data_dir.join("packs");
    for &id in packs {
        let path = pack_path(&dir, id);
        let io = |cause| CheckError::Io {
            path: path.clone(),
            cause,
        };
        let saved = backup.join("packs");
        std::fs::create_dir_all(&saved).map_err(io)?;
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, saved.join(name)).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let n = crate::data::pack::rebuild_seal(&file, id)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        changes.push(Change {
            what: format!("rebuilt the damaged index of {id} from a scan of its {n} records"),
            path: None,
        });
    }
    Ok(())
}

/// The three repair steps, in order.
fn fix_all(
    store: &Store,
    unreadable: &BTreeSet<ChunkHash>,
    changes: &mut Vec<Change>,
) -> Result<(), MetaError> {
    purge_unreadable(store, unreadable, changes)?;
    fix_refcounts(store, unreadable, changes)?;
    super::repair_tree::fix(store, changes)
}

/// Copies `DATA/meta` to `DATA/fsck-backup-UTCSTAMP/meta` (a fresh directory with the
/// data dir's modes, so the daemon's permission check still passes), so a repair can be
/// undone by putting it back.
fn backup_meta(data_dir: &Path, perms: DataDirPerms) -> Result<PathBuf, CheckError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let root = data_dir.join(format!("fsck-backup-{stamp}"));
    let io = |path: &Path, cause| CheckError::Io {
        path: path.to_path_buf(),
        cause,
    };
    std::fs::create_dir(&root).map_err(|e| io(&root, e))?;
    copy_tree(&data_dir.join("meta"), &root.join("meta")).map_err(|(p, e)| io(&p, e))?;
    perms.tighten(&root).map_err(|e| io(&root, e))?;
    Ok(root)
}

/// Recursive copy of regular files and directories (all a SurrealKV directory holds).
fn copy_tree(from: &Path, to: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    std::fs::create_dir(to).map_err(|e| (to.to_path_buf(), e))?;
    for entry in std::fs::read_dir(from).map_err(|e| (from.to_path_buf(), e))? {
        let entry = entry.map_err(|e| (from.to_path_buf(), e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| (src.clone(), e))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| (src.clone(), e))?;
        }
    }
    let dir = std::fs::File::open(to).map_err(|e| (to.to_path_buf(), e))?;
    dir.sync_all().map_err(|e| (to.to_path_buf(), e))
}

/// Step 1: removes every extent version naming an unreadable chunk; names each file
/// (by its live path, or its inode when only a snapshot holds it).
fn purge_unreadable(
    store: &Store,
    unreadable: &BTreeSet<ChunkHash>,
    changes: &mut Vec<Change>,
) -> Result<(), MetaError> {
    if unreadable.is_empty() {
        return Ok(());
    }
    let view = store.view()?;
    let mut victims: Vec<ExtentVersion> = Vec::new();
    view.for_each_extent_version(|item| {
        if let Ok(v) = item {
            if unreadable.contains(&v.extent.hash) {
                victims.push(v);
            }
        }
        true
    })?;
    let ns = Namespace::load(&view, &mut Report::default(), &mut NoProgress)?;
    store.write(|txn| {
        // Live bytes removed per file, to keep `st_blocks` true.
        let mut live_bytes: BTreeMap<Ino, u64> = BTreeMap::new();
        for v in &victims {
            txn.purge_extent_version(v.ino, v.extent.offset, v.frozen)?;
            if v.frozen.is_none() {
                *live_bytes.entry(v.ino).or_default() += u64::from(v.extent.len);
            }
        }
        for (ino, bytes) in &live_bytes {
            if let Some(mut i) = txn.inode(*ino)? {
                i.blocks = i.blocks.saturating_sub(*bytes);
                i.data_version += 1;
                txn.put_inode(&i)?;
            }
        }
        Ok::<_, MetaError>(())
    })?;
    let mut per_file: BTreeMap<(Ino, bool), (u64, u64)> = BTreeMap::new();
    for v in &victims {
        let e = per_file.entry((v.ino, v.frozen.is_some())).or_default();
        e.0 += 1;
        e.1 += u64::from(v.extent.len);
    }
    for ((ino, frozen), (n, bytes)) in per_file {
        let scope = if frozen { " in snapshots" } else { "" };
        changes.push(Change {
            what: format!(
                "{n} extent(s){scope} of inode {} ({bytes} bytes) named unreadable data: now holes",
                ino.0
            ),
            path: Some(ns.describe(ino, frozen)),
        });
    }
    Ok(())
}

/// Step 2: refcounts equal the extent versions naming each chunk, `Z` marks exactly the
/// chunks at 0, and unreadable chunks nothing names lose their records.
fn fix_refcounts(
    store: &Store,
    unreadable: &BTreeSet<ChunkHash>,
    changes: &mut Vec<Change>,
) -> Result<(), MetaError> {
    let view = store.view()?;
    let counts = count_references(&view)?;
    let mut table: BTreeMap<ChunkHash, ChunkRecord> = BTreeMap::new();
    view.for_each_chunk(|h, c| {
        table.insert(h, c);
        Ok(true)
    })?;
    let mut marked = BTreeSet::new();
    view.for_each_zero_ref(|item| {
        if let Ok(h) = item {
            marked.insert(h);
        }
        true
    })?;
    let mut log = Vec::new();
    store.write(|txn| {
        log.clear();
        for (hash, c) in &table {
            let n = counts.get(hash).copied().unwrap_or(0);
            if n == 0 && unreadable.contains(hash) {
                txn.drop_chunk_record(hash)?;
                log.push(format!("dropped the record of unreadable chunk {hash}"));
            } else if n != c.refcount {
                txn.force_chunk_refcount(hash, c, n)?;
                log.push(format!("chunk {hash}: refcount {} -> {n}", c.refcount));
            } else if (n == 0) != marked.contains(hash) {
                txn.set_zero_mark(hash, n == 0)?;
                log.push(format!("chunk {hash}: zero-ref mark fixed"));
            }
        }
        for hash in marked.iter().filter(|h| !table.contains_key(*h)) {
            txn.set_zero_mark(hash, false)?;
            log.push(format!("removed the zero-ref mark of missing chunk {hash}"));
        }
        Ok::<_, MetaError>(())
    })?;
    changes.extend(log.into_iter().map(|what| Change { what, path: None }));
    Ok(())
}

/// Extent versions (live and frozen) naming each chunk.
fn count_references(view: &View) -> Result<BTreeMap<ChunkHash, u64>, MetaError> {
    let mut counts: BTreeMap<ChunkHash, u64> = BTreeMap::new();
    view.for_each_extent_version(|item| {
        if let Ok(v) = item {
            *counts.entry(v.extent.hash).or_default() += 1;
        }
        true
    })?;
    Ok(counts)
}
