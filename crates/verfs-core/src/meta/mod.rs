//! Metadata in SurrealKV: the only module that knows SurrealKV exists.
//!
//! [`Store`] opens the tree and runs commits on a small tokio runtime that it owns, so the
//! rest of the crate stays synchronous. Reads go through a [`View`] (an MVCC read
//! transaction plus the generation it sees), writes through [`Store::write`], which retries
//! the whole closure when SurrealKV reports a write conflict. Both read through the
//! [`Reader`] trait, so a write sees its own earlier writes with the same accessors.

#[cfg(test)]
pub(crate) mod faults;
mod keys;
mod migrate;
mod reader;
mod records;
mod scan;
mod snapshots;
mod unsynced;
mod versioned;
mod write;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use surrealkv::{LSMIterator, Mode, Tree, TreeBuilder};
use thiserror::Error;

pub use reader::{Reader, View};
pub use records::{
    ChunkRecord, Dirent, Extent, Inode, SnapshotRecord, CHUNK_FLAG_ENCRYPTED, CHUNK_FLAG_LOST,
    INODE_FLAG_VAULT,
};
pub use scan::ExtentVersion;
pub use snapshots::{SnapshotError, SweepProgress};
pub use versioned::ViewAt;
pub use write::{ExtentChange, Prior, WriteTxn};

use crate::datadir::DataDirPerms;
use crate::error::FsError;
use crate::types::{Generation, Ino};

/// Errors of the metadata store, with the operation that failed.
#[derive(Debug, Error, Clone)]
pub enum MetaError {
    /// SurrealKV reported an error.
    #[error("metadata store: {0}")]
    Kv(String),
    /// A record failed to decode.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// Another transaction wrote the same key first; the caller retries.
    #[error("metadata write conflict")]
    Conflict,
    /// The disk (or the quota) is full: a write of the store's log or tables failed
    /// with ENOSPC or EDQUOT.
    #[error("metadata store: no space left: {0}")]
    NoSpace(String),
}

impl MetaError {
    pub(crate) fn corrupt(msg: String) -> MetaError {
        MetaError::Corrupt(msg)
    }

    fn kv(context: &str, e: surrealkv::Error) -> MetaError {
        match e {
            surrealkv::Error::TransactionWriteConflict => MetaError::Conflict,
            other if is_no_space(&other) => MetaError::NoSpace(format!("{context}: {other}")),
            other => MetaError::Kv(format!("{context}: {other}")),
        }
    }
}

/// Whether a SurrealKV error is a full disk. Its I/O errors keep their `io::Error`, which
/// is read by its OS code; a few of its variants (`Wal`, `CommitFail`, `Other`) carry
/// only a message, where the OS's own wording of ENOSPC is the one thing left to look
/// for (SurrealKV 1.2 builds them with `format!("{e}")` of the I/O error).
fn is_no_space(e: &surrealkv::Error) -> bool {
    use surrealkv::Error as E;
    match e {
        E::Io(io) => matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)),
        E::DatabasePoisoned(inner) => is_no_space(inner),
        E::Wal(m) | E::CommitFail(m) | E::Other(m) => {
            m.contains("No space left on device") || m.contains("os error 28")
        }
        _ => false,
    }
}

impl From<MetaError> for FsError {
    fn from(e: MetaError) -> FsError {
        match e {
            MetaError::Corrupt(m) => FsError::Corrupt(m),
            MetaError::NoSpace(_) => FsError::NoSpace,
            MetaError::Kv(m) => FsError::Io(m),
            MetaError::Conflict => FsError::Io("metadata write conflict persisted".into()),
        }
    }
}

/// Name of the system value holding the live generation.
const SYS_LIVE_GEN: &str = "live_gen";
/// Name of the clean-shutdown mark (1 = last run shut down cleanly).
pub const SYS_CLEAN_SHUTDOWN: &str = "clean_shutdown";
/// Name of the largest chunk length ever cut here (u64), the look-back for extents.
pub const SYS_MAX_EXTENT_LEN: &str = "max_extent_len";
/// Name of the per-filesystem chunk hash secret (16 bytes).
pub const SYS_HASH_SECRET: &str = "hash_secret";

/// Name of the system value holding the metadata layout version.
const SYS_META_FORMAT: &str = "meta_format";
/// The metadata layout this build reads and writes (2: live key plus frozen versions).
const META_FORMAT: u64 = 2;

/// How often a conflicting write transaction is retried before giving up.
const MAX_CONFLICT_RETRIES: u32 = 1000;

/// The metadata store of one data dir.
pub struct Store {
    tree: Tree,
    rt: tokio::runtime::Runtime,
    live_gen: AtomicU64,
    /// Fences write transactions against freezing a generation: every write holds it
    /// shared from reading the live generation until its commit is done, and
    /// [`Store::advance_generation`] holds it exclusively, so no commit born at the
    /// frozen generation can land after the freeze (it would change a snapshot).
    gen_fence: RwLock<()>,
    /// Generations of the snapshots that exist, sorted; changed only under the
    /// exclusive generation fence, so a write transaction sees one set throughout.
    snapshot_gens: RwLock<Arc<Vec<u64>>>,
    /// Set by the first failed WAL sync; every later sync fails too (fsyncgate: a
    /// retry could succeed without the data the failed one covered).
    sync_failed: std::sync::OnceLock<String>,
    /// Inodes changed by commits since the last WAL sync (see `unsynced.rs`).
    unsynced: unsynced::Unsynced,
    /// Injected faults (core tests).
    #[cfg(test)]
    pub(crate) faults: faults::MetaFaults,
}

/// What SurrealKV may keep in memory: the metadata store's part of the daemon's memory
/// budget. SurrealKV keeps up to two memtables (its stall threshold) plus the block
/// cache, and does not report how full they are, so these are limits, not usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaMemory {
    /// Size at which a memtable is frozen and flushed to an SSTable.
    pub memtable_bytes: usize,
    /// Capacity of the block cache (SSTable blocks and index blocks).
    pub block_cache_bytes: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`, creating it with `perms`' directory mode.
    /// SurrealKV creates its files under the process umask (the daemon sets it from
    /// `perms`); what it opens up itself is taken back once it is open.
    ///
    /// Fails if the directory cannot be created or SurrealKV cannot open or recover it.
    pub fn open(dir: &Path, perms: DataDirPerms) -> Result<Store, MetaError> {
        Store::open_sized(dir, perms, None)
    }

    /// [`Store::open`] with SurrealKV's memory bounded by `memory` (the daemon's budget);
    /// `None` keeps SurrealKV's defaults (100 MiB memtables, 32 MiB block cache), which
    /// suit a short offline run.
    ///
    /// Fails as [`Store::open`] does.
    pub fn open_sized(
        dir: &Path,
        perms: DataDirPerms,
        memory: Option<MetaMemory>,
    ) -> Result<Store, MetaError> {
        perms
            .create_dir_all(dir)
            .map_err(|e| MetaError::Kv(format!("create {}: {e}", dir.display())))?;
        // A current-thread runtime: each committing thread drives SurrealKV's commit
        // pipeline itself inside `block_on`, so a commit costs no hand-off to a worker
        // thread and back (measured: 6.6 µs instead of 35 µs per single-key commit).
        // SurrealKV's background tasks run whenever some thread is inside `block_on`.
        let rt = tokio::runtime::Builder::new_current_thread()
            .thread_name("verfs-meta")
            .enable_all()
            .build()
            .map_err(|e| MetaError::Kv(format!("start metadata runtime: {e}")))?;
        let tree = {
            let _guard = rt.enter();
            let mut builder = TreeBuilder::new().with_path(dir.to_path_buf());
            if let Some(m) = memory {
                builder = builder
                    .with_max_memtable_size(m.memtable_bytes)
                    .with_block_cache_capacity(m.block_cache_bytes);
            }
            builder
                .build()
                .map_err(|e| MetaError::kv(&format!("open {}", dir.display()), e))?
        };
        perms
            .tighten(dir)
            .map_err(|e| MetaError::Kv(format!("restrict {}: {e}", dir.display())))?;
        let store = Store {
            tree,
            rt,
            live_gen: AtomicU64::new(1),
            gen_fence: RwLock::new(()),
            snapshot_gens: RwLock::new(Arc::new(Vec::new())),
            sync_failed: std::sync::OnceLock::new(),
            unsynced: Default::default(),
            #[cfg(test)]
            faults: Default::default(),
        };
        let gen = store.read_system_u64(SYS_LIVE_GEN)?;
        match gen {
            Some(g) => store.live_gen.store(g, Ordering::SeqCst),
            None => {
                store.set_system_u64(SYS_META_FORMAT, META_FORMAT)?;
                store.set_system(SYS_LIVE_GEN, &records::encode_u64(1))?;
            }
        }
        store.check_format()?;
        store.load_snapshot_gens()?;
        Ok(store)
    }

    /// Accepts layout 2, upgrades layout 1 (written before snapshots existed, marked by
    /// the absence of a format value) in place, and rejects anything else.
    fn check_format(&self) -> Result<(), MetaError> {
        match self.read_system_u64(SYS_META_FORMAT)? {
            Some(META_FORMAT) => Ok(()),
            None => {
                let n = migrate::layout1_to_2(self)?;
                tracing::info!(versions = n, "metadata upgraded to layout 2");
                self.set_system_u64(SYS_META_FORMAT, META_FORMAT)
            }
            Some(v) => Err(MetaError::corrupt(format!(
                "metadata layout {v}; this build reads layout {META_FORMAT}"
            ))),
        }
    }

    /// The generation live writes are born at.
    pub fn live_generation(&self) -> Generation {
        Generation(self.live_gen.load(Ordering::SeqCst))
    }

    /// A consistent read view of the live filesystem.
    ///
    /// Fails only if SurrealKV cannot start a transaction (store closed).
    pub fn view(&self) -> Result<View, MetaError> {
        let tx = self
            .tree
            .begin_with_mode(Mode::ReadOnly)
            .map_err(|e| MetaError::kv("begin read", e))?;
        Ok(View::new(tx, ViewAt::Live))
    }

    /// A read view of the filesystem as of generation `gen` (a snapshot's view).
    ///
    /// Fails only if SurrealKV cannot start a transaction.
    pub fn view_at(&self, gen: Generation) -> Result<View, MetaError> {
        let tx = self
            .tree
            .begin_with_mode(Mode::ReadOnly)
            .map_err(|e| MetaError::kv("begin read", e))?;
        Ok(View::new(tx, ViewAt::Frozen(gen)))
    }

    /// Runs `f` with write transactions held back: the caller's own transaction (through
    /// [`Store::commit_loop`]) is the only one, and the live generation and snapshot set
    /// cannot change under it. Write transactions in flight finish first.
    fn exclusively<T>(&self, f: impl FnOnce() -> T) -> T {
        let _fence = self.gen_fence.write().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// Waits until every write transaction in flight has committed or failed. GC calls
    /// it after sealing a pack and before deciding which of its records to keep: every
    /// append to that pack belongs to a transaction that then has finished, so its
    /// chunk records are visible.
    pub fn write_barrier(&self) {
        self.exclusively(|| ());
    }

    /// Runs `f` in a write transaction and commits it, retrying the whole closure when
    /// another transaction wrote one of the same keys first.
    ///
    /// Fails with whatever `f` fails with (nothing is committed then), or with the commit's
    /// error once retries are exhausted.
    pub fn write<T, E>(&self, f: impl FnMut(&mut WriteTxn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<MetaError>,
    {
        self.write_fenced(f, || ()).map(|(out, ())| out)
    }

    /// Like [`Store::write`], but takes `fence()` just before the commit and returns it
    /// still held with the result, so the caller can make the commit and its own
    /// follow-up (the write overlay settling) one step for anyone who waits on the same
    /// fence. The fence is held only around the commit, never while `f` runs; a
    /// conflicting commit drops it before `f` is retried.
    ///
    /// Fails as [`Store::write`] does; the fence is released then.
    pub fn write_fenced<T, E, G>(
        &self,
        f: impl FnMut(&mut WriteTxn) -> Result<T, E>,
        fence: impl Fn() -> G,
    ) -> Result<(T, G), E>
    where
        E: From<MetaError>,
    {
        let _gen = self.gen_fence.read().unwrap_or_else(|p| p.into_inner());
        self.commit_loop(f, fence)
    }

    /// The transaction loop of [`Store::write_fenced`], without the generation fence.
    fn commit_loop<T, E, G>(
        &self,
        mut f: impl FnMut(&mut WriteTxn) -> Result<T, E>,
        fence: impl Fn() -> G,
    ) -> Result<(T, G), E>
    where
        E: From<MetaError>,
    {
        let mut attempt = 0u32;
        loop {
            let tx = self
                .tree
                .begin_with_mode(Mode::ReadWrite)
                .map_err(|e| MetaError::kv("begin write", e))?;
            let snaps = self
                .snapshot_gens
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut w = WriteTxn::new(tx, self.live_generation(), snaps);
            let out = match f(&mut w) {
                Ok(v) => v,
                Err(e) => {
                    w.rollback();
                    return Err(e);
                }
            };
            #[cfg(test)]
            if let Some(e) = self.faults.commit() {
                w.rollback();
                return Err(e.into());
            }
            let touched = w.take_touched();
            let held = fence();
            match self.rt.block_on(w.commit()) {
                Ok(()) => {
                    self.unsynced.add(&touched);
                    return Ok((out, held));
                }
                Err(MetaError::Conflict) if attempt < MAX_CONFLICT_RETRIES => {
                    drop(held);
                    attempt += 1;
                    if attempt > 8 {
                        std::thread::sleep(Duration::from_micros(50 * u64::from(attempt.min(100))));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether a WAL sync has failed (every later one fails too: fsyncgate).
    pub fn sync_has_failed(&self) -> bool {
        self.sync_failed.get().is_some()
    }

    /// Makes every committed transaction durable (fsync of the WAL).
    ///
    /// Fails if the WAL cannot be written or synced, and from then on every time until
    /// the store is reopened (what the failed sync covered may be lost without a trace).
    pub fn sync(&self) -> Result<(), MetaError> {
        if let Some(first) = self.sync_failed.get() {
            return Err(MetaError::Kv(format!(
                "an earlier metadata sync failed ({first}); unmount and run `verfsnext fsck`"
            )));
        }
        #[cfg(test)]
        let injected = self.faults.sync();
        #[cfg(not(test))]
        let injected: Option<MetaError> = None;
        let taken = self.unsynced.take();
        let res = match injected {
            Some(e) => Err(e),
            None => self
                .tree
                .flush_wal(true)
                .map_err(|e| MetaError::kv("sync metadata WAL", e)),
        };
        if let Err(e) = &res {
            let _ = self.sync_failed.set(e.to_string());
            self.unsynced.restore(taken);
        }
        res
    }

    /// Whether `ino`'s metadata record is durable: no commit outside the batcher's
    /// data path changed it since the last WAL sync.
    pub fn inode_synced(&self, ino: Ino) -> bool {
        !self.unsynced.contains(ino)
    }

    /// Reads a raw system value.
    pub fn read_system(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.view()?.system(name)
    }

    /// Reads a `u64` system value.
    pub fn read_system_u64(&self, name: &str) -> Result<Option<u64>, MetaError> {
        match self.read_system(name)? {
            Some(v) => Ok(Some(records::decode_u64(name, &v)?)),
            None => Ok(None),
        }
    }

    /// Writes a raw system value in its own transaction.
    pub fn set_system(&self, name: &str, value: &[u8]) -> Result<(), MetaError> {
        self.write(|w| w.set_system(name, value))
    }

    /// Removes a system value in its own transaction.
    ///
    /// Fails if the transaction cannot commit.
    pub fn delete_system(&self, name: &str) -> Result<(), MetaError> {
        self.write(|w| w.delete_system(name))
    }

    /// Writes a `u64` system value in its own transaction.
    pub fn set_system_u64(&self, name: &str, value: u64) -> Result<(), MetaError> {
        self.set_system(name, &records::encode_u64(value))
    }

    /// The highest inode number with any record, so allocation resumes above it.
    pub fn max_ino(&self) -> Result<Ino, MetaError> {
        let view = self.view()?;
        view.max_ino()
    }

    /// Flushes and closes the tree; the store is unusable afterwards.
    ///
    /// Fails if the final flush fails.
    pub fn close(&self) -> Result<(), MetaError> {
        self.sync()?;
        self.rt
            .block_on(self.tree.close())
            .map_err(|e| MetaError::kv("close metadata store", e))
    }
}

/// Iterates the raw (unversioned view of) keys in `[start, end)`, calling `visit` with each
/// key and value until it returns `false`.
fn scan_raw(
    tx: &surrealkv::Transaction,
    start: &[u8],
    end: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, MetaError>,
) -> Result<(), MetaError> {
    let mut it = tx
        .range(start, end)
        .map_err(|e| MetaError::kv("range scan", e))?;
    let mut ok = it
        .seek_first()
        .map_err(|e| MetaError::kv("range seek", e))?;
    while ok && it.valid() {
        let key = it.key().user_key();
        let value = it
            .value_ref()
            .map_err(|e| MetaError::kv("range value", e))?;
        if !visit(key, &value)? {
            break;
        }
        ok = it.next().map_err(|e| MetaError::kv("range next", e))?;
    }
    Ok(())
}

/// The last raw key in `[start, end)`, if any.
fn last_raw_key(
    tx: &surrealkv::Transaction,
    start: &[u8],
    end: &[u8],
) -> Result<Option<Vec<u8>>, MetaError> {
    let mut it = tx
        .range(start, end)
        .map_err(|e| MetaError::kv("range scan", e))?;
    let ok = it.seek_last().map_err(|e| MetaError::kv("range seek", e))?;
    if ok && it.valid() {
        Ok(Some(it.key().user_key().to_vec()))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
