//! The control plane's vocabulary: requests the CLI sends to a running daemon and the
//! answers, plus the [`Control`] trait the daemon's filesystem implements. The socket
//! and the wire encoding (one JSON object per line) live in the binary.

use serde::{Deserialize, Serialize};

pub use crate::gc::{GcReport, GcStatus};
pub use crate::scrub::{DamagedChunk, ScrubCursor, ScrubProgress, ScrubReport, ScrubStatus};

use crate::engine::stats::StatsSnapshot;

/// A command for the running daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Space, dedup, compression and activity figures.
    Stats,
    /// Take a snapshot of the live tree.
    SnapshotCreate {
        /// Its name.
        name: String,
    },
    /// List the snapshots.
    SnapshotList {
        /// Also compute the bytes each references and the bytes only it holds.
        #[serde(default)]
        space: bool,
    },
    /// Delete a snapshot (its versions are swept in the background).
    SnapshotDelete {
        /// Its name.
        name: String,
    },
    /// What changed between two snapshots, or a snapshot and the live tree.
    SnapshotDiff {
        /// The older snapshot.
        from: String,
        /// The newer snapshot; `None` for the live tree.
        to: Option<String>,
    },
    /// Run GC: with `wait`, answer when the run finished; else once it is started.
    GcRun {
        /// Wait for the run and report it.
        #[serde(default)]
        wait: bool,
    },
    /// The collector's state.
    GcStatus,
    /// Start a scrub pass (going on from a saved cursor unless `restart`); answered
    /// once it is started, or at once if one runs already.
    ScrubStart {
        /// Drop a saved cursor and begin at the first pack.
        #[serde(default)]
        restart: bool,
    },
    /// The scrub's state, with the last report.
    ScrubStatus,
    /// Stop the running pass after its current record, keeping its cursor.
    ScrubCancel,
    /// Create, unlock, lock or re-key the vault, or ask its state.
    Vault(VaultRequest),
    /// Where and how the daemon runs (`verfsnext status`).
    Status,
}

impl Request {
    /// Whether the request writes to the filesystem (refused on a read-only mount):
    /// snapshot create and delete, GC, scrub (its cursor), vault create and password
    /// change.
    pub fn changes_filesystem(&self) -> bool {
        match self {
            // A scrub keeps its cursor in the metadata.
            Request::SnapshotCreate { .. }
            | Request::SnapshotDelete { .. }
            | Request::GcRun { .. }
            | Request::ScrubStart { .. } => true,
            Request::Vault(v) => matches!(
                v,
                VaultRequest::Create { .. } | VaultRequest::ChangePassword { .. }
            ),
            Request::Stats
            | Request::SnapshotList { .. }
            | Request::SnapshotDiff { .. }
            | Request::GcStatus
            | Request::ScrubStatus
            | Request::ScrubCancel
            | Request::Status => false,
        }
    }
}

/// What `verfsnext status` prints: one look at a running daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Where it is mounted.
    pub mount_point: String,
    /// Its data dir.
    pub data_dir: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// `none`, `locked` or `unlocked`.
    pub vault: String,
    /// Snapshots that exist (scheduled ones included).
    pub snapshots: u64,
    /// Whether deleted snapshots' versions are still being swept.
    pub sweep_pending: bool,
    /// Versions the sweep removed since the daemon started (progress of a sweep).
    #[serde(default)]
    pub sweep_removed: u64,
    /// Whether GC is running now.
    pub gc_running: bool,
    /// GC runs finished since the start.
    pub gc_runs: u64,
    /// Bytes of pack files on disk.
    pub pack_bytes: u64,
    /// Bytes the disk under the data dir has free.
    pub disk_free_bytes: u64,
    /// Whether it serves the filesystem read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Bytes that must not be printed or kept: a password or a key file's contents. Shown
/// as `<secret>` by `Debug` and wiped when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A vault command (`verfsnext crypt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum VaultRequest {
    /// Create the vault with this password and key file (made by the CLI).
    Create {
        /// The password.
        password: Secret,
        /// The key file's bytes.
        key_file: Secret,
    },
    /// Unlock it.
    Unlock {
        /// The password.
        password: Secret,
        /// The key file's bytes.
        key_file: Secret,
    },
    /// Lock it.
    Lock,
    /// Re-wrap the folder key under a new password.
    ChangePassword {
        /// The current password.
        old_password: Secret,
        /// The new password.
        new_password: Secret,
        /// The key file's bytes.
        key_file: Secret,
    },
    /// none, locked or unlocked.
    Status,
}

/// Why a vault command was refused, as the CLI's exit status needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultRefusal {
    /// Wrong state: exists already, not created, already locked (exit 1).
    State,
    /// Wrong password or wrong key file (exit 3).
    WrongKey,
    /// Key file malformed (exit 4).
    KeyFile,
    /// Anything else (exit 1).
    Failed,
}

/// One snapshot as `snapshot list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// The generation it froze.
    pub generation: u64,
    /// Creation time, seconds since the epoch.
    pub created_secs: i64,
    /// Nanoseconds of the creation time.
    pub created_nanos: u32,
    /// Plain bytes of the file data it references (with `space`).
    #[serde(default)]
    pub referenced_bytes: Option<u64>,
    /// Plain bytes of the chunks only it references: what deleting it frees (with
    /// `space`).
    #[serde(default)]
    pub unique_bytes: Option<u64>,
    /// The kind (`hourly`, `daily`, `weekly`, `monthly`) of a snapshot the schedule
    /// took and prunes; `None` for one made by hand, which is never pruned.
    #[serde(default)]
    pub scheduled: Option<String>,
}

/// Answer to [`Request::SnapshotList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// The snapshots, in name order.
    pub snapshots: Vec<SnapshotInfo>,
    /// Whether versions of deleted snapshots are still being swept.
    pub sweep_pending: bool,
}

/// How a path differs between two trees (the `zfs diff` letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// `+`: created.
    Created,
    /// `-`: removed.
    Removed,
    /// `M`: content or metadata changed.
    Modified,
    /// `R`: renamed (`path` is the old path, `new_path` the new one).
    Renamed,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// What happened.
    pub kind: DiffKind,
    /// The path (the old one for a rename), from the filesystem root.
    pub path: String,
    /// The new path of a rename.
    #[serde(default)]
    pub new_path: Option<String>,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Stats`].
    Stats(StatsReport),
    /// Answer to a snapshot create or delete: the snapshot.
    Snapshot(SnapshotInfo),
    /// Answer to [`Request::SnapshotList`].
    Snapshots(SnapshotList),
    /// Answer to [`Request::SnapshotDiff`], in path order.
    Diff {
        /// The changed paths.
        entries: Vec<DiffEntry>,
    },
    /// Answer to [`Request::GcRun`] with `wait`: what the run did.
    GcDone(GcReport),
    /// Answer to [`Request::GcRun`] without `wait`: the run was started.
    GcStarted,
    /// Answer to [`Request::GcStatus`].
    GcState(GcStatus),
    /// Answer to [`Request::ScrubStart`].
    ScrubStarted {
        /// The run's number; its report is `last` in the status once `run` ended.
        run: u64,
        /// Whether this request started it (`false`: it was running already).
        new: bool,
    },
    /// Answer to [`Request::ScrubStatus`] and [`Request::ScrubCancel`].
    ScrubState(ScrubStatus),
    /// Answer to a vault command that succeeded: the vault's state now.
    Vault {
        /// `none`, `locked` or `unlocked`.
        state: String,
    },
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// A vault command was refused.
    VaultRefused {
        /// Why, for the exit status.
        kind: VaultRefusal,
        /// What to tell the user.
        message: String,
    },
    /// The command failed; the message says why.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// What `verfsnext stats` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Bytes referenced by file extents (every extent version; holes excluded).
    pub logical_bytes: u64,
    /// Plain bytes of the distinct chunks those extents reference.
    pub unique_bytes: u64,
    /// Compressed payload bytes of those chunks.
    pub stored_chunk_bytes: u64,
    /// Bytes of all pack files on disk (payloads, headers, indexes, garbage).
    pub pack_bytes: u64,
    /// `logical_bytes / unique_bytes`.
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_chunk_bytes`.
    pub compression_ratio: f64,
    /// Chunks with at least one reference.
    pub chunk_count: u64,
    /// Chunks no longer referenced, waiting for GC.
    pub unreferenced_chunks: u64,
    /// Pack files.
    pub pack_count: u64,
    /// Counters since the daemon started.
    pub activity: StatsSnapshot,
    /// `chunk_cache_hits / (hits + misses)`, 0 when nothing was read.
    pub chunk_cache_hit_rate: f64,
    /// `dedup_cache_hits / (hits + misses)`: dedup lookups that skipped the chunk record.
    #[serde(default)]
    pub dedup_cache_hit_rate: f64,
    /// `pack_index_hits / (hits + misses)`: sealed-pack index lookups served from memory.
    #[serde(default)]
    pub pack_index_hit_rate: f64,
    /// Mean write blocks per committed batch.
    pub mean_batch_blocks: f64,
    /// Snapshots that exist.
    #[serde(default)]
    pub snapshot_count: u64,
    /// Whether versions of deleted snapshots are still being swept.
    #[serde(default)]
    pub sweep_pending: bool,
    /// Versions removed by sweeps since the daemon started.
    #[serde(default)]
    pub swept_versions: u64,
    /// The memory budget, its shares and what each holds now.
    #[serde(default)]
    pub memory: MemoryReport,
}

/// `memory_limit_mb` and how it is used, so an operator can see which share is full
/// before raising the limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// The whole limit in bytes.
    pub limit_bytes: u64,
    /// The shares, in the order of `docs/architecture.md`.
    pub shares: Vec<MemoryShare>,
    /// The daemon's resident set now (`VmRSS`), if the platform reports it.
    pub rss_bytes: Option<u64>,
    /// The daemon's peak resident set (`VmHWM`), if the platform reports it.
    pub peak_rss_bytes: Option<u64>,
}

/// One share of the memory budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryShare {
    /// Its name (`write_back`, `chunk_cache`, `meta_memtables`, ...).
    pub name: String,
    /// Bytes it may use.
    pub limit_bytes: u64,
    /// Bytes it uses now; `None` where nothing measures it (SurrealKV reports neither
    /// its memtables nor its block cache; the compression buffers and the runtime are
    /// bounded by construction).
    pub used_bytes: Option<u64>,
}

/// What a running filesystem offers the control plane.
pub trait Control: Send + Sync {
    /// Carries out one request.
    fn handle(&self, req: Request) -> Response;
}
