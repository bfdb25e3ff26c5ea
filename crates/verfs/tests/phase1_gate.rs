//! Phase 1 gate through a real mount: the seed's manual check (cp, mkdir, mv, cat, rm,
//! rmdir), clean shutdown and remount, large and small writes, renames, big directories
//! and unlinked-but-open files.

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;

#[test]
fn seed_gate_then_remount() {
    let mut fs = TestFs::new();
    fs.start();
    let (copy, d1) = (fs.m("hosts.copy"), fs.m("d1"));
    sh_ok(&format!("cp /etc/hosts {copy}"));
    sh_ok(&format!("mkdir {d1} && mv {copy} {d1}/h"));
    let hosts = fs::read_to_string("/etc/hosts").expect("read /etc/hosts");
    assert_eq!(
        sh_ok(&format!("cat {d1}/h")),
        hosts,
        "cat M/d1/h differs from /etc/hosts"
    );
    assert!(
        !Path::new(&copy).exists(),
        "hosts.copy still exists after mv"
    );
    sh_ok(&format!("rm {d1}/h && rmdir {d1}"));
    assert!(!Path::new(&d1).exists(), "d1 still exists after rmdir");

    // Files and a tree that must survive the restart.
    write_random(&fs.t("keep.src"), 300_000, 1);
    sh_ok(&format!("cp {} {}", fs.t("keep.src"), fs.m("keep")));
    let tree = fs.m("tree");
    sh_ok(&format!(
        "mkdir -p {tree}/a/b/c {tree}/x && touch {tree}/empty"
    ));
    write_random(&fs.t("f2.src"), 70_000, 2);
    sh_ok(&format!("cp {} {tree}/a/b/c/f2", fs.t("f2.src")));
    sh_ok(&format!("cp /etc/hosts {tree}/a/hosts"));
    let before = manifest(&fs.m(""));
    assert!(before.contains("f 0 tree/empty"), "manifest:\n{before}");

    fs.stop();
    fs.start();
    assert!(
        !Path::new(&fs.m("d1")).exists(),
        "d1 reappeared after remount"
    );
    assert!(
        !Path::new(&fs.m("hosts.copy")).exists(),
        "hosts.copy reappeared"
    );
    assert_eq!(manifest(&fs.m("")), before, "tree changed across remount");
    assert_eq!(sha256(&fs.m("keep")), sha256(&fs.t("keep.src")));
    fs.stop();
    fs.assert_no_panic();
}

/// Applies the same `dd ... conv=notrunc` to the expected local copy and the mounted file.
fn dd_both(expected: &str, mounted: &str, dd_args: &str) {
    for of in [expected, mounted] {
        sh_ok(&format!("dd {dd_args} of={of} conv=notrunc status=none"));
    }
}

fn assert_same_file(expected: &str, mounted: &str) {
    let size = fs::metadata(expected).expect("stat expected").len();
    assert_eq!(size_of(mounted), size, "stat -c %s of {mounted}");
    let ls = sh_ok(&format!("ls -l {mounted}"));
    let ls_size = ls.split_whitespace().nth(4).expect("ls -l size column");
    assert_eq!(ls_size, size.to_string(), "ls -l: {ls}");
    assert_eq!(sha256(mounted), sha256(expected), "content of {mounted}");
}

#[test]
fn large_copy_small_writes_and_overwrites_survive_remount() {
    let mut fs = TestFs::new();
    fs.start();
    let (big_src, big) = (fs.t("big.src"), fs.m("big"));
    write_random(&big_src, 24 << 20, 10);
    sh_ok(&format!("cp {big_src} {big}"));
    assert_same_file(&big_src, &big);

    // 1024 writes of 4 KiB, then overwrites: aligned, unaligned, and past EOF (a hole).
    let (expected, small, patch) = (fs.t("small.expected"), fs.m("small"), fs.t("patch"));
    write_random(&expected, 4 << 20, 11);
    write_random(&patch, 64 << 10, 12);
    sh_ok(&format!("dd if={expected} of={small} bs=4k status=none"));
    assert_same_file(&expected, &small);
    dd_both(&expected, &small, &format!("if={patch} bs=4k seek=300"));
    assert_same_file(&expected, &small);
    dd_both(
        &expected,
        &small,
        &format!("if={patch} bs=1000 seek=1234 count=3"),
    );
    assert_same_file(&expected, &small);
    dd_both(&expected, &small, &format!("if={patch} bs=4k seek=1100"));
    assert_eq!(size_of(&small), (1100 + 16) * 4096);
    assert_same_file(&expected, &small);

    fs.stop();
    fs.start();
    assert_same_file(&big_src, &big);
    assert_same_file(&expected, &small);
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn rename_over_existing_targets() {
    let mut fs = TestFs::new();
    fs.start();
    let (a_src, b_src) = (fs.t("a.src"), fs.t("b.src"));
    write_random(&a_src, 100_000, 20);
    write_random(&b_src, 50_000, 21);
    let (a, b, d) = (fs.m("a"), fs.m("b"), fs.m("d"));
    sh_ok(&format!(
        "cp {a_src} {a} && cp {b_src} {b} && mkdir {d} && cp {b_src} {d}/c"
    ));

    sh_ok(&format!("mv {a} {b}"));
    assert!(!Path::new(&a).exists(), "source of rename still exists");
    assert_eq!(sha256(&b), sha256(&a_src), "rename target has old content");
    sh_ok(&format!("mv {b} {d}/c"));
    assert!(
        !Path::new(&b).exists(),
        "source of cross-dir rename still exists"
    );
    assert_eq!(sha256(&format!("{d}/c")), sha256(&a_src));
    assert_eq!(sh_ok(&format!("ls -A {d}")), "c\n");

    // A directory may replace an empty directory, never a non-empty one.
    let (e1, e2) = (fs.m("e1"), fs.m("e2"));
    sh_ok(&format!(
        "mkdir {e1} {e2} && touch {e1}/inner && mv -T {e1} {e2}"
    ));
    assert!(!Path::new(&e1).exists(), "e1 still exists after mv -T");
    assert_eq!(sh_ok(&format!("ls -A {e2}")), "inner\n");
    let err = sh_fail(&format!("mv -T {e2} {d}"));
    assert!(
        err.contains("Directory not empty"),
        "mv over non-empty dir: {err}"
    );

    let before = manifest(&fs.m(""));
    fs.stop_with(libc::SIGTERM);
    fs.start();
    assert_eq!(manifest(&fs.m("")), before, "tree changed across remount");
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn rm_rf_of_3000_files_removes_everything() {
    let mut fs = TestFs::new();
    fs.start();
    let (top, many) = (fs.m("top"), fs.m("top/many"));
    sh_ok(&format!(
        "mkdir -p {many} && for i in $(seq 1 3000); do echo $i > {many}/f$i; done"
    ));
    assert_eq!(sh_ok(&format!("ls {many} | wc -l")).trim(), "3000");
    assert_eq!(
        sh_ok(&format!("ls -A {many} | sort -u | wc -l")).trim(),
        "3000"
    );
    assert_eq!(sh_ok(&format!("cat {many}/f1234")), "1234\n");

    sh_ok(&format!("rm -rf {many}"));
    assert!(!Path::new(&many).exists(), "directory survived rm -rf");
    assert_eq!(
        sh_ok(&format!("ls -A {top}")),
        "",
        "parent not empty after rm -rf"
    );

    fs.stop();
    fs.start();
    assert_eq!(
        sh_ok(&format!("ls -A {top}")),
        "",
        "entries reappeared after remount"
    );
    sh_ok(&format!("rmdir {top}"));
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn unlinked_open_file_stays_readable() {
    let mut fs = TestFs::new();
    fs.start();
    let (src, u) = (fs.t("u.src"), fs.m("u"));
    write_random(&src, 300_000, 30);
    sh_ok(&format!("cp {src} {u}"));
    let expected = fs::read(&src).expect("read source");

    let mut file = File::open(&u).expect("open M/u");
    sh_ok(&format!("rm {u}"));
    assert!(!Path::new(&u).exists(), "M/u still visible after rm");
    let mut got = Vec::new();
    file.read_to_end(&mut got)
        .expect("read unlinked file through open handle");
    assert!(
        got == expected,
        "unlinked file content differs ({} bytes read)",
        got.len()
    );
    let mut mid = vec![0u8; 5000];
    file.read_exact_at(&mut mid, 123_456)
        .expect("pread unlinked file");
    assert!(
        mid[..] == expected[123_456..128_456],
        "pread of unlinked file differs"
    );
    drop(file);

    assert_eq!(
        sh_ok(&format!("ls -A {}", fs.m("")))
            .lines()
            .filter(|l| *l == "u")
            .count(),
        0
    );
    fs.stop();
    fs.start();
    assert!(
        !Path::new(&u).exists(),
        "unlinked file reappeared after remount"
    );
    fs.stop();
    fs.assert_no_panic();
}

/// An external `fusermount3 -u` is a clean shutdown too: the daemon syncs, exits 0,
/// and the data is there at the next mount.
#[test]
fn external_unmount_shuts_down_cleanly() {
    let mut fs = TestFs::new();
    fs.start();
    write_random(&fs.t("src"), 500_000, 9);
    sh_ok(&format!("cp {} {}", fs.t("src"), fs.m("f")));
    sh_ok(&format!("fusermount3 -u {}", fs.m("")));
    let status = fs.wait_own_exit(std::time::Duration::from_secs(30));
    assert!(
        status.success(),
        "daemon exited with {status} after external unmount"
    );
    assert!(fs.log().contains("clean shutdown complete"), "{}", fs.log());
    fs.start();
    assert_eq!(sha256(&fs.m("f")), sha256(&fs.t("src")));
    fs.stop();
    fs.assert_no_panic();
}
