//! `verfsnext fsck` on a real data dir: a small filesystem built through the mount (files,
//! a hard link, a directory, a snapshot with changes after it), checked clean, refused
//! while the daemon runs, and damaged offline one class at a time, each damage found.
//!
//! Metadata is damaged by opening `verfs_core::meta::Store` directly on `DIR/meta`
//! with the daemon stopped and writing through its public (or `#[doc(hidden)]` test
//! seam) methods.

mod common;

use std::process::Output;

use common::*;
use verfs_core::datadir::DataDirPerms;
use verfs_core::meta::{ChunkRecord, Dirent, Reader, Store};
use verfs_core::types::{ChunkHash, FileKind, Ino};

/// Builds the test filesystem and stops the daemon cleanly.
fn built() -> TestFs {
    built_with_config("")
}

/// Like [`built`], with `config` as the daemon's `config.toml`.
fn built_with_config(config: &str) -> TestFs {
    let mut fs = TestFs::new();
    std::fs::write(fs.dir().join("config.toml"), config).expect("write config");
    fs.start();
    let src = fs.t("a.bin");
    write_random(&src, 3 << 20, 11);
    sh_ok(&format!(
        "cp {src} {a} && mkdir {d} && echo hello > {d}/note.txt && ln {a} {d}/link.bin \
         && mkdir {d}/sub && sync",
        a = fs.m("a.bin"),
        d = fs.m("dir"),
    ));
    fs.snapshot_ok(&["create", "s1"]);
    // After the snapshot: frozen extent and dirent versions that only s1 sees.
    sh_ok(&format!(
        "dd if=/dev/urandom of={a} bs=4096 seek=100 count=4 conv=notrunc status=none \
         && rm {d}/note.txt && echo new > {d}/new.txt && sync",
        a = fs.m("a.bin"),
        d = fs.m("dir"),
    ));
    fs.stop();
    fs
}

/// `verfsnext fsck --data-dir DIR ARGS...` under a timeout.
fn fsck(fs: &TestFs, args: &[&str]) -> Output {
    fs.command("timeout")
        .args(["300", BIN.as_str(), "fsck", "--data-dir"])
        .arg(&fs.data)
        .args(args)
        .output()
        .expect("run verfsnext fsck")
}

/// Runs `fsck --json ARGS...`, asserts exit status `code`, returns the parsed summary.
fn fsck_json(fs: &TestFs, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = fsck(fs, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "fsck {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("fsck --json: {e}: {stdout}"))
}

/// Asserts that `report` names a problem of `kind` whose path contains `path` (if given).
fn assert_problem(report: &serde_json::Value, kind: &str, path: Option<&str>) {
    let problems = report["problems"].as_array().expect("problems list");
    let found = problems.iter().any(|p| {
        p["kind"] == kind
            && path.is_none_or(|want| p["path"].as_str().is_some_and(|got| got.contains(want)))
    });
    assert!(found, "no {kind} problem (path {path:?}) in {report:#}");
}

/// Opens the stopped daemon's metadata store, runs `f`, closes it.
fn with_store<T>(fs: &TestFs, f: impl FnOnce(&Store) -> T) -> T {
    let store = Store::open(&fs.data.join("meta"), DataDirPerms::OWNER_ONLY).expect("open store");
    let out = f(&store);
    store.close().expect("close store");
    out
}

/// The first chunk of `/a.bin` and its chunk record.
fn chunk_of_a(store: &Store) -> (ChunkHash, ChunkRecord) {
    let view = store.view().expect("view");
    let d = view
        .dirent(Ino::ROOT, b"a.bin")
        .expect("read dirent")
        .expect("a.bin exists");
    let extents = view.all_extents(d.ino).expect("extents");
    let hash = extents.first().expect("a.bin has extents").hash;
    let rec = view
        .chunk(&hash)
        .expect("read chunk")
        .expect("chunk record");
    (hash, rec)
}

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

/// The pack holding most data (the one a damage test can be sure chunks live in).
fn largest_pack(fs: &TestFs) -> std::path::PathBuf {
    fs.packs()
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a pack exists")
}
