//! Shared by the decoder fuzz tests (`meta/fuzz.rs`, `data/fuzz.rs`): every decoder of on-disk bytes against hostile input: seeded random bytes and damaged
//! copies of valid encodings (truncated, extended, bytes flipped), thousands of each per
//! decoder. A decoder may refuse anything; it must never panic, and what it accepts of
//! a valid encoding must decode to the original. Runs in the normal test suite (stable
//! Rust, no cargo-fuzz); `VERFS_FUZZ_ROUNDS` raises the count for a longer run.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

pub(crate) fn rounds() -> usize {
    std::env::var("VERFS_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000)
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
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..rounds() {
        let _ = decode(&noise(&mut rng, valid.len() * 2 + 8));
        let _ = decode(&damaged(&mut rng, valid));
    }
}
