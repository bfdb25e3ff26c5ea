//! The operations, their text form (the op log is replayable), and what each does to
//! the in-memory model under Linux semantics.

use std::fmt;

use super::rng::Fill;

/// A `fallocate` mode the exerciser uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mode 0: extends the size to `off + len` when that is larger.
    Alloc,
    /// `FALLOC_FL_KEEP_SIZE`: reserves only; size and bytes unchanged.
    KeepSize,
    /// `PUNCH_HOLE | KEEP_SIZE`: zeros inside the size, never extends.
    Punch,
    /// `ZERO_RANGE`: zeros the range and extends the size to its end.
    Zero,
    /// `ZERO_RANGE | KEEP_SIZE`: zeros inside the size, never extends.
    ZeroKeep,
}

impl Mode {
    /// Every mode, in the order they are tried.
    pub const ALL: [Mode; 5] = [
        Mode::Alloc,
        Mode::KeepSize,
        Mode::Punch,
        Mode::Zero,
        Mode::ZeroKeep,
    ];

    /// The `fallocate(2)` mode flags.
    pub fn flags(self) -> i32 {
        match self {
            Mode::Alloc => 0,
            Mode::KeepSize => libc::FALLOC_FL_KEEP_SIZE,
            Mode::Punch => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            Mode::Zero => libc::FALLOC_FL_ZERO_RANGE,
            Mode::ZeroKeep => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Alloc => "alloc",
            Mode::KeepSize => "keep_size",
            Mode::Punch => "punch",
            Mode::Zero => "zero",
            Mode::ZeroKeep => "zero_keep",
        }
    }
}

/// One step of a run. `f`, `src`, `dst` index the run's files (0 = `a`, 1 = `b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `pwrite` of `len` bytes of `fill` at `off`.
    Write {
        f: usize,
        off: u64,
        len: u64,
        fill: Fill,
    },
    /// `ftruncate` to `size`.
    Truncate { f: usize, size: u64 },
    /// `fallocate(mode, off, len)`.
    Falloc {
        f: usize,
        mode: Mode,
        off: u64,
        len: u64,
    },
    /// One `copy_file_range` call.
    Copy {
        src: usize,
        off_in: u64,
        dst: usize,
        off_out: u64,
        len: u64,
    },
    /// Read `[off, off + len)` through a shared mapping and compare.
    MmapRead { f: usize, off: u64, len: u64 },
    /// Write through a shared mapping, then `msync(MS_SYNC)`.
    MmapWrite {
        f: usize,
        off: u64,
        len: u64,
        fill: Fill,
    },
    /// `pread` of a range (possibly past end of file) and compare.
    Read { f: usize, off: u64, len: u64 },
    /// `fsync`.
    Fsync { f: usize },
    /// `fdatasync`.
    Fdatasync { f: usize },
    /// Close and open again.
    Reopen { f: usize },
    /// Close, unlink, create empty.
    Recreate { f: usize },
    /// Pause (replay files only: to measure how long a window stays open).
    Sleep { ms: u64 },
    /// `posix_fadvise(DONTNEED)` on both files; `global` also writes `/proc/sys/vm/drop_caches`.
    DropCache { global: bool },
}

fn name(f: usize) -> &'static str {
    ["a", "b"][f]
}

fn file(s: &str) -> Result<usize, String> {
    match s {
        "a" => Ok(0),
        "b" => Ok(1),
        _ => Err(format!("bad file {s}")),
    }
}

/// A number in decimal or `0x` hex.
pub fn parse_num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad number {s}: {e}"))
}

impl fmt::Display for Op {
    fn fmt(&self, w: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Write { f, off, len, fill } => {
                write!(w, "pwrite {} {off:#x} {len:#x} {fill}", name(f))
            }
            Op::Truncate { f, size } => write!(w, "ftruncate {} {size:#x}", name(f)),
            Op::Falloc { f, mode, off, len } => {
                write!(w, "fallocate {} {} {off:#x} {len:#x}", name(f), mode.name())
            }
            Op::Copy {
                src,
                off_in,
                dst,
                off_out,
                len,
            } => write!(
                w,
                "copy {} {off_in:#x} {} {off_out:#x} {len:#x}",
                name(src),
                name(dst)
            ),
            Op::MmapRead { f, off, len } => write!(w, "mmap_read {} {off:#x} {len:#x}", name(f)),
            Op::MmapWrite { f, off, len, fill } => {
                write!(w, "mmap_write {} {off:#x} {len:#x} {fill}", name(f))
            }
            Op::Read { f, off, len } => write!(w, "pread {} {off:#x} {len:#x}", name(f)),
            Op::Fsync { f } => write!(w, "fsync {}", name(f)),
            Op::Fdatasync { f } => write!(w, "fdatasync {}", name(f)),
            Op::Reopen { f } => write!(w, "reopen {}", name(f)),
            Op::Recreate { f } => write!(w, "recreate {}", name(f)),
            Op::Sleep { ms } => write!(w, "sleep {ms}"),
            Op::DropCache { global } => {
                write!(w, "drop_cache {}", if global { "global" } else { "local" })
            }
        }
    }
}

impl Op {
    /// Parses one line of an op log: an optional leading step number, the op, and an
    /// optional `# note`. `None` for a blank or comment line.
    pub fn parse_line(line: &str) -> Result<Option<Op>, String> {
        let line = line.split('#').next().unwrap_or("");
        let mut t: Vec<&str> = line.split_whitespace().collect();
        if t.first()
            .is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()))
        {
            t.remove(0);
        }
        let Some((&cmd, args)) = t.split_first() else {
            return Ok(None);
        };
        let n = |i: usize| -> Result<u64, String> {
            parse_num(args.get(i).ok_or(format!("{cmd}: missing argument {i}"))?)
        };
        let fl = |i: usize| -> Result<usize, String> {
            file(args.get(i).ok_or(format!("{cmd}: missing file"))?)
        };
        let fill = |i: usize| -> Result<Fill, String> {
            args.get(i).ok_or(format!("{cmd}: missing fill"))?.parse()
        };
        let op = match cmd {
            "pwrite" => Op::Write {
                f: fl(0)?,
                off: n(1)?,
                len: n(2)?,
                fill: fill(3)?,
            },
            "ftruncate" => Op::Truncate {
                f: fl(0)?,
                size: n(1)?,
            },
            "fallocate" => {
                let m = args.get(1).ok_or("fallocate: missing mode")?;
                let mode = *Mode::ALL
                    .iter()
                    .find(|x| x.name() == *m)
                    .ok_or(format!("bad mode {m}"))?;
                Op::Falloc {
                    f: fl(0)?,
                    mode,
                    off: n(2)?,
                    len: n(3)?,
                }
            }
            "copy" => Op::Copy {
                src: fl(0)?,
                off_in: n(1)?,
                dst: fl(2)?,
                off_out: n(3)?,
                len: n(4)?,
            },
            "mmap_read" => Op::MmapRead {
                f: fl(0)?,
                off: n(1)?,
                len: n(2)?,
            },
            "mmap_write" => Op::MmapWrite {
                f: fl(0)?,
                off: n(1)?,
                len: n(2)?,
                fill: fill(3)?,
            },
            "pread" => Op::Read {
                f: fl(0)?,
                off: n(1)?,
                len: n(2)?,
            },
            "fsync" => Op::Fsync { f: fl(0)? },
            "fdatasync" => Op::Fdatasync { f: fl(0)? },
            "reopen" => Op::Reopen { f: fl(0)? },
            "recreate" => Op::Recreate { f: fl(0)? },
            "sleep" => Op::Sleep { ms: n(0)? },
            "drop_cache" => Op::DropCache {
                global: args.first() == Some(&"global"),
            },
            _ => return Err(format!("unknown op {cmd}")),
        };
        Ok(Some(op))
    }

    /// The file whose bytes or size the op may change, if any.
    pub fn mutates(&self) -> Option<usize> {
        match *self {
            Op::Write { f, .. }
            | Op::Truncate { f, .. }
            | Op::Falloc { f, .. }
            | Op::MmapWrite { f, .. }
            | Op::Recreate { f } => Some(f),
            Op::Copy { dst, .. } => Some(dst),
            _ => None,
        }
    }
}

/// Bytes `copy_file_range` must copy: the length cut at the source's end of file.
pub fn copy_expected(src_len: u64, off_in: u64, len: u64) -> u64 {
    if off_in >= src_len {
        0
    } else {
        len.min(src_len - off_in)
    }
}

fn write_at(m: &mut Vec<u8>, off: u64, data: &[u8]) {
    let (off, end) = (off as usize, off as usize + data.len());
    if m.len() < end {
        m.resize(end, 0);
    }
    m[off..end].copy_from_slice(data);
}

fn zero(m: &mut [u8], off: u64, end: u64) {
    let end = (end as usize).min(m.len());
    let off = (off as usize).min(end);
    m[off..end].fill(0);
}

/// Applies `op` to the models as Linux does. `data` is the bytes a write or mmap write
/// put; `copied` is what `copy_file_range` returned.
pub fn apply_model(models: &mut [Vec<u8>], op: &Op, data: &[u8], copied: u64) {
    match *op {
        Op::Write { f, off, .. } | Op::MmapWrite { f, off, .. } => {
            write_at(&mut models[f], off, data)
        }
        Op::Truncate { f, size } => models[f].resize(size as usize, 0),
        Op::Falloc { f, mode, off, len } => {
            let m = &mut models[f];
            let end = off + len;
            match mode {
                Mode::Alloc => {
                    if (m.len() as u64) < end {
                        m.resize(end as usize, 0);
                    }
                }
                Mode::KeepSize => {}
                Mode::Punch | Mode::ZeroKeep => zero(m, off, end),
                Mode::Zero => {
                    if (m.len() as u64) < end {
                        m.resize(end as usize, 0);
                    }
                    zero(m, off, end);
                }
            }
        }
        Op::Copy {
            src,
            off_in,
            dst,
            off_out,
            ..
        } if copied > 0 => {
            let bytes = models[src][off_in as usize..(off_in + copied) as usize].to_vec();
            write_at(&mut models[dst], off_out, &bytes);
        }
        Op::Recreate { f } => models[f].clear(),
        _ => {}
    }
}

#[test]
fn op_log_lines_parse_back() {
    let ops = [
        Op::Write {
            f: 0,
            off: 0x12345,
            len: 7,
            fill: Fill::Rand(0xdead),
        },
        Op::Falloc {
            f: 1,
            mode: Mode::ZeroKeep,
            off: 1,
            len: 2,
        },
        Op::Copy {
            src: 0,
            off_in: 5,
            dst: 1,
            off_out: 9,
            len: 3,
        },
        Op::MmapWrite {
            f: 0,
            off: 3,
            len: 4,
            fill: Fill::Byte(0),
        },
        Op::DropCache { global: true },
    ];
    for op in ops {
        let line = format!("  42 {op}  # copied 0x3");
        assert_eq!(Op::parse_line(&line).unwrap(), Some(op));
    }
}

#[test]
fn model_follows_linux_fallocate_and_copy_rules() {
    let mut m = vec![vec![1u8; 10], vec![]];
    apply_model(
        &mut m,
        &Op::Falloc {
            f: 0,
            mode: Mode::Punch,
            off: 8,
            len: 10,
        },
        &[],
        0,
    );
    assert_eq!(m[0], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    apply_model(
        &mut m,
        &Op::Falloc {
            f: 0,
            mode: Mode::Zero,
            off: 9,
            len: 3,
        },
        &[],
        0,
    );
    assert_eq!(m[0].len(), 12);
    apply_model(
        &mut m,
        &Op::Falloc {
            f: 0,
            mode: Mode::Alloc,
            off: 0,
            len: 5,
        },
        &[],
        0,
    );
    assert_eq!(m[0].len(), 12);
    assert_eq!(copy_expected(12, 10, 5), 2);
    assert_eq!(copy_expected(12, 12, 5), 0);
    apply_model(
        &mut m,
        &Op::Copy {
            src: 0,
            off_in: 0,
            dst: 1,
            off_out: 4,
            len: 9,
        },
        &[],
        2,
    );
    assert_eq!(m[1], [0, 0, 0, 0, 1, 1]);
    // A copy from at or past the source's end copies nothing and extends nothing.
    apply_model(
        &mut m,
        &Op::Copy {
            src: 1,
            off_in: 6,
            dst: 1,
            off_out: 99,
            len: 9,
        },
        &[],
        0,
    );
    assert_eq!(m[1].len(), 6);
}
