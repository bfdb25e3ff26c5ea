//! Encrypted chunks as the data plane sees them: a [`ChunkCipher`] names, seals and
//! opens the chunks of one key domain (the vault) without `data` ever holding a key,
//! and a [`Domain`] says which ids and which encoding a file's chunks get.
//!
//! A sealed chunk is compressed first and encrypted second (compressing ciphertext
//! gains nothing); the nonce goes in the pack record's nonce field and the
//! authentication tag ends the payload, so a record stays self-describing and GC moves
//! it byte for byte without a key.

use std::sync::Arc;

use bytes::Bytes;

use super::compress::{self, Codec, Stored};
use super::hash::ChunkHasher;
use super::pack::NONCE_LEN;
use crate::types::ChunkHash;

/// Names and encrypts the chunks of one key domain. Implemented by the unlocked vault;
/// only code holding one can read or write its chunks.
pub trait ChunkCipher: Send + Sync {
    /// The chunk id of `plain` in this domain (a keyed hash: equal plaintexts share an
    /// id inside the domain, and the id reveals nothing without the key).
    fn chunk_id(&self, plain: &[u8]) -> ChunkHash;

    /// Encrypts `payload` (the compressed chunk) bound to its id, codec and plain
    /// length; returns the nonce and the ciphertext with its tag.
    ///
    /// Fails (with a message) only if the OS random generator fails or the payload is
    /// too large for a record.
    fn seal(
        &self,
        id: &ChunkHash,
        codec: Codec,
        plain_len: u32,
        payload: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), String>;

    /// Decrypts what [`ChunkCipher::seal`] made inside `buf` (ciphertext and tag) and
    /// returns the payload's length: the payload is `buf[..len]`. `None` when
    /// authentication fails; `buf` is unspecified then.
    fn open_in_place(
        &self,
        id: &ChunkHash,
        codec: Codec,
        plain_len: u32,
        nonce: &[u8; NONCE_LEN],
        buf: &mut [u8],
    ) -> Option<usize>;

    /// Decrypts what [`ChunkCipher::seal`] made; `None` when authentication fails (a
    /// damaged, swapped or replayed payload, or another domain's chunk).
    fn open(
        &self,
        id: &ChunkHash,
        codec: Codec,
        plain_len: u32,
        nonce: &[u8; NONCE_LEN],
        ciphertext: &[u8],
    ) -> Option<Vec<u8>>;
}

/// Which ids and encoding the chunks of a file get.
#[derive(Clone)]
pub enum Domain {
    /// The filesystem's keyed XXH3 ids; compressed, not encrypted.
    Plain,
    /// The vault's keyed ids; compressed, then encrypted.
    Sealed(Arc<dyn ChunkCipher>),
}

impl Domain {
    /// Whether chunks of this domain are encrypted.
    pub fn is_sealed(&self) -> bool {
        matches!(self, Domain::Sealed(_))
    }

    /// The chunk id of `plain` in this domain.
    pub fn chunk_id(&self, hasher: &ChunkHasher, plain: &[u8]) -> ChunkHash {
        match self {
            Domain::Plain => hasher.hash(plain),
            Domain::Sealed(c) => c.chunk_id(plain),
        }
    }

    /// The stored form of chunk `id` with bytes `plain`: compressed at `level`, and
    /// encrypted in a sealed domain.
    ///
    /// Fails as [`ChunkCipher::seal`] does.
    pub fn encode(&self, id: &ChunkHash, plain: &Bytes, level: i32) -> Result<Stored, String> {
        let stored = compress::compress(plain, level);
        match self {
            Domain::Plain => Ok(stored),
            Domain::Sealed(c) => {
                let (nonce, ct) = c.seal(id, stored.codec, plain.len() as u32, &stored.bytes)?;
                Ok(Stored {
                    codec: stored.codec,
                    bytes: Bytes::from(ct),
                    nonce: Some(nonce),
                })
            }
        }
    }
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Domain::Plain => "Domain::Plain",
            Domain::Sealed(_) => "Domain::Sealed",
        })
    }
}
