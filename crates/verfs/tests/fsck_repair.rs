//! `verfsnext fsck --repair`: each class of damage the check finds is repaired so that
//! `fsck --read-data` is clean afterwards and the filesystem mounts; files whose data
//! was lost are named and read as holes there, every other file reads back intact; the
//! metadata is copied aside first; a running daemon makes it refuse without a change.

mod common;

use common::damage::*;
use common::*;
use verfs_core::meta::{ChunkRecord, Dirent, Reader};
use verfs_core::types::{FileKind, Ino};

/// `fsck --repair --json ARGS`: asserts exit 0 (clean afterwards) and returns the report.
fn repaired(fs: &TestFs, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--repair"];
    all.extend_from_slice(args);
    let r = fsck_json(fs, &all, 0);
    assert_eq!(
        r["after"]["problems"].as_array().map(Vec::len),
        Some(0),
        "{r:#}"
    );
    let backup = r["backup"].as_str().expect("a backup was made");
    assert!(
        std::path::Path::new(backup).join("meta").is_dir(),
        "{backup} holds no meta/"
    );
    r
}

/// Whether some change's path contains `path` and its text contains `what`.
fn changed(r: &serde_json::Value, what: &str, path: Option<&str>) -> bool {
    r["changes"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["what"].as_str().is_some_and(|w| w.contains(what))
                && path.is_none_or(|p| c["path"].as_str().is_some_and(|got| got.contains(p)))
        })
    })
}

/// Mounts, checks the files that were not damaged, and stops; `fsck` is clean again.
fn mounts_with_intact(fs: &mut TestFs, intact: &[(&str, &str)]) {
    fs.start();
    for (rel, want) in intact {
        let got = std::fs::read(fs.mnt.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(String::from_utf8_lossy(&got), *want, "{rel}");
    }
    fs.assert_fsck_clean();
}

#[test]
fn wrong_refcount_and_zero_mark_are_recomputed() {
    let mut fs = built();
    fs.start();
    let a_sum = sha256(&fs.m("a.bin"));
    fs.stop();
    with_store(&fs, |s| {
        let (hash, rec) = chunk_of_a(s);
        let wrong = ChunkRecord { refcount: 0, ..rec };
        s.write(|w| w.put_chunk(&hash, &wrong, Some(&rec)))
            .expect("write refcount");
    });
    assert_problem(&fsck_json(&fs, &[], 1), "refcount", Some("a.bin"));
    let r = repaired(&fs, &[]);
    assert!(changed(&r, "refcount 0 ->", None), "{r:#}");
    fs.start();
    assert_eq!(sha256(&fs.m("a.bin")), a_sum);
    fs.assert_fsck_clean();
}

#[test]
fn extents_naming_a_missing_chunk_become_holes_in_the_named_file() {
    let mut fs = built();
    with_store(&fs, |s| {
        let (hash, _) = chunk_of_a(s);
        s.write(|w| w.remove_chunk_record(&hash))
            .expect("delete chunk record");
    });
    let len = std::fs::metadata(fs.t("a.bin")).expect("source").len();
    let r = repaired(&fs, &[]);
    assert!(changed(&r, "now holes", Some("/a.bin")), "{r:#}");
    fs.start();
    // Same size; the lost chunk's range reads as zeros, no EIO.
    let got = std::fs::read(fs.mnt.join("a.bin")).expect("read a.bin");
    assert_eq!(got.len() as u64, len);
    let src = std::fs::read(fs.t("a.bin")).expect("source");
    let first_diff = got.iter().zip(&src).position(|(a, b)| a != b);
    assert_eq!(
        first_diff,
        Some(0),
        "the first chunk (lost) should now differ"
    );
    assert!(got[..1024].iter().all(|&b| b == 0), "a hole reads as zeros");
    assert_eq!(
        std::fs::read_to_string(fs.mnt.join("dir/new.txt")).expect("new.txt"),
        "new\n"
    );
    fs.assert_fsck_clean();
}

#[test]
fn a_missing_pack_leaves_holes_and_a_clean_filesystem() {
    let mut fs = built();
    std::fs::remove_file(largest_pack(&fs)).expect("delete pack");
    assert_problem(&fsck_json(&fs, &[], 1), "missing-pack", None);
    let r = repaired(&fs, &[]);
    assert!(changed(&r, "now holes", Some("a.bin")), "{r:#}");
    assert!(changed(&r, "dropped the record", None), "{r:#}");
    fs.start();
    // Every file reads without an error.
    sh_ok(&format!(
        "cat {} {} >/dev/null",
        fs.m("a.bin"),
        fs.m("dir/link.bin")
    ));
    fs.assert_fsck_clean();
}

#[test]
fn a_damaged_record_found_by_read_data_becomes_a_hole() {
    let mut fs = built();
    flip_bytes(&largest_pack(&fs), 16 + 36 + 100, 1);
    assert_problem(&fsck_json(&fs, &["--read-data"], 1), "damaged-record", None);
    let r = repaired(&fs, &["--read-data"]);
    assert!(changed(&r, "now holes", None), "{r:#}");
    mounts_with_intact(&mut fs, &[("dir/new.txt", "new\n")]);
}

#[test]
fn dangling_entries_are_removed_and_unnamed_inodes_reattached() {
    let mut fs = built();
    let new_ino = with_store(&fs, |s| {
        let view = s.view().expect("view");
        let dir = view
            .dirent(Ino::ROOT, b"dir")
            .expect("read")
            .expect("dir exists");
        let new = view
            .dirent(dir.ino, b"new.txt")
            .expect("read")
            .expect("new.txt exists");
        let ghost = Dirent {
            ino: Ino(987_654_321),
            kind: FileKind::File,
        };
        s.write(|w| {
            w.put_dirent(Ino::ROOT, b"ghost", &ghost)?;
            w.delete_dirent(dir.ino, b"new.txt")
        })
        .expect("damage the tree");
        new.ino
    });
    let before = fsck_json(&fs, &[], 1);
    assert_problem(&before, "dangling-entry", Some("/ghost"));
    let r = repaired(&fs, &[]);
    assert!(changed(&r, "removed an entry", Some("/ghost")), "{r:#}");
    let lf = format!("lost+found/#{}", new_ino.0);
    assert!(changed(&r, "reattached", Some(&lf)), "{r:#}");
    mounts_with_intact(&mut fs, &[(lf.as_str(), "new\n")]);
}

#[test]
fn repair_refuses_while_the_daemon_runs_and_changes_nothing() {
    let mut fs = built();
    fs.start();
    let out = fsck(&fs, &["--repair"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("in use"), "{err}");
    let backups = std::fs::read_dir(&fs.data)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("fsck-backup-"))
        .count();
    assert_eq!(backups, 0);
    fs.assert_alive();
    fs.stop();
    // A clean filesystem: nothing to repair, no backup, exit 0.
    let r = fsck_json(&fs, &["--repair"], 0);
    assert!(r["changes"].as_array().is_some_and(Vec::is_empty), "{r:#}");
    assert!(r["backup"].is_null(), "{r:#}");
}

#[test]
fn a_damaged_sealed_index_is_rebuilt_and_nothing_is_lost() {
    let mut fs = built_with_config("pack_max_size_mb = 1\n");
    fs.start();
    let a_sum = sha256(&fs.m("a.bin"));
    fs.stop();
    let packs = fs.packs();
    assert!(packs.len() >= 3, "3 MiB in 1 MiB packs: {packs:?}");
    // Inside the index (about 16 entries of 32 bytes before a short footer).
    let len = std::fs::metadata(&packs[0]).expect("pack").len();
    flip_bytes(&packs[0], len - 200, 4);
    assert_problem(&fsck_json(&fs, &[], 1), "bad-pack", None);
    let r = repaired(&fs, &["--read-data"]);
    assert!(changed(&r, "rebuilt the damaged index", None), "{r:#}");
    assert!(!changed(&r, "now holes", None), "data was given up: {r:#}");
    let saved = std::path::Path::new(r["backup"].as_str().expect("backup")).join("packs");
    assert!(saved.is_dir(), "the old pack was not kept");
    fs.start();
    assert_eq!(sha256(&fs.m("a.bin")), a_sum);
    fs.assert_fsck_clean();
}
