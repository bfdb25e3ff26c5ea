//! `verfsnext scrub` through the mount: a pack record with a flipped byte is found
//! online and reported with exactly the live and snapshot files that use its chunk
//! (every other file reads back intact), a clean filesystem scrubs clean, and a pass
//! cut short by an unmount goes on from its saved cursor after the next mount.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::vault::{create_vault, lock, random_token};
use common::*;
use verfs_core::datadir::DataDirPerms;
use verfs_core::meta::{Reader, Store};
use verfs_core::types::Ino;

const MIB: usize = 1 << 20;

/// A filesystem whose daemon reads `config` (plus `gc_idle_min_ms = 0`, so GC never
/// moves chunks under a test), started.
fn mounted(config: &str) -> TestFs {
    let mut fs = TestFs::new();
    std::fs::write(
        fs.dir().join("config.toml"),
        format!("gc_idle_min_ms = 0\n{config}"),
    )
    .expect("write config");
    fs.start();
    fs
}

/// `verfsnext scrub ARGS... --data-dir DATA` under a timeout.
fn scrub(fs: &TestFs, args: &[&str]) -> Output {
    fs.command("timeout")
        .args(["600", BIN.as_str(), "scrub"])
        .args(args)
        .arg("--data-dir")
        .arg(&fs.data)
        .output()
        .expect("run verfsnext scrub")
}

/// Runs `scrub ARGS... --json`, asserts exit status `code`, returns the JSON.
fn scrub_json(fs: &TestFs, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = scrub(fs, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "scrub {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("scrub --json: {e}: {stdout}"))
}

fn sync_fs(fs: &TestFs) {
    sh_ok(&format!("sync -f {}", fs.m("")));
}

/// The chunk records the daemon holds (referenced or waiting for GC).
fn chunk_records(fs: &TestFs) -> u64 {
    let s = fs.stats();
    s["chunk_count"].as_u64().expect("chunk_count")
        + s["unreferenced_chunks"].as_u64().expect("unreferenced")
}

/// Files, a copy that dedups with them, a snapshot, and a change after it:
///
/// - `/a.bin` (1 MiB random, written first, so its first chunk is the first record of
///   the first pack) and `/dir/copy.bin`, a copy of it that shares all its chunks;
/// - `/b.bin` (2 MiB random) and `/small.txt`;
/// - snapshot `s1`; then `/dir/copy.bin` removed (only `s1` keeps it) and `/c.bin`
///   written (only the live tree has it).
fn build(fs: &TestFs) {
    write_random(&fs.m("a.bin"), MIB, 1);
    sync_fs(fs);
    sh_ok(&format!(
        "mkdir {d} && cp {a} {d}/copy.bin && echo hello > {s} && sync -f {a}",
        a = fs.m("a.bin"),
        d = fs.m("dir"),
        s = fs.m("small.txt"),
    ));
    write_random(&fs.m("b.bin"), 2 * MIB, 2);
    sync_fs(fs);
    fs.snapshot_ok(&["create", "s1"]);
    std::fs::remove_file(fs.m("dir/copy.bin")).expect("rm copy");
    write_random(&fs.m("c.bin"), MIB, 3);
    sync_fs(fs);
}

/// The active pack: its index is rebuilt by a scan at mount, which cuts the damaged
/// record from it; the scrub finds the record by its header.
#[test]
fn damaged_chunk_in_active_pack_names_every_file_using_it() {
    damaged_chunk_names_every_file_using_it("");
}

/// A sealed pack (1 MiB packs: a.bin fills the first): its index still lists the
/// record, which fails its CRC when read back.
#[test]
fn damaged_chunk_in_sealed_pack_names_every_file_using_it() {
    damaged_chunk_names_every_file_using_it("pack_max_size_mb = 1\n");
}

/// Flips a payload byte of a.bin's first chunk; the scrub names exactly the files
/// using it and every other file reads back intact.
fn damaged_chunk_names_every_file_using_it(config: &str) {
    let mut fs = mounted(config);
    build(&fs);
    let intact = [
        "b.bin",
        "small.txt",
        "c.bin",
        ".snapshots/s1/b.bin",
        ".snapshots/s1/small.txt",
    ];
    let sums: Vec<String> = intact.iter().map(|p| sha256(&fs.m(p))).collect();
    fs.stop();
    // The first record of the first pack must hold a.bin's first chunk.
    let first = {
        let store =
            Store::open(&fs.data.join("meta"), DataDirPerms::OWNER_ONLY).expect("open store");
        let view = store.view().expect("view");
        let a = view
            .dirent(Ino::ROOT, b"a.bin")
            .expect("dirent")
            .expect("a.bin");
        let h = view.all_extents(a.ino).expect("extents")[0].hash;
        drop(view);
        store.close().expect("close store");
        h
    };
    let pack = fs.packs()[0].clone();
    let header = std::fs::read(&pack).expect("read pack");
    assert_eq!(
        &header[16..20],
        b"VREC",
        "a record starts after the pack header"
    );
    assert_eq!(
        header[20..36],
        first.0,
        "the first record holds a.bin's first chunk"
    );
    // A byte of that record's payload (after the 16-byte file header and the 36-byte
    // record header).
    flip_bytes(&pack, 16 + 36 + 100, 1);
    fs.start();

    let r = scrub_json(&fs, &[], 1);
    assert_eq!(r["complete"], true, "{r:#}");
    assert_eq!(r["damaged_count"], 1, "{r:#}");
    let d = &r["damaged"][0];
    assert_eq!(d["pack"], 1, "{r:#}");
    assert_eq!(d["offset"], 16, "{r:#}");
    assert_eq!(d["kind"], "checksum", "{r:#}");
    assert_eq!(d["chunk"], first.to_string(), "{r:#}");
    let files: Vec<&str> = d["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "/.snapshots/s1/a.bin",
            "/.snapshots/s1/dir/copy.bin",
            "/a.bin"
        ],
        "{r:#}"
    );
    assert_eq!(
        r["records_verified"].as_u64(),
        Some(chunk_records(&fs) - 1),
        "{r:#}"
    );

    // The counter, and one log line naming pack and offset.
    assert_eq!(fs.stats()["activity"]["scrub_damaged_chunks"], 1);
    let log = fs.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("damaged chunk record in"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("0000000000000001")
            || lines[0].contains("pack 1")
            || lines[0].contains("pack=1"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("offset 16"), "{}", lines[0]);

    // Text mode says the same; every other file reads back intact, a.bin fails.
    let out = scrub(&fs, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("    /a.bin") && text.contains("    /.snapshots/s1/dir/copy.bin"),
        "{text}"
    );
    for (p, s) in intact.iter().zip(&sums) {
        assert_eq!(&sha256(&fs.m(p)), s, "{p} after the damage");
    }
    let cat = sh(&format!("cat {} > /dev/null", fs.m("a.bin")));
    assert!(
        !cat.status.success(),
        "a.bin reads despite its damaged chunk"
    );
    fs.assert_no_panic();
}

#[test]
fn clean_filesystem_scrubs_clean() {
    let mut fs = mounted("");
    build(&fs);
    let r = scrub_json(&fs, &[], 0);
    assert_eq!(r["complete"], true, "{r:#}");
    assert_eq!(r["damaged_count"], 0, "{r:#}");
    assert_eq!(r["damaged"].as_array().map(Vec::len), Some(0), "{r:#}");
    assert_eq!(
        r["records_verified"].as_u64(),
        Some(chunk_records(&fs)),
        "{r:#}"
    );
    assert_eq!(r["resumed_from"], serde_json::Value::Null, "{r:#}");
    let out = scrub(&fs, &["run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete"));
    let s = scrub_json(&fs, &["status"], 0);
    assert_eq!(s["running"], false, "{s:#}");
    assert_eq!(s["saved"], serde_json::Value::Null, "{s:#}");
    assert_eq!(s["last"]["run"], 2, "{s:#}");
    assert_eq!(fs.stats()["activity"]["scrub_damaged_chunks"], 0);
    fs.stop();
    let out = scrub(&fs, &[]);
    assert_eq!(out.status.code(), Some(2), "no daemon: {out:?}");
}

/// Also shows that damage found before the interruption is kept in the cursor and
/// reported at the end: the first record (f0's first chunk) has a flipped byte.
#[test]
fn interrupted_scrub_resumes_after_remount() {
    // 1 MiB/s over ~12 MiB: a pass takes about 12 s.
    let mut fs = mounted("scrub_rate_mb_per_s = 1\npack_max_size_mb = 4\n");
    for i in 0..3 {
        write_random(&fs.m(&format!("f{i}")), 4 * MIB, 10 + i);
        sync_fs(&fs);
    }
    let total = chunk_records(&fs);
    fs.stop();
    flip_bytes(&fs.packs()[0], 16 + 36 + 100, 1);
    fs.start();
    let started = scrub_json(&fs, &["--no-wait"], 0);
    assert_eq!(started["new"], true, "{started:#}");
    // Let it verify 4 MiB, then unmount under it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = scrub_json(&fs, &["status"], 0);
        assert_eq!(s["running"], true, "finished too fast to interrupt: {s:#}");
        if s["progress"]["bytes_done"].as_u64() >= Some(4 * MIB as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    fs.stop();
    fs.start();
    let s = scrub_json(&fs, &["status"], 0);
    assert_eq!(s["running"], false, "{s:#}");
    let saved = s["saved"].clone();
    assert!(
        saved["pack"].as_u64().is_some(),
        "no cursor saved at unmount: {s:#}"
    );
    assert!(
        saved["pack"].as_u64() > Some(1) || saved["offset"].as_u64() > Some(16),
        "cursor at the start: {s:#}"
    );
    let r = scrub_json(&fs, &[], 1);
    assert_eq!(r["resumed_from"], saved, "{r:#}");
    assert_eq!(r["complete"], true, "{r:#}");
    // Records verified before the unmount count once, none twice, none skipped.
    assert_eq!(r["records_verified"].as_u64(), Some(total - 1), "{r:#}");
    assert_eq!(r["damaged_count"], 1, "{r:#}");
    let d = &r["damaged"][0];
    assert_eq!((&d["pack"], &d["offset"]), (&1.into(), &16.into()), "{r:#}");
    assert_eq!(d["files"], serde_json::json!(["/f0"]), "{r:#}");
    let detail = d["detail"].as_str().unwrap_or("");
    assert!(detail.contains("before the pass was interrupted"), "{r:#}");
    // The remaining ~8 MiB at 1 MiB/s, well under a full pass's 12 s.
    assert!(r["millis"].as_u64() < Some(11_000), "{r:#}");
    let s = scrub_json(&fs, &["status"], 0);
    assert_eq!(
        s["saved"],
        serde_json::Value::Null,
        "cursor kept after a full pass: {s:#}"
    );
    fs.assert_no_panic();
}

#[test]
fn locked_vault_chunks_are_checked_by_crc_only() {
    let fs = mounted("");
    let pass = format!("pw-{}", random_token(16));
    let _key = create_vault(&fs, &pass);
    let src = fs.t("v.bin");
    write_random(&src, 300_000, 5);
    sh_ok(&format!("cp {src} {} && sync", fs.m(".vault/v.bin")));
    write_random(&fs.m("plain.bin"), 300_000, 6);
    sync_fs(&fs);
    let total = chunk_records(&fs);
    // Unlocked: vault chunks are decrypted and their ids re-derived.
    let r = scrub_json(&fs, &[], 0);
    assert_eq!(r["crc_only"], 0, "{r:#}");
    assert_eq!(r["records_verified"].as_u64(), Some(total), "{r:#}");
    lock(&fs);
    let total = chunk_records(&fs);
    let r = scrub_json(&fs, &[], 0);
    let crc_only = r["crc_only"].as_u64().expect("crc_only");
    assert!(crc_only > 0 && crc_only < total, "{r:#}");
    assert_eq!(r["records_verified"].as_u64(), Some(total), "{r:#}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("vault is locked"), "{r:#}");
    fs.assert_no_panic();
}
