//! A seeded SplitMix64 generator and the byte fills ops write.
//!
//! Written here (not `rand`) so a printed seed replays the same op sequence whatever
//! version of `rand` the workspace pins.

use std::time::{SystemTime, UNIX_EPOCH};

/// SplitMix64: tiny, fast, and every seed gives a full-period stream.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` mixed with `name`, so each variant draws its own stream
    /// from one printed seed.
    pub fn new(seed: u64, name: &str) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng(seed ^ h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What a write puts in its range: seeded random bytes or one repeated byte (0 makes
/// an all-zero write, which the filesystem stores as a hole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Bytes of a SplitMix64 stream seeded with the value.
    Rand(u64),
    /// The byte repeated.
    Byte(u8),
}

impl Fill {
    /// The `len` bytes of this fill.
    pub fn bytes(self, len: usize) -> Vec<u8> {
        match self {
            Fill::Byte(b) => vec![b; len],
            Fill::Rand(seed) => {
                let mut r = Rng(seed);
                let mut out = Vec::with_capacity(len + 8);
                while out.len() < len {
                    out.extend_from_slice(&r.next_u64().to_le_bytes());
                }
                out.truncate(len);
                out
            }
        }
    }

    /// A random fill: mostly random bytes, sometimes zeros or a repeated byte.
    pub fn random(rng: &mut Rng) -> Fill {
        match rng.below(10) {
            0 => Fill::Byte(0),
            1 => Fill::Byte(rng.range(1, 255) as u8),
            _ => Fill::Rand(rng.next_u64()),
        }
    }
}

impl std::fmt::Display for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fill::Rand(s) => write!(f, "rand:{s:#x}"),
            Fill::Byte(b) => write!(f, "byte:{b:#x}"),
        }
    }
}

impl std::str::FromStr for Fill {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, v) = s.split_once(':').ok_or(format!("bad fill {s}"))?;
        let v = super::ops::parse_num(v)?;
        match kind {
            "rand" => Ok(Fill::Rand(v)),
            "byte" => Ok(Fill::Byte(u8::try_from(v).map_err(|e| e.to_string())?)),
            _ => Err(format!("bad fill {s}")),
        }
    }
}

/// The run's base seed: `VERFS_MODEL_SEED` (decimal or 0x-hex) or one from the clock,
/// drawn once per test process so every variant of a run names the same seed.
pub fn base_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(draw_seed)
}

fn draw_seed() -> u64 {
    match std::env::var("VERFS_MODEL_SEED") {
        Ok(s) => super::ops::parse_num(s.trim()).expect("VERFS_MODEL_SEED is a number"),
        Err(_) => {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970");
            let mut r = Rng(t.as_nanos() as u64 ^ u64::from(std::process::id()));
            r.next_u64()
        }
    }
}
