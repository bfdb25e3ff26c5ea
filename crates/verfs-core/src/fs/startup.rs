//! Bringing a data dir up: check its permissions, lock, open metadata and packs, recover from an unclean
//! shutdown, create the root, purge orphans, start the batcher and the sync service.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngCore;

use super::snapshots::SnapshotTable;
use super::{Fs, OpenError};
use crate::config::Config;
use crate::data::intent::IntentLog;
use crate::data::packio::{FileIo, PackIo};
use crate::data::{ChunkHasher, PackStore, UltraCdc};
use crate::engine::Engine;
use crate::error::FsError;
use crate::gc::Collector;
use crate::meta::{
    Inode, MetaMemory, Reader, Store, CHUNK_FLAG_LOST, SYS_CLEAN_SHUTDOWN, SYS_HASH_SECRET,
    SYS_MAX_EXTENT_LEN,
};
use crate::service::sweep::SweepPace;
use crate::service::{DataDirLock, GcService, ScrubService, SweepService, SyncService};
use crate::types::{Ino, PackId};
use crate::write::{BatchLimits, Batcher};

fn startup(context: &str) -> impl FnOnce(FsError) -> OpenError + '_ {
    move |cause| OpenError::Startup {
        context: context.to_string(),
        cause,
    }
}

/// Opens metadata and packs, clears the clean-shutdown mark, and after an unclean
/// shutdown marks chunks whose pack records did not survive as lost.
fn open_stores(cfg: &Config, io: Arc<dyn PackIo>) -> Result<(Store, PackStore), OpenError> {
    let meta_dir = cfg.data_dir.join("meta");
    let budget = cfg.memory_budget();
    let memory = MetaMemory {
        memtable_bytes: usize::try_from(budget.memtable_bytes()).unwrap_or(usize::MAX),
        block_cache_bytes: budget.meta_block_cache,
    };
    let meta =
        Store::open_sized(&meta_dir, cfg.data_dir_perms(), Some(memory)).map_err(|cause| {
            OpenError::Meta {
                path: meta_dir.clone(),
                cause,
            }
        })?;
    let mark = meta
        .read_system_u64(SYS_CLEAN_SHUTDOWN)
        .map_err(|e| startup("read clean-shutdown mark")(e.into()))?;
    let fresh = meta
        .read_system(SYS_HASH_SECRET)
        .map_err(|e| startup("read hash secret")(e.into()))?
        .is_none();
    let clean = mark == Some(1) || fresh;
    let secret = hash_secret(&meta).map_err(startup("hash secret"))?;
    let packs_dir = cfg.data_dir.join("packs");
    let (mut packs, report) = PackStore::open_with_io(
        io,
        &packs_dir,
        cfg.data_dir_perms(),
        cfg.pack_max_bytes(),
        ChunkHasher::new(&secret),
        clean,
    )
    .map_err(|e| startup(&format!("packs in {}", packs_dir.display()))(e.into()))?;
    packs.set_cache_limits(budget.pack_index_cache, budget.vault_cache);
    // From here on a crash is unclean until the next clean shutdown.
    meta.set_system_u64(SYS_CLEAN_SHUTDOWN, 0)
        .and_then(|_| meta.sync())
        .map_err(|e| startup("clear clean-shutdown mark")(e.into()))?;
    if !clean {
        let from = report
            .sealed_at_startup
            .first()
            .copied()
            .or(report.active)
            .unwrap_or(PackId(0));
        tracing::warn!(
            truncated = report.truncated_bytes,
            "unclean shutdown detected; checking recent chunks"
        );
        reconcile_chunks(&meta, &packs, from).map_err(startup("reconcile chunks"))?;
    }
    Ok((meta, packs))
}

pub(super) fn open(cfg: &Config) -> Result<Fs, OpenError> {
    open_with_io(cfg, FileIo::shared())
}

/// [`open`] with pack files on the storage `io` (core tests pass a fault-injecting one).
pub(super) fn open_with_io(cfg: &Config, io: Arc<dyn PackIo>) -> Result<Fs, OpenError> {
    // Before anything in it is opened: a data dir others can read leaks every file.
    cfg.data_dir_perms().check(&cfg.data_dir)?;
    let lock = DataDirLock::acquire(&cfg.data_dir, cfg.data_dir_perms())?;
    let (meta, packs) = open_stores(cfg, io)?;
    ensure_root(&meta).map_err(startup("create root"))?;
    let chunker = UltraCdc::new(
        cfg.ultracdc_min_size_bytes,
        cfg.ultracdc_avg_size_bytes,
        cfg.ultracdc_max_size_bytes,
    );
    let max_extent_len = max_extent_len(&meta, u64::from(cfg.ultracdc_max_size_bytes))
        .map_err(startup("record chunk size limit"))?;
    let budget = cfg.memory_budget();
    let (intent, unreplayed) = IntentLog::open(&cfg.data_dir, cfg.data_dir_perms().file_mode())
        .map_err(|e| startup("open intent log")(e.into()))?;
    let engine = Arc::new(Engine::new(
        meta,
        packs,
        chunker,
        cfg.zstd_compression_level,
        &budget,
        max_extent_len,
        intent,
    ));
    let purged = purge_orphans(&engine).map_err(startup("purge orphans"))?;
    if purged > 0 {
        tracing::info!(purged, "freed files that were unlinked while open");
    }
    let max_ino = engine
        .meta
        .max_ino()
        .map_err(|e| startup("scan inodes")(e.into()))?;
    let snapshots = engine
        .meta
        .view()
        .and_then(|v| SnapshotTable::load(&v))
        .map_err(|e| startup("read snapshots")(e.into()))?;
    let limits = BatchLimits {
        max_blocks: cfg.batch_max_blocks,
        max_bytes: budget.batch_bytes(),
        max_delay: Duration::from_millis(cfg.batch_max_delay_ms),
    };
    let io_err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| startup(&what)(FsError::from_io("spawn", &e))
    };
    let batcher =
        Arc::new(Batcher::start(engine.clone(), limits).map_err(io_err("start batcher"))?);
    super::replay::replay(&engine, &batcher, &cfg.data_dir, unreplayed)
        .map_err(startup("replay intent log"))?;
    let sync = SyncService::start(engine.clone(), Duration::from_millis(cfg.sync_interval_ms))
        .map_err(io_err("start sync service"))?;
    let pace = SweepPace {
        step_keys: cfg.sweep_step_keys,
        pause: Duration::from_millis(cfg.sweep_pause_ms),
    };
    let sweeper =
        SweepService::start(engine.clone(), pace).map_err(io_err("start sweep service"))?;
    let collector = Collector::open(&engine, cfg.data_dir_perms(), cfg.gc_config())
        .map_err(startup("open GC discard log"))?;
    // A read-only mount never collects by itself (0 = only on request, refused too).
    let idle = if cfg.read_only { 0 } else { cfg.gc_idle_min_ms };
    let gc = GcService::start(engine.clone(), collector, Duration::from_millis(idle))
        .map_err(io_err("start GC service"))?;
    let scrub = ScrubService::new(engine.clone(), cfg.scrub_config());
    Ok(Fs {
        engine,
        batcher,
        sync,
        sweeper,
        gc,
        scrub,
        handles: Default::default(),
        snapshots: RwLock::new(snapshots),
        next_ino: AtomicU64::new(max_ino.0.max(Ino::ROOT.0) + 1),
        attr_ttl: Duration::from_secs(cfg.attr_ttl_secs),
        snapshots_visible: cfg.snapshots_visible,
        data_dir: cfg.data_dir.clone(),
        vault: super::vault::VaultGate::new(cfg.vault_kdf()),
        schedule: cfg.snapshots.clone(),
        mount_point: cfg.mount_point.clone(),
        started: std::time::Instant::now(),
        read_only: cfg.read_only,
        noatime: cfg.noatime || cfg.read_only,
        _lock: lock,
    })
}

/// The largest chunk length this filesystem may hold: the configured maximum, or a
/// larger one used before (extents cut then are still there).
fn max_extent_len(meta: &Store, configured: u64) -> Result<u64, FsError> {
    let seen = meta.read_system_u64(SYS_MAX_EXTENT_LEN)?.unwrap_or(0);
    if configured > seen {
        meta.set_system_u64(SYS_MAX_EXTENT_LEN, configured)?;
    }
    Ok(configured.max(seen))
}

/// The per-filesystem chunk-id secret, created at first mount.
fn hash_secret(meta: &Store) -> Result<[u8; 16], FsError> {
    if let Some(v) = meta.read_system(SYS_HASH_SECRET)? {
        return v
            .as_slice()
            .try_into()
            .map_err(|_| FsError::Corrupt(format!("hash secret is {} bytes", v.len())));
    }
    let mut s = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut s);
    meta.set_system(SYS_HASH_SECRET, &s)?;
    meta.sync()?;
    Ok(s)
}

/// After an unclean shutdown, metadata may name chunks whose pack bytes never reached
/// the disk. Marks such chunks lost so dedup never reuses them and a rewrite of the same
/// bytes stores them again; reads of them fail with EIO instead of returning wrong bytes.
fn reconcile_chunks(meta: &Store, packs: &PackStore, from: PackId) -> Result<(), FsError> {
    let view = meta.view()?;
    let mut lost = Vec::new();
    view.for_each_chunk(|hash, c| {
        if c.pack_id >= from && c.flags & CHUNK_FLAG_LOST == 0 && !packs.contains(c.pack_id, &hash)
        {
            lost.push((hash, c));
        }
        Ok(true)
    })?;
    drop(view);
    if lost.is_empty() {
        return Ok(());
    }
    tracing::error!(
        count = lost.len(),
        "chunks named by metadata are missing from packs; marked lost"
    );
    meta.write(|w| {
        for (hash, c) in &lost {
            let marked = crate::meta::ChunkRecord {
                flags: c.flags | CHUNK_FLAG_LOST,
                ..*c
            };
            w.put_chunk(hash, &marked, Some(c))?;
        }
        Ok::<_, FsError>(())
    })
}

/// Creates the root directory on first mount, owned by the user running the daemon.
fn ensure_root(meta: &Store) -> Result<(), FsError> {
    if meta.view()?.inode(Ino::ROOT)?.is_some() {
        return Ok(());
    }
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let root = Inode::new_dir(Ino::ROOT, Ino::ROOT, 0o755, (uid, gid), 0);
    meta.write(|w| w.put_inode(&root))?;
    Ok(())
}

/// Frees every inode left unlinked-but-open by the previous run.
fn purge_orphans(engine: &Engine) -> Result<usize, FsError> {
    let orphans = engine.meta.view()?.orphans()?;
    for ino in &orphans {
        super::ops::remove::purge_inode(engine, *ino)?;
    }
    Ok(orphans.len())
}
