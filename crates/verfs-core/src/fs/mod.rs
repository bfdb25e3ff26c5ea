//! POSIX semantics: the filesystem the FUSE adapter calls.
//!
//! Each operation family lives in `ops/`. A long operation is validate → read → apply in
//! one metadata transaction → post-commit effects. `fs` never builds a key or decodes a
//! record: it goes through `meta`'s typed accessors. Data changes go through the write
//! batcher and complete through a callback, so a FUSE thread never waits for a batch.

mod control;
#[cfg(test)]
mod core_tests;
mod diff;
mod handles;
mod node;
mod ops;
mod replay;
mod schedule;
mod snapshots;
mod startup;
mod vault;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use thiserror::Error;

pub use handles::FileOpen;
pub use ops::attr::{SetAttr, TimeSet};
pub use ops::dir::DirEntry;
pub use schedule::{plan as schedule_plan, Existing, Plan, ScheduleConfig, ScheduleService};
pub use snapshots::{check_snapshot_name, SnapshotCmdError};
pub use vault::{KernelNotify, VaultCmdError, VaultState, VAULT_NAME};

use crate::config::Config;
use crate::datadir::PermsError;
use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::meta::{Inode, MetaError, SYS_CLEAN_SHUTDOWN};
use crate::service::{DataDirLock, GcService, LockError, ScrubService, SweepService, SyncService};
use crate::types::Ino;
use crate::write::Batcher;
use handles::Handles;
use snapshots::SnapshotTable;

/// The attributes the FUSE layer reports for an inode.
pub type Attr = Inode;

/// Who is asking: the credentials of the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Process id.
    pub pid: u32,
}

impl Caller {
    /// The superuser, for internal work.
    pub const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        pid: 0,
    };
}

/// Filesystem-wide numbers for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of `bsize`.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Inodes in use plus free inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
}

/// Why the filesystem could not be started.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The data dir, or something in it, is open to other users.
    #[error(transparent)]
    Perms(#[from] PermsError),
    /// The data dir is unusable or locked.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The metadata store could not be opened.
    #[error("metadata in {path}: {cause}")]
    Meta {
        /// The metadata directory.
        path: PathBuf,
        /// The store's error (in the message, not an error source, so a printed chain
        /// names it once).
        cause: MetaError,
    },
    /// Startup work failed (packs, recovery).
    #[error("{context}: {cause}")]
    Startup {
        /// What was being done.
        context: String,
        /// The failure (in the message only, as above).
        cause: FsError,
    },
}

/// Longest name of a directory entry.
pub const NAME_MAX: usize = 255;

/// A mounted VerFSNext filesystem.
pub struct Fs {
    engine: Arc<Engine>,
    batcher: Arc<Batcher>,
    sync: SyncService,
    sweeper: SweepService,
    gc: GcService,
    scrub: ScrubService,
    handles: Handles,
    /// The snapshots that exist (names, view slots, generations).
    snapshots: RwLock<SnapshotTable>,
    next_ino: AtomicU64,
    attr_ttl: Duration,
    /// Whether the root's listing shows `.snapshots` (config `snapshots_visible`).
    snapshots_visible: bool,
    data_dir: PathBuf,
    /// `/.vault`'s lock state, epoch and kernel notifier.
    vault: vault::VaultGate,
    /// The snapshot schedule (to mark scheduled snapshots in listings).
    schedule: ScheduleConfig,
    /// Where the filesystem is mounted (for `status`).
    mount_point: PathBuf,
    /// When the daemon started (for `status`).
    started: std::time::Instant,
    /// Config `read_only`: every mutation gate answers EROFS and the control plane
    /// refuses changes.
    read_only: bool,
    /// Config `noatime` (or `read_only`): reads never write atime.
    noatime: bool,
    _lock: DataDirLock,
}

impl Fs {
    /// Opens the data dir of `cfg` and starts the batcher and sync service.
    ///
    /// Fails when the data dir or something in it is open to other users (checked before
    /// anything is opened), is unusable or locked, the metadata cannot be opened, or
    /// startup recovery fails; the message names the path.
    pub fn start(cfg: &Config) -> Result<Fs, OpenError> {
        startup::open(cfg)
    }

    /// [`Fs::start`] with pack files on `io`: the core tests' fault-injecting storage.
    #[cfg(test)]
    pub(crate) fn start_with_io(
        cfg: &Config,
        io: std::sync::Arc<dyn crate::data::packio::PackIo>,
    ) -> Result<Fs, OpenError> {
        startup::open_with_io(cfg, io)
    }

    /// How long the kernel may cache attributes and entries.
    pub fn attr_ttl(&self) -> Duration {
        self.attr_ttl
    }

    /// Drains the batcher, syncs packs then metadata, writes the clean-shutdown mark and
    /// closes the store. If only the mark or the close fails (a full disk), the data is
    /// durable anyway: that is logged and the next start runs crash recovery.
    ///
    /// Fails if the final sync fails, i.e. written data may not be on disk.
    pub fn shutdown(&self) -> FsResult<()> {
        self.scrub.stop();
        self.gc.stop();
        self.sweeper.stop();
        self.batcher.stop();
        self.sync.stop();
        self.engine.sync_durable()?;
        let marked = self
            .engine
            .meta
            .set_system_u64(SYS_CLEAN_SHUTDOWN, 1)
            .and_then(|_| self.engine.meta.close());
        if let Err(e) = marked {
            tracing::error!(error = %e, "data is synced, but the clean-shutdown mark could not be written; the next start will run recovery");
        }
        Ok(())
    }

    /// Filesystem-wide numbers: space from the disk under the data dir.
    ///
    /// Fails if the data dir cannot be queried.
    pub fn statfs(&self) -> FsResult<StatFs> {
        let c = std::ffi::CString::new(self.data_dir.as_os_str().as_encoded_bytes())
            .map_err(|_| FsError::Inval)?;
        // SAFETY: `c` is a valid NUL-terminated path and `st` a zeroed out-parameter of
        // the right type, as statvfs(3) requires.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: see above.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        if rc != 0 {
            return Err(FsError::from_io(
                "statvfs",
                &std::io::Error::last_os_error(),
            ));
        }
        let frsize = st.f_frsize.max(1);
        let scale = |blocks: u64| blocks.saturating_mul(frsize) / 4096;
        let used = self.next_ino.load(Ordering::Relaxed);
        Ok(StatFs {
            blocks: scale(st.f_blocks),
            bfree: scale(st.f_bfree),
            bavail: scale(st.f_bavail),
            files: used + (1 << 32),
            ffree: 1 << 32,
            bsize: 4096,
            namelen: NAME_MAX as u32,
        })
    }

    /// A fresh inode number, below the numbers reserved for snapshot views.
    ///
    /// Fails with `NoSpace` once the live inode numbers are used up.
    fn alloc_ino(&self) -> FsResult<Ino> {
        let ino = Ino(self.next_ino.fetch_add(1, Ordering::Relaxed));
        if ino >= node::SNAPDIR_INO {
            return Err(FsError::NoSpace);
        }
        Ok(ino)
    }
}

/// Checks a name the kernel passed: not empty, no '/', at most `NAME_MAX` bytes.
fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".."
    {
        return Err(FsError::Inval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name(b"ok").is_ok());
        assert!(check_name(&[0xff, 0xfe]).is_ok());
        assert!(check_name(&[b'a'; 255]).is_ok());
        assert_eq!(check_name(&[b'a'; 256]), Err(FsError::NameTooLong));
        assert_eq!(check_name(b""), Err(FsError::Inval));
        assert_eq!(check_name(b"a/b"), Err(FsError::Inval));
        assert_eq!(check_name(b".."), Err(FsError::Inval));
    }
}
