//! Error handling through the real binary: startup errors exit non-zero with a message
//! naming the offending path or field (damaged metadata included, which is left as it
//! was); runtime errors (full disk, corrupted pack) reach the caller as errnos while the
//! daemon keeps running; damaged pack indexes are rebuilt.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Runs `verfsnext mount ARGS` expecting it to fail within 30 s; returns its stderr.
fn expect_startup_failure(fs: &TestFs, args: &[&str]) -> String {
    let out = fs
        .command("timeout")
        .args(["-k", "5", "30", BIN.as_str(), "mount"])
        .args(args)
        .output()
        .expect("run verfsnext mount");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code();
    assert!(
        !matches!(code, Some(124) | Some(137)),
        "verfsnext mount {args:?} did not exit within 30 s; stderr:\n{stderr}"
    );
    assert!(
        code.is_some(),
        "verfsnext mount {args:?} died by signal: {}",
        out.status
    );
    assert_ne!(
        code,
        Some(0),
        "verfsnext mount {args:?} succeeded; stderr:\n{stderr}"
    );
    assert!(!stderr.trim().is_empty(), "no error message on stderr");
    assert!(
        !stderr.contains("panicked"),
        "startup error panicked:\n{stderr}"
    );
    stderr
}

fn data_arg(fs: &TestFs) -> String {
    path_str(&fs.data)
}

#[test]
fn missing_mount_point_is_rejected() {
    let fs = TestFs::new();
    let mnt = fs.t("no-such-mountpoint");
    let err = expect_startup_failure(&fs, &["--data-dir", &data_arg(&fs), &mnt]);
    assert!(
        err.contains("no-such-mountpoint"),
        "message does not name the path:\n{err}"
    );
}

#[test]
fn mount_point_that_is_a_file_is_rejected() {
    let fs = TestFs::new();
    let file = fs.t("plain-file");
    fs::write(&file, b"not a directory").expect("create plain file");
    let err = expect_startup_failure(&fs, &["--data-dir", &data_arg(&fs), &file]);
    assert!(
        err.contains("plain-file"),
        "message does not name the path:\n{err}"
    );
    assert_eq!(
        mount_fstype(Path::new(&file)),
        None,
        "something got mounted on the file"
    );
}

#[test]
fn unknown_config_field_is_rejected() {
    let fs = TestFs::new();
    let config = fs.t("bad.toml");
    fs::write(&config, "bogus_field = 1\n").expect("write config");
    let (data, mnt) = (data_arg(&fs), path_str(&fs.mnt));
    let err = expect_startup_failure(&fs, &["--config", &config, "--data-dir", &data, &mnt]);
    assert!(
        err.contains("bogus_field"),
        "message does not name the field:\n{err}"
    );
    assert_eq!(mount_fstype(&fs.mnt), None, "mounted despite a bad config");
}

#[test]
fn second_daemon_on_same_data_dir_is_rejected() {
    let mut fs = TestFs::new();
    fs.start();
    let mnt2 = fs.t("mnt2");
    fs::create_dir(&mnt2).expect("create second mount point");
    let err = expect_startup_failure(&fs, &["--data-dir", &data_arg(&fs), &mnt2]);
    assert!(
        err.to_lowercase().contains("in use"),
        "message lacks 'in use':\n{err}"
    );
    assert_eq!(
        mount_fstype(Path::new(&mnt2)),
        None,
        "second daemon mounted"
    );

    fs.assert_alive();
    sh_ok(&format!("cp /etc/hosts {}", fs.m("h")));
    assert_eq!(sha256(&fs.m("h")), sha256("/etc/hosts"));
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn read_only_data_dir_is_rejected() {
    let tmpfs = Tmpfs::new("16m");
    let data = tmpfs.path().join("data");
    create_data_dir(&data);
    tmpfs.remount_ro();
    let fs = TestFs::with_data(&data);
    let mnt = path_str(&fs.mnt);
    let err = expect_startup_failure(&fs, &["--data-dir", &path_str(&data), &mnt]);
    let tmp = path_str(tmpfs.path());
    assert!(
        err.contains(&tmp),
        "message does not name the data dir {tmp}:\n{err}"
    );
    assert_eq!(
        mount_fstype(&fs.mnt),
        None,
        "mounted on a read-only data dir"
    );
}

/// Writes `len` random bytes to `M/name` durably; returns the expected sha256.
fn write_durable(fs: &TestFs, name: &str, len: usize, seed: u64) -> String {
    let src = fs.t(&format!("{name}.src"));
    write_random(&src, len, seed);
    sh_ok(&format!(
        "dd if={src} of={} bs=64k conv=fsync status=none",
        fs.m(name)
    ));
    sha256(&src)
}

#[test]
fn full_disk_gives_enospc_and_keeps_earlier_data() {
    let tmpfs = Tmpfs::new("40m");
    let data = tmpfs.path().join("data");
    create_data_dir(&data);
    let mut fs = TestFs::with_data(&data);
    fs.start();
    let early = write_durable(&fs, "early", 1 << 20, 200);

    let big = fs.m("big");
    let err = sh_fail(&format!(
        "dd if=/dev/urandom of={big} bs=1M count=100 conv=fsync"
    ));
    assert!(
        err.contains("No space left on device") || err.contains("Input/output error"),
        "dd on a full disk failed with an unexpected error:\n{err}"
    );
    fs.assert_alive();
    assert_eq!(
        sha256(&fs.m("early")),
        early,
        "earlier file changed on a full disk"
    );
    sh_ok(&format!("ls -la {}", fs.m("")));

    fs.stop();
    fs.start();
    assert_eq!(
        sha256(&fs.m("early")),
        early,
        "earlier file changed after remount"
    );
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn corrupted_pack_record_gives_eio_and_daemon_survives() {
    let mut fs = TestFs::new();
    fs.start();
    // `a` is written and synced first, so its first chunk is the pack's first record.
    write_durable(&fs, "a", 3 << 20, 300);
    let b = write_durable(&fs, "b", 200_000, 301);
    fs.stop();

    let packs = fs.packs();
    assert!(
        !packs.is_empty(),
        "no .vpk pack files in {}",
        fs.data.display()
    );
    // Inside the first record's payload: 16-byte file header + 36-byte record header + 100.
    flip_bytes(&packs[0], 16 + 36 + 100, 64);

    fs.start();
    let a = fs.m("a");
    for attempt in 0..2 {
        let err = sh_fail(&format!("cat {a} > /dev/null"));
        assert!(
            err.contains("Input/output error"),
            "read of corrupted file (attempt {attempt}) failed without EIO:\n{err}"
        );
        fs.assert_alive();
    }
    assert_eq!(
        sha256(&fs.m("b")),
        b,
        "undamaged file unreadable after corruption"
    );
    sh_ok(&format!("ls -la {}", fs.m("")));
    fs.stop();
    fs.assert_no_panic();
}

/// A sealed pack whose footer was cut off is sealed again at startup from a scan of
/// its records; one whose index was damaged under a good footer has its index rebuilt
/// by scanning when first read. Either way every file still reads back whole.
#[test]
fn damaged_sealed_pack_indexes_are_rebuilt_by_scanning() {
    let mut fs = TestFs::new();
    // Small packs, so a few MiB seal several of them.
    std::fs::write(fs.dir().join("config.toml"), "pack_max_size_mb = 1\n").expect("config");
    fs.start();
    let sum = write_durable(&fs, "big", 6 << 20, 310);
    fs.stop();
    let packs = fs.packs();
    assert!(packs.len() >= 4, "expected several sealed packs: {packs:?}");
    // First pack: the footer (last 32 bytes) is cut in half.
    let len = std::fs::metadata(&packs[0]).expect("stat pack").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&packs[0])
        .and_then(|f| f.set_len(len - 16))
        .expect("truncate pack");
    // Second pack: an index entry (just before the footer) is damaged.
    let len = std::fs::metadata(&packs[1]).expect("stat pack").len();
    flip_bytes(&packs[1], len - 32 - 20, 8);

    fs.start();
    assert_eq!(sha256(&fs.m("big")), sum, "file over damaged pack indexes");
    let log = fs.log();
    assert!(
        log.contains("rebuilding it by scanning") && log.contains("unsealed pack kept"),
        "no index rebuild or re-seal logged:\n{log}"
    );
    fs.restart();
    assert_eq!(sha256(&fs.m("big")), sum, "after a second start");
    fs.stop();
    fs.assert_no_panic();
}

/// Damaged metadata (a flipped block in a table, a cut table, a garbage manifest) stops
/// startup with one clear line and leaves every file of the data dir as it was; with
/// the metadata put back, everything reads again.
#[test]
fn damaged_metadata_fails_startup_cleanly_and_touches_nothing() {
    let mut fs = TestFs::new();
    fs.start();
    let sum = write_durable(&fs, "f", 3 << 20, 320);
    sh_ok(&format!("cp -r /usr/include/linux {}", fs.m("tree")));
    fs.stop();
    let data = data_arg(&fs);
    let saved = fs.t("data.saved");
    sh_ok(&format!("cp -a {data} {saved}"));
    // The stored data: packs, tables and manifests (lock files hold the pid, and the
    // store may open a fresh empty WAL segment).
    let manifest = || {
        sh_ok(&format!(
            "cd {data} && find packs meta/sstables meta/manifest -type f | sort | xargs sha256sum"
        ))
    };
    let tables = sh_ok(&format!("ls {data}/meta/sstables/*.sst"));
    let table = tables
        .lines()
        .next()
        .expect("an sstable after a clean stop")
        .to_owned();
    let len = size_of(&table);
    // Garbage over every data block (a single block may hold keys startup never
    // reads; those then fail as EIO when used), half the table cut off, a manifest
    // that is not one.
    let damages = [
        format!(
            "head -c {} /dev/urandom | dd of={table} bs=64 seek=1 conv=notrunc status=none",
            len - 4096
        ),
        format!("truncate -s {} {table}", len / 2),
        format!("echo garbage > $(ls {data}/meta/manifest/* | head -n 1)"),
    ];
    for damage in &damages {
        sh_ok(damage);
        let before = manifest();
        let err = expect_startup_failure(&fs, &["--data-dir", &data, &path_str(&fs.mnt)]);
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("verfsnext: error:"))
            .collect();
        assert!(
            errors.len() == 1 && errors[0].contains("cannot start") && errors[0].contains("meta"),
            "after `{damage}`: {err}"
        );
        assert_eq!(
            manifest(),
            before,
            "startup changed the data dir after `{damage}`"
        );
        sh_ok(&format!("rm -rf {data} && cp -a {saved} {data}"));
    }
    fs.start();
    assert_eq!(sha256(&fs.m("f")), sum, "after restoring the metadata");
    sh_ok(&format!("diff -r /usr/include/linux {}", fs.m("tree")));
    fs.stop();
    fs.assert_no_panic();
}
