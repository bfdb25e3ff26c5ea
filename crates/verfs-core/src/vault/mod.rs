//! The vault's cryptographic core (DESIGN.md §8): key file, password wrap, domain keys
//! and the chunk AEAD. Pure functions over bytes; no FUSE, no metadata store, no CLI.
//! Byte tables of everything stored are in `docs/format.md` ("Vault").
//!
//! The envelope:
//!
//! ```text
//! key file (verfsnext.vault.key)  = vault id ‖ secret                   keyfile.rs
//! KEK        = Argon2id(password, salt, secret = key file secret)        kdf.rs
//! wrap record = params ‖ salt ‖ vault id ‖ XChaCha20-Poly1305_KEK(folder key)   wrap.rs
//! chunk key  = BLAKE3 derive_key("… chunk encryption v1", folder key)   keys.rs
//! id key     = BLAKE3 derive_key("… chunk id v1", folder key)
//! chunk id   = BLAKE3 keyed(id key, plain)[..16]
//! chunk      = XChaCha20-Poly1305_chunk key(nonce, AAD = 1 ‖ vault id ‖ chunk id ‖
//!              codec ‖ plain_len, compressed payload)
//! ```
//!
//! Both factors are needed: the password alone does not start Argon2 (the secret is its
//! key), the key file alone leaves a memory-hard guess per password. A wrong password and
//! a wrong key file are one error ([`VaultError::WrongKey`]) after the same work. The
//! folder key never changes after creation, so changing the password rewrites one
//! 140-byte record and no data.
//!
//! Secrets live only in types that zeroize on drop and have neither `Clone` nor `Debug`:
//! the key file secret, the KEK, the folder key (only inside `wrap`, for as long as one
//! create, unlock or re-wrap takes) and the two domain keys in [`UnlockedVault`]. Stack
//! temporaries made while deriving them are not guaranteed wiped; heap buffers are.

mod error;
mod kdf;
mod keyfile;
mod keys;
mod wrap;

#[cfg(test)]
mod tests;

pub use error::VaultError;
pub use kdf::{KdfParams, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST};
pub use keyfile::{KeyFile, VaultId, KEY_FILE_LEN, KEY_FILE_NAME};
pub use keys::{UnlockedVault, NONCE_LEN, TAG_LEN};
pub use wrap::{change_password, create, unlock, WrapRecord, WRAP_RECORD_LEN};

use rand::rngs::OsRng;
use rand::RngCore;

/// Fills `buf` from the OS random number generator: every key, salt, nonce and id of
/// the vault comes from here.
///
/// Fails with `Random` if the OS generator fails (it does not on Linux once booted).
fn fill_random(buf: &mut [u8]) -> Result<(), VaultError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| VaultError::Random(e.to_string()))
}
