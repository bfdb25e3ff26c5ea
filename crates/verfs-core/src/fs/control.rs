//! The control plane's view of a mounted filesystem.

use crate::control::{
    Control, MemoryReport, MemoryShare, Request, Response, StatsReport, StatusReport, VaultRefusal,
    VaultRequest,
};
use crate::error::{FsError, FsResult};
use crate::fs::VaultCmdError;
use std::sync::atomic::Ordering;

use crate::fs::{Fs, SnapshotCmdError};
use crate::meta::Reader;

impl Control for Fs {
    fn handle(&self, req: Request) -> Response {
        if self.read_only && req.changes_filesystem() {
            return Response::Error {
                message: "the filesystem is mounted read-only; remount it read-write first".into(),
            };
        }
        let res: Result<Response, SnapshotCmdError> = match req {
            Request::Stats => self.stats().map(Response::Stats).map_err(Into::into),
            Request::SnapshotCreate { name } => self.create_snapshot(&name).map(Response::Snapshot),
            Request::SnapshotDelete { name } => self.delete_snapshot(&name).map(Response::Snapshot),
            Request::SnapshotList { space } => self
                .list_snapshots(space)
                .map(Response::Snapshots)
                .map_err(Into::into),
            Request::SnapshotDiff { from, to } => self
                .diff_snapshots(&from, to.as_deref())
                .map(|entries| Response::Diff { entries }),
            Request::GcRun { wait: true } => {
                self.gc.run_now().map(Response::GcDone).map_err(Into::into)
            }
            Request::GcRun { wait: false } => {
                self.gc.kick();
                Ok(Response::GcStarted)
            }
            Request::GcStatus => Ok(Response::GcState(self.gc.status())),
            Request::ScrubStart { restart } => self
                .scrub
                .start(restart)
                .map(|s| Response::ScrubStarted {
                    run: s.run,
                    new: s.new,
                })
                .map_err(|e| FsError::from_io("start scrub", &e).into()),
            Request::ScrubStatus => Ok(Response::ScrubState(self.scrub.status())),
            Request::ScrubCancel => {
                self.scrub.cancel();
                Ok(Response::ScrubState(self.scrub.status()))
            }
            Request::Vault(v) => return self.vault_command(v),
            Request::Status => self.status().map(Response::Status).map_err(Into::into),
        };
        res.unwrap_or_else(|e| Response::Error {
            message: e.to_string(),
        })
    }
}

impl Fs {
    /// One look at the running daemon, for `verfsnext status`.
    ///
    /// Fails if metadata or the disk's free space cannot be read.
    pub fn status(&self) -> FsResult<StatusReport> {
        let gc = self.gc.status();
        let st = self.statfs()?;
        Ok(StatusReport {
            mount_point: self.mount_point.display().to_string(),
            data_dir: self.data_dir.display().to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            vault: self.vault_state()?.as_str().into(),
            snapshots: self.snapshot_count(),
            sweep_pending: self.sweeper.figures().pending.load(Ordering::SeqCst),
            sweep_removed: self.sweeper.figures().removed.load(Ordering::Relaxed),
            gc_running: gc.running,
            gc_runs: gc.runs,
            pack_bytes: self.engine.packs.usage().1,
            disk_free_bytes: st.bavail.saturating_mul(u64::from(st.bsize)),
            read_only: self.read_only,
        })
    }

    /// Runs a vault command and answers with the vault's state or the refusal.
    fn vault_command(&self, req: VaultRequest) -> Response {
        let res = match &req {
            VaultRequest::Create { password, key_file } => {
                self.vault_create(password.expose(), key_file.expose())
            }
            VaultRequest::Unlock { password, key_file } => {
                self.vault_unlock(password.expose(), key_file.expose())
            }
            VaultRequest::Lock => self.vault_lock(),
            VaultRequest::ChangePassword {
                old_password,
                new_password,
                key_file,
            } => self.vault_change_password(
                old_password.expose(),
                new_password.expose(),
                key_file.expose(),
            ),
            VaultRequest::Status => Ok(()),
        };
        let refused = |kind, message: String| Response::VaultRefused { kind, message };
        match res.and_then(|()| Ok(self.vault_state()?)) {
            Ok(state) => Response::Vault {
                state: state.as_str().into(),
            },
            Err(VaultCmdError::State(m)) => refused(VaultRefusal::State, m),
            Err(e @ VaultCmdError::WrongKey) => refused(VaultRefusal::WrongKey, e.to_string()),
            Err(VaultCmdError::KeyFile(m)) => refused(VaultRefusal::KeyFile, m),
            Err(e @ VaultCmdError::Fs(_)) => refused(VaultRefusal::Failed, e.to_string()),
        }
    }
}

/// A `kB` field of `/proc/self/status` (Linux), e.g. `VmHWM:`.
fn proc_status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix(field))?;
    line.split_whitespace().next()?.parse().ok()
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Fs {
    /// Space and activity figures. Walks every chunk record, so it costs O(chunks).
    ///
    /// Fails if metadata cannot be read.
    pub fn stats(&self) -> FsResult<StatsReport> {
        let mut r = StatsReport::default();
        self.engine.meta.view()?.for_each_chunk(|_, c| {
            if c.refcount == 0 {
                r.unreferenced_chunks += 1;
                return Ok(true);
            }
            r.chunk_count += 1;
            r.logical_bytes += c.refcount * u64::from(c.plain_len);
            r.unique_bytes += u64::from(c.plain_len);
            r.stored_chunk_bytes += u64::from(c.stored_len);
            Ok(true)
        })?;
        (r.pack_count, r.pack_bytes) = self.engine.packs.usage();
        r.dedup_ratio = ratio(r.logical_bytes, r.unique_bytes);
        r.compression_ratio = ratio(r.unique_bytes, r.stored_chunk_bytes);
        let mut a = self.engine.stats.snapshot();
        (a.pack_index_hits, a.pack_index_misses) = self.engine.packs.index_cache_counts();
        r.chunk_cache_hit_rate = ratio(
            a.chunk_cache_hits,
            a.chunk_cache_hits + a.chunk_cache_misses,
        );
        r.dedup_cache_hit_rate = ratio(
            a.dedup_cache_hits,
            a.dedup_cache_hits + a.dedup_cache_misses,
        );
        r.pack_index_hit_rate = ratio(a.pack_index_hits, a.pack_index_hits + a.pack_index_misses);
        r.mean_batch_blocks = ratio(a.batch_blocks, a.batches);
        r.snapshot_count = self.snapshot_count();
        let sweep = self.sweeper.figures();
        r.sweep_pending = sweep.pending.load(Ordering::SeqCst);
        r.swept_versions = sweep.removed.load(Ordering::Relaxed);
        r.activity = a;
        r.memory = self.memory_report();
        Ok(r)
    }

    /// The memory budget's shares with what each holds now (see `config::budget`).
    pub fn memory_report(&self) -> MemoryReport {
        let b = self.engine.memory_budget();
        let (index, vault) = self.engine.packs.cache_bytes();
        let share = |name: &str, limit_bytes: u64, used_bytes: Option<u64>| MemoryShare {
            name: name.to_string(),
            limit_bytes,
            used_bytes,
        };
        let shares = vec![
            share(
                "write_back",
                b.write_back,
                Some(self.batcher.in_flight_bytes()),
            ),
            share("compression", b.compression, None),
            share(
                "held_tails",
                b.held_tails,
                Some(self.engine.stats.held_tail_bytes()),
            ),
            share(
                "chunk_cache",
                b.chunk_cache,
                Some(self.engine.chunk_cache_bytes()),
            ),
            share(
                "dedup_cache",
                b.dedup_cache,
                Some(self.engine.dedup_cache_bytes()),
            ),
            share("pack_index_cache", b.pack_index_cache, Some(index)),
            share("vault_cache", b.vault_cache, Some(vault)),
            share("meta_memtables", b.meta_memtables, None),
            share("meta_block_cache", b.meta_block_cache, None),
            share("runtime", b.runtime, None),
        ];
        MemoryReport {
            limit_bytes: b.limit,
            shares,
            rss_bytes: proc_status_kib("VmRSS:").map(|k| k * 1024),
            peak_rss_bytes: proc_status_kib("VmHWM:").map(|k| k * 1024),
        }
    }

    /// The data dir, where the control socket lives.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }
}
