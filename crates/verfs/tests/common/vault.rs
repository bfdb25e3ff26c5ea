//! Helpers of the `/.vault` tests: the `crypt` CLI, random markers, scanning the data
//! dir for plaintext, and reading and rewriting pack records (to tamper with them).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use super::*;

/// The key file `crypt -c` writes into its key dir.
pub const KEY_NAME: &str = "verfsnext.vault.key";

// ---- the `crypt` CLI ----

/// `verfsnext crypt ARGS... --data-dir DATA`; `stdin` is fed to it, else /dev/null.
pub fn crypt(fs: &TestFs, args: &[&str], stdin: Option<&str>) -> Output {
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
pub fn crypt_expect(fs: &TestFs, args: &[&str], stdin: Option<&str>, code: i32) -> Output {
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
pub fn vault_status(fs: &TestFs) -> String {
    let out = crypt_expect(fs, &["--status"], None, 0);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `crypt -c -p PASS --key-dir TEMP` (must succeed); returns the key file's path.
pub fn create_vault(fs: &TestFs, pass: &str) -> String {
    let dir = path_str(fs.dir());
    crypt_expect(fs, &["-c", "-p", pass, "--key-dir", &dir], None, 0);
    fs.t(KEY_NAME)
}

/// `crypt -u -p PASS -k KEY`, asserting exit status `code`.
pub fn unlock(fs: &TestFs, key: &str, pass: &str, code: i32) {
    crypt_expect(fs, &["-u", "-p", pass, "-k", key], None, code);
}

/// `crypt -l`, asserting success.
pub fn lock(fs: &TestFs) {
    crypt_expect(fs, &["-l"], None, 0);
}

// ---- random bytes and the data dir ----

pub fn urandom(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// `n` random bytes as lowercase hex (`2n` characters).
pub fn random_hex(n: usize) -> String {
    urandom(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random characters of a 64-letter, shell-safe alphabet: text that zstd cannot
/// shrink in a small file, so a file holding it is stored verbatim unless encrypted.
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    urandom(n)
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect()
}

/// Seeded random bytes (`write_random`) with `marker` written over them at `offsets`.
pub fn write_random_with_marker(path: &str, len: usize, seed: u64, marker: &[u8], offsets: &[u64]) {
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
pub fn files_under(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
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

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    hay.windows(needle.len())
        .any(|w| w[0] == first && w == needle)
}

/// The files of `files` that contain `needle`.
pub fn holders<'a>(files: &'a [(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<&'a Path> {
    files
        .iter()
        .filter(|(_, bytes)| contains(bytes, needle))
        .map(|(p, _)| p.as_path())
        .collect()
}

// ---- errors and listings ----

/// Asserts that `res` failed with OS error `want`.
pub fn assert_errno<T>(res: std::io::Result<T>, want: i32, what: &str) {
    match res {
        Ok(_) => panic!("{what}: succeeded, want errno {want}"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(want), "{what}: {e}"),
    }
}

/// Whether `ls -la DIR` names `.vault`.
pub fn lists_vault(dir: &str) -> bool {
    sh_ok(&format!("ls -la {dir}"))
        .lines()
        .any(|l| l.split_whitespace().last() == Some(".vault"))
}

// ---- pack records ----

/// Size of a record header (without nonce).
pub const REC_HEADER: usize = 36;
/// Size of the nonce after an encrypted record's header.
pub const NONCE: usize = 24;
/// Record flag bit: the payload is sealed (vault chunk).
pub const FLAG_ENCRYPTED: u8 = 1;
/// Size of a pack file header.
pub const PACK_HEADER: usize = 16;

/// One record of a pack file as found on disk.
#[derive(Clone)]
pub struct Record {
    pub pack: PathBuf,
    /// Offset of the record header in the pack.
    pub offset: u64,
    pub flags: u8,
    pub plain_len: u32,
    pub stored_len: u32,
    /// The whole record: header, nonce, payload.
    pub bytes: Vec<u8>,
}

impl Record {
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Offset of the nonce within the record (encrypted records only).
    pub fn nonce_start(&self) -> usize {
        REC_HEADER
    }

    /// Offset of the payload within the record.
    pub fn payload_start(&self) -> usize {
        REC_HEADER + if self.encrypted() { NONCE } else { 0 }
    }
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) over `parts` in turn.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
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
pub fn record_crc(record: &[u8]) -> u32 {
    crc32c(&[&record[..32], &record[REC_HEADER..]])
}

pub fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Every record of every pack (walked from the pack header to the first non-record:
/// the sealed index, or the end). Checks each stored CRC against the test's own
/// CRC32C, so a misparse fails here instead of making the tamper tests vacuous.
pub fn pack_records(fs: &TestFs) -> Vec<Record> {
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
pub fn write_record(rec: &Record, bytes: &[u8]) {
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
pub fn fix_crc(rec: &Record) {
    let f = File::open(&rec.pack).expect("open pack");
    let mut bytes = vec![0u8; rec.bytes.len()];
    f.read_exact_at(&mut bytes, rec.offset)
        .expect("read record back");
    write_record(rec, &bytes);
}

/// Reading `path` fails with EIO; if it reads, says whether it got `other`'s bytes.
pub fn assert_read_eio(path: &str, other: Option<&[u8]>) {
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

/// `copy_file_range` of `len` bytes from `src` to `dst` (both from offset 0), looping on
/// short copies; returns the bytes copied.
pub fn copy_range(src: &str, dst: &str, len: usize) -> usize {
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
