//! Whole runs on a fresh mount: the random mix, the commit/overlay race pattern,
//! remounts after SIGINT and kill -9, and the replay of an op log.

use std::time::{Duration, Instant};

use super::gen::Variant;
use super::ops::{Mode, Op};
use super::rng::Fill;
use super::run::{Hogs, Runner};
use super::sys::{AlignedBuf, File};
use crate::common::TestFs;

/// A mounted fresh filesystem with hogs running; `None` (after saying why) when the
/// variant cannot run on this mount.
fn setup(v: &Variant) -> Option<(TestFs, Hogs, Runner)> {
    let mut fs = TestFs::new();
    fs.start();
    if v.direct && !direct_works(&fs) {
        fs.stop();
        return None;
    }
    let hogs = Hogs::start(v.hogs);
    let mut mnt = fs.mnt.clone();
    if v.vault {
        fs.create_vault("model-vault-password");
        mnt = mnt.join(".vault");
    }
    let r = Runner::new(v.clone(), &mnt);
    Some((fs, hogs, r))
}

/// Whether the mount takes `O_DIRECT` opens and aligned I/O; says so when not.
fn direct_works(fs: &TestFs) -> bool {
    let path = fs.mnt.join("direct-probe");
    let probe = File::open(&path, libc::O_DIRECT).and_then(|f| {
        f.pwrite_all(&[7u8; 4096], 0)?;
        let mut buf = AlignedBuf::zeroed(4096);
        f.pread(&mut buf, 0)
    });
    match probe {
        Ok(4096) => true,
        Ok(n) => panic!("O_DIRECT probe read back {n} of 4096 bytes"),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("model: the mount refuses O_DIRECT ({e}); o_direct variant SKIPPED");
            false
        }
        Err(e) => panic!("O_DIRECT probe failed: {e}"),
    }
}

fn finish(mut fs: TestFs, r: Runner, started: Instant) {
    r.summary(started);
    drop(r);
    fs.stop();
    fs.assert_no_panic();
}

/// Writes `len` random bytes to `a` in ops of at most 1 MiB.
fn fill_initial(r: &mut Runner, len: u64) {
    let mut off = 0;
    while off < len {
        let n = (len - off).min(1 << 20);
        let fill = Fill::Rand(r.rng.next_u64());
        r.exec(Op::Write {
            f: 0,
            off,
            len: n,
            fill,
        });
        off += n;
    }
}

/// The random op mix for `v.op_count()` ops.
pub fn random(v: Variant) {
    let started = Instant::now();
    let Some((fs, _hogs, mut r)) = setup(&v) else {
        return;
    };
    fill_initial(&mut r, v.initial);
    for i in 1..=v.op_count() {
        if v.reopen_every > 0 && i % v.reopen_every == 0 {
            r.exec(Op::Reopen { f: 0 });
            r.exec(Op::Reopen { f: 1 });
        }
        r.random_step();
    }
    finish(fs, r, started);
}

/// The pattern of issue 9 on fresh files: give `a` a size by `ftruncate` or by a write
/// followed by a flushing op (fsync, fdatasync, zero range, msync), then change its
/// interior with `copy_file_range` inside the file or a `pwrite`; checked after each op
/// or, in half the loops, after the last.
pub fn race(v: Variant) {
    let started = Instant::now();
    let Some((fs, _hogs, mut r)) = setup(&v) else {
        return;
    };
    for _ in 0..v.op_count().div_ceil(4) {
        r.exec(Op::Recreate { f: 0 });
        // Half the loops check only at the end, so no full read sits between the
        // flushing op and the interior change (the window is right after a commit).
        r.checks = r.rng.chance(1, 2);
        let s = r.rng.range(0x10000, 0x40000);
        let fill = Fill::Rand(r.rng.next_u64());
        let mid = r.rng.range(s / 4, s / 2);
        match r.rng.below(6) {
            0 => r.exec(Op::Truncate { f: 0, size: s }),
            1 => {
                r.exec(Op::Write {
                    f: 0,
                    off: 0,
                    len: s,
                    fill,
                });
                r.exec(Op::Fsync { f: 0 });
            }
            2 => {
                r.exec(Op::Write {
                    f: 0,
                    off: 0,
                    len: s,
                    fill,
                });
                r.exec(Op::Fdatasync { f: 0 });
            }
            3 => {
                r.exec(Op::Write {
                    f: 0,
                    off: 0,
                    len: s,
                    fill,
                });
                let len = r.rng.range(1, 0x3000);
                r.exec(Op::Falloc {
                    f: 0,
                    mode: Mode::ZeroKeep,
                    off: mid,
                    len,
                });
            }
            4 => {
                r.exec(Op::Write {
                    f: 0,
                    off: 0,
                    len: s,
                    fill,
                });
                let len = r.rng.range(1, 0x3000);
                let fill = Fill::Rand(r.rng.next_u64());
                r.exec(Op::MmapWrite {
                    f: 0,
                    off: mid,
                    len,
                    fill,
                });
            }
            _ => {
                r.exec(Op::Truncate { f: 0, size: s });
                r.exec(Op::Fsync { f: 0 });
            }
        }
        for _ in 0..r.rng.range(1, 2) {
            interior(&mut r, s);
        }
        if !r.checks {
            r.check_now();
            r.checks = true;
        }
    }
    finish(fs, r, started);
}

/// A same-file copy or a `pwrite` strictly inside a file of size `s`.
fn interior(r: &mut Runner, s: u64) {
    let len = r.rng.range(1, s / 8);
    let off_out = r.rng.range(s / 2, s - len);
    if r.rng.chance(2, 3) {
        let off_in = r.rng.range(0, off_out - len);
        r.exec(Op::Copy {
            src: 0,
            off_in,
            dst: 0,
            off_out,
            len,
        });
    } else {
        let fill = Fill::Rand(r.rng.next_u64());
        r.exec(Op::Write {
            f: 0,
            off: off_out,
            len: len.min(0x2000),
            fill,
        });
    }
}

/// Rounds of random ops (fsyncs among them; one round per 300 ops, at least 4), each
/// ended by a remount: after SIGINT
/// both files must equal the model; after kill -9 each must equal its state at its last
/// fsync or a later op boundary (`v.atomic_only` keeps every op one kernel request).
pub fn remount(v: Variant, crash: bool) {
    let rounds = (v.op_count() / 300).clamp(4, 200);
    let started = Instant::now();
    let Some((mut fs, _hogs, mut r)) = setup(&v) else {
        return;
    };
    fill_initial(&mut r, v.initial);
    for round in 0..rounds {
        for _ in 0..v.op_count().div_ceil(rounds) {
            r.random_step();
        }
        if crash {
            fs.kill9();
            r.close_all();
            fs.start();
            r.reopen_after_crash();
        } else {
            r.close_all();
            fs.stop();
            fs.start();
            r.reopen_all();
        }
        eprintln!("model {}: round {round} survived the remount", v.name);
    }
    finish(fs, r, started);
}

/// Replays the op log in `VERFS_MODEL_REPLAY` on fresh files `VERFS_MODEL_LOOPS` times
/// (default 100) with `VERFS_MODEL_HOGS` CPU hogs (default 2), counting failing loops.
/// With `VERFS_MODEL_CRASH=1` each loop ends with kill -9 and a remount, and the files
/// must be in a state at or after their last fsync.
pub fn replay() {
    let Ok(path) = std::env::var("VERFS_MODEL_REPLAY") else {
        eprintln!("replay: set VERFS_MODEL_REPLAY to an op log");
        return;
    };
    let env = |k: &str, d: usize| std::env::var(k).map_or(d, |s| s.parse().expect(k));
    let text = std::fs::read_to_string(&path).expect("read VERFS_MODEL_REPLAY");
    let ops: Vec<Op> = text
        .lines()
        .filter_map(|l| Op::parse_line(l).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect();
    let loops = env("VERFS_MODEL_LOOPS", 100);
    let v = Variant {
        hogs: env("VERFS_MODEL_HOGS", 2),
        direct: env("VERFS_MODEL_DIRECT", 0) != 0,
        ..Variant::small("replay")
    };
    let started = Instant::now();
    let crash = env("VERFS_MODEL_CRASH", 0) != 0;
    let Some((mut fs, _hogs, mut r)) = setup(&v) else {
        return;
    };
    r.soft_failures = Some(Vec::new());
    let mut failed = 0;
    for _ in 0..loops {
        let before = r.soft_failures.as_ref().map_or(0, Vec::len);
        r.exec(Op::Recreate { f: 0 });
        r.exec(Op::Recreate { f: 1 });
        for op in &ops {
            r.exec(op.clone());
            if r.soft_failures.as_ref().map_or(0, Vec::len) > before {
                break;
            }
        }
        if crash {
            fs.kill9();
            r.close_all();
            fs.start();
            r.reopen_after_crash();
        }
        if r.soft_failures.as_ref().map_or(0, Vec::len) > before {
            failed += 1;
        }
    }
    let failures = r.soft_failures.take().unwrap_or_default();
    eprintln!(
        "replay {path}: {} ops, {failed} of {loops} loops failed in {:.1?}",
        ops.len(),
        started.elapsed()
    );
    for (i, f) in failures.iter().enumerate() {
        if i == 0 {
            eprintln!("first failure:\n{f}");
        } else {
            eprintln!(
                "failure {i}: {}",
                f.lines().take(2).collect::<Vec<_>>().join(" ")
            );
        }
    }
    std::thread::sleep(Duration::from_millis(10));
    finish(fs, r, started);
    assert_eq!(failed, 0, "{failed} of {loops} replay loops failed");
}
