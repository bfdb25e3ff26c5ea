//! Core tests: `Fs` driven directly on a temp data dir, no FUSE, with pack files on the
//! fault-injecting storage (`data/packio/faulty.rs`), so disk faults are reproducible
//! and fast. Each test states the outcome a Linux filesystem user gets: the errno of
//! the call that meets the fault, fsync'd data still readable, the filesystem still
//! serving, and (fsyncgate) no fsync answered success after a failed one.

use std::sync::mpsc;

use super::{Caller, Fs};
use crate::config::Config;
use crate::data::packio::faulty::{FaultPlan, Faults, FaultyIo};
use crate::error::{FsError, FsResult};
use crate::types::Ino;
use crate::write::Done;

fn noise(seed: u32, len: usize) -> Vec<u8> {
    crate::data::store::fault_tests::noise(seed, len)
}

const ROOT: Caller = Caller {
    uid: 0,
    gid: 0,
    pid: 1,
};

/// A started `Fs` on a temp dir whose packs go through `faults`.
struct Core {
    fs: Option<Fs>,
    cfg: Config,
    faults: Faults,
    _dir: tempfile::TempDir,
}

impl Core {
    fn new() -> Core {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config {
            data_dir: dir.path().join("data"),
            // Syncs happen when the tests ask, not in the background.
            sync_interval_ms: 600_000,
            gc_idle_min_ms: 0,
            batch_max_delay_ms: 5,
            ..Config::default()
        };
        let faults = Faults::new();
        let fs = Fs::start_with_io(&cfg, FaultyIo::shared(faults.clone())).expect("start");
        Core {
            fs: Some(fs),
            cfg,
            faults,
            _dir: dir,
        }
    }

    fn fs(&self) -> &Fs {
        self.fs.as_ref().expect("started")
    }

    /// Shuts down (returning what the final sync said) and starts again, faults cleared.
    fn restart(&mut self) -> FsResult<()> {
        let res = self.fs.take().map_or(Ok(()), |fs| fs.shutdown());
        self.faults.clear();
        // The daemon runs with umask 077; this test process does not, so SurrealKV's
        // new files get modes the startup check refuses.
        crate::datadir::DataDirPerms::OWNER_ONLY
            .tighten(&self.cfg.data_dir)
            .expect("tighten data dir");
        let io = FaultyIo::shared(self.faults.clone());
        self.fs = Some(Fs::start_with_io(&self.cfg, io).expect("restart"));
        res
    }

    fn create(&self, name: &str) -> (Ino, u64) {
        let flags = libc::O_RDWR;
        let (attr, fh) = self
            .fs()
            .create(ROOT, Ino::ROOT, name.as_bytes(), 0o644, 0o022, flags)
            .expect("create");
        (attr.ino, fh.0)
    }

    fn write(&self, ino: Ino, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        wait(|done| {
            self.fs()
                .write(ino, crate::types::FileHandle(fh), offset, data, done)
        })
    }

    fn fsync(&self, ino: Ino) -> FsResult<()> {
        wait(|done| self.fs().fsync(ino, done))
    }

    fn read_all(&self, name: &str, len: u32) -> FsResult<Vec<u8>> {
        let ino = self.fs().lookup(Ino::ROOT, name.as_bytes())?.ino;
        let fh = self.fs().open(ROOT, ino, libc::O_RDONLY)?;
        let data = self.fs().read(ino, fh, 0, len);
        let _ = self.fs().release(ino, fh);
        data
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(fs) = self.fs.take() {
            self.faults.clear();
            let _ = fs.shutdown();
        }
    }
}

/// Runs a callback-style call and waits for its answer.
fn wait<T: Send + 'static>(call: impl FnOnce(Done<T>)) -> FsResult<T> {
    let (tx, rx) = mpsc::channel();
    call(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.recv().unwrap_or(Err(FsError::ShuttingDown))
}

fn errno(r: FsResult<impl std::fmt::Debug>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.errno(),
    }
}

#[test]
fn written_and_fsynced_data_reads_back_after_a_restart() {
    let mut c = Core::new();
    let (ino, fh) = c.create("f");
    let data = noise(1, 300_000);
    assert_eq!(c.write(ino, fh, 0, &data).expect("write"), 300_000);
    c.fsync(ino).expect("fsync");
    assert_eq!(c.read_all("f", 400_000).expect("read"), data);
    c.restart().expect("clean shutdown");
    assert_eq!(c.read_all("f", 400_000).expect("read after restart"), data);
}

#[test]
fn a_failed_pack_sync_fails_that_fsync_and_every_later_one() {
    let mut c = Core::new();
    let (ino, fh) = c.create("f");
    let first = noise(2, 200_000);
    c.write(ino, fh, 0, &first).expect("write");
    c.fsync(ino).expect("fsync before the fault");
    let (ino2, fh2) = c.create("g");
    c.write(ino2, fh2, 0, &noise(3, 200_000)).expect("write");
    c.faults.set(FaultPlan {
        sync_errno: Some(libc::EIO),
        ..FaultPlan::default()
    });
    assert_eq!(errno(c.fsync(ino2)), libc::EIO);
    // The disk recovers; the failed sync's data may be gone without a trace, so no
    // later fsync may answer success for it (or for anything else) until a remount.
    c.faults.clear();
    assert_eq!(
        errno(c.fsync(ino2)),
        libc::EIO,
        "fsyncgate: retry answered success"
    );
    assert_eq!(errno(c.fsync(ino)), libc::EIO);
    // Reads go on; what was fsync'd before the fault is intact.
    assert_eq!(c.read_all("f", 300_000).expect("read"), first);
    // The final sync at shutdown fails too; the restart starts clean.
    assert!(c.restart().is_err(), "shutdown reported a clean sync");
    assert_eq!(c.read_all("f", 300_000).expect("read after restart"), first);
    c.fsync(ino).expect("fsync after the remount");
    let report = shut_down_and_check(&mut c);
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_full_disk_fails_the_write_path_with_enospc_and_keeps_stored_data() {
    let mut c = Core::new();
    let (ino, fh) = c.create("kept");
    let kept = noise(4, 150_000);
    c.write(ino, fh, 0, &kept).expect("write");
    c.fsync(ino).expect("fsync");
    c.faults.set(FaultPlan {
        write_budget: Some(10_000),
        ..FaultPlan::default()
    });
    let (ino2, fh2) = c.create("big");
    // Writes are queued (write-back); the failure reaches the writer at latest at fsync.
    let queued = c.write(ino2, fh2, 0, &noise(5, 400_000));
    let synced = c.fsync(ino2);
    let failed = [queued.err(), synced.err()];
    assert!(
        failed.iter().flatten().any(|e| e.errno() == libc::ENOSPC),
        "no ENOSPC: {failed:?}"
    );
    // Stored data stays readable, and once space is back the filesystem takes writes.
    assert_eq!(c.read_all("kept", 200_000).expect("read"), kept);
    c.faults.clear();
    let (ino3, fh3) = c.create("after");
    c.write(ino3, fh3, 0, b"space is back").expect("write");
    c.fsync(ino3).expect("fsync");
    assert_eq!(c.read_all("after", 100).expect("read"), b"space is back");
    let report = shut_down_and_check(&mut c);
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_failed_pack_read_is_eio_and_the_next_read_succeeds() {
    let mut c = Core::new();
    let (ino, fh) = c.create("f");
    let data = noise(6, 200_000);
    c.write(ino, fh, 0, &data).expect("write");
    c.fsync(ino).expect("fsync");
    // A restart empties the caches, so reads go to the pack.
    c.restart().expect("restart");
    c.faults.set(FaultPlan {
        read_errno: Some(libc::EIO),
        ..FaultPlan::default()
    });
    assert_eq!(errno(c.read_all("f", 300_000)), libc::EIO);
    c.faults.clear();
    assert_eq!(c.read_all("f", 300_000).expect("read"), data);
    let report = shut_down_and_check(&mut c);
    assert!(report.is_clean(), "{:?}", report.problems);
}

fn meta_faults(c: &Core) -> &crate::meta::faults::MetaFaults {
    &c.fs().engine.meta.faults
}

/// Shuts `c` down and runs the offline check on its data dir.
fn shut_down_and_check(c: &mut Core) -> crate::check::Report {
    if let Some(fs) = c.fs.take() {
        c.faults.clear();
        let _ = fs.shutdown();
    }
    let opts = crate::check::Options { read_data: true };
    crate::check::run(&c.cfg.data_dir, opts, &mut crate::check::NoProgress).expect("fsck ran")
}

#[test]
fn a_failed_metadata_commit_is_the_callers_errno_and_leaves_a_clean_store() {
    use crate::meta::faults::MetaFaultPlan;
    let mut c = Core::new();
    let (ino, fh) = c.create("kept");
    let kept = noise(7, 100_000);
    c.write(ino, fh, 0, &kept).expect("write");
    c.fsync(ino).expect("fsync");
    meta_faults(&c).set(MetaFaultPlan {
        commit_errno: Some(libc::ENOSPC),
        ..MetaFaultPlan::default()
    });
    let mkdir = c.fs().mkdir(ROOT, Ino::ROOT, b"d", 0o755, 0o022);
    assert_eq!(errno(mkdir), libc::ENOSPC);
    let (ino2, fh2) = {
        meta_faults(&c).clear();
        c.create("late")
    };
    meta_faults(&c).set(MetaFaultPlan {
        commit_errno: Some(libc::EIO),
        ..MetaFaultPlan::default()
    });
    // The batch holding this write cannot commit: its writer hears EIO (from the write
    // or its fsync), as from a Linux write-back error.
    let queued = c.write(ino2, fh2, 0, &noise(8, 100_000));
    let synced = c.fsync(ino2);
    let failed = [queued.err(), synced.err()];
    assert!(
        failed.iter().flatten().any(|e| e.errno() == libc::EIO),
        "no EIO: {failed:?}"
    );
    meta_faults(&c).clear();
    // The filesystem keeps serving: fsync'd data intact, new changes commit.
    assert_eq!(c.read_all("kept", 200_000).expect("read"), kept);
    c.fs()
        .mkdir(ROOT, Ino::ROOT, b"d", 0o755, 0o022)
        .expect("mkdir after");
    let report = shut_down_and_check(&mut c);
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_failed_metadata_sync_fails_that_fsync_and_every_later_one() {
    use crate::meta::faults::MetaFaultPlan;
    let mut c = Core::new();
    let (ino, fh) = c.create("f");
    c.write(ino, fh, 0, b"before").expect("write");
    c.fsync(ino).expect("fsync");
    c.write(ino, fh, 0, b"after!").expect("write");
    // A new file's first fsync syncs the WAL (`f`'s second one would be answered by
    // the intent log alone, which this fault does not touch).
    let (ino2, fh2) = c.create("g");
    c.write(ino2, fh2, 0, b"new").expect("write");
    meta_faults(&c).set(MetaFaultPlan {
        sync_errno: Some(libc::EIO),
        ..MetaFaultPlan::default()
    });
    assert_eq!(errno(c.fsync(ino2)), libc::EIO);
    meta_faults(&c).clear();
    assert_eq!(
        errno(c.fsync(ino2)),
        libc::EIO,
        "fsyncgate: retry answered success"
    );
    // Nor may the intent log's fast path answer success any more.
    assert_eq!(errno(c.fsync(ino)), libc::EIO, "fsyncgate: fast path");
    assert!(c.restart().is_err(), "shutdown reported a clean sync");
    c.fsync(ino).expect("fsync after the remount");
    let report = shut_down_and_check(&mut c);
    assert!(report.is_clean(), "{:?}", report.problems);
}
