//! Decoders never panic: random byte strings, and mutations of valid images with the
//! CRC fixed up so the input gets past the checksum to the checks behind it. Seeded,
//! so a failure reproduces.

use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use crate::fuzz_util::{rng, Budget};

use super::super::{KeyFile, VaultError, WrapRecord, NONCE_LEN};
use super::{fix_crc, new_vault, ok};

/// Each loop gets the full `VERFS_FUZZ_ROUNDS` of the normal suite (or the timed
/// budget of `scripts/fuzz.sh`).
const ROUNDS_DIV: usize = 1;

/// A random mutation of `valid`: flipped bytes, a cut, or bytes appended.
fn mutate(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    match rng.gen_range(0..4) {
        0 => v.truncate(rng.gen_range(0..v.len())),
        1 => v.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u8>())),
        _ => {
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..v.len());
                v[i] = rng.gen();
            }
        }
    }
    if v.len() >= 4 && rng.gen_bool(0.5) {
        fix_crc(&mut v);
    }
    v
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.gen_range(0..max)];
    rng.fill_bytes(&mut v);
    v
}

#[test]
fn key_file_decoder_never_panics() {
    let mut rng = rng(0x5eed_0001);
    let mut budget = Budget::new(ROUNDS_DIV);
    let valid = ok(KeyFile::generate()).encode();
    let mut accepted = 0;
    while budget.next() {
        let input = if rng.gen_bool(0.5) {
            random_bytes(&mut rng, 200)
        } else {
            mutate(&mut rng, &valid)
        };
        match KeyFile::decode(&input) {
            Ok(_) => accepted += 1,
            Err(VaultError::KeyFileMalformed(_) | VaultError::KeyFileVersion(_)) => {}
            Err(e) => panic!("unexpected variant {e}"),
        }
    }
    // Mutations with a fixed CRC in the id or secret decode; that is fine, and
    // shows the loop reaches past the checksum.
    assert!(accepted > 0);
}

#[test]
fn wrap_decoder_never_panics() {
    let mut rng = rng(0x5eed_0002);
    let mut budget = Budget::new(ROUNDS_DIV);
    let (_, valid, _) = new_vault(b"pw");
    let mut past_crc = 0;
    while budget.next() {
        let input = if rng.gen_bool(0.5) {
            random_bytes(&mut rng, 300)
        } else {
            mutate(&mut rng, &valid)
        };
        match WrapRecord::decode(&input) {
            Ok(rec) => {
                past_crc += 1;
                assert!(rec.params().validate().is_ok());
            }
            Err(VaultError::WrapMalformed(m)) if !m.contains("CRC") => past_crc += 1,
            Err(VaultError::WrapMalformed(_) | VaultError::WrapVersion(_)) => {}
            Err(e) => panic!("unexpected variant {e}"),
        }
    }
    assert!(past_crc > 0);
}

#[test]
fn chunk_open_never_panics_on_garbage() {
    let mut rng = rng(0x5eed_0003);
    let mut budget = Budget::new(ROUNDS_DIV);
    let (_, _, vault) = new_vault(b"pw");
    while budget.next() {
        let sealed = random_bytes(&mut rng, 100);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let id = vault.chunk_id(&sealed);
        let r = vault.open_chunk(id, rng.gen(), rng.gen(), &nonce, &sealed);
        assert!(matches!(r, Err(VaultError::ChunkAuth)));
    }
}
