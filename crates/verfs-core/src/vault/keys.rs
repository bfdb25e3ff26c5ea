//! The unlocked vault: two domain keys derived from the folder key, and the chunk
//! operations that use them.
//!
//! Domain separation: `derive_key` with distinct context strings gives an encryption
//! key and a chunk-id key that reveal nothing about each other or the folder key, so
//! chunk ids (which sit in clear in metadata) can never help decrypt a chunk.
//!
//! Chunk AEAD (format version 1): XChaCha20-Poly1305, a fresh random 192-bit nonce per
//! seal (random nonces of this size never collide in practice, so no counter state has
//! to survive crashes), and
//!
//! ```text
//! AAD = 0x01 ‖ vault id [16] ‖ chunk id [16] ‖ codec u8 ‖ plain_len u32 LE   (38 bytes)
//! ```
//!
//! so a payload moved to another chunk id, another vault, or presented with another
//! codec or length fails to open instead of decompressing into wrong bytes. The 16-byte
//! tag follows the ciphertext; the nonce goes in the pack record's nonce field.

use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{fill_random, VaultError, VaultId};
use crate::types::ChunkHash;

/// Bytes the AEAD tag adds to a sealed payload: `stored_len = payload_len + TAG_LEN`.
pub const TAG_LEN: usize = 16;
/// Length of a chunk nonce (the pack record's nonce field).
pub const NONCE_LEN: usize = 24;
/// Length of the folder key and of both domain keys.
pub(super) const KEY_LEN: usize = 32;

/// First AAD byte: the chunk AEAD format version.
const CHUNK_FORMAT: u8 = 1;
const AAD_LEN: usize = 1 + 16 + 16 + 1 + 4;
const CTX_CHUNK_ENC: &str = "verfsnext 2026 vault chunk encryption v1";
const CTX_CHUNK_ID: &str = "verfsnext 2026 vault chunk id v1";

/// The random root key of a vault. Never stored in clear; exists only while a wrap
/// record is created, opened or re-wrapped. Zeroized on drop; no `Clone`, no `Debug`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct FolderKey(pub(super) [u8; KEY_LEN]);

/// The chunk-id key: a BLAKE3 key. Zeroized on drop; no `Clone`, no `Debug`.
#[derive(Zeroize, ZeroizeOnDrop)]
struct IdKey([u8; KEY_LEN]);

/// A vault that has been unlocked: what the data path needs to name, seal and open
/// vault chunks, and nothing more (the folder key is not kept; see the module docs of
/// `vault`).
///
/// Only `create` and `unlock` make one. Locking the vault is dropping it: both keys are
/// zeroized on drop (the cipher's key by chacha20poly1305's `zeroize` feature). No
/// `Clone` (one owner, so one drop wipes it) and no `Debug`.
pub struct UnlockedVault {
    vault_id: VaultId,
    chunk_cipher: XChaCha20Poly1305,
    id_key: IdKey,
}

// Every field that holds key material zeroizes itself on drop.
impl ZeroizeOnDrop for UnlockedVault {}

impl UnlockedVault {
    /// Derives the domain keys of `folder`.
    pub(super) fn new(vault_id: VaultId, folder: &FolderKey) -> Self {
        let enc = Zeroizing::new(blake3::derive_key(CTX_CHUNK_ENC, &folder.0));
        let id_key = IdKey(blake3::derive_key(CTX_CHUNK_ID, &folder.0));
        UnlockedVault {
            vault_id,
            chunk_cipher: XChaCha20Poly1305::new((&*enc).into()),
            id_key,
        }
    }

    /// The vault these keys belong to.
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// The id of a vault chunk: keyed BLAKE3 of the plain bytes, first 16 bytes.
    ///
    /// Keyed per vault so plaintext hashes never appear in metadata (no confirming that
    /// a known file is stored) and vault chunks never dedup against chunks outside the
    /// vault or in another vault; equal plain bytes in one vault get one id, so dedup
    /// inside the vault works.
    pub fn chunk_id(&self, plain: &[u8]) -> ChunkHash {
        let hash = blake3::keyed_hash(&self.id_key.0, plain);
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash.as_bytes()[..16]);
        ChunkHash(id)
    }

    /// Encrypts a compressed payload into a new buffer (`payload.len() + TAG_LEN`
    /// bytes, tag last; one allocation) and returns it with its fresh random nonce.
    ///
    /// `id`, `codec` and `plain_len` are the pack record's fields; they are
    /// authenticated, not encrypted. Fails with `ChunkTooLarge` if the sealed length
    /// would not fit a u32, and `Random` if the OS generator fails.
    pub fn seal_chunk(
        &self,
        id: ChunkHash,
        codec: u8,
        plain_len: u32,
        payload: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), VaultError> {
        check_sealed_len(payload.len())?;
        let mut buf = Vec::with_capacity(payload.len() + TAG_LEN);
        buf.extend_from_slice(payload);
        let nonce = self.seal_chunk_in_place(id, codec, plain_len, &mut buf)?;
        Ok((nonce, buf))
    }

    /// As [`UnlockedVault::seal_chunk`], encrypting `buf` in place and appending the
    /// tag: no allocation when `buf` has `TAG_LEN` bytes of spare capacity (reserve it
    /// when compressing). On error `buf` is unchanged.
    pub fn seal_chunk_in_place(
        &self,
        id: ChunkHash,
        codec: u8,
        plain_len: u32,
        buf: &mut Vec<u8>,
    ) -> Result<[u8; NONCE_LEN], VaultError> {
        check_sealed_len(buf.len())?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let aad = self.aad(id, codec, plain_len);
        let tag = self
            .chunk_cipher
            .encrypt_inout_detached((&nonce).into(), &aad, buf.as_mut_slice().into())
            .map_err(|_| VaultError::ChunkTooLarge(buf.len()))?;
        buf.extend_from_slice(&tag);
        Ok(nonce)
    }

    /// Authenticates and decrypts a sealed payload (tag last) into a new buffer of the
    /// compressed payload (one allocation).
    ///
    /// Fails with `ChunkAuth` if the ciphertext, nonce, id, codec or plain length differ
    /// from what was sealed, the chunk was sealed by another vault, or the input is
    /// shorter than a tag.
    pub fn open_chunk(
        &self,
        id: ChunkHash,
        codec: u8,
        plain_len: u32,
        nonce: &[u8; NONCE_LEN],
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut buf = sealed.to_vec();
        let len = self.open_chunk_in_place(id, codec, plain_len, nonce, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// As [`UnlockedVault::open_chunk`], decrypting inside `sealed` (for example the
    /// buffer the pack record was read into) and returning the payload length: the
    /// payload is `sealed[..len]`. On error the buffer's contents are unspecified.
    pub fn open_chunk_in_place(
        &self,
        id: ChunkHash,
        codec: u8,
        plain_len: u32,
        nonce: &[u8; NONCE_LEN],
        sealed: &mut [u8],
    ) -> Result<usize, VaultError> {
        let len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(VaultError::ChunkAuth)?;
        let (payload, tag) = sealed.split_at_mut(len);
        let tag = Tag::try_from(&*tag).map_err(|_| VaultError::ChunkAuth)?;
        let aad = self.aad(id, codec, plain_len);
        self.chunk_cipher
            .decrypt_inout_detached(nonce.into(), &aad, payload.into(), &tag)
            .map_err(|_| VaultError::ChunkAuth)?;
        Ok(len)
    }

    /// The chunk AAD (layout in the module docs).
    fn aad(&self, id: ChunkHash, codec: u8, plain_len: u32) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[0] = CHUNK_FORMAT;
        aad[1..17].copy_from_slice(&self.vault_id.0);
        aad[17..33].copy_from_slice(&id.0);
        aad[33] = codec;
        aad[34..].copy_from_slice(&plain_len.to_le_bytes());
        aad
    }
}

/// A sealed payload's length must fit the pack record's u32 stored length.
pub(super) fn check_sealed_len(payload_len: usize) -> Result<(), VaultError> {
    match payload_len.checked_add(TAG_LEN) {
        Some(n) if n <= u32::MAX as usize => Ok(()),
        _ => Err(VaultError::ChunkTooLarge(payload_len)),
    }
}
