//! Real applications on the mount: git, tar and sqlite, checked with their own
//! consistency tools (`git fsck`, `tar --compare`, `PRAGMA integrity_check`) before and
//! after a remount, and sqlite's committed transactions after `kill -9` of the daemon.
//! These exercise what the unit-level tests do not: `mmap` (git reads packs and sqlite's
//! WAL index through it), rename-over for atomic updates, fsync of files and
//! directories, and many small writes at odd offsets.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;

/// A tree outside the mount with text, binary, empty and executable files.
fn build_tree(root: &str) {
    sh_ok(&format!(
        "mkdir -p {root}/src/deep/er {root}/empty && cd {root} && \
         seq 1 50000 > src/numbers.txt && head -c 700000 /dev/urandom > src/blob.bin && \
         : > src/empty.txt && printf '#!/bin/sh\\necho hi\\n' > src/run.sh && chmod 755 src/run.sh && \
         for i in $(seq 1 40); do seq $i 3 9000 > src/deep/er/f$i.txt; done && \
         ln -s numbers.txt src/link"
    ));
}

/// Runs git in `repo` with a fixed identity and no user or system config.
fn git(repo: &str, args: &str) -> String {
    sh_ok(&format!(
        "cd {repo} && HOME={repo}/.. GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t \
         GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t \
         GIT_COMMITTER_EMAIL=t@example.com git {args}"
    ))
}

#[test]
fn git_repository_commits_repacks_and_checks_clean_after_remount() {
    let mut fs = TestFs::new();
    fs.start();
    let repo = fs.m("repo");
    sh_ok(&format!("mkdir {repo}"));
    build_tree(&repo);
    git(&repo, "init -q");
    git(&repo, "add -A");
    git(&repo, "commit -q -m first");
    sh_ok(&format!(
        "cd {repo} && seq 7 7 70000 > src/numbers.txt && rm src/deep/er/f3.txt && \
         echo new > src/new.txt"
    ));
    git(&repo, "add -A");
    git(&repo, "commit -q -m second");
    // gc writes packs and indexes through temp files renamed into place, then reads
    // them back through mmap.
    git(&repo, "gc -q --aggressive");
    git(&repo, "fsck --full --strict");
    let head = git(&repo, "rev-parse HEAD");

    fs.restart();
    git(&repo, "fsck --full --strict");
    assert_eq!(git(&repo, "rev-parse HEAD"), head, "HEAD after remount");
    assert_eq!(
        git(&repo, "status --porcelain"),
        "",
        "work tree after remount"
    );
    assert_eq!(git(&repo, "rev-list --count HEAD").trim(), "2");
    // Going back rewrites the work tree from the packed objects.
    git(&repo, "checkout -q HEAD~1");
    let first = sh_ok(&format!(
        "cd {repo} && sha256sum src/numbers.txt src/deep/er/f3.txt"
    ));
    git(&repo, "checkout -q -");
    assert!(first.contains("src/deep/er/f3.txt"), "{first}");
    assert_eq!(
        sh_ok(&format!("cd {repo} && seq 1 50000 | sha256sum"))
            .split(' ')
            .next(),
        first.split(' ').next(),
        "first commit's numbers.txt"
    );
    // A clone out of the mount and back in must give the same objects.
    let out = fs.t("clone");
    sh_ok(&format!("git clone -q {repo} {out}"));
    let back = fs.m("back");
    sh_ok(&format!("git clone -q {out} {back}"));
    git(&back, "fsck --full --strict");
    assert_eq!(git(&back, "rev-parse HEAD"), head, "HEAD of the clone");
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn tar_archives_into_and_out_of_the_mount_compare_equal() {
    let mut fs = TestFs::new();
    fs.start();
    let src = fs.t("src");
    build_tree(&src);
    let archive = fs.m("tree.tar");
    sh_ok(&format!(
        "tar -C {src} --xattrs -cpf {archive} . && mkdir {m} && tar -C {m} --xattrs -xpf {archive}",
        m = fs.m("x")
    ));
    // --compare checks contents, sizes, modes, owners, mtimes and link targets.
    sh_ok(&format!("tar -C {} --compare -f {archive}", fs.m("x")));
    fs.restart();
    sh_ok(&format!("tar -C {} --compare -f {archive}", fs.m("x")));
    sh_ok(&format!("tar -C {src} --compare -f {archive}"));
    // And the other way: an archive made from the mount, unpacked natively.
    let back = fs.t("back");
    sh_ok(&format!(
        "mkdir {back} && tar -C {} -cpf - . | tar -C {back} -xpf - && diff -r --no-dereference {src} {back}",
        fs.m("x")
    ));
    fs.stop();
    fs.assert_no_panic();
}

/// Runs one sqlite3 command line on `db`.
fn sqlite(db: &str, sql: &str) -> String {
    sh_ok(&format!("sqlite3 {db} \"{sql}\""))
}

#[test]
fn sqlite_databases_stay_consistent_across_remount() {
    let mut fs = TestFs::new();
    fs.start();
    for mode in ["DELETE", "WAL"] {
        let db = fs.m(&format!("{mode}.db"));
        sqlite(
            &db,
            &format!("PRAGMA journal_mode={mode}; CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);"),
        );
        sqlite(
            &db,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<30000) \
             INSERT INTO t(b) SELECT hex(randomblob(40)) FROM c; \
             UPDATE t SET b='changed' WHERE a % 7 = 0; DELETE FROM t WHERE a % 11 = 0; \
             CREATE INDEX tb ON t(b); VACUUM;",
        );
    }
    fs.restart();
    for mode in ["DELETE", "WAL"] {
        let db = fs.m(&format!("{mode}.db"));
        assert_eq!(
            sqlite(&db, "PRAGMA integrity_check;").trim(),
            "ok",
            "{mode}"
        );
        assert_eq!(
            sqlite(&db, "SELECT count(*), sum(b='changed') FROM t;").trim(),
            "27273|3896",
            "{mode} rows after remount"
        );
    }
    fs.stop();
    fs.assert_no_panic();
}

/// Every transaction sqlite reported committed (its fsyncs returned) is in the
/// database after the daemon is killed mid-stream, and the database checks clean.
#[test]
fn sqlite_commits_survive_kill9_of_the_daemon() {
    let mut fs = TestFs::new();
    for mode in ["DELETE", "WAL"] {
        fs.start();
        let db = fs.m(&format!("{mode}.db"));
        sqlite(
            &db,
            &format!("PRAGMA journal_mode={mode}; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);"),
        );
        // One transaction per sqlite3 run; its number is logged outside the mount only
        // after sqlite3 exits 0, i.e. after the commit's fsyncs returned.
        let log = fs.t(&format!("{mode}.committed"));
        let writer = Background::spawn(&format!(
            "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); \
             sqlite3 {db} \"BEGIN; INSERT INTO t VALUES($i, randomblob(3000)); \
             UPDATE t SET b=randomblob(100) WHERE a=$i-5; COMMIT;\" >/dev/null 2>&1 || exit 0; \
             echo $i >> {log}; done"
        ));
        sleep(Duration::from_millis(2500));
        fs.assert_alive();
        fs.kill9();
        let _ = writer.finish(Duration::from_secs(60));
        let committed: u64 = sh_ok(&format!("tail -n 1 {log}"))
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            committed > 5,
            "{mode}: only {committed} transactions before the kill"
        );
        fs.start();
        assert_eq!(
            sqlite(&db, "PRAGMA integrity_check;").trim(),
            "ok",
            "{mode}"
        );
        let rows: u64 = sqlite(&db, "SELECT count(*) FROM t;")
            .trim()
            .parse()
            .unwrap_or(0);
        let max: u64 = sqlite(&db, "SELECT max(a) FROM t;")
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            max >= committed && rows == max,
            "{mode}: {committed} committed, database has {rows} rows up to {max}"
        );
        eprintln!("{mode}: {committed} transactions committed before kill -9, {rows} rows after");
        fs.stop();
    }
    fs.assert_no_panic();
}
