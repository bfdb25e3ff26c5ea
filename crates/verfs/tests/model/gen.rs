//! Variants (file sizes, op sizes, alignment, open flags, pressure) and the random op
//! mix drawn for them.

use super::ops::{copy_expected, Mode, Op};
use super::rng::{Fill, Rng};

/// What one model-checked run looks like.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Test name; also mixed into the seed.
    pub name: &'static str,
    /// Ops when `VERFS_MODEL_OPS` is not set.
    pub ops: usize,
    /// Largest size an op may give file `a`; `b` gets a quarter of it.
    pub max_size: u64,
    /// Largest length of one op.
    pub max_len: u64,
    /// Offsets, lengths and sizes are multiples of this.
    pub align: u64,
    /// Bytes written to `a` before the first op.
    pub initial: u64,
    /// Open both files with `O_DIRECT`.
    pub direct: bool,
    /// `fsync` the changed file after every op that changes it.
    pub fsync_after_write: bool,
    /// Close and reopen both files every this many ops (0: only at random).
    pub reopen_every: usize,
    /// Threads spinning beside the run.
    pub hogs: usize,
    /// Only ops the kernel sends as one request (for crash checks against op-boundary
    /// states): lengths up to `max_len` (keep it ≤ 64 KiB), mmap writes inside one page.
    pub atomic_only: bool,
    /// Keep both files inside an unlocked `/.vault` (the encrypted data path).
    pub vault: bool,
}

impl Variant {
    /// Small file, small ops, odd offsets.
    pub fn small(name: &'static str) -> Self {
        Variant {
            name,
            ops: 400,
            max_size: 256 << 10,
            max_len: 16 << 10,
            align: 1,
            initial: 0,
            direct: false,
            fsync_after_write: false,
            reopen_every: 0,
            hogs: 0,
            atomic_only: false,
            vault: false,
        }
    }

    /// Ops count: `VERFS_MODEL_OPS` or the variant's default.
    pub fn op_count(&self) -> usize {
        std::env::var("VERFS_MODEL_OPS")
            .ok()
            .map(|s| s.trim().parse().expect("VERFS_MODEL_OPS is a number"))
            .unwrap_or(self.ops)
    }

    /// Largest size for file `f`.
    pub fn limit(&self, f: usize) -> u64 {
        if f == 0 {
            self.max_size
        } else {
            (self.max_size / 4).max(self.max_len * 2)
        }
    }

    fn down(&self, x: u64) -> u64 {
        x / self.align * self.align
    }

    fn up(&self, x: u64) -> u64 {
        x.div_ceil(self.align) * self.align
    }
}

/// What the generator knows about the run besides the variant.
pub struct GenState<'a> {
    /// Current model sizes of `a` and `b`.
    pub sizes: [u64; 2],
    /// fallocate modes still in the mix (EOPNOTSUPP ones are dropped).
    pub modes: &'a [Mode],
    /// Whether mmap works on this mount.
    pub mmap: bool,
    /// Page size, for single-page mmap writes.
    pub page: u64,
}

/// A length in `align..=max_len`, log-uniform so small ones are common.
fn pick_len(rng: &mut Rng, v: &Variant, max: u64) -> u64 {
    let max = max.min(v.max_len).max(v.align);
    let bits = 64 - max.leading_zeros() as u64;
    let cap = 1u64 << rng.below(bits + 1);
    v.up(rng.range(1, cap.min(max)))
        .min(v.down(max))
        .max(v.align)
}

/// An offset for an op of `len` on a file of `size` limited to `limit`: inside, at and
/// past end of file, at 0, and next to 4 KiB / 64 KiB / 1 MiB boundaries.
fn pick_off(rng: &mut Rng, v: &Variant, size: u64, len: u64, limit: u64) -> u64 {
    let raw = match rng.below(10) {
        0..=3 => rng.range(0, size),
        4 | 5 => size.saturating_sub(rng.below(len + 1)),
        6 => size + rng.below(v.max_len),
        7 => 0,
        _ => {
            let b = rng.pick(&[4096u64, 65536, 1 << 20]);
            let k = rng.range(0, size / b + 1) * b;
            (k + rng.below(3)).saturating_sub(1)
        }
    };
    v.down(raw.min(limit.saturating_sub(len)))
}

fn pick_size(rng: &mut Rng, v: &Variant, size: u64, limit: u64) -> u64 {
    let raw = match rng.below(6) {
        0 | 1 => rng.range(0, size),
        2 | 3 => size + rng.below(v.max_len * 2),
        4 => 0,
        _ => rng.range(0, limit / 65536) * 65536 + rng.below(3),
    };
    v.down(raw.min(limit))
}

/// One random op for the variant.
pub fn random_op(rng: &mut Rng, v: &Variant, st: &GenState<'_>) -> Op {
    let f = if rng.chance(3, 4) { 0 } else { 1 };
    let size = st.sizes[f];
    let limit = v.limit(f);
    loop {
        let op = match rng.below(100) {
            0..=24 => {
                let len = pick_len(rng, v, limit);
                let off = pick_off(rng, v, size, len, limit);
                Op::Write {
                    f,
                    off,
                    len,
                    fill: Fill::random(rng),
                }
            }
            25..=32 => Op::Truncate {
                f,
                size: pick_size(rng, v, size, limit),
            },
            33..=44 if !st.modes.is_empty() => {
                let mode = rng.pick(st.modes);
                let len = pick_len(rng, v, limit);
                let off = pick_off(rng, v, size, len, limit);
                Op::Falloc { f, mode, off, len }
            }
            45..=56 => match copy_op(rng, v, st, f) {
                Some(op) => op,
                None => continue,
            },
            57..=60 if st.mmap && size > 0 => {
                let off = v.down(rng.below(size));
                let len = pick_len(rng, v, size - off).min(size - off);
                Op::MmapRead { f, off, len }
            }
            61..=66 if st.mmap && size > 0 => {
                let off = v.down(rng.below(size));
                let mut len = pick_len(rng, v, size - off).min(size - off);
                if v.atomic_only {
                    len = len.min(st.page - off % st.page);
                }
                Op::MmapWrite {
                    f,
                    off,
                    len,
                    fill: Fill::random(rng),
                }
            }
            67..=74 => {
                let len = pick_len(rng, v, limit);
                let off = pick_off(rng, v, size, len, limit + v.max_len);
                Op::Read { f, off, len }
            }
            75..=82 => Op::Fsync { f },
            83..=86 => Op::Fdatasync { f },
            87..=91 => Op::Reopen { f },
            92..=95 => Op::DropCache {
                global: rng.chance(1, 8),
            },
            _ => continue,
        };
        return op;
    }
}

/// A copy within one file or across the two; `None` if no non-overlapping same-file
/// range fits (the kernel refuses overlapping same-file copies with EINVAL).
fn copy_op(rng: &mut Rng, v: &Variant, st: &GenState<'_>, f: usize) -> Option<Op> {
    let (src, dst) = if rng.chance(1, 2) { (f, f) } else { (f, 1 - f) };
    let len = pick_len(rng, v, v.limit(dst));
    let src_size = st.sizes[src];
    let off_in = if src_size > 0 && rng.chance(7, 8) {
        v.down(rng.below(src_size))
    } else {
        pick_off(rng, v, src_size, len, v.limit(src))
    };
    let n = copy_expected(src_size, off_in, len);
    let limit = v.limit(dst);
    let mut off_out = pick_off(rng, v, st.sizes[dst], n.max(1), limit);
    if src == dst && off_out < off_in + n && off_in < off_out + n {
        off_out = v.up(off_in + n);
        if off_out + n > limit {
            return None;
        }
    }
    Some(Op::Copy {
        src,
        off_in,
        dst,
        off_out,
        len,
    })
}
