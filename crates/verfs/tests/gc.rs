//! Garbage collection through the mount: deleted data gives its pack space back
//! (`gc run`), never data a snapshot or a live file still uses, on a full disk too,
//! and a crash at any GC step leaves every surviving file intact and fsck clean.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};

const MIB: u64 = 1 << 20;

/// A filesystem whose daemon reads `config` (plus `gc_idle_min_ms = 0`, so only the
/// test starts GC), started.
fn mounted(config: &str) -> TestFs {
    let mut fs = TestFs::new();
    fs::write(
        fs.dir().join("config.toml"),
        format!("gc_idle_min_ms = 0\n{config}"),
    )
    .expect("write config");
    fs.start();
    fs
}

/// Compressible text that does not dedup with itself: lines of seeded random words.
fn write_text(path: &str, len: usize, seed: u64) {
    const WORDS: [&str; 16] = [
        "snapshot", "chunk", "pack", "extent", "inode", "dirent", "vault", "garbage", "collect",
        "rewrite", "discard", "record", "index", "fsync", "batch", "mount",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(len + 64);
    while out.len() < len {
        let n = rng.gen_range(3..12);
        for _ in 0..n {
            out.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
            out.push(' ');
        }
        out.push_str(&rng.gen::<u32>().to_string());
        out.push('\n');
    }
    out.truncate(len);
    fs::write(path, out).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

fn sync_fs(fs: &TestFs) {
    sh_ok(&format!("sync -f {}", fs.m("")));
}

/// The seed's GC gate: 5 × 200 MiB random and 200 MiB of text; 4 random files and half
/// the text deleted; one `gc run` gives back at least 95% of the deleted stored bytes
/// with the default thresholds, survivors read back intact before and after a remount,
/// and fsck --read-data is clean.
///
/// Deleted stored bytes: each random file is stored raw (one record per chunk), so its
/// stored size is its length plus record headers; the text's stored size is measured
/// as the growth of the packs while it was written, and half the files are deleted.
#[test]
fn gc_gate_reclaims_deleted_data() {
    let mut fs = mounted("");
    for i in 0..5u64 {
        write_random(&fs.m(&format!("r{i}")), 200 * MIB as usize, i);
    }
    sync_fs(&fs);
    let before_text = fs.pack_bytes_on_disk();
    sh_ok(&format!("mkdir {}", fs.m("text")));
    for i in 0..200u64 {
        write_text(&fs.m(&format!("text/t{i:03}")), MIB as usize, 1000 + i);
    }
    sync_fs(&fs);
    let full = fs.pack_bytes_on_disk();
    let text_stored = full - before_text;
    let random_stored = before_text / 5;
    let deleted = 4 * random_stored + text_stored / 2;
    let mut keep = vec!["r4".to_string()];
    for i in 0..200u64 {
        let name = format!("text/t{i:03}");
        if i % 2 == 0 {
            fs::remove_file(fs.m(&name)).expect("rm text");
        } else {
            keep.push(name);
        }
    }
    for i in 0..4 {
        fs::remove_file(fs.m(&format!("r{i}"))).expect("rm random");
    }
    let sums: Vec<(String, String)> = keep.iter().map(|k| (k.clone(), sha256(&fs.m(k)))).collect();
    let report = fs.gc_run();
    let after = fs.pack_bytes_on_disk();
    let dropped = full - after;
    eprintln!(
        "packs {full} -> {after} bytes; deleted stored ~{deleted}; text stored {text_stored}; report {report}"
    );
    assert!(
        dropped as f64 >= 0.95 * deleted as f64,
        "pack bytes dropped by {dropped}, less than 95% of the {deleted} deleted stored bytes"
    );
    assert_eq!(fs.stats()["pack_bytes"].as_u64(), Some(after));
    for (k, s) in &sums {
        assert_eq!(&sha256(&fs.m(k)), s, "{k} after GC");
    }
    fs.restart();
    for (k, s) in &sums {
        assert_eq!(&sha256(&fs.m(k)), s, "{k} after remount");
    }
    fs.assert_no_panic();
    fs.assert_fsck_clean();
}

/// Deleting a file that lives in the active pack gives its bytes back with the default
/// configuration: GC seals the active pack early and removes or rewrites it.
#[test]
fn active_pack_space_comes_back() {
    let mut fs = mounted("");
    write_random(&fs.m("keep"), 3 * MIB as usize, 1);
    write_random(&fs.m("gone"), 20 * MIB as usize, 2);
    sync_fs(&fs);
    let full = fs.pack_bytes_on_disk();
    let keep = sha256(&fs.m("keep"));
    fs::remove_file(fs.m("gone")).expect("rm");
    let report = fs.gc_run();
    let after = fs.pack_bytes_on_disk();
    assert!(
        full - after >= 18 * MIB,
        "only {} bytes back of 20 MiB deleted ({report})",
        full - after
    );
    assert_eq!(sha256(&fs.m("keep")), keep);
    // Nothing left to do: a second run frees nothing.
    let again = fs.gc_run();
    assert_eq!(again["bytes_reclaimed"], 0, "{again}");
    let status: serde_json::Value =
        serde_json::from_slice(&fs.gc_cmd(&["status", "--json"]).stdout).expect("status");
    assert_eq!(status["runs"], 2, "{status}");
    assert_eq!(status["running"], false);
    fs.assert_fsck_clean();
}

/// A snapshot keeps what it references: GC frees none of a deleted file's bytes while
/// a snapshot holds it, and frees them once the snapshot is deleted and swept.
#[test]
fn snapshot_holds_space_until_deleted_and_swept() {
    let mut fs = mounted("pack_max_size_mb = 4\n");
    write_random(&fs.m("a"), 16 * MIB as usize, 7);
    sync_fs(&fs);
    let sum = sha256(&fs.m("a"));
    fs.snapshot_ok(&["create", "s1"]);
    fs::remove_file(fs.m("a")).expect("rm");
    let full = fs.pack_bytes_on_disk();
    let report = fs.gc_run();
    assert_eq!(report["chunks_freed"], 0, "{report}");
    assert!(fs.pack_bytes_on_disk() + MIB / 2 >= full, "{report}");
    assert_eq!(sha256(&fs.m(".snapshots/s1/a")), sum);
    fs.snapshot_ok(&["delete", "s1"]);
    let mut waited = 0;
    while fs.stats()["sweep_pending"].as_bool() != Some(false) {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
        assert!(waited < 600, "sweep did not finish");
    }
    let report = fs.gc_run();
    let after = fs.pack_bytes_on_disk();
    assert!(
        full - after >= 15 * MIB,
        "freed {} ({report})",
        full - after
    );
    fs.assert_fsck_clean();
}

/// On a full disk (a 300 MiB tmpfs holding the data dir), deleting files and running
/// GC makes room: wholly dead packs go first and need no space.
#[test]
fn full_disk_accepts_writes_again_after_gc() {
    let disk = Tmpfs::new("300m");
    let data = disk.path().join("data");
    create_data_dir(&data);
    let mut fs = TestFs::with_data(&data);
    fs::write(fs.dir().join("config.toml"), "gc_idle_min_ms = 0\n").expect("config");
    fs.start();
    let mut n = 0;
    loop {
        let out = sh(&format!(
            "dd if=/dev/urandom of={} bs=1M count=20 conv=fsync 2>&1",
            fs.m(&format!("f{n}"))
        ));
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(msg.contains("No space left"), "dd failed otherwise: {msg}");
            break;
        }
        n += 1;
        assert!(n < 40, "300 MiB never filled");
    }
    let keep = sha256(&fs.m("f0"));
    for i in 1..=n {
        let _ = fs::remove_file(fs.m(&format!("f{i}")));
    }
    let report = fs.gc_run();
    eprintln!("filled with {n} files; {report}");
    sh_ok(&format!(
        "dd if=/dev/urandom of={} bs=1M count=50 conv=fsync 2>&1",
        fs.m("new")
    ));
    assert_eq!(sha256(&fs.m("f0")), keep);
    assert_eq!(size_of(&fs.m("new")), 50 * MIB);
    fs.assert_no_panic();
    fs.assert_fsck_clean();
}

/// Writes the crash-test files: survivors `k*` and victims `v*` interleaved in small
/// packs, plus one large victim spanning whole packs. Returns the survivors' sums.
fn crash_fixture(fs: &TestFs) -> BTreeMap<String, String> {
    let mut rng = StdRng::seed_from_u64(99);
    for i in 0..12 {
        let len = rng.gen_range(100_000..400_000);
        let name = if i % 2 == 0 {
            format!("k{i}")
        } else {
            format!("v{i}")
        };
        write_random(&fs.m(&name), len, 500 + i);
    }
    write_random(&fs.m("vbig"), 4 * MIB as usize, 77);
    sync_fs(fs);
    let mut sums = BTreeMap::new();
    for e in fs::read_dir(&fs.mnt).expect("ls") {
        let name = e.expect("entry").file_name().into_string().expect("utf8");
        if name.starts_with('v') {
            fs::remove_file(fs.m(&name)).expect("rm victim");
        } else {
            sums.insert(name.clone(), sha256(&fs.m(&name)));
        }
    }
    sums
}

fn assert_sums(fs: &TestFs, sums: &BTreeMap<String, String>, when: &str) {
    for (k, s) in sums {
        assert_eq!(&sha256(&fs.m(k)), s, "{k} {when}");
    }
}

/// Kills the daemon at GC step `point` (a crash point of the test build), restarts it,
/// and checks that survivors are intact, GC completes on the next run, and fsck is
/// clean.
fn crash_at(point: &str) {
    let mut fs = TestFs::new();
    fs::write(
        fs.dir().join("config.toml"),
        "gc_idle_min_ms = 0\npack_max_size_mb = 1\n",
    )
    .expect("config");
    fs.start_with_env(&[("VERFS_CRASH_AT", point)]);
    let sums = crash_fixture(&fs);
    let out = fs.gc_cmd(&["run", "--wait", "--json"]);
    assert!(
        !out.status.success(),
        "{point}: GC finished without reaching the point"
    );
    let status = fs.reap_crashed(Duration::from_secs(60));
    assert!(status.code() != Some(0), "{point}: daemon exited cleanly");
    assert!(
        fs.log().contains(&format!("crash point {point} reached")),
        "{point} not reached; log:\n{}",
        fs.log()
    );
    fs.start();
    assert_sums(&fs, &sums, &format!("after a crash at {point}"));
    let report = fs.gc_run();
    assert_sums(
        &fs,
        &sums,
        &format!("after GC following a crash at {point}"),
    );
    assert!(
        fs.stats()["unreferenced_chunks"].as_u64() == Some(0),
        "{point}: chunks left unreferenced after the second run ({report})"
    );
    fs.restart();
    assert_sums(&fs, &sums, &format!("after remount, crash at {point}"));
    fs.assert_no_panic();
    fs.assert_fsck_clean();
}

#[test]
fn crash_after_discard_append() {
    crash_at("gc-discard-appended");
}

#[test]
fn crash_after_discard_sync() {
    crash_at("gc-discard-synced");
}

#[test]
fn crash_after_checkpoint_commit() {
    crash_at("gc-checkpoint-advanced");
}

#[test]
fn crash_after_chunk_records_deleted() {
    crash_at("gc-chunks-deleted");
}

#[test]
fn crash_after_pack_removed() {
    crash_at("gc-pack-deleted");
}

#[test]
fn crash_after_temp_pack_written() {
    crash_at("gc-temp-written");
}

#[test]
fn crash_after_temp_pack_synced() {
    crash_at("gc-temp-synced");
}

#[test]
fn crash_after_rename() {
    crash_at("gc-renamed");
}

#[test]
fn crash_after_directory_sync() {
    crash_at("gc-dir-synced");
}

#[test]
fn crash_after_reader_dropped() {
    crash_at("gc-reader-dropped");
}

#[test]
fn crash_after_discard_compaction() {
    crash_at("gc-discard-compacted");
}

/// GC racing writers that keep re-storing the very chunks it frees (files built from a
/// small pool of blocks, deleted and written again): every file left reads back as
/// written, and fsck --read-data is clean.
#[test]
fn gc_during_dedup_heavy_writes_loses_nothing() {
    let mut fs = mounted("pack_max_size_mb = 2\n");
    let mut rng = StdRng::seed_from_u64(5);
    let pool: Vec<Vec<u8>> = (0..24)
        .map(|_| {
            let mut b = vec![0u8; 96 * 1024];
            rng.fill_bytes(&mut b);
            b
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mnt = fs.mnt.clone();
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(6);
        let mut expect: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut i = 0u64;
        while !s.load(Ordering::SeqCst) || i < 60 {
            let mut data = Vec::new();
            for _ in 0..rng.gen_range(1..8) {
                data.extend_from_slice(&pool[rng.gen_range(0..pool.len())]);
            }
            let name = format!("w{}", i % 40);
            let mut f = fs::File::create(mnt.join(&name)).expect("create");
            f.write_all(&data).expect("write");
            if i.is_multiple_of(3) {
                f.sync_all().expect("fsync");
            }
            drop(f);
            expect.insert(name, data);
            if i % 5 == 4 {
                let victim = format!("w{}", rng.gen_range(0..40));
                if expect.remove(&victim).is_some() {
                    fs::remove_file(mnt.join(&victim)).expect("rm");
                }
            }
            i += 1;
        }
        expect
    });
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(400));
        fs.gc_run();
    }
    stop.store(true, Ordering::SeqCst);
    let expect = writer.join().expect("writer thread");
    fs.gc_run();
    for (name, data) in &expect {
        let got = fs::read(fs.mnt.join(name)).expect("read back");
        assert!(got == *data, "{name} differs after GC");
    }
    fs.restart();
    for (name, data) in &expect {
        let got = fs::read(fs.mnt.join(name)).expect("read back");
        assert!(got == *data, "{name} differs after remount");
    }
    fs.assert_no_panic();
    fs.assert_fsck_clean();
}
