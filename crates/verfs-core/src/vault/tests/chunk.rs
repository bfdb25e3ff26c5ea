//! Chunk ids and the chunk AEAD.

use super::super::{UnlockedVault, VaultError, NONCE_LEN, TAG_LEN};
use super::{new_vault, ok};
use crate::types::ChunkHash;

const CODEC: u8 = 1;

/// A sealed chunk and the fields it was sealed with.
struct Sealed {
    id: ChunkHash,
    plain_len: u32,
    nonce: [u8; NONCE_LEN],
    bytes: Vec<u8>,
}

fn seal(vault: &UnlockedVault, plain: &[u8]) -> Sealed {
    // The "compressed payload" is the plain bytes reversed: anything but the plain.
    let payload: Vec<u8> = plain.iter().rev().copied().collect();
    let id = vault.chunk_id(plain);
    let plain_len = plain.len() as u32;
    let (nonce, bytes) = ok(vault.seal_chunk(id, CODEC, plain_len, &payload));
    Sealed {
        id,
        plain_len,
        nonce,
        bytes,
    }
}

fn open(vault: &UnlockedVault, s: &Sealed) -> Result<Vec<u8>, VaultError> {
    vault.open_chunk(s.id, CODEC, s.plain_len, &s.nonce, &s.bytes)
}

fn is_auth(r: Result<Vec<u8>, VaultError>) -> bool {
    matches!(r, Err(VaultError::ChunkAuth))
}

#[test]
fn seal_open_round_trip() {
    let (_, _, vault) = new_vault(b"pw");
    for plain in [&b""[..], b"x", &[7u8; 1000][..], &vec![3u8; 1 << 20][..]] {
        let s = seal(&vault, plain);
        assert_eq!(s.bytes.len(), plain.len() + TAG_LEN);
        let payload: Vec<u8> = plain.iter().rev().copied().collect();
        assert_eq!(ok(open(&vault, &s)), payload);
        if plain.len() > 16 {
            assert_ne!(&s.bytes[..plain.len()], &payload[..], "not encrypted");
        }
    }
}

#[test]
fn sealing_twice_uses_fresh_nonces() {
    let (_, _, vault) = new_vault(b"pw");
    let a = seal(&vault, b"same bytes");
    let b = seal(&vault, b"same bytes");
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.bytes, b.bytes);
}

#[test]
fn in_place_variants_match_and_do_not_reallocate() {
    let (_, _, vault) = new_vault(b"pw");
    let id = vault.chunk_id(b"plain");
    let mut buf = Vec::with_capacity(64 + TAG_LEN);
    buf.extend_from_slice(&[9u8; 64]);
    let ptr = buf.as_ptr();
    let nonce = ok(vault.seal_chunk_in_place(id, CODEC, 5, &mut buf));
    assert_eq!(buf.as_ptr(), ptr, "reallocated");
    assert_eq!(buf.len(), 64 + TAG_LEN);
    assert_eq!(ok(vault.open_chunk(id, CODEC, 5, &nonce, &buf)), [9u8; 64]);
    let len = ok(vault.open_chunk_in_place(id, CODEC, 5, &nonce, &mut buf));
    assert_eq!(&buf[..len], &[9u8; 64]);
}

#[test]
fn every_flipped_ciphertext_or_tag_byte_fails() {
    let (_, _, vault) = new_vault(b"pw");
    let s = seal(&vault, b"some compressed bytes");
    for i in 0..s.bytes.len() {
        let mut bad = Sealed {
            bytes: s.bytes.clone(),
            ..s
        };
        bad.bytes[i] ^= 0x01;
        assert!(is_auth(open(&vault, &bad)), "byte {i}");
    }
}

#[test]
fn flipped_nonce_fails() {
    let (_, _, vault) = new_vault(b"pw");
    let s = seal(&vault, b"payload");
    for i in [0, 11, NONCE_LEN - 1] {
        let mut nonce = s.nonce;
        nonce[i] ^= 0x80;
        let r = vault.open_chunk(s.id, CODEC, s.plain_len, &nonce, &s.bytes);
        assert!(is_auth(r), "nonce byte {i}");
    }
}

#[test]
fn other_id_codec_or_length_fails() {
    let (_, _, vault) = new_vault(b"pw");
    let s = seal(&vault, b"payload");
    let other_id = vault.chunk_id(b"other payload");
    let r = vault.open_chunk(other_id, CODEC, s.plain_len, &s.nonce, &s.bytes);
    assert!(is_auth(r), "chunk id");
    let r = vault.open_chunk(s.id, CODEC ^ 1, s.plain_len, &s.nonce, &s.bytes);
    assert!(is_auth(r), "codec");
    let r = vault.open_chunk(s.id, CODEC, s.plain_len + 1, &s.nonce, &s.bytes);
    assert!(is_auth(r), "plain_len");
    // Two chunks' payloads swapped between records: each fails.
    let t = seal(&vault, b"another chunk!");
    let r = vault.open_chunk(s.id, CODEC, s.plain_len, &t.nonce, &t.bytes);
    assert!(is_auth(r), "swapped");
}

#[test]
fn another_vaults_keys_fail() {
    let (_, _, a) = new_vault(b"pw");
    let (_, _, b) = new_vault(b"pw");
    let s = seal(&a, b"secret data");
    assert!(is_auth(open(&b, &s)));
}

#[test]
fn truncated_sealed_input_fails_without_panic() {
    let (_, _, vault) = new_vault(b"pw");
    let s = seal(&vault, b"payload");
    for n in 0..s.bytes.len() {
        let r = vault.open_chunk(s.id, CODEC, s.plain_len, &s.nonce, &s.bytes[..n]);
        assert!(is_auth(r), "cut at {n}");
    }
}

#[test]
fn chunk_id_is_keyed_per_vault_and_stable_within_one() {
    let (kf, wrap, a) = new_vault(b"pw");
    let (_, _, b) = new_vault(b"pw");
    let plain = b"the same plain bytes in two vaults";
    let unkeyed = blake3::hash(plain);
    assert_ne!(a.chunk_id(plain).0[..], unkeyed.as_bytes()[..16]);
    assert_ne!(a.chunk_id(plain), b.chunk_id(plain));
    assert_eq!(a.chunk_id(plain), a.chunk_id(plain));
    assert_ne!(a.chunk_id(plain), a.chunk_id(b"other bytes"));
    // A second unlock of the same vault names the same bytes the same way: dedup.
    let again = ok(super::super::unlock(&wrap, b"pw", &kf));
    assert_eq!(again.chunk_id(plain), a.chunk_id(plain));
}

#[test]
fn oversized_payload_is_refused() {
    // The length check alone: no 4 GiB buffer is needed to reach it.
    use super::super::keys::check_sealed_len;
    assert!(check_sealed_len(u32::MAX as usize - TAG_LEN).is_ok());
    assert!(matches!(
        check_sealed_len(u32::MAX as usize - TAG_LEN + 1),
        Err(VaultError::ChunkTooLarge(_))
    ));
    assert!(matches!(
        check_sealed_len(usize::MAX),
        Err(VaultError::ChunkTooLarge(_))
    ));
}

/// Throughput of seal and open on 64 KiB chunks and of the chunk id, printed; run with
/// `cargo test --release -p verfs-core --lib seal_open_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn seal_open_throughput() {
    let (_, _, vault) = new_vault(b"pw");
    let plain = vec![0x5Au8; 64 << 10];
    let id = ChunkHash([1; 16]);
    let rounds = 4096;
    let mib = (rounds * plain.len()) as f64 / (1 << 20) as f64;
    let t = std::time::Instant::now();
    let mut sealed = Vec::new();
    for _ in 0..rounds {
        sealed = ok(vault.seal_chunk(id, 0, plain.len() as u32, &plain)).1;
    }
    let seal = mib / t.elapsed().as_secs_f64();
    let (nonce, s) = ok(vault.seal_chunk(id, 0, plain.len() as u32, &plain));
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        ok(vault.open_chunk(id, 0, plain.len() as u32, &nonce, &s));
    }
    let open = mib / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(vault.chunk_id(&plain));
    }
    let ids = mib / t.elapsed().as_secs_f64();
    println!(
        "seal {seal:.0} MiB/s, open {open:.0} MiB/s, chunk id {ids:.0} MiB/s ({} bytes)",
        sealed.len()
    );
}
