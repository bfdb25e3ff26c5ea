//! Harness for mounted integration tests.
//!
//! [`TestFs`] owns a fresh temporary directory holding `data/` (the daemon's data dir),
//! `mnt/` (the mount point) and `daemon.log` (the daemon's stderr and stdout, appended
//! across restarts). It starts `verfsnext mount` in the foreground, waits until the mount
//! shows up in `/proc/mounts`, and stops it with SIGINT or SIGKILL. Dropping it never
//! leaves a mount or a daemon behind, even when the test panics.
//!
//! Every external command runs under `timeout`, so a hung filesystem fails a test instead
//! of hanging the suite.

#![allow(dead_code)]

pub mod damage;
mod util;
pub mod vault;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use util::*;

/// The daemon binary under test: cargo's build of it, or `VERFS_BIN` when set (a long
/// model run uses a copy of the binaries so the tree can be rebuilt meanwhile).
pub static BIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("VERFS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_verfsnext").to_string())
});
/// The fstype a verfsnext mount has in `/proc/mounts`.
pub const FSTYPE: &str = "fuse.verfsnext";

const MOUNT_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// One test filesystem: a temp dir, a data dir, a mount point and at most one daemon.
pub struct TestFs {
    dir: tempfile::TempDir,
    /// The data dir passed with `--data-dir`.
    pub data: PathBuf,
    /// The mount point.
    pub mnt: PathBuf,
    child: Option<Child>,
}

impl TestFs {
    /// A fresh temp dir with empty `data/` (0700) and `mnt/`.
    pub fn new() -> Self {
        let dir = tempdir();
        let data = dir.path().join("data");
        create_data_dir(&data);
        Self::with_data_dir(dir, data)
    }

    /// A fresh temp dir with `mnt/`, using `data` (which may live elsewhere) as data dir.
    pub fn with_data(data: &Path) -> Self {
        Self::with_data_dir(tempdir(), data.to_path_buf())
    }

    fn with_data_dir(dir: tempfile::TempDir, data: PathBuf) -> Self {
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).expect("create mount point");
        TestFs {
            dir,
            data,
            mnt,
            child: None,
        }
    }

    /// The temp dir owned by this filesystem (outside the mount; for source files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Absolute path of `rel` inside the mount, as a string for shell commands.
    pub fn m(&self, rel: &str) -> String {
        path_str(&self.mnt.join(rel))
    }

    /// Absolute path of `rel` inside the temp dir (outside the mount).
    pub fn t(&self, rel: &str) -> String {
        path_str(&self.dir.path().join(rel))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// A command with the environment the daemon runs in: no `RUST_LOG`, and `HOME`,
    /// XDG dirs and the working directory inside the temp dir so no stray config is found.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_remove("RUST_LOG")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Waits until every accepted write is committed: no write-back bytes in flight and
    /// no held tails (`stats` memory shares). Until then `stat` reports a pending
    /// file's mtime as the time of the `stat`, and the commit stamps its own time.
    pub fn wait_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = self.stats();
            let used = |name: &str| {
                s["memory"]["shares"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["name"] == name))
                    .and_then(|x| x["used_bytes"].as_u64())
            };
            if used("write_back") == Some(0) && used("held_tails") == Some(0) {
                return;
            }
            assert!(Instant::now() < deadline, "writes never settled: {s}");
            sleep(POLL);
        }
    }

    /// `verfsnext stats --json` of the running daemon.
    pub fn stats(&self) -> serde_json::Value {
        let out = self
            .command("timeout")
            .args(["60", BIN.as_str(), "stats", "--json", "--data-dir"])
            .arg(&self.data)
            .output()
            .expect("run verfsnext stats");
        assert!(
            out.status.success(),
            "stats failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stats --json is JSON")
    }

    /// `verfsnext snapshot ARGS... --data-dir DATA` against the running daemon.
    pub fn snapshot_cmd(&self, args: &[&str]) -> std::process::Output {
        self.command("timeout")
            .args(["120", BIN.as_str(), "snapshot"])
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .expect("run verfsnext snapshot")
    }

    /// `verfsnext snapshot ARGS...`, asserting success; returns stdout.
    pub fn snapshot_ok(&self, args: &[&str]) -> String {
        let out = self.snapshot_cmd(args);
        assert!(
            out.status.success(),
            "snapshot {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("snapshot output is UTF-8")
    }

    /// Starts the daemon and waits until the mount is live.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`TestFs::start`] with extra environment variables for the daemon (e.g. a crash
    /// point).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "daemon already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open daemon log");
        let child = self
            .command(BIN.as_str())
            .arg("mount")
            .arg("--data-dir")
            .arg(&self.data)
            .arg(&self.mnt)
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn verfsnext mount");
        self.child = Some(child);
        self.wait_mounted();
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + MOUNT_WAIT;
        loop {
            if mount_fstype(&self.mnt).as_deref() == Some(FSTYPE) {
                return;
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "daemon exited with {status} before mounting; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!("mount not ready after {MOUNT_WAIT:?}; log:\n{}", self.log());
            }
            sleep(POLL);
        }
    }

    /// Waits up to `limit` for the daemon to exit on its own and forgets it.
    pub fn wait_own_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_wait() {
                self.child = None;
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running after {limit:?}"
            );
            sleep(POLL);
        }
    }

    /// Exit status if the daemon has exited; `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("no daemon started");
        child.try_wait().expect("wait for daemon")
    }

    /// Asserts that the daemon process is running and its mount is live.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!("daemon died with {status}; log:\n{}", self.log());
        }
        assert_eq!(
            mount_fstype(&self.mnt).as_deref(),
            Some(FSTYPE),
            "mount at {} is gone while the daemon runs",
            self.mnt.display()
        );
    }

    /// The running daemon's pid; panics if none was started.
    pub fn pid(&self) -> libc::pid_t {
        let child = self.child.as_ref().expect("no daemon started");
        libc::pid_t::try_from(child.id()).expect("pid fits pid_t")
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child,
        // which has not been reaped yet (we still hold its `Child`).
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits for the daemon to exit, up to `limit`; `None` on timeout.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return Some(status);
            }
            sleep(POLL);
        }
        None
    }

    /// Clean shutdown: SIGINT, exit status 0 within 60 s, mount gone.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGINT);
    }

    /// Clean shutdown with the given signal (SIGINT or SIGTERM).
    pub fn stop_with(&mut self, sig: libc::c_int) {
        self.signal(sig);
        let status = self.wait_exit(STOP_WAIT).unwrap_or_else(|| {
            panic!(
                "daemon did not exit {STOP_WAIT:?} after signal {sig}; log:\n{}",
                self.log()
            )
        });
        assert_eq!(
            status.code(),
            Some(0),
            "daemon exit status after signal {sig}: {status}; log:\n{}",
            self.log()
        );
        assert_eq!(
            mount_fstype(&self.mnt),
            None,
            "mount still in /proc/mounts after clean exit"
        );
    }

    /// Crash: SIGKILL the daemon, then lazily unmount the dead mount.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let status = self
            .wait_exit(Duration::from_secs(30))
            .expect("daemon reaped after SIGKILL");
        assert!(
            status.code().is_none(),
            "daemon exited on its own before SIGKILL: {status}"
        );
        self.clear_dead_mount();
    }

    /// Lazily unmounts the mount of a daemon that died, and waits until it is gone (it
    /// may already be, if the daemon used auto_unmount).
    fn clear_dead_mount(&self) {
        let _ = run_timeout(10, "fusermount3", &["-uz", &path_str(&self.mnt)]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while mount_fstype(&self.mnt).is_some() {
            assert!(
                Instant::now() < deadline,
                "mount still present after fusermount3 -uz"
            );
            sleep(POLL);
        }
    }

    /// Waits up to `limit` for a daemon that is to die by itself (a crash point) and
    /// lazily unmounts its dead mount; returns its exit status.
    pub fn reap_crashed(&mut self, limit: Duration) -> ExitStatus {
        let status = self.wait_own_exit(limit);
        self.clear_dead_mount();
        status
    }

    /// Stops the daemon (if this harness runs one) and asserts `fsck --read-data` finds
    /// nothing.
    pub fn assert_fsck_clean(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let out = self
            .command("timeout")
            .args(["600", BIN.as_str(), "fsck", "--read-data", "--data-dir"])
            .arg(&self.data)
            .output()
            .expect("run fsck");
        assert_eq!(
            out.status.code(),
            Some(0),
            "fsck --read-data: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates the vault (`crypt -c`, password on stdin, key file in the test dir) and
    /// leaves it unlocked; returns the key file's path.
    pub fn create_vault(&self, password: &str) -> PathBuf {
        let keys = self.dir().join("vault-keys");
        fs::create_dir_all(&keys).expect("key dir");
        let mut child = self
            .command("timeout")
            .args(["120", BIN.as_str(), "crypt", "-c", "--key-dir"])
            .arg(&keys)
            .arg("--data-dir")
            .arg(&self.data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crypt -c");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            writeln!(stdin, "{password}").expect("password to crypt -c");
        }
        let out = child.wait_with_output().expect("crypt -c");
        assert!(out.status.success(), "crypt -c: {out:?}");
        keys.join("verfsnext.vault.key")
    }

    /// `verfsnext gc ARGS... --data-dir DATA` against the running daemon.
    pub fn gc_cmd(&self, args: &[&str]) -> std::process::Output {
        self.command("timeout")
            .args(["600", BIN.as_str(), "gc"])
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .expect("run verfsnext gc")
    }

    /// `verfsnext gc run --wait --json`, asserting success; returns the run's figures.
    pub fn gc_run(&self) -> serde_json::Value {
        let out = self.gc_cmd(&["run", "--wait", "--json"]);
        assert!(
            out.status.success(),
            "gc run failed ({}): {}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).expect("gc run --json is JSON")
    }

    /// Total bytes of the pack files on disk.
    pub fn pack_bytes_on_disk(&self) -> u64 {
        self.packs()
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// Stops and starts the daemon again.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// Everything the daemon wrote to stderr/stdout so far, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    /// Asserts that no daemon run so far panicked.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        let bad: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
        assert!(
            bad.is_empty(),
            "daemon log contains panics: {bad:#?}\nfull log:\n{log}"
        );
    }

    /// Pack files (`DIR/packs/*.vpk`), sorted by name.
    pub fn packs(&self) -> Vec<PathBuf> {
        let dir = self.data.join("packs");
        let mut packs: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("read packs entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "vpk"))
            .collect();
        packs.sort();
        packs
    }
}

impl Drop for TestFs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- daemon log ({}) ----\n{}",
                self.log_path().display(),
                self.log()
            );
        }
        if mount_fstype(&self.mnt).is_some() {
            let _ = run_timeout(10, "fusermount3", &["-uz", &path_str(&self.mnt)]);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(POLL);
            }
        }
    }
}
