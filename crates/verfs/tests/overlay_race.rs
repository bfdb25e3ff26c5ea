//! The commit/overlay race (issue 9): a reader that paired the committed state of a
//! batch with the overlay from before it saw the committed size stop at a held tail
//! while the overlay did not show that tail yet — a short `st_size`, short reads, and
//! a same-file copy whose source read fell in the window copied zeros for good.
//!
//! Each sequence is looped on fresh files with CPU hogs beside it (the window is a few
//! microseconds wide) and every wrong answer is counted, so a failure says how often.

mod common;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use common::*;
use rand::{rngs::StdRng, RngCore, SeedableRng};

/// Threads spinning on the CPU until dropped: races need pressure.
struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Hog {
    fn start(n: usize) -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        Hog { stop, threads }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn open_new(path: &str) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create test file")
}

/// `fstat` size and `lseek(SEEK_END)` of `f`.
fn sizes(f: &File) -> (u64, u64) {
    let st = f.metadata().expect("fstat").len();
    // SAFETY: lseek on a valid fd has no memory-safety preconditions.
    let end = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
    assert!(
        end >= 0,
        "lseek failed: {}",
        std::io::Error::last_os_error()
    );
    (st, end as u64)
}

/// Every byte of `f` read with pread until EOF.
fn read_all(f: &File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read_at(&mut buf, out.len() as u64)
            .expect("pread the file");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// copy_file_range within `f` until `len` bytes are copied.
fn copy_within(f: &File, off_in: u64, off_out: u64, len: usize) {
    let mut done = 0usize;
    while done < len {
        let mut i = (off_in + done as u64) as i64;
        let mut o = (off_out + done as u64) as i64;
        let fd = f.as_raw_fd();
        // SAFETY: both offsets point to live i64s; the fd is valid for the call.
        let n = unsafe { libc::copy_file_range(fd, &mut i, fd, &mut o, len - done, 0) };
        assert!(
            n > 0,
            "copy_file_range failed: {}",
            std::io::Error::last_os_error()
        );
        done += n as usize;
    }
}

/// What is wrong with `f` compared to `model`, if anything.
fn mismatch(f: &File, model: &[u8]) -> Option<String> {
    let (st, end) = sizes(f);
    let want = model.len() as u64;
    if st != want || end != want {
        return Some(format!("size {st:#x}, SEEK_END {end:#x}, want {want:#x}"));
    }
    let got = read_all(f);
    if got.len() != model.len() {
        return Some(format!("read {:#x} bytes, want {want:#x}", got.len()));
    }
    let at = got.iter().zip(model).position(|(a, b)| a != b)?;
    Some(format!("bytes differ from {at:#x}"))
}

/// Runs `case` `loops` times on fresh files named by loop number, counting mismatches;
/// panics with the count and the first few if there are any.
fn looped(fs: &TestFs, loops: usize, case: impl Fn(&str, u64) -> Option<String>) {
    let _hog = Hog::start(2);
    let mut bad = Vec::new();
    for i in 0..loops {
        let path = fs.m(&format!("f{i}"));
        if let Some(why) = case(&path, i as u64) {
            bad.push(format!("loop {i}: {why}"));
        }
        std::fs::remove_file(&path).expect("remove test file");
    }
    assert!(
        bad.is_empty(),
        "{} of {loops} loops wrong; first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

/// ftruncate then a same-file copy: st_size must stay the truncated size.
#[test]
fn truncate_then_same_file_copy_keeps_size() {
    let mut fs = TestFs::new();
    fs.start();
    looped(&fs, 2000, |path, _| {
        let f = open_new(path);
        f.set_len(0x2b912).expect("ftruncate");
        copy_within(&f, 0x5000, 0x24000, 0x4821);
        mismatch(&f, &vec![0u8; 0x2b912])
    });
    fs.stop();
}

/// pwrite, fsync, a same-file copy: the copy must carry the source bytes, also once
/// fsync'd and read through a fresh descriptor (the copy of zeros was permanent).
#[test]
fn fsynced_write_then_same_file_copy_copies_bytes() {
    let mut fs = TestFs::new();
    fs.start();
    looped(&fs, 2000, |path, seed| {
        let mut model = vec![0u8; 0x2c000];
        StdRng::seed_from_u64(seed).fill_bytes(&mut model);
        let f = open_new(path);
        f.write_all_at(&model, 0).expect("pwrite");
        f.sync_all().expect("fsync");
        copy_within(&f, 0x5000, 0x24000, 0x4821);
        model.copy_within(0x5000..0x5000 + 0x4821, 0x24000);
        if let Some(why) = mismatch(&f, &model) {
            return Some(why);
        }
        f.sync_all().expect("fsync after copy");
        drop(f);
        let again = File::open(path).expect("reopen");
        mismatch(&again, &model).map(|w| format!("after fsync and reopen: {w}"))
    });
    fs.stop();
}

/// write, fdatasync, an interior pwrite, then a whole-file read (returned 91000 or
/// 98304 bytes, sometimes zeros at 84480..90000).
#[test]
fn interior_write_after_fdatasync_reads_whole_file() {
    let mut fs = TestFs::new();
    fs.start();
    looped(&fs, 1000, |path, seed| {
        let mut model = vec![0u8; 100_000];
        StdRng::seed_from_u64(seed).fill_bytes(&mut model);
        let f = open_new(path);
        f.write_all_at(&model, 0).expect("write");
        f.sync_data().expect("fdatasync");
        let patch = vec![0xa5u8; 1000];
        f.write_all_at(&patch, 90_000).expect("pwrite");
        model[90_000..91_000].copy_from_slice(&patch);
        let first = mismatch(&f, &model);
        // Re-reads on the same descriptor stayed wrong.
        let second = mismatch(&f, &model);
        first.or(second)
    });
    fs.stop();
}
