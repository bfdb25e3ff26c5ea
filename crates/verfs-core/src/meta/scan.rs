//! Read-only whole-store iteration for the offline checker (`verfsnext fsck`), and the
//! read-only open it runs on.
//!
//! Every scan hands corrupt items to its visitor as `Err(MetaError::Corrupt)` and goes
//! on, so a checker can report a bad record and still check the rest; a scan itself
//! fails only when SurrealKV fails. None of these functions writes anything.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use surrealkv::TreeBuilder;

use super::keys::{self, Stored};
use super::records::{Dirent, Extent, Inode};
use super::versioned::decode;
use super::{
    scan_raw, MetaError, Reader, Store, View, WriteTxn, META_FORMAT, SYS_LIVE_GEN, SYS_META_FORMAT,
};
use crate::types::{ChunkHash, Generation, Ino};

/// One stored version of an extent: live, or frozen for snapshots. Chunk refcounts count
/// these, so a checker compares refcounts against every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentVersion {
    /// The file the extent belongs to.
    pub ino: Ino,
    /// The extent (offset from the key, chunk and length from the value).
    pub extent: Extent,
    /// `None` for the live version, else the generation the frozen version was born at.
    pub frozen: Option<Generation>,
}

impl Store {
    /// Opens an existing store for reading only: nothing is created if `dir` holds no
    /// store, no system value is written, layout 1 is refused instead of upgraded, and
    /// memtables are not flushed at close. SurrealKV itself still takes its `LOCK` and
    /// may replay its WAL, which it cannot do without writing.
    ///
    /// Fails if `dir` is not a directory, holds no initialised store (no live
    /// generation), has another metadata layout, or SurrealKV cannot open it.
    pub fn open_read_only(dir: &Path) -> Result<Store, MetaError> {
        if !dir.is_dir() {
            return Err(MetaError::Kv(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .thread_name("verfs-meta-ro")
            .enable_all()
            .build()
            .map_err(|e| MetaError::Kv(format!("start metadata runtime: {e}")))?;
        let tree = {
            let _guard = rt.enter();
            TreeBuilder::new()
                .with_path(dir.to_path_buf())
                .with_flush_on_close(false)
                .build()
                .map_err(|e| MetaError::kv(&format!("open {}", dir.display()), e))?
        };
        // SurrealKV recreates its WAL directory at 0750 when it replays; left so, the
        // daemon would refuse the data dir after an fsck. Owner-only suits either
        // data-dir policy.
        crate::datadir::DataDirPerms::OWNER_ONLY
            .tighten(dir)
            .map_err(|e| MetaError::Kv(format!("restrict {}: {e}", dir.display())))?;
        let store = Store {
            tree,
            rt,
            live_gen: AtomicU64::new(0),
            gen_fence: RwLock::new(()),
            snapshot_gens: RwLock::new(Arc::new(Vec::new())),
            sync_failed: std::sync::OnceLock::new(),
            unsynced: Default::default(),
            #[cfg(test)]
            faults: Default::default(),
        };
        let gen = store
            .read_system_u64(SYS_LIVE_GEN)?
            .ok_or_else(|| MetaError::corrupt(format!("{}: no live generation", dir.display())))?;
        store
            .live_gen
            .store(gen, std::sync::atomic::Ordering::SeqCst);
        match store.read_system_u64(SYS_META_FORMAT)? {
            Some(META_FORMAT) => {}
            other => {
                return Err(MetaError::corrupt(format!(
                    "metadata layout {other:?}; this checker reads layout {META_FORMAT} \
                     (mount once to upgrade)"
                )))
            }
        }
        store.load_snapshot_gens()?;
        Ok(store)
    }
}

impl View {
    /// Visits every stored extent version, live and frozen, in key order, until `visit`
    /// returns `false`; an undecodable key or value is passed as `Err`.
    ///
    /// Fails only if SurrealKV fails.
    pub fn for_each_extent_version(
        &self,
        mut visit: impl FnMut(Result<ExtentVersion, MetaError>) -> bool,
    ) -> Result<(), MetaError> {
        let start = [keys::prefix::EXTENT];
        let end = [keys::prefix::EXTENT + 1];
        scan_raw(self.tx(), &start, &end, |k, v| {
            Ok(visit(extent_version(k, v)))
        })
    }

    /// Visits every dirent of the live view as `(parent, name, dirent)`, until `visit`
    /// returns `false`; an undecodable one is passed as `Err`.
    ///
    /// Fails only if SurrealKV fails.
    pub fn for_each_live_dirent(
        &self,
        mut visit: impl FnMut(Result<(Ino, Vec<u8>, Dirent), MetaError>) -> bool,
    ) -> Result<(), MetaError> {
        let prefix = [keys::prefix::DIRENT];
        scan_live(self, &prefix, |lk, v| {
            let item = match (keys::dirent_parent(lk), keys::dirent_name(lk)) {
                (Some(parent), Some(name)) => v
                    .and_then(Dirent::decode)
                    .map(|d| (parent, name.to_vec(), d)),
                _ => Err(MetaError::corrupt(format!("dirent key {lk:02x?}"))),
            };
            visit(item)
        })
    }

    /// Visits every inode of the live view in number order, until `visit` returns
    /// `false`; an undecodable one is passed as `Err`.
    ///
    /// Fails only if SurrealKV fails.
    pub fn for_each_live_inode(
        &self,
        mut visit: impl FnMut(Result<Inode, MetaError>) -> bool,
    ) -> Result<(), MetaError> {
        let prefix = [keys::prefix::INODE];
        scan_live(self, &prefix, |lk, v| {
            let item = match keys::inode_ino(lk) {
                Some(ino) => v.and_then(|v| Inode::decode(ino, v)),
                None => Err(MetaError::corrupt(format!("inode key {lk:02x?}"))),
            };
            visit(item)
        })
    }

    /// Visits the hash of every zero-ref (`Z`) mark, until `visit` returns `false`; a
    /// malformed key is passed as `Err`.
    ///
    /// Fails only if SurrealKV fails.
    pub fn for_each_zero_ref(
        &self,
        mut visit: impl FnMut(Result<ChunkHash, MetaError>) -> bool,
    ) -> Result<(), MetaError> {
        let start = [keys::prefix::ZERO_REF];
        let end = [keys::prefix::ZERO_REF + 1];
        scan_raw(self.tx(), &start, &end, |k, _| {
            let mut as_chunk = k.to_vec();
            as_chunk[0] = keys::prefix::CHUNK;
            Ok(visit(keys::chunk_hash(&as_chunk).ok_or_else(|| {
                MetaError::corrupt(format!("zero-ref key {k:02x?}"))
            })))
        })
    }
}

/// Decodes one stored extent key and value.
fn extent_version(k: &[u8], v: &[u8]) -> Result<ExtentVersion, MetaError> {
    let (lk, slot) =
        keys::split_stored(k).ok_or_else(|| MetaError::corrupt(format!("extent key {k:02x?}")))?;
    let (ino, offset) = keys::extent_ino_offset(lk)
        .ok_or_else(|| MetaError::corrupt(format!("extent key {k:02x?}")))?;
    let (_, payload) = decode(v)?;
    let extent = Extent::decode(offset, payload)
        .map_err(|e| MetaError::corrupt(format!("ino {} offset {offset}: {e}", ino.0)))?;
    Ok(ExtentVersion {
        ino,
        extent,
        frozen: match slot {
            Stored::Live => None,
            Stored::Frozen(g) => Some(g),
        },
    })
}

/// Visits every live stored version under `prefix` (all the live view sees: frozen
/// versions never are) as `(logical key, payload)`; a value that does not decode is
/// passed as `Err` and the scan goes on, until `visit` returns `false`.
fn scan_live(
    view: &View,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], Result<&[u8], MetaError>) -> bool,
) -> Result<(), MetaError> {
    let end = keys::prefix_end(prefix)
        .ok_or_else(|| MetaError::corrupt("unbounded logical key".into()))?;
    scan_raw(view.tx(), prefix, &end, |k, v| {
        match keys::split_stored(k) {
            Some((lk, Stored::Live)) => Ok(visit(lk, decode(v).map(|(_, p)| p))),
            Some((_, Stored::Frozen(_))) => Ok(true),
            None => Ok(visit(
                k,
                Err(MetaError::corrupt(format!("short key {k:02x?}"))),
            )),
        }
    })
}

impl WriteTxn {
    /// Test and repair seam, not used by the filesystem: removes the `C` record of `hash`
    /// and its `Z` mark without touching the extents that name it. The mounted fsck
    /// tests use it to damage metadata offline; a repair tool would use it to drop a
    /// chunk nothing references. Leaves the store inconsistent if extents still name
    /// the chunk.
    ///
    /// Fails only if SurrealKV fails.
    #[doc(hidden)]
    pub fn remove_chunk_record(&mut self, hash: &ChunkHash) -> Result<(), MetaError> {
        self.del(&keys::chunk(hash))?;
        self.del(&keys::zero_ref(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadir::DataDirPerms;
    use crate::types::Timestamp;

    fn extent(hash: u8) -> Extent {
        Extent {
            offset: 0,
            hash: ChunkHash([hash; 16]),
            len: 10,
        }
    }

    #[test]
    fn read_only_open_creates_nothing_and_needs_a_store() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("meta");
        assert!(Store::open_read_only(&missing).is_err());
        assert!(!missing.exists(), "nothing created");
    }

    #[test]
    fn extent_scan_sees_live_and_frozen_versions_and_live_scans_only_live() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("meta");
        let s = Store::open(&dir, DataDirPerms::OWNER_ONLY).unwrap();
        s.write(|w| w.put_extent(Ino(3), &extent(1))).unwrap();
        let dirent = Dirent {
            ino: Ino(3),
            kind: crate::types::FileKind::File,
        };
        s.write(|w| w.put_dirent(Ino(1), b"f", &dirent)).unwrap();
        s.create_snapshot(b"s", Timestamp::default()).unwrap();
        s.write(|w| w.put_extent(Ino(3), &extent(2))).unwrap();
        s.write(|w| w.delete_dirent(Ino(1), b"f")).unwrap();
        s.close().unwrap();
        drop(s);
        let s = Store::open_read_only(&dir).unwrap();
        let v = s.view().unwrap();
        let mut seen = Vec::new();
        v.for_each_extent_version(|e| {
            let e = e.unwrap();
            seen.push((e.extent.hash.0[0], e.frozen.is_some()));
            true
        })
        .unwrap();
        assert_eq!(seen, vec![(2, false), (1, true)]);
        let mut live = 0;
        v.for_each_live_dirent(|_| {
            live += 1;
            true
        })
        .unwrap();
        assert_eq!(live, 0, "the frozen dirent is not live");
        s.close().unwrap();
    }
}
