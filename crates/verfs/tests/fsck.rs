//! `verfsnext fsck` on a real data dir: a small filesystem built through the mount (files,
//! a hard link, a directory, a snapshot with changes after it), checked clean, refused
//! while the daemon runs, and damaged offline one class at a time, each damage found.
//!
//! Metadata is damaged by opening `verfs_core::meta::Store` directly on `DIR/meta`
//! with the daemon stopped and writing through its public (or `#[doc(hidden)]` test
//! seam) methods.

mod common;

use common::damage::*;
use common::*;
use verfs_core::meta::{ChunkRecord, Dirent};
use verfs_core::types::{FileKind, Ino};

/// Size and modification time of every pack, to show fsck wrote none.
fn pack_stamps(fs: &TestFs) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    fs.packs()
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).expect("stat pack");
            (p, m.len(), m.modified().expect("mtime"))
        })
        .collect()
}

#[test]
fn clean_filesystem_passes_with_and_without_read_data() {
    let fs = built();
    let before = pack_stamps(&fs);
    let out = fsck(&fs, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "fsck: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = fsck_json(&fs, &["--read-data"], 0);
    let c = &r["counts"];
    assert_eq!(r["problems"].as_array().map(Vec::len), Some(0), "{r:#}");
    assert_eq!(
        c["inodes"].as_u64(),
        Some(5),
        "root, a.bin, dir, sub, new.txt: {r:#}"
    );
    assert!(c["extents"].as_u64() > Some(0), "{r:#}");
    assert!(c["chunks"].as_u64() > Some(0), "{r:#}");
    assert!(c["packs"].as_u64() >= Some(1), "{r:#}");
    assert_eq!(c["snapshots"].as_u64(), Some(1), "{r:#}");
    assert!(c["records_read"].as_u64() >= c["chunks"].as_u64(), "{r:#}");
    assert_eq!(pack_stamps(&fs), before, "fsck changed a pack");
}

#[test]
fn fsck_refuses_while_the_daemon_runs() {
    let mut fs = built();
    fs.start();
    let out = fsck(&fs, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    fs.assert_alive();
    fs.stop();
}

#[test]
fn deleted_chunk_record_is_found() {
    let fs = built();
    with_store(&fs, |s| {
        let (hash, _) = chunk_of_a(s);
        s.write(|w| w.remove_chunk_record(&hash))
            .expect("delete chunk record");
    });
    let r = fsck_json(&fs, &[], 1);
    assert_problem(&r, "missing-chunk", Some("a.bin"));
}

#[test]
fn wrong_refcount_is_found() {
    let fs = built();
    with_store(&fs, |s| {
        let (hash, rec) = chunk_of_a(s);
        let wrong = ChunkRecord {
            refcount: rec.refcount + 1,
            ..rec
        };
        s.write(|w| w.put_chunk(&hash, &wrong, Some(&rec)))
            .expect("write refcount");
    });
    let r = fsck_json(&fs, &[], 1);
    assert_problem(&r, "refcount", Some("a.bin"));
}

#[test]
fn dangling_dirent_is_found() {
    let fs = built();
    with_store(&fs, |s| {
        let ghost = Dirent {
            ino: Ino(987_654_321),
            kind: FileKind::File,
        };
        s.write(|w| w.put_dirent(Ino::ROOT, b"ghost", &ghost))
            .expect("write dirent");
    });
    let r = fsck_json(&fs, &[], 1);
    assert_problem(&r, "dangling-entry", Some("/ghost"));
}

#[test]
fn flipped_pack_byte_is_found_by_read_data() {
    let fs = built();
    let pack = largest_pack(&fs);
    // The first record starts right after the 16-byte file header; its payload after
    // the 36-byte record header.
    flip_bytes(&pack, 16 + 36 + 100, 1);
    let r = fsck_json(&fs, &["--read-data"], 1);
    assert_problem(&r, "damaged-record", None);
}

#[test]
fn damage_in_a_sealed_pack_needs_read_data() {
    let fs = built_with_config("pack_max_size_mb = 1\n");
    let packs = fs.packs();
    assert!(packs.len() >= 3, "3 MiB in 1 MiB packs: {packs:?}");
    // The lowest pack was sealed at rotation; only its index is read without
    // --read-data, so a flipped payload byte is found by reading the record back.
    flip_bytes(&packs[0], 16 + 36 + 100, 1);
    fsck_json(&fs, &[], 0);
    let r = fsck_json(&fs, &["--read-data"], 1);
    assert_problem(&r, "damaged-record", Some("a.bin"));
}

#[test]
fn missing_pack_is_found() {
    let fs = built();
    std::fs::remove_file(largest_pack(&fs)).expect("delete pack");
    let r = fsck_json(&fs, &[], 1);
    assert_problem(&r, "missing-pack", None);
}
