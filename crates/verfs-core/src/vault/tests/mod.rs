//! Tests of the vault core. Argon2 runs with [`fast`] parameters (64 KiB, one pass, one
//! lane) except in the one test that times the defaults.

mod chunk;
mod fuzz;
mod keyfile;
mod wrap;

use super::{KdfParams, KeyFile, UnlockedVault, VaultError};

/// Argon2 parameters small enough for many runs per test.
fn fast() -> KdfParams {
    KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    }
}

/// The error of a result whose `Ok` type has no `Debug` (the secret-holding types).
fn err<T>(r: Result<T, VaultError>) -> VaultError {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

/// The value of a result whose `Ok` type has no `Debug`.
fn ok<T>(r: Result<T, VaultError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("expected Ok, got {e}"),
    }
}

/// A fresh vault: its key file, wrap record and unlocked keys.
fn new_vault(password: &[u8]) -> (KeyFile, Vec<u8>, UnlockedVault) {
    let kf = ok(KeyFile::generate());
    let (wrap, vault) = ok(super::create(password, &kf, fast()));
    (kf, wrap, vault)
}

/// A key file image with `edit` applied and the CRC made right again, so the decoder
/// gets past the checksum to the check under test.
fn key_file_with(kf: &KeyFile, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut bytes = kf.encode().to_vec();
    edit(&mut bytes);
    fix_crc(&mut bytes);
    bytes
}

/// Rewrites the trailing CRC32C of a key file or wrap record image.
fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}
