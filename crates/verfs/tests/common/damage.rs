//! A small filesystem to damage offline, and `fsck` run on it (shared by the fsck and
//! repair tests): files, a hard link, a directory, a snapshot with changes after it.
//!
//! Metadata is damaged by opening `verfs_core::meta::Store` directly on `DIR/meta`
//! with the daemon stopped and writing through its public (or `#[doc(hidden)]` test
//! seam) methods.

use std::process::Output;

use super::*;
use verfs_core::datadir::DataDirPerms;
use verfs_core::meta::{ChunkRecord, Reader, Store};
use verfs_core::types::{ChunkHash, Ino};

/// Builds the test filesystem and stops the daemon cleanly.
pub fn built() -> TestFs {
    built_with_config("")
}

/// Like [`built`], with `config` as the daemon's `config.toml`.
pub fn built_with_config(config: &str) -> TestFs {
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
pub fn fsck(fs: &TestFs, args: &[&str]) -> Output {
    fs.command("timeout")
        .args(["300", BIN.as_str(), "fsck", "--data-dir"])
        .arg(&fs.data)
        .args(args)
        .output()
        .expect("run verfsnext fsck")
}

/// Runs `fsck --json ARGS...`, asserts exit status `code`, returns the parsed summary.
pub fn fsck_json(fs: &TestFs, args: &[&str], code: i32) -> serde_json::Value {
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
pub fn assert_problem(report: &serde_json::Value, kind: &str, path: Option<&str>) {
    let problems = report["problems"].as_array().expect("problems list");
    let found = problems.iter().any(|p| {
        p["kind"] == kind
            && path.is_none_or(|want| p["path"].as_str().is_some_and(|got| got.contains(want)))
    });
    assert!(found, "no {kind} problem (path {path:?}) in {report:#}");
}

/// Opens the stopped daemon's metadata store, runs `f`, closes it.
pub fn with_store<T>(fs: &TestFs, f: impl FnOnce(&Store) -> T) -> T {
    let store = Store::open(&fs.data.join("meta"), DataDirPerms::OWNER_ONLY).expect("open store");
    let out = f(&store);
    store.close().expect("close store");
    out
}

/// The first chunk of `/a.bin` and its chunk record.
pub fn chunk_of_a(store: &Store) -> (ChunkHash, ChunkRecord) {
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

/// The pack holding most data (the one a damage test can be sure chunks live in).
pub fn largest_pack(fs: &TestFs) -> std::path::PathBuf {
    fs.packs()
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a pack exists")
}
