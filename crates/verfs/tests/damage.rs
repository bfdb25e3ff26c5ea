//! Damage is contained: with one pack record flipped, a pack missing, a pack cut short,
//! or a sealed pack's index and footer overwritten, exactly the reads that need the
//! damaged data fail with EIO (a `stats` counter and a log line naming the pack and
//! offset), every other file and range reads back intact, and the daemon never panics,
//! hangs or returns wrong bytes, and `scrub` names exactly the damaged file; a damaged
//! `.DISCARD` or metadata table gives either a working mount or one clear startup
//! line, never a panic.
//!
//! Files: `big.bin` (3 MiB) written first fills packs 1 and 2 and most of 3 (1 MiB
//! packs); `other.bin` (1 MiB) and `small.txt` follow in packs 3 and 4. Damage goes to
//! packs 1 and 2 only.

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;

use common::*;

const MIB: usize = 1 << 20;

/// A stopped filesystem holding the three files; returns it and big.bin's bytes.
fn built() -> (TestFs, Vec<u8>) {
    let mut fs = TestFs::new();
    std::fs::write(
        fs.dir().join("config.toml"),
        "pack_max_size_mb = 1\ngc_idle_min_ms = 0\n",
    )
    .expect("config");
    fs.start();
    write_random(&fs.t("big.src"), 3 * MIB, 1);
    write_random(&fs.t("other.src"), MIB, 2);
    sh_ok(&format!(
        "cp {} {} && sync && cp {} {} && echo hello > {} && sync",
        fs.t("big.src"),
        fs.m("big.bin"),
        fs.t("other.src"),
        fs.m("other.bin"),
        fs.m("small.txt")
    ));
    fs.stop();
    let big = std::fs::read(fs.t("big.src")).expect("source");
    (fs, big)
}

fn pack(fs: &TestFs, n: u64) -> std::path::PathBuf {
    fs.data.join("packs").join(format!("{n:016x}.vpk"))
}

/// The files that must be untouched by damage to packs 1–3.
fn assert_others_intact(fs: &TestFs) {
    assert_eq!(sha256(&fs.m("other.bin")), sha256(&fs.t("other.src")));
    assert_eq!(
        std::fs::read_to_string(fs.mnt.join("small.txt")).expect("small.txt"),
        "hello\n"
    );
}

/// Reads `len` bytes of big.bin at `offset` with O_DIRECT-free pread: Ok(bytes) or the
/// errno.
fn read_at(fs: &TestFs, offset: usize, len: usize) -> Result<Vec<u8>, i32> {
    let f = std::fs::File::open(fs.mnt.join("big.bin")).expect("open big.bin");
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset as u64)
        .map(|()| buf)
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Every 64 KiB piece of big.bin reads either its true bytes or EIO; returns how many
/// failed. Never wrong bytes.
fn pieces_correct_or_eio(fs: &TestFs, big: &[u8]) -> usize {
    let piece = 64 << 10;
    let mut failed = 0;
    for off in (0..big.len()).step_by(piece) {
        match read_at(fs, off, piece) {
            Ok(b) => assert!(b == big[off..off + piece], "wrong bytes at {off}"),
            Err(e) => {
                assert_eq!(e, libc::EIO, "errno at {off}");
                failed += 1;
            }
        }
    }
    failed
}

/// `verfsnext scrub --json` on the running daemon: asserts exit 1 (damage found) and
/// that every damaged record names exactly the files in `want`.
fn scrub_names_exactly(fs: &TestFs, want: &[&str]) {
    let out = fs
        .command("timeout")
        .args(["300", BIN.as_str(), "scrub", "--json", "--data-dir"])
        .arg(&fs.data)
        .output()
        .expect("run scrub");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "scrub: {stdout}\n{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scrub --json");
    let damaged = r["damaged"].as_array().expect("damaged list");
    assert!(!damaged.is_empty(), "{r:#}");
    let mut files: Vec<&str> = damaged
        .iter()
        .flat_map(|d| d["files"].as_array().into_iter().flatten())
        .filter_map(|f| f.as_str())
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files, want, "{r:#}");
}

fn damaged_reads(fs: &TestFs) -> u64 {
    fs.stats()["activity"]["damaged_reads"]
        .as_u64()
        .expect("damaged_reads counter")
}

#[test]
fn a_flipped_record_byte_fails_only_its_range() {
    let (mut fs, big) = built();
    // The first record of pack 1 (after the 16-byte file header and its 36-byte record
    // header) is big.bin's first chunk.
    flip_bytes(&pack(&fs, 1), 16 + 36 + 100, 1);
    fs.start();
    assert_eq!(read_at(&fs, 0, 4096), Err(libc::EIO));
    // Past the first chunk (at most 256 KiB) everything reads.
    assert_eq!(
        read_at(&fs, MIB, MIB).ok().as_deref(),
        Some(&big[MIB..2 * MIB])
    );
    let failed = pieces_correct_or_eio(&fs, &big);
    assert!((1..=4).contains(&failed), "{failed} pieces failed");
    assert_others_intact(&fs);
    assert!(damaged_reads(&fs) >= 1);
    scrub_names_exactly(&fs, &["/big.bin"]);
    fs.stop();
    fs.assert_no_panic();
    let log = fs.log();
    assert!(
        log.contains("0000000000000001") && log.contains("at 16"),
        "no log line naming pack and offset:\n{log}"
    );
}

#[test]
fn a_missing_pack_fails_only_the_ranges_it_held() {
    let (mut fs, big) = built();
    std::fs::remove_file(pack(&fs, 2)).expect("remove pack 2");
    fs.start();
    let failed = pieces_correct_or_eio(&fs, &big);
    assert!((8..48).contains(&failed), "{failed} of 48 pieces failed");
    assert_others_intact(&fs);
    assert!(damaged_reads(&fs) >= 1);
    scrub_names_exactly(&fs, &["/big.bin"]);
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn a_truncated_pack_fails_only_what_was_cut() {
    let (mut fs, big) = built();
    // Pack 2 holds only big.bin (pack 3 also holds other.bin's first chunks).
    let p = pack(&fs, 2);
    let len = std::fs::metadata(&p).expect("pack 2").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate pack 2");
    fs.start();
    let failed = pieces_correct_or_eio(&fs, &big);
    assert!((1..48).contains(&failed), "{failed} of 48 pieces failed");
    assert_others_intact(&fs);
    scrub_names_exactly(&fs, &["/big.bin"]);
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn a_damaged_index_and_footer_never_give_wrong_bytes() {
    let (mut fs, big) = built();
    let p = pack(&fs, 1);
    let len = std::fs::metadata(&p).expect("pack 1").len();
    // The sealed index and footer sit at the end of the pack.
    flip_bytes(&p, len - 40, 32);
    fs.start();
    let failed = pieces_correct_or_eio(&fs, &big);
    assert!(failed < 48, "every piece failed");
    assert_others_intact(&fs);
    fs.stop();
    fs.assert_no_panic();
}

/// Starts the daemon on damaged metadata: it mounts and serves the files intact, or
/// exits with one clear line; it never panics or hangs.
fn mounts_or_refuses_clearly(fs: &mut TestFs, what: &str) {
    let mut out = fs
        .command("timeout")
        .args(["60", BIN.as_str(), "mount", "--data-dir"])
        .arg(&fs.data)
        .arg(&fs.mnt)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if mount_fstype(&fs.mnt).as_deref() == Some(FSTYPE) {
            // It mounted: the files must be right.
            let ok = std::panic::catch_unwind(|| {
                assert_others_intact(fs);
                assert_eq!(sha256(&fs.m("big.bin")), sha256(&fs.t("big.src")));
            });
            let _ = run_timeout(10, "fusermount3", &["-u", &path_str(&fs.mnt)]);
            let status = out.wait().expect("wait");
            assert!(ok.is_ok(), "{what}: mounted with wrong contents");
            assert!(status.success(), "{what}: exit {status}");
            return;
        }
        if let Some(status) = out.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = out.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(!status.success(), "{what}: exited 0 without mounting");
            assert!(!err.contains("panicked"), "{what}: panic:\n{err}");
            let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
            assert_eq!(errors.len(), 1, "{what}: one error line wanted:\n{err}");
            eprintln!("{what}: refused: {}", errors[0]);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: neither mounted nor exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_damaged_discard_log_is_refused_clearly_or_ignored_safely() {
    let (mut fs, _) = built();
    let discard = fs.data.join("packs/.DISCARD");
    std::fs::write(
        &discard,
        b"\x01garbage that is not a discard record at all\xff\xfe",
    )
    .expect("write .DISCARD");
    mounts_or_refuses_clearly(&mut fs, ".DISCARD");
}

#[test]
fn a_damaged_metadata_table_is_refused_clearly_or_read_correctly() {
    let (mut fs, _) = built();
    let dir = fs.data.join("meta/sstables");
    let tables: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(!tables.is_empty(), "no sstables in {}", dir.display());
    for t in &tables {
        let len = std::fs::metadata(t).expect("sstable").len();
        flip_bytes(t, len / 2, 16);
    }
    mounts_or_refuses_clearly(&mut fs, "sstable");
}
