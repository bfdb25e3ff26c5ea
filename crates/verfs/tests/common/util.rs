//! Shell, file and mount helpers shared by the mounted tests.
//!
//! Every external command runs under `timeout -k 5 N` so a hung mount fails the test.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, RngCore, SeedableRng};

const POLL: Duration = Duration::from_millis(50);

/// A tmpfs mounted on a fresh temp dir; unmounted on drop. Needs root.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"40m"`).
    pub fn new(size: &str) -> Self {
        let dir = tempdir();
        let path = path_str(dir.path());
        sh_ok(&format!("mount -t tmpfs -o size={size} tmpfs {path}"));
        Tmpfs { dir }
    }

    /// The tmpfs root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts the tmpfs read-only.
    pub fn remount_ro(&self) {
        sh_ok(&format!("mount -o remount,ro {}", path_str(self.path())));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run_timeout(10, "umount", &["-l", &path_str(self.dir.path())]);
    }
}

/// A background process killed and reaped on drop.
pub struct Background(pub Child);

impl Background {
    /// Spawns `sh -c cmd` under `timeout 300`, output discarded.
    pub fn spawn(cmd: &str) -> Self {
        let child = Command::new("timeout")
            .args(["-k", "5", "300", "sh", "-c", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn background command");
        Background(child)
    }

    /// Waits up to `limit` for exit; kills it if it is still running then.
    pub fn finish(mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("wait background") {
                return Some(status);
            }
            sleep(POLL);
        }
        None
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A fresh, uniquely named temp dir.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("verfs-it-")
        .tempdir()
        .expect("create temp dir")
}

/// Creates an empty data dir owner-only (0700, whatever the umask), as the daemon
/// requires; the temp dir around it may stay open to other users.
pub fn create_data_dir(path: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .unwrap_or_else(|e| panic!("create data dir {}: {e}", path.display()));
}

/// Path as UTF-8 for shell commands (temp paths always are).
pub fn path_str(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_owned()
}

/// The fstype of the mount at `mnt` in `/proc/mounts`, if any (the last one wins).
pub fn mount_fstype(mnt: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    let want = path_str(mnt);
    mounts.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let (_dev, point, fstype) = (f.next()?, f.next()?, f.next()?);
        (point == want).then(|| fstype.to_owned())
    })
}

/// Runs `timeout -k 5 SECS program args...` and collects its output.
pub fn run_timeout(secs: u32, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", &secs.to_string(), program])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn timeout {program}: {e}"))
}

/// Runs `timeout 120 sh -c cmd`; panics if it timed out.
pub fn sh(cmd: &str) -> Output {
    let out = run_timeout(120, "sh", &["-c", cmd]);
    assert_ne!(
        out.status.code(),
        Some(124),
        "command timed out after 120 s: {cmd}"
    );
    assert_ne!(
        out.status.code(),
        Some(137),
        "command killed after timeout: {cmd}"
    );
    out
}

/// Runs `cmd`, asserts success, returns stdout.
pub fn sh_ok(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "command failed ({}): {cmd}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs `cmd`, asserts failure, returns its stderr.
pub fn sh_fail(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {cmd}\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// sha256 of a file, as hex.
pub fn sha256(path: &str) -> String {
    let out = sh_ok(&format!("sha256sum {path}"));
    out.split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_owned()
}

/// `stat -c %s`.
pub fn size_of(path: &str) -> u64 {
    sh_ok(&format!("stat -c %s {path}"))
        .trim()
        .parse()
        .expect("stat size")
}

/// Writes `len` seeded random bytes to `path` (usually outside the mount).
pub fn write_random(path: &str, len: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut f = File::create(path).unwrap_or_else(|e| panic!("create {path}: {e}"));
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
        left -= n;
    }
    f.sync_all().unwrap_or_else(|e| panic!("fsync {path}: {e}"));
}

/// Inverts `len` bytes of `path` at `offset` (guaranteed to change them).
pub fn flip_bytes(path: &Path, offset: u64, len: usize) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset)
        .unwrap_or_else(|e| panic!("read {} at {offset}: {e}", path.display()));
    buf.iter_mut().for_each(|b| *b = !*b);
    f.write_all_at(&buf, offset).expect("write flipped bytes");
    f.sync_all().expect("fsync corrupted pack");
}

/// Sorted `type size relpath` lines and sha256s of every file under `root`,
/// skipping the virtual `/.snapshots` directory.
pub fn manifest(root: &str) -> String {
    let tree = sh_ok(&format!(
        "cd {root} && find . -mindepth 1 -path ./.snapshots -prune -o \\( -type d -printf 'd %P\\n' \\) \
         -o -printf '%y %s %P\\n' | sort"
    ));
    let sums = sh_ok(&format!(
        "cd {root} && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | \
         xargs -0 -r sha256sum"
    ));
    format!("{tree}---\n{sums}")
}
