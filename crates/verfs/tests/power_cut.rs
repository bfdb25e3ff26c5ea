//! Power cut: the data dir lives on an ext4 image whose "disk" can be copied at an
//! instant. What the kernel still holds in ext4's page cache at that instant is not in
//! the copy, exactly as after a power failure; whatever was fsync'd is. The copy is
//! taken with a reflink (FICLONE) on a btrfs that holds the image, which is atomic.
//! Then a daemon runs on the copy (ext4 replays its journal first) and every fsync'd
//! file, every committed sqlite transaction and an atomically replaced file must be
//! there.
//!
//! Layers: `outer.img` (btrfs, loop) ⊃ `disk.img` (ext4, loop) ⊃ the data dir.

mod common;

use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use common::*;

/// A btrfs on a loop-mounted image file, holding an ext4 image mounted on a second
/// loop device. Unmounted (lazily, inner first) on drop.
struct Disks {
    dir: tempfile::TempDir,
    mounted: Vec<PathBuf>,
}

impl Disks {
    fn new() -> Self {
        let dir = tempdir();
        let d = path_str(dir.path());
        sh_ok(&format!(
            "cd {d} && truncate -s 3G outer.img && mkfs.btrfs -q outer.img && \
             mkdir outer inner cut && mount -o loop outer.img outer && \
             truncate -s 1500M outer/disk.img && mkfs.ext4 -q -F outer/disk.img"
        ));
        let mut disks = Disks {
            mounted: vec![dir.path().join("outer")],
            dir,
        };
        disks.mount_image("disk.img", "inner");
        disks
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mount_image(&mut self, image: &str, at: &str) {
        sh_ok(&format!(
            "mount -o loop {} {}",
            path_str(&self.path("outer").join(image)),
            path_str(&self.path(at))
        ));
        self.mounted.push(self.path(at));
    }

    /// The power cut: an atomic copy of the ext4 image as the disk holds it now.
    fn cut(&self) {
        let outer = path_str(&self.path("outer"));
        sh_ok(&format!(
            "cp --reflink=always {outer}/disk.img {outer}/cut.img"
        ));
    }

    /// Unmounts the live ext4 (its daemon must be gone).
    fn unmount_inner(&mut self) {
        let inner = self.path("inner");
        sh_ok(&format!("umount {}", path_str(&inner)));
        self.mounted.retain(|p| p != &inner);
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for p in self.mounted.iter().rev() {
            let _ = run_timeout(30, "umount", &["-l", &path_str(p)]);
        }
    }
}

/// Files written with `conv=fsync`, their expected sha256 by name.
fn write_synced_files(fs: &TestFs) -> Vec<(String, String)> {
    sh_ok(&format!("mkdir {} && sync {}", fs.m("d"), fs.m("")));
    let mut out = Vec::new();
    for (i, len) in [5_000usize, 200_000, 3 << 20, 70_000]
        .into_iter()
        .enumerate()
    {
        let name = format!("d/f{i}");
        let src = fs.t(&format!("f{i}.src"));
        write_random(&src, len, 500 + i as u64);
        sh_ok(&format!(
            "dd if={src} of={} bs=64k conv=fsync status=none",
            fs.m(&name)
        ));
        out.push((name, sha256(&src)));
    }
    // The atomic-replace pattern: write a temp file, fsync it, rename it over the old
    // one, fsync the directory.
    let src = fs.t("replaced.src");
    write_random(&src, 100_000, 510);
    sh_ok(&format!(
        "printf old > {old} && sync {old} && dd if={src} of={tmp} bs=64k conv=fsync status=none && \
         mv {tmp} {old} && sync {dir}",
        old = fs.m("d/config"),
        tmp = fs.m("d/config.tmp"),
        dir = fs.m("d"),
    ));
    out.push(("d/config".to_owned(), sha256(&src)));
    out
}

/// Starts committing one sqlite transaction per run; each number is logged outside
/// the disk only after sqlite3 returned, i.e. after its fsyncs. `synchronous=EXTRA`:
/// in rollback-journal mode a commit is the journal's unlink, which sqlite's default
/// (FULL) does not follow with a directory fsync, so the last commit before a power cut
/// may roll back on any POSIX filesystem; EXTRA syncs the directory.
fn start_sqlite(fs: &TestFs, log: &str) -> Background {
    let db = fs.m("app.db");
    sh_ok(&format!(
        "sqlite3 {db} 'CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);'"
    ));
    Background::spawn(&format!(
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); \
         sqlite3 {db} \"PRAGMA synchronous=EXTRA; INSERT INTO t VALUES($i, randomblob(2000));\" >/dev/null 2>&1 || exit 0; \
         echo $i >> {log}; done"
    ))
}

fn last_logged(log: &str) -> u64 {
    sh_ok(&format!("tail -n 1 {log}"))
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn fsynced_data_survives_a_power_cut() {
    let mut disks = Disks::new();
    let data = disks.path("inner").join("data");
    create_data_dir(&data);
    let mut fs = TestFs::with_data(&data);
    fs.start();
    let synced = write_synced_files(&fs);
    // Unsynced work in flight at the cut: sqlite commits, then a big write that is
    // never synced.
    let log = fs.t("committed");
    let writer = start_sqlite(&fs, &log);
    sleep(Duration::from_millis(2500));
    let busy = Background::spawn(&format!(
        "dd if=/dev/urandom of={} bs=1M count=400 status=none",
        fs.m("unsynced.bin")
    ));
    sleep(Duration::from_millis(700));
    // The control: 64 MiB written straight to the ext4, never synced, must not all be
    // in the copy, or the copy would not be a power cut.
    let control = disks.path("inner").join("control.bin");
    sh_ok(&format!(
        "head -c 67108864 /dev/zero > {}",
        path_str(&control)
    ));
    let committed = last_logged(&log);
    disks.cut();
    fs.assert_alive();
    fs.kill9();
    let _ = writer.finish(Duration::from_secs(60));
    let _ = busy.finish(Duration::from_secs(60));
    assert!(
        committed > 5,
        "only {committed} transactions before the cut"
    );
    disks.unmount_inner();
    drop(fs);

    disks.mount_image("cut.img", "cut");
    let cut_root = disks.path("cut");
    let control_len = std::fs::metadata(cut_root.join("control.bin")).map_or(0, |m| m.len());
    assert!(
        control_len < 64 << 20,
        "unsynced control file fully on the copied disk: not a power cut"
    );
    let mut after = TestFs::with_data(&cut_root.join("data"));
    after.start();
    for (name, sum) in &synced {
        assert_eq!(
            &sha256(&after.m(name)),
            sum,
            "fsync'd {name} after power cut"
        );
    }
    let db = after.m("app.db");
    assert_eq!(
        sh_ok(&format!("sqlite3 {db} 'PRAGMA integrity_check;'")).trim(),
        "ok"
    );
    let rows: u64 = sh_ok(&format!("sqlite3 {db} 'SELECT count(*) FROM t;'"))
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        rows >= committed,
        "{committed} transactions committed before the cut, {rows} rows after"
    );
    eprintln!(
        "power cut: {committed} committed, {rows} rows after; control file {control_len} \
         of {} bytes on disk",
        64 << 20
    );
    // Whatever is left of the unsynced write reads without errors, and the filesystem
    // takes new writes.
    let unsynced = after.m("unsynced.bin");
    sh_ok(&format!(
        "ls -la {} && {{ test ! -e {unsynced} || cat {unsynced} > /dev/null; }}",
        after.m("d")
    ));
    let sum = sha256(&synced_copy(&after, "d/f2"));
    assert_eq!(sum, synced[2].1, "copy after the power cut");
    after.stop();
    after.assert_no_panic();
}

/// Copies `name` to a new file in the mount with fsync and returns its path.
fn synced_copy(fs: &TestFs, name: &str) -> String {
    let to = fs.m(&format!("{name}.copy"));
    sh_ok(&format!(
        "dd if={} of={to} bs=1M conv=fsync status=none",
        fs.m(name)
    ));
    to
}
