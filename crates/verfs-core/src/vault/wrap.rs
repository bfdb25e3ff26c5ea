//! The wrap record: the folder key encrypted under the password-and-key-file KEK, with
//! everything needed to re-derive that KEK. Stored by the caller as one opaque metadata
//! value (a `Y vault.*` system value); this module owns its bytes.
//!
//! ```text
//! offset size field
//!      0    2 version u16 LE (1)
//!      2    2 reserved (0)
//!      4    4 m_cost KiB u32 LE      ┐
//!      8    4 t_cost u32 LE          │ Argon2id parameters
//!     12    4 p_cost u32 LE          ┘
//!     16   32 salt
//!     48   16 vault id
//!     64   24 nonce                  XChaCha20-Poly1305
//!     88   32 wrapped folder key
//!    120   16 tag
//!    136    4 CRC32C of bytes 0..136, LE
//! ```
//!
//! AAD of the wrap = bytes 0..64 ‖ the key file's vault id (80 bytes). The first part
//! means the parameters cannot be lowered (a downgrade that would make guessing
//! cheaper) and salt and vault id cannot be edited; the second that the record opens
//! only with a key file of the same vault id. Both are checked by the AEAD, after the
//! full Argon2 run: a key file of another vault fails exactly as a wrong password does,
//! with the same error and timing, and no id is compared before the expensive step.

use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

use super::kdf::{derive_kek, KdfParams};
use super::keys::{FolderKey, KEY_LEN, NONCE_LEN, TAG_LEN};
use super::{fill_random, KeyFile, UnlockedVault, VaultError, VaultId};

/// Encoded length of a version-1 wrap record.
pub const WRAP_RECORD_LEN: usize = 140;

const VERSION: u16 = 1;
const SALT_LEN: usize = 32;
/// The authenticated prefix: version, reserved, parameters, salt, vault id.
const HEADER_LEN: usize = 64;
/// The AEAD's associated data: the header and the key file's vault id.
const AAD_LEN: usize = HEADER_LEN + 16;
const OFF_NONCE: usize = 64;
const OFF_WRAPPED: usize = 88;
const OFF_TAG: usize = 120;
const OFF_CRC: usize = 136;

/// A decoded wrap record. Holds only ciphertext and public parameters, so it may be
/// cloned and printed; decoding one proves nothing about the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapRecord {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    vault_id: VaultId,
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; KEY_LEN],
    tag: [u8; TAG_LEN],
}

impl WrapRecord {
    /// The Argon2id parameters the record was made with (for `crypt --status` and to
    /// decide whether a re-wrap with stronger ones is due).
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// The vault the record belongs to (its key file must carry the same id).
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// The 140-byte stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAP_RECORD_LEN);
        out.extend_from_slice(&header(self.params, &self.salt, self.vault_id));
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.wrapped);
        out.extend_from_slice(&self.tag);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a stored wrap record.
    ///
    /// Fails with `WrapVersion` for a version this build does not read, and with
    /// `WrapMalformed` (naming the check) for a wrong length, CRC, non-zero reserved
    /// bytes or Argon2 parameters out of [`KdfParams::validate`]'s bounds. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<WrapRecord, VaultError> {
        let malformed = |why: String| Err(VaultError::WrapMalformed(why));
        if bytes.len() < 2 {
            return malformed(format!("truncated: {} bytes", bytes.len()));
        }
        let version = u16::from_le_bytes([bytes[0], bytes[1]]);
        if version != VERSION {
            return Err(VaultError::WrapVersion(version));
        }
        if bytes.len() != WRAP_RECORD_LEN {
            return malformed(format!(
                "length {} (expected {WRAP_RECORD_LEN})",
                bytes.len()
            ));
        }
        if u32_at(bytes, OFF_CRC) != crc32c::crc32c(&bytes[..OFF_CRC]) {
            return malformed("CRC mismatch: the record is damaged".into());
        }
        if bytes[2..4] != [0, 0] {
            return malformed("reserved bytes are not zero".into());
        }
        let params = KdfParams {
            m_cost_kib: u32_at(bytes, 4),
            t_cost: u32_at(bytes, 8),
            p_cost: u32_at(bytes, 12),
        };
        params
            .validate()
            .map_err(|e| VaultError::WrapMalformed(e.to_string()))?;
        let mut rec = WrapRecord {
            params,
            salt: [0; SALT_LEN],
            vault_id: VaultId([0; 16]),
            nonce: [0; NONCE_LEN],
            wrapped: [0; KEY_LEN],
            tag: [0; TAG_LEN],
        };
        rec.salt.copy_from_slice(&bytes[16..48]);
        rec.vault_id.0.copy_from_slice(&bytes[48..OFF_NONCE]);
        rec.nonce.copy_from_slice(&bytes[OFF_NONCE..OFF_WRAPPED]);
        rec.wrapped.copy_from_slice(&bytes[OFF_WRAPPED..OFF_TAG]);
        rec.tag.copy_from_slice(&bytes[OFF_TAG..OFF_CRC]);
        Ok(rec)
    }
}

/// Creates a vault: a random folder key, wrapped under `password` and `key_file` with
/// `params`. Returns the wrap record to store and the unlocked vault.
///
/// The password may be any bytes (empty included; whether to allow that is the CLI's
/// policy). Fails with `BadParams` if `params` are out of bounds or Argon2 cannot run
/// with them, and `Random` if the OS generator fails.
pub fn create(
    password: &[u8],
    key_file: &KeyFile,
    params: KdfParams,
) -> Result<(Vec<u8>, UnlockedVault), VaultError> {
    params.validate()?;
    let mut folder = FolderKey([0; KEY_LEN]);
    fill_random(&mut folder.0)?;
    let record = wrap_folder_key(&folder, password, key_file, params)?;
    Ok((record, UnlockedVault::new(key_file.vault_id(), &folder)))
}

/// Unlocks a vault from its stored wrap record.
///
/// Fails with `WrongKey` if the password is wrong or `key_file` is not this vault's
/// (another secret or another vault id) — one variant after the same Argon2 run, so
/// neither the error nor the time tells which factor was wrong. Fails with
/// `WrapMalformed`/`WrapVersion` if the record does not decode (before any Argon2
/// work), and `BadParams` if Argon2 cannot run with its parameters.
pub fn unlock(
    wrap: &[u8],
    password: &[u8],
    key_file: &KeyFile,
) -> Result<UnlockedVault, VaultError> {
    let folder = unwrap_folder_key(wrap, password, key_file)?;
    Ok(UnlockedVault::new(key_file.vault_id(), &folder))
}

/// Re-wraps the same folder key under `new_password` with a fresh salt, fresh nonce and
/// `params`, returning the record to store in place of `wrap`. Chunk data and the
/// domain keys are unchanged, so nothing else is rewritten; the old record stays valid
/// for the old password until the caller replaces it.
///
/// Fails as [`unlock`] does with `old_password`, and with `BadParams` (checked before
/// any Argon2 work) if `params` are out of bounds.
pub fn change_password(
    wrap: &[u8],
    old_password: &[u8],
    new_password: &[u8],
    key_file: &KeyFile,
    params: KdfParams,
) -> Result<Vec<u8>, VaultError> {
    params.validate()?;
    let folder = unwrap_folder_key(wrap, old_password, key_file)?;
    wrap_folder_key(&folder, new_password, key_file, params)
}

/// Encrypts `folder` under a KEK from a fresh salt and returns the encoded record.
fn wrap_folder_key(
    folder: &FolderKey,
    password: &[u8],
    key_file: &KeyFile,
    params: KdfParams,
) -> Result<Vec<u8>, VaultError> {
    let mut rec = WrapRecord {
        params,
        salt: [0; SALT_LEN],
        vault_id: key_file.vault_id(),
        nonce: [0; NONCE_LEN],
        wrapped: [0; KEY_LEN],
        tag: [0; TAG_LEN],
    };
    fill_random(&mut rec.salt)?;
    fill_random(&mut rec.nonce)?;
    let kek = derive_kek(password, &rec.salt, key_file.secret(), params)?;
    let mut buf = Zeroizing::new(folder.0);
    let tag = XChaCha20Poly1305::new(kek.as_bytes().into())
        .encrypt_inout_detached(
            (&rec.nonce).into(),
            &aad(&rec, key_file.vault_id()),
            buf.as_mut_slice().into(),
        )
        .map_err(|_| VaultError::BadParams("wrapping the folder key failed".into()))?;
    rec.wrapped = *buf;
    rec.tag.copy_from_slice(&tag);
    Ok(rec.encode())
}

/// Decodes `wrap`, derives its KEK and decrypts the folder key; see [`unlock`].
fn unwrap_folder_key(
    wrap: &[u8],
    password: &[u8],
    key_file: &KeyFile,
) -> Result<FolderKey, VaultError> {
    let rec = WrapRecord::decode(wrap)?;
    let kek = derive_kek(password, &rec.salt, key_file.secret(), rec.params)?;
    // The key file's vault id is in the AAD next to the record's: a mismatch fails in
    // the AEAD below, after Argon2, indistinguishable from a wrong password.
    let aad = aad(&rec, key_file.vault_id());
    let mut folder = FolderKey(rec.wrapped);
    XChaCha20Poly1305::new(kek.as_bytes().into())
        .decrypt_inout_detached(
            (&rec.nonce).into(),
            &aad,
            folder.0.as_mut_slice().into(),
            (&rec.tag).into(),
        )
        .map_err(|_| VaultError::WrongKey)?;
    Ok(folder)
}

/// The AEAD's associated data: the record's header and the key file's vault id.
fn aad(rec: &WrapRecord, key_file_id: VaultId) -> [u8; AAD_LEN] {
    let mut out = [0u8; AAD_LEN];
    out[..HEADER_LEN].copy_from_slice(&header(rec.params, &rec.salt, rec.vault_id));
    out[HEADER_LEN..].copy_from_slice(&key_file_id.0);
    out
}

/// The authenticated prefix of a record: bytes 0..64 of the table above.
fn header(params: KdfParams, salt: &[u8; SALT_LEN], vault_id: VaultId) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..2].copy_from_slice(&VERSION.to_le_bytes());
    out[4..8].copy_from_slice(&params.m_cost_kib.to_le_bytes());
    out[8..12].copy_from_slice(&params.t_cost.to_le_bytes());
    out[12..16].copy_from_slice(&params.p_cost.to_le_bytes());
    out[16..48].copy_from_slice(salt);
    out[48..].copy_from_slice(&vault_id.0);
    out
}

/// A little-endian u32 at `off`; callers have checked the length.
fn u32_at(bytes: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[off..off + 4]);
    u32::from_le_bytes(b)
}
