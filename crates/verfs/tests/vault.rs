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

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;

/// The key file `crypt -c` writes into its key dir.
const KEY_NAME: &str = "verfsnext.vault.key";

// ---- the `crypt` CLI ----

/// `verfsnext crypt ARGS... --data-dir DATA`; `stdin` is fed to it, else /dev/null.
fn crypt(fs: &TestFs, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = fs.command("timeout");
    cmd.args(["-k", "5", "120", BIN.as_str(), "crypt"])
        .args(args)
        .arg("--data-dir")
        .arg(&fs.data);
    let Some(input) = stdin else {
        return cmd.output().expect("run verfsnext crypt");
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verfsnext crypt");
    // A child that exits before reading closes the pipe; its status tells then.
    let _ = child
        .stdin
        .take()
        .expect("stdin pipe")
        .write_all(input.as_bytes());
    child.wait_with_output().expect("wait for verfsnext crypt")
}

/// Runs `crypt ARGS...` and asserts its exit status is `code`.
fn crypt_expect(fs: &TestFs, args: &[&str], stdin: Option<&str>, code: i32) -> Output {
    let out = crypt(fs, args, stdin);
    assert_eq!(
        out.status.code(),
        Some(code),
        "crypt {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `crypt --status`, trimmed.
fn vault_status(fs: &TestFs) -> String {
    let out = crypt_expect(fs, &["--status"], None, 0);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `crypt -c -p PASS --key-dir TEMP` (must succeed); returns the key file's path.
fn create_vault(fs: &TestFs, pass: &str) -> String {
    let dir = path_str(fs.dir());
    crypt_expect(fs, &["-c", "-p", pass, "--key-dir", &dir], None, 0);
    fs.t(KEY_NAME)
}

/// `crypt -u -p PASS -k KEY`, asserting exit status `code`.
fn unlock(fs: &TestFs, key: &str, pass: &str, code: i32) {
    crypt_expect(fs, &["-u", "-p", pass, "-k", key], None, code);
}

/// `crypt -l`, asserting success.
fn lock(fs: &TestFs) {
    crypt_expect(fs, &["-l"], None, 0);
}

// ---- random bytes and the data dir ----

fn urandom(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// `n` random bytes as lowercase hex (`2n` characters).
fn random_hex(n: usize) -> String {
    urandom(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random characters of a 64-letter, shell-safe alphabet: text that zstd cannot
/// shrink in a small file, so a file holding it is stored verbatim unless encrypted.
fn random_token(n: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    urandom(n)
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect()
}

/// Seeded random bytes (`write_random`) with `marker` written over them at `offsets`.
fn write_random_with_marker(path: &str, len: usize, seed: u64, marker: &[u8], offsets: &[u64]) {
    write_random(path, len, seed);
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    for &off in offsets {
        f.write_all_at(marker, off).expect("write marker");
    }
    f.sync_all().expect("fsync marked file");
}

/// Every regular file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("read dir entry").path();
        let meta = fs::symlink_metadata(&path).expect("lstat data dir entry");
        if meta.is_dir() {
            files_under(&path, out);
        } else if meta.is_file() {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            out.push((path, bytes));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    hay.windows(needle.len())
        .any(|w| w[0] == first && w == needle)
}

/// The files of `files` that contain `needle`.
fn holders<'a>(files: &'a [(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<&'a Path> {
    files
        .iter()
        .filter(|(_, bytes)| contains(bytes, needle))
        .map(|(p, _)| p.as_path())
        .collect()
}

// ---- errors and listings ----

/// Asserts that `res` failed with OS error `want`.
fn assert_errno<T>(res: std::io::Result<T>, want: i32, what: &str) {
    match res {
        Ok(_) => panic!("{what}: succeeded, want errno {want}"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(want), "{what}: {e}"),
    }
}

/// Whether `ls -la DIR` names `.vault`.
fn lists_vault(dir: &str) -> bool {
    sh_ok(&format!("ls -la {dir}"))
        .lines()
        .any(|l| l.split_whitespace().last() == Some(".vault"))
}

// ---- pack records ----

/// Size of a record header (without nonce).
const REC_HEADER: usize = 36;
/// Size of the nonce after an encrypted record's header.
const NONCE: usize = 24;
/// Record flag bit: the payload is sealed (vault chunk).
const FLAG_ENCRYPTED: u8 = 1;
/// Size of a pack file header.
const PACK_HEADER: usize = 16;

/// One record of a pack file as found on disk.
#[derive(Clone)]
struct Record {
    pack: PathBuf,
    /// Offset of the record header in the pack.
    offset: u64,
    flags: u8,
    plain_len: u32,
    stored_len: u32,
    /// The whole record: header, nonce, payload.
    bytes: Vec<u8>,
}

impl Record {
    fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Offset of the nonce within the record (encrypted records only).
    fn nonce_start(&self) -> usize {
        REC_HEADER
    }

    /// Offset of the payload within the record.
    fn payload_start(&self) -> usize {
        REC_HEADER + if self.encrypted() { NONCE } else { 0 }
    }
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) over `parts` in turn.
fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &b in *part {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
            }
        }
    }
    !crc
}

/// A record's CRC: over the first 32 header bytes, the nonce and the payload.
fn record_crc(record: &[u8]) -> u32 {
    crc32c(&[&record[..32], &record[REC_HEADER..]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Every record of every pack (walked from the pack header to the first non-record:
/// the sealed index, or the end). Checks each stored CRC against the test's own
/// CRC32C, so a misparse fails here instead of making the tamper tests vacuous.
fn pack_records(fs: &TestFs) -> Vec<Record> {
    let mut out = Vec::new();
    for pack in fs.packs() {
        let data = fs::read(&pack).unwrap_or_else(|e| panic!("read {}: {e}", pack.display()));
        assert_eq!(&data[..8], b"VFSPACK1", "pack magic of {}", pack.display());
        let mut off = PACK_HEADER;
        while off + REC_HEADER <= data.len() && &data[off..off + 4] == b"VREC" {
            let head = &data[off..off + REC_HEADER];
            let flags = head[21];
            let plain_len = le32(&head[24..28]);
            let stored_len = le32(&head[28..32]);
            let crc = le32(&head[32..36]);
            let nonce = if flags & FLAG_ENCRYPTED != 0 {
                NONCE
            } else {
                0
            };
            let len = REC_HEADER + nonce + stored_len as usize;
            assert!(
                off + len <= data.len(),
                "record at {off} of {} runs past the end",
                pack.display()
            );
            let bytes = data[off..off + len].to_vec();
            assert_eq!(
                record_crc(&bytes),
                crc,
                "CRC32C of the record at {off} of {}: the test's parser disagrees with the format",
                pack.display()
            );
            out.push(Record {
                pack: pack.clone(),
                offset: off as u64,
                flags,
                plain_len,
                stored_len,
                bytes,
            });
            off += len;
        }
    }
    out
}

/// Writes `bytes` as the record at `rec`'s place, with its CRC recomputed so that the
/// record passes the pack's damage check.
fn write_record(rec: &Record, bytes: &[u8]) {
    assert_eq!(bytes.len(), rec.bytes.len(), "a record keeps its length");
    let mut bytes = bytes.to_vec();
    let crc = record_crc(&bytes);
    bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    let f = OpenOptions::new()
        .write(true)
        .open(&rec.pack)
        .unwrap_or_else(|e| panic!("open {}: {e}", rec.pack.display()));
    f.write_all_at(&bytes, rec.offset).expect("write record");
    f.sync_all().expect("fsync pack");
}

/// Re-reads `rec` from its pack and rewrites its CRC for the bytes now there.
fn fix_crc(rec: &Record) {
    let f = File::open(&rec.pack).expect("open pack");
    let mut bytes = vec![0u8; rec.bytes.len()];
    f.read_exact_at(&mut bytes, rec.offset)
        .expect("read record back");
    write_record(rec, &bytes);
}

/// Reading `path` fails with EIO; if it reads, says whether it got `other`'s bytes.
fn assert_read_eio(path: &str, other: Option<&[u8]>) {
    match fs::read(path) {
        Ok(got) => panic!(
            "reading {path} succeeded ({} bytes{}), want EIO",
            got.len(),
            if other.is_some_and(|o| o == got.as_slice()) {
                ": the OTHER file's content"
            } else {
                ""
            }
        ),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "reading {path}: {e}"),
    }
}

// ---- tests ----

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
fn vault_tamper_flipped_byte_is_eio() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    // The password from stdin's first line (no -p, stdin not a terminal).
    let dir = path_str(fs.dir());
    crypt_expect(
        &fs,
        &["-c", "--key-dir", &dir],
        Some(&format!("{pass}\n")),
        0,
    );
    let key = fs.t(KEY_NAME);
    let (plain_src, vault_src) = (fs.t("plain.bin"), fs.t("vault.bin"));
    write_random(&plain_src, 150 << 10, 61);
    write_random(&vault_src, 200 << 10, 62);
    sh_ok(&format!(
        "cp {plain_src} {} && cp {vault_src} {} && sync",
        fs.m("plain.bin"),
        fs.m(".vault/vault.bin")
    ));
    fs.stop();

    let records = pack_records(&fs);
    let encrypted: Vec<&Record> = records.iter().filter(|r| r.encrypted()).collect();
    assert!(
        !encrypted.is_empty(),
        "no encrypted record in the packs: the vault file is stored in the clear"
    );
    assert!(
        records.iter().any(|r| !r.encrypted()),
        "the plain file's records are missing or encrypted"
    );
    // One byte in the middle of every sealed payload, CRC made right again: only the
    // AEAD tag can notice.
    for rec in &encrypted {
        let at = rec.offset + (rec.payload_start() + rec.stored_len as usize / 2) as u64;
        flip_bytes(&rec.pack, at, 1);
        fix_crc(rec);
    }

    fs.start();
    assert_eq!(vault_status(&fs), "locked");
    unlock(&fs, &key, &pass, 0);
    assert_read_eio(&fs.m(".vault/vault.bin"), None);
    assert!(
        !sh(&format!("cat {} > /dev/null", fs.m(".vault/vault.bin")))
            .status
            .success(),
        "cat of the tampered vault file succeeded"
    );
    assert_eq!(sha256(&fs.m("plain.bin")), sha256(&plain_src));
    assert_eq!(size_of(&fs.m(".vault/vault.bin")), 200 << 10);
    fs.assert_alive();
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn vault_tamper_swapped_payloads_is_eio() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    // Two files below the minimum chunk size: one chunk each, random (stored raw under
    // the seal), so both records have the same plain and stored lengths.
    const LEN: usize = 8000;
    let (a_src, b_src) = (fs.t("a.bin"), fs.t("b.bin"));
    write_random(&a_src, LEN, 71);
    write_random(&b_src, LEN, 72);
    let (a, b) = (fs.m(".vault/a.bin"), fs.m(".vault/b.bin"));
    sh_ok(&format!("cp {a_src} {a} && cp {b_src} {b} && sync"));
    fs.stop();

    let records = pack_records(&fs);
    let pair: Vec<Record> = records
        .iter()
        .filter(|r| r.encrypted() && r.plain_len as usize == LEN)
        .cloned()
        .collect();
    assert_eq!(
        pair.len(),
        2,
        "want one encrypted record per file; encrypted records (plain, stored): {:?}",
        records
            .iter()
            .filter(|r| r.encrypted())
            .map(|r| (r.plain_len, r.stored_len))
            .collect::<Vec<_>>()
    );
    let (r0, r1) = (&pair[0], &pair[1]);
    assert_eq!(r0.stored_len, r1.stored_len, "equal stored lengths");
    let (a_bytes, b_bytes) = (fs::read(&a_src).expect("a"), fs::read(&b_src).expect("b"));

    // Swaps bytes `from..` between the two records; headers stay, CRCs are recomputed.
    let swap_from = |from: usize| {
        let mut x = r0.bytes.clone();
        let mut y = r1.bytes.clone();
        x[from..].copy_from_slice(&r1.bytes[from..]);
        y[from..].copy_from_slice(&r0.bytes[from..]);
        write_record(r0, &x);
        write_record(r1, &y);
    };
    let restore = || {
        write_record(r0, &r0.bytes);
        write_record(r1, &r1.bytes);
    };
    let check_eio = |fs: &mut TestFs, what: &str| {
        fs.start();
        unlock(fs, &key, &pass, 0);
        eprintln!("checking: {what}");
        assert_read_eio(&a, Some(&b_bytes));
        assert_read_eio(&b, Some(&a_bytes));
        fs.assert_alive();
        fs.stop();
    };

    // Payloads swapped, each record keeping its own nonce.
    swap_from(r0.payload_start());
    check_eio(&mut fs, "payloads swapped");
    // Nonces and payloads swapped together.
    restore();
    swap_from(r0.nonce_start());
    check_eio(&mut fs, "nonces and payloads swapped");
    // Put back, both read again: the EIOs came from the swaps.
    restore();
    for rec in [r0, r1] {
        let mut now = vec![0u8; rec.bytes.len()];
        File::open(&rec.pack)
            .and_then(|f| f.read_exact_at(&mut now, rec.offset))
            .expect("read restored record");
        assert!(now == rec.bytes, "record at {} not restored", rec.offset);
    }
    fs.start();
    unlock(&fs, &key, &pass, 0);
    assert_eq!(fs::read(&a).expect("read a after restore"), a_bytes);
    assert_eq!(fs::read(&b).expect("read b after restore"), b_bytes);
    fs.stop();
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

/// `copy_file_range` of `len` bytes from `src` to `dst` (both from offset 0), looping on
/// short copies; returns the bytes copied.
fn copy_range(src: &str, dst: &str, len: usize) -> usize {
    use std::os::fd::AsRawFd;
    let input = File::open(src).expect("open copy source");
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .expect("open copy destination");
    let (mut off_in, mut off_out, mut done) = (0i64, 0i64, 0usize);
    while done < len {
        // SAFETY: both descriptors are open for this call; the offsets are ours.
        let n = unsafe {
            libc::copy_file_range(
                input.as_raw_fd(),
                &mut off_in,
                output.as_raw_fd(),
                &mut off_out,
                len - done,
                0,
            )
        };
        assert!(
            n > 0,
            "copy_file_range {src} -> {dst}: {}",
            std::io::Error::last_os_error()
        );
        done += n as usize;
    }
    done
}

#[test]
fn vault_copy_file_range_across_boundary_copies_bytes() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    let (plain, sealed) = (1usize << 20, 512usize << 10);
    write_random(&fs.m("src"), plain, 11);
    write_random(&fs.m(".vault/v2"), sealed, 12);
    // Plain into the vault and vault out to plain: the bytes must be re-stored in the
    // destination's domain, never shared as chunks.
    assert_eq!(copy_range(&fs.m("src"), &fs.m(".vault/dst"), plain), plain);
    assert_eq!(
        copy_range(&fs.m(".vault/v2"), &fs.m("out2"), sealed),
        sealed
    );
    let (sum_src, sum_v2) = (sha256(&fs.m("src")), sha256(&fs.m(".vault/v2")));
    assert_eq!(sha256(&fs.m(".vault/dst")), sum_src);
    assert_eq!(sha256(&fs.m("out2")), sum_v2);
    sh_ok(&format!("sync -f {}", fs.m("src")));
    fs.stop();

    let records = pack_records(&fs);
    let total = |enc: bool| -> u64 {
        records
            .iter()
            .filter(|r| r.encrypted() == enc)
            .map(|r| u64::from(r.plain_len))
            .sum()
    };
    // Shared chunks would leave `dst` on src's plain records (encrypted bytes would be
    // only v2's) and `out2` on v2's encrypted ones (plain bytes only src's).
    assert!(
        total(true) >= (plain + sealed) as u64,
        "encrypted records hold {} plain bytes, want ≥ {}",
        total(true),
        plain + sealed
    );
    assert!(
        total(false) >= (plain + sealed) as u64,
        "plain records hold {} bytes, want ≥ {}",
        total(false),
        plain + sealed
    );

    fs.start();
    assert_eq!(vault_status(&fs), "locked");
    assert_eq!(
        sha256(&fs.m("out2")),
        sum_v2,
        "copied-out file reads while locked"
    );
    unlock(&fs, &key, &pass, 0);
    assert_eq!(sha256(&fs.m(".vault/dst")), sum_src);
    fs.stop();
    fs.assert_no_panic();
}

/// GC moves vault records as ciphertext and needs no key: with the vault locked, a
/// deleted vault file's packs are rewritten around the surviving vault file, which
/// then reads back intact once unlocked, and fsck (which cannot decrypt) finds nothing.
#[test]
fn vault_gc_rewrites_packs_while_locked() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    // Interleaved small writes put the two files' chunks into the same packs, so
    // freeing one makes GC rewrite (not just remove) packs holding the other.
    let (keep, gone) = (fs.m(".vault/keep"), fs.m(".vault/gone"));
    let (mut k, mut g) = (File::create(&keep).unwrap(), File::create(&gone).unwrap());
    for i in 0..48u64 {
        k.write_all(&urandom(64 << 10)).unwrap();
        g.write_all(&urandom(256 << 10)).unwrap();
        if i % 8 == 7 {
            k.sync_all().unwrap();
            g.sync_all().unwrap();
        }
    }
    drop((k, g));
    let sum = sha256(&keep);
    fs::remove_file(&gone).unwrap();
    sh_ok(&format!("sync -f {}", fs.m("")));
    lock(&fs);
    let before = fs.pack_bytes_on_disk();
    let report = fs.gc_run();
    let rewritten = report["packs_rewritten"].as_u64().unwrap_or(0);
    let reclaimed = report["bytes_reclaimed"].as_u64().unwrap_or(0);
    assert!(
        rewritten > 0 && reclaimed >= 8 << 20,
        "GC with the vault locked: {report}"
    );
    assert!(fs.pack_bytes_on_disk() < before);
    unlock(&fs, &key, &pass, 0);
    assert_eq!(sha256(&keep), sum, "surviving vault file after the rewrite");
    fs.stop();
    let out = fs
        .command("timeout")
        .args(["600", BIN.as_str(), "fsck", "--read-data", "--data-dir"])
        .arg(&fs.data)
        .output()
        .expect("run fsck");
    assert_eq!(
        out.status.code(),
        Some(0),
        "fsck --read-data: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
