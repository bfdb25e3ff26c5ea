//! Shared by the decoder fuzz tests (`meta/fuzz.rs`, `data/fuzz.rs`,
//! `vault/tests/fuzz.rs`): every decoder of on-disk bytes against hostile input: seeded
//! random bytes and damaged copies of valid encodings and of real files
//! (`fuzz-corpus/`), truncated, extended or with bytes flipped. A decoder may refuse
//! anything; it must never panic, and what it accepts of a valid encoding must decode
//! to the original. Stable Rust, no cargo-fuzz.
//!
//! Two modes: the normal test suite runs a fixed number of rounds from fixed seeds
//! (`VERFS_FUZZ_ROUNDS`, default 4000); `scripts/fuzz.sh` (run by CI) sets
//! `VERFS_FUZZ_SECS`, and then every decoder runs for that many seconds from a fresh
//! random seed, printed so a failure can be replayed with `VERFS_FUZZ_SEED`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// How long one decoder is hammered: rounds, or seconds in a timed run.
pub(crate) struct Budget {
    deadline: Option<Instant>,
    left: usize,
}

impl Budget {
    /// The budget of one decoder; `div` shares the rounds of a fixed run among loops
    /// whose rounds cost more (whole files).
    pub(crate) fn new(div: usize) -> Budget {
        let secs = std::env::var("VERFS_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        Budget {
            deadline: secs.map(|s| Instant::now() + Duration::from_secs(s)),
            left: rounds() / div.max(1),
        }
    }

    /// Whether another round is due.
    pub(crate) fn next(&mut self) -> bool {
        match self.deadline {
            Some(d) => Instant::now() < d,
            None if self.left > 0 => {
                self.left -= 1;
                true
            }
            None => false,
        }
    }
}

fn rounds() -> usize {
    std::env::var("VERFS_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000)
}

/// The random source of one decoder: `fixed` in the normal suite, `VERFS_FUZZ_SEED` when
/// set, else (timed run) a fresh seed; printed (shown by the test harness on failure).
pub(crate) fn rng(fixed: u64) -> StdRng {
    let seed = match std::env::var("VERFS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => s,
        None if std::env::var_os("VERFS_FUZZ_SECS").is_some() => rand::random(),
        None => fixed,
    };
    eprintln!("fuzz seed {seed} (replay: VERFS_FUZZ_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// The real files of `fuzz-corpus/KIND/` (pack files, `.DISCARD` logs taken from a
/// mounted filesystem).
pub(crate) fn corpus(kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz-corpus")
        .join(kind);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

/// Random bytes of a random length up to `max`.
pub(crate) fn noise(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.gen_range(0..=max)];
    rng.fill_bytes(&mut v);
    v
}

/// `valid` damaged one way: cut, extended, or 1-4 bytes changed.
pub(crate) fn damaged(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    match rng.gen_range(0..3) {
        0 => v.truncate(rng.gen_range(0..=valid.len())),
        1 => v.extend((0..rng.gen_range(1..16)).map(|_| rng.gen::<u8>())),
        _ if !v.is_empty() => {
            for _ in 0..rng.gen_range(1..=4) {
                let i = rng.gen_range(0..v.len());
                v[i] ^= rng.gen_range(1..=255u8);
            }
        }
        _ => {}
    }
    v
}

/// Feeds `decode` random and damaged inputs; `valid` must decode to itself.
pub(crate) fn hammer<T: PartialEq + std::fmt::Debug>(
    seed: u64,
    valid: &[u8],
    original: &T,
    decode: impl Fn(&[u8]) -> Option<T>,
) {
    assert_eq!(
        decode(valid).as_ref(),
        Some(original),
        "valid input refused"
    );
    let mut rng = rng(seed);
    let mut budget = Budget::new(1);
    while budget.next() {
        let _ = decode(&noise(&mut rng, valid.len() * 2 + 8));
        let _ = decode(&damaged(&mut rng, valid));
    }
}
