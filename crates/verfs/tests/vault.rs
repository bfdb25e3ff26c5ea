//! The encrypted folder `/.vault` through a real mount: the Phase 5 gate (hidden until
//! created and while locked, the data dir and the daemon log never holding its plain
//! bytes or the password, restart locking it, every `crypt` exit status, open handles
//! failing with EIO at lock, password change), tampered pack records answering EIO
//! (a flipped payload byte, payloads and nonces swapped between records, each with a
//! recomputed CRC so only the AEAD can tell), the boundary (EXDEV for rename and link,
//! `mv` falling back to copy, EPERM for removing or renaming `/.vault`), an rsync round
//! trip inside it, and snapshots hiding it while locked.
//!
//! Unlocking runs Argon2id (64 MiB, t=3, p=4, ~1 s), so each test unlocks only a few
//! times.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::vault::*;
use common::*;

#[test]
fn vault_gate() {
    let mut fs = TestFs::new();
    fs.start();
    let m = fs.m("");
    let v = fs.m(".vault");
    let pass = format!("pw-{}", random_token(20));

    // No vault yet: nothing listed, status none, the name reserved, lock refused.
    assert!(!lists_vault(&m), "a .vault before crypt -c");
    assert_eq!(vault_status(&fs), "none");
    let json = crypt_expect(&fs, &["--status", "--json"], None, 0);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json");
    assert_eq!(json, serde_json::json!({ "state": "none" }));
    assert_errno(
        fs::create_dir(&v),
        libc::EPERM,
        "mkdir /.vault before create",
    );
    assert!(!lists_vault(&m));
    crypt_expect(&fs, &["-l"], None, 1);

    // A key file of another vault, for the wrong-key-file unlock below.
    let mut other = TestFs::new();
    other.start();
    let other_key = create_vault(&other, &pass);
    other.stop();

    // Create: key file 0600, a warning for -p, unlocked and listed.
    let dir = path_str(fs.dir());
    let out = crypt_expect(&fs, &["-c", "-p", &pass, "--key-dir", &dir], None, 0);
    assert!(!out.stdout.is_empty(), "crypt -c prints a line");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("warning"),
        "-p warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = fs.t(KEY_NAME);
    let key_bytes = fs::read(&key).expect("read key file");
    assert!(!key_bytes.is_empty());
    let mode = fs::metadata(&key)
        .expect("stat key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    assert_eq!(vault_status(&fs), "unlocked");
    assert!(lists_vault(&m), "no .vault after crypt -c");
    // A second create: over the existing key file 4, into a fresh key dir 1.
    crypt_expect(&fs, &["-c", "-p", &pass, "--key-dir", &dir], None, 4);
    assert_eq!(
        fs::read(&key).expect("key file"),
        key_bytes,
        "key file kept"
    );
    let dir2 = fs.t("second");
    fs::create_dir(&dir2).expect("mkdir second key dir");
    crypt_expect(&fs, &["-c", "-p", &pass, "--key-dir", &dir2], None, 1);
    assert_eq!(vault_status(&fs), "unlocked");

    // Contents: a dir, a 1 MiB file, a text file appended to and renamed, a marked file;
    // outside: a marked file and a text file of the same construction (the controls).
    let (marker_in, marker_out) = (random_hex(12), random_hex(12));
    let (line1, line2, line_out) = (random_token(48), random_token(48), random_token(48));
    let (big_src, secret_src, plain_src) = (fs.t("big.bin"), fs.t("secret.bin"), fs.t("plain.bin"));
    write_random(&big_src, 1 << 20, 51);
    let offsets = [1000, 150_000, 290_000];
    write_random_with_marker(&secret_src, 300 << 10, 52, marker_in.as_bytes(), &offsets);
    write_random_with_marker(&plain_src, 300 << 10, 53, marker_out.as_bytes(), &offsets);
    sh_ok(&format!(
        "mkdir {v}/d && cp {big_src} {v}/d/big.bin && printf '%s\\n' '{line1}' > {v}/d/note.txt \
         && printf '%s\\n' '{line2}' >> {v}/d/note.txt && mv {v}/d/note.txt {v}/d/renamed.txt \
         && cp {secret_src} {v}/secret.bin && cp {plain_src} {m}/plain.bin \
         && printf '%s\\n' '{line_out}' > {m}/outside.txt && sync"
    ));
    let note = format!("{line1}\n{line2}\n");
    let big_sum = sha256(&big_src);
    let secret_sum = sha256(&secret_src);
    let check_contents = |fs: &TestFs| {
        assert_eq!(sha256(&fs.m(".vault/d/big.bin")), big_sum);
        assert_eq!(sha256(&fs.m(".vault/secret.bin")), secret_sum);
        assert_eq!(
            sh_ok(&format!("cat {}", fs.m(".vault/d/renamed.txt"))),
            note
        );
        assert_errno(
            fs::metadata(fs.m(".vault/d/note.txt")),
            libc::ENOENT,
            "renamed-away name",
        );
    };
    check_contents(&fs);
    assert_eq!(sh_ok(&format!("ls {v}")), "d\nsecret.bin\n");

    // With the daemon stopped, the data dir holds the outside file's bytes verbatim but
    // none of the vault's, nor the password; neither does the daemon log.
    fs.stop();
    assert_eq!(
        crypt(&fs, &["--status"], None).status.code(),
        Some(2),
        "no daemon is exit 2"
    );
    let mut files = Vec::new();
    files_under(&fs.data, &mut files);
    assert!(
        !holders(&files, marker_out.as_bytes()).is_empty(),
        "control: the outside file's marker is not stored verbatim; the scan proves nothing"
    );
    assert!(
        !holders(&files, line_out.as_bytes()).is_empty(),
        "control: the outside text file is not stored verbatim; the scan proves nothing"
    );
    let big = fs::read(&big_src).expect("read big source");
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("vault file marker", marker_in.as_bytes().to_vec()),
        ("vault text line 1", line1.as_bytes().to_vec()),
        ("vault text line 2 (appended)", line2.as_bytes().to_vec()),
        ("password", pass.as_bytes().to_vec()),
    ];
    for off in [4096usize, 300_000, 700_000, (1 << 20) - 100] {
        secrets.push(("1 MiB vault file window", big[off..off + 64].to_vec()));
    }
    let log = fs.log();
    for (what, needle) in &secrets {
        let found = holders(&files, needle);
        assert!(found.is_empty(), "{what} found in the data dir: {found:?}");
        assert!(
            !contains(log.as_bytes(), needle),
            "{what} found in the daemon log"
        );
    }

    // A restart always starts locked: hidden, unreachable, the name still reserved.
    fs.start();
    assert_eq!(vault_status(&fs), "locked");
    let json = crypt_expect(&fs, &["--status", "--json"], None, 0);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json");
    assert_eq!(json, serde_json::json!({ "state": "locked" }));
    let assert_hidden = |fs: &TestFs| {
        assert!(!lists_vault(&fs.m("")), "locked .vault listed");
        assert_errno(fs::metadata(&v), libc::ENOENT, "stat locked /.vault");
        assert_errno(
            fs::metadata(fs.m(".vault/secret.bin")),
            libc::ENOENT,
            "stat inside locked /.vault",
        );
        assert_errno(fs::create_dir(&v), libc::EPERM, "mkdir locked /.vault");
    };
    assert_hidden(&fs);
    assert_eq!(sha256(&fs.m("plain.bin")), sha256(&plain_src));

    // Unlock refusals: wrong password 3, malformed key file 4, missing key file 4,
    // another vault's key file 3; each leaves it locked and hidden.
    unlock(&fs, &key, &format!("{pass}x"), 3);
    assert_hidden(&fs);
    let bad_key = fs.t("bad.key");
    fs::write(&bad_key, urandom(64)).expect("write malformed key file");
    unlock(&fs, &bad_key, &pass, 4);
    unlock(&fs, &fs.t("missing.key"), &pass, 4);
    unlock(&fs, &other_key, &pass, 3);
    assert_eq!(vault_status(&fs), "locked");
    assert_hidden(&fs);

    // Unlock: everything intact; a second unlock is 1.
    unlock(&fs, &key, &pass, 0);
    assert_eq!(vault_status(&fs), "unlocked");
    assert!(lists_vault(&m));
    check_contents(&fs);
    unlock(&fs, &key, &pass, 1);

    // Lock with a file open inside: the open handle fails with EIO, even at an offset it
    // read before; creating inside fails.
    let handle = File::open(fs.m(".vault/d/big.bin")).expect("open vault file");
    let mut buf = vec![0u8; 4096];
    handle
        .read_exact_at(&mut buf, 0)
        .expect("read while unlocked");
    assert_eq!(buf, big[..4096]);
    lock(&fs);
    assert_eq!(vault_status(&fs), "locked");
    assert_errno(
        handle.read_at(&mut buf, 0),
        libc::EIO,
        "read of an open vault file after lock (offset read before)",
    );
    assert_errno(
        handle.read_at(&mut buf, (1 << 20) - 4096),
        libc::EIO,
        "read of an open vault file after lock",
    );
    drop(handle);
    assert!(
        File::create(fs.m(".vault/new.txt")).is_err(),
        "created a file in the locked vault"
    );
    assert!(
        fs::create_dir(fs.m(".vault/d/sub")).is_err(),
        "created a directory in the locked vault"
    );
    assert_hidden(&fs);
    crypt_expect(&fs, &["-l"], None, 1);

    // Password change: a wrong old password is 3; the right one (old and new from
    // stdin) re-wraps, then the old password is 3 and the new one unlocks.
    let new_pass = format!("new-{}", random_token(20));
    let new_file = fs.t("new-pass");
    fs::write(&new_file, format!("{new_pass}\n")).expect("write new password file");
    crypt_expect(
        &fs,
        &[
            "--change-password",
            "-k",
            &key,
            "-p",
            "not-the-password",
            "--new-password-file",
            &new_file,
        ],
        None,
        3,
    );
    crypt_expect(
        &fs,
        &["--change-password", "-k", &key],
        Some(&format!("{pass}\n{new_pass}\n")),
        0,
    );
    assert_eq!(vault_status(&fs), "locked");
    unlock(&fs, &key, &pass, 3);
    let pass_file = fs.t("pass");
    fs::write(&pass_file, format!("{new_pass}\n")).expect("write password file");
    crypt_expect(
        &fs,
        &["-u", "--password-file", &pass_file, "-k", &key],
        None,
        0,
    );
    assert_eq!(vault_status(&fs), "unlocked");
    check_contents(&fs);
    assert_eq!(
        sh_ok(&format!("ls {v}")),
        "d\nsecret.bin\n",
        "nothing created while locked"
    );
    assert_eq!(sh_ok(&format!("ls {v}/d")), "big.bin\nrenamed.txt\n");
    fs.stop();
    assert!(
        !contains(fs.log().as_bytes(), new_pass.as_bytes()),
        "new password in the daemon log"
    );
    fs.assert_no_panic();
}

#[test]
fn vault_mv_across_boundary() {
    let mut fs = TestFs::new();
    fs.start();
    let m = fs.m("");
    let v = fs.m(".vault");
    let pass = format!("pw-{}", random_token(16));
    // The seed's flags: -path DIR for the key dir, the password from a file.
    let pass_file = fs.t("pass");
    fs::write(&pass_file, format!("{pass}\n")).expect("write password file");
    let dir = path_str(fs.dir());
    crypt_expect(
        &fs,
        &["-c", "--password-file", &pass_file, "-path", &dir],
        None,
        0,
    );
    let key = fs.t(KEY_NAME);
    assert!(Path::new(&key).exists(), "-path DIR is the key dir");

    // /.vault itself cannot be removed or renamed (tried while empty, where a plain
    // directory would go).
    assert_errno(fs::remove_dir(&v), libc::EPERM, "rmdir /.vault");
    assert_errno(fs::rename(&v, fs.m("x")), libc::EPERM, "rename /.vault");
    sh_fail(&format!("rmdir {v}"));
    sh_fail(&format!("mv {v} {m}/x"));
    assert!(lists_vault(&m));
    assert_errno(fs::metadata(fs.m("x")), libc::ENOENT, "renamed vault");

    let (out_src, in_src) = (fs.t("out.bin"), fs.t("in.bin"));
    write_random(&out_src, 100 << 10, 81);
    write_random(&in_src, 120 << 10, 82);
    let (out_sum, in_sum) = (sha256(&out_src), sha256(&in_src));
    sh_ok(&format!(
        "cp {out_src} {m}/plain.bin && cp {in_src} {v}/inner.bin && mkdir {m}/dir {v}/vdir \
         && echo x > {m}/dir/f"
    ));

    // rename(2) and link(2) across the boundary, either way: EXDEV.
    let exdev = |from: &str, to: &str| {
        let (from, to) = (fs.m(from), fs.m(to));
        assert_errno(
            fs::rename(&from, &to),
            libc::EXDEV,
            &format!("rename {from} {to}"),
        );
        assert_errno(
            fs::hard_link(&from, &to),
            libc::EXDEV,
            &format!("link {from} {to}"),
        );
    };
    exdev("plain.bin", ".vault/plain.bin");
    exdev(".vault/inner.bin", "inner.bin");
    exdev("plain.bin", ".vault/vdir/plain.bin");
    exdev(".vault/inner.bin", "dir/inner.bin");
    assert_errno(
        fs::rename(fs.m("dir"), fs.m(".vault/dir")),
        libc::EXDEV,
        "rename a directory into the vault",
    );
    assert_errno(
        fs::rename(fs.m(".vault/vdir"), fs.m("vdir")),
        libc::EXDEV,
        "rename a directory out of the vault",
    );
    sh_fail(&format!("ln {m}/plain.bin {v}/link.bin"));
    sh_fail(&format!("ln {v}/inner.bin {m}/link.bin"));
    assert_eq!(sh_ok(&format!("ls {v}")), "inner.bin\nvdir\n");

    // mv copies across (EXDEV fallback) and removes the source.
    sh_ok(&format!("mv {m}/plain.bin {v}/moved_in.bin"));
    sh_ok(&format!("mv {v}/inner.bin {m}/moved_out.bin"));
    sh_ok(&format!("mv {m}/dir {v}/dir"));
    assert_errno(fs::metadata(fs.m("plain.bin")), libc::ENOENT, "mv source");
    assert_errno(
        fs::metadata(fs.m(".vault/inner.bin")),
        libc::ENOENT,
        "mv source",
    );
    assert_eq!(sha256(&fs.m(".vault/moved_in.bin")), out_sum);
    assert_eq!(sha256(&fs.m("moved_out.bin")), in_sum);
    assert_eq!(sh_ok(&format!("cat {v}/dir/f")), "x\n");

    // Locked: what moved in is gone with the vault, what moved out still reads.
    lock(&fs);
    assert_errno(
        fs::metadata(fs.m(".vault/moved_in.bin")),
        libc::ENOENT,
        "moved-in file while locked",
    );
    assert_errno(
        fs::metadata(fs.m(".vault/dir/f")),
        libc::ENOENT,
        "moved-in dir while locked",
    );
    assert!(!lists_vault(&m));
    assert_eq!(sha256(&fs.m("moved_out.bin")), in_sum);
    assert_eq!(sh_ok(&format!("ls {m}")), "moved_out.bin\n");

    unlock(&fs, &key, &pass, 0);
    assert_eq!(sha256(&fs.m(".vault/moved_in.bin")), out_sum);
    assert_eq!(sh_ok(&format!("cat {v}/dir/f")), "x\n");
    fs.stop();
    fs.assert_no_panic();
}

/// Size, mode, link count, mtime, symlink target and xattrs of a tree (as in rsync.rs).
fn tree_metadata(root: &str) -> String {
    sh_ok(&format!(
        "cd {root} && (find . -mindepth 1 ! -type d -printf '%p %y %s %m %n %Ts %l\\n' | sort && \
         find . -mindepth 1 -type d -printf '%p dir %m %Ts\\n' | sort && \
         getfattr -R -d -m - --absolute-names -h . 2>/dev/null | grep -v '^$' | sort) | cat -v"
    ))
}

#[test]
fn vault_rsync_round_trip() {
    if which("rsync").is_none() {
        eprintln!("note: rsync is not installed; vault_rsync_round_trip skipped");
        return;
    }
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    create_vault(&fs, &pass);
    let src = fs.t("src");
    sh_ok(&format!(
        "mkdir -p {src}/a/b {src}/e && cd {src} && printf 'hello\\n' > a/hello.txt && : > a/empty \
         && head -c 300000 /dev/urandom > a/b/big.bin && seq 1 5000 > a/b/numbers.txt \
         && printf '#!/bin/sh\\n' > a/run.sh && ln a/hello.txt a/hardlink && ln -s hello.txt a/link \
         && ln -s b a/dirlink && setfattr -n user.x -v y a/hello.txt \
         && setfattr -n user.dir -v z a/b && chmod 600 a/b/numbers.txt && chmod 755 a/run.sh \
         && chmod 1777 e && chmod 640 a/b/big.bin && touch -d '2001-02-03 04:05:06' a/empty"
    ));
    let inside = fs.m(".vault/t");
    let back = fs.t("back");
    sh_ok(&format!("rsync -aHAX {src}/ {inside}/"));
    sh_ok(&format!("rsync -aHAX {inside}/ {back}/"));

    let (want_files, want_meta) = (manifest(&src), tree_metadata(&src));
    assert_eq!(manifest(&inside), want_files, "contents in the vault");
    assert_eq!(tree_metadata(&inside), want_meta, "metadata in the vault");
    assert_eq!(manifest(&back), want_files, "contents after the round trip");
    assert_eq!(
        tree_metadata(&back),
        want_meta,
        "metadata after the round trip"
    );
    sh_ok(&format!("diff -r --no-dereference {src} {back}"));
    assert_eq!(
        sh_ok(&format!("rsync -aHAXn --itemize-changes {src}/ {inside}/")),
        ""
    );
    assert_eq!(
        sh_ok(&format!("stat -c %h {inside}/a/hello.txt")).trim(),
        "2"
    );
    assert_eq!(
        sh_ok(&format!(
            "getfattr --only-values -n user.x {inside}/a/hello.txt"
        )),
        "y"
    );
    fs.stop();
    fs.assert_no_panic();
}

/// The path of `program` on `PATH`, if any.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[test]
fn vault_snapshot_hides_vault_while_locked() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    let (old, new) = (random_token(40), random_token(40));
    let f = fs.m(".vault/f.txt");
    sh_ok(&format!(
        "mkdir {v}/d && printf '%s' '{old}' > {f} && echo deep > {v}/d/g",
        v = fs.m(".vault")
    ));
    fs.snapshot_ok(&["create", "s1"]);
    // The live file changes after the snapshot; the snapshot keeps the old bytes.
    sh_ok(&format!("printf '%s' '{new}' > {f}"));
    // Looked at while unlocked, so the kernel has the snapshot's `.vault` entry (and
    // its file) cached when the lock comes: the lock must make it forget them.
    sh_ok(&format!(
        "ls -la {s}/.vault/ >/dev/null && stat {s}/.vault/f.txt >/dev/null",
        s = fs.m(".snapshots/s1")
    ));
    lock(&fs);

    let s1 = fs.m(".snapshots/s1");
    let listing = sh_ok(&format!("ls -a {s1}"));
    assert!(
        !listing.lines().any(|l| l == ".vault"),
        "snapshot lists the locked vault:\n{listing}"
    );
    assert!(!lists_vault(&s1));
    assert_errno(
        fs::metadata(fs.m(".snapshots/s1/.vault")),
        libc::ENOENT,
        "stat the snapshot's vault while locked",
    );
    assert_errno(
        fs::metadata(fs.m(".snapshots/s1/.vault/f.txt")),
        libc::ENOENT,
        "stat a file in the snapshot's vault while locked",
    );
    assert!(
        !sh(&format!("cat {s1}/.vault/f.txt")).status.success(),
        "read the snapshot's vault file while locked"
    );
    // Nor does `snapshot diff` name anything in it (the file changed since s1).
    let diff = fs.snapshot_ok(&["diff", "s1"]);
    assert!(
        !diff.contains(".vault"),
        "diff names the locked vault:\n{diff}"
    );

    unlock(&fs, &key, &pass, 0);
    let listing = sh_ok(&format!("ls -a {s1}"));
    assert!(
        listing.lines().any(|l| l == ".vault"),
        "the unlocked snapshot lacks .vault:\n{listing}"
    );
    let diff = fs.snapshot_ok(&["diff", "s1"]);
    assert!(
        diff.contains("/.vault/f.txt"),
        "unlocked diff lacks the vault file:\n{diff}"
    );
    assert_eq!(sh_ok(&format!("cat {s1}/.vault/f.txt")), old);
    assert_eq!(sh_ok(&format!("cat {s1}/.vault/d/g")), "deep\n");
    assert_eq!(sh_ok(&format!("cat {f}")), new);
    fs.stop();
    fs.assert_no_panic();
}

/// A lock never loses an acknowledged write: data written (answered from the queue,
/// not fsync'd) right before `crypt -l` is committed, sealed, by the lock and reads back
/// after the next unlock, also after a clean restart.
#[test]
fn vault_lock_commits_queued_writes() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    let path = fs.m(".vault/queued");
    let data = urandom(24 << 20);
    {
        let mut f = File::create(&path).unwrap();
        // Several writes, none synced, and a tail below a chunk (held back in memory).
        for part in data.chunks(3 << 20) {
            f.write_all(part).unwrap();
        }
        f.write_all(b"tail").unwrap();
    }
    lock(&fs);
    unlock(&fs, &key, &pass, 0);
    let mut want = data.clone();
    want.extend_from_slice(b"tail");
    assert!(
        fs::read(&path).unwrap() == want,
        "queued writes lost by the lock"
    );
    fs.restart();
    unlock(&fs, &key, &pass, 0);
    assert!(fs::read(&path).unwrap() == want, "after restart");
    fs.stop();
    fs.assert_no_panic();
}

/// `kill -9` with the vault unlocked: the restart is locked, and what was fsync'd inside
/// reads back after unlocking.
#[test]
fn vault_fsynced_data_survives_kill9() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    let path = fs.m(".vault/synced");
    let data = urandom(5 << 20);
    {
        let mut f = File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        // Unsynced bytes after the fsync may or may not survive; they are not checked.
        f.write_all(&urandom(1 << 20)).unwrap();
    }
    fs.kill9();
    fs.start();
    assert_eq!(vault_status(&fs), "locked");
    assert!(!lists_vault(&fs.m("")));
    unlock(&fs, &key, &pass, 0);
    let got = fs::read(&path).unwrap();
    assert!(
        got.len() >= data.len(),
        "fsync'd length lost: {}",
        got.len()
    );
    assert!(got[..data.len()] == data[..], "fsync'd bytes differ");
    fs.stop();
    fs.assert_no_panic();
}
