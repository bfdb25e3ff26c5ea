//! Reading encrypted records: the cipher the vault's unlock loads, and a bounded cache
//! of the plain chunks it opened.
//!
//! The cache exists because a read request rarely ends on a chunk boundary: the chunk
//! at each edge is wanted by two requests, and without a cache each would decrypt it
//! (the plain chunk cache of the engine never holds vault plaintext). It lives inside
//! [`Unlocked`], next to the cipher, and the lock drops both together: a reader still
//! holding the old `Unlocked` can only put plaintext into a cache no one else can reach
//! any more, freed when that reader finishes.

use std::sync::Arc;

use bytes::Bytes;
use moka::sync::Cache;

use super::{Located, PackStore};
use crate::data::cipher::ChunkCipher;
use crate::data::compress::Codec;
use crate::data::pack::{self, PackError, RecordHeader, NONCE_LEN};
use crate::types::{ChunkHash, PackId};

/// Bytes an encrypted payload has beyond its plaintext (the AEAD tag).
pub(super) const TAG_LEN: usize = 16;
/// Plain bytes of vault chunks kept while the vault is unlocked, until the daemon's
/// memory budget sets it.
pub(super) const PLAIN_CACHE_BYTES: u64 = 16 << 20;

/// An unlocked vault as the pack store sees it.
pub(super) struct Unlocked {
    cipher: Arc<dyn ChunkCipher>,
    plain: Cache<ChunkHash, Bytes>,
}

impl Unlocked {
    fn new(cipher: Arc<dyn ChunkCipher>, capacity: u64) -> Unlocked {
        Unlocked {
            cipher,
            // LRU, not moka's default TinyLFU admission: a chunk opened for the request
            // being filled must be admitted even though it was never seen before.
            plain: Cache::builder()
                .weigher(|_, v: &Bytes| v.len().min(u32::MAX as usize) as u32 + 64)
                .max_capacity(capacity)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
        }
    }

    /// Bytes of plain chunks held now.
    pub fn cached_bytes(&self) -> u64 {
        self.plain.weighted_size()
    }

    /// A plain chunk opened earlier in this unlock.
    pub fn cached(&self, hash: &ChunkHash) -> Option<Bytes> {
        self.plain.get(hash)
    }

    /// Keeps a plain chunk for the next request that wants it.
    pub fn remember(&self, hash: ChunkHash, plain: Bytes) {
        self.plain.insert(hash, plain);
    }

    /// Decrypts an encrypted record's payload.
    ///
    /// Fails with `Corrupt` when authentication fails.
    pub fn open(
        &self,
        pack_id: PackId,
        offset: u64,
        header: &RecordHeader,
        nonce: &[u8; NONCE_LEN],
        payload: &[u8],
    ) -> Result<Bytes, PackError> {
        self.cipher
            .open(&header.hash, header.codec, header.plain_len, nonce, payload)
            .map(Bytes::from)
            .ok_or_else(|| auth_failed(pack_id, offset))
    }

    /// The sequential read of an encrypted raw (incompressible) chunk: from the cache,
    /// or read onto the end of `out` and decrypted there (no copy of the ciphertext).
    /// Returns `false`, `out` unchanged, when the record is not an encrypted raw one.
    ///
    /// Fails with `Corrupt` when a check or authentication fails, `Io` on a read error;
    /// `out` keeps its length on failure.
    pub fn read_raw_into(
        &self,
        at: &Located,
        (pack_id, hash, plain_len): (PackId, &ChunkHash, u32),
        out: &mut Vec<u8>,
    ) -> Result<bool, PackError> {
        if let Some(plain) = self.cached(hash) {
            out.extend_from_slice(&plain);
            return Ok(true);
        }
        let start = out.len();
        let Some((h, nonce)) =
            pack::read_sealed_payload_into(at.file(), pack_id, at.loc(), hash, out)?
        else {
            return Ok(false);
        };
        if h.codec != Codec::Raw || h.plain_len != plain_len {
            out.truncate(start);
            return Ok(false);
        }
        let opened =
            self.cipher
                .open_in_place(hash, h.codec, h.plain_len, &nonce, &mut out[start..]);
        match opened {
            Some(n) if n == plain_len as usize => {
                out.truncate(start + n);
                self.remember(*hash, Bytes::copy_from_slice(&out[start..]));
                Ok(true)
            }
            _ => {
                out.truncate(start);
                Err(auth_failed(pack_id, at.loc().offset))
            }
        }
    }
}

fn auth_failed(pack: PackId, offset: u64) -> PackError {
    PackError::corrupt_at(pack, offset, "encrypted chunk failed authentication")
}

impl PackStore {
    pub(super) fn unlocked(&self) -> Option<Arc<Unlocked>> {
        self.unlocked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The cipher loaded by [`PackStore::set_cipher`], if any.
    pub fn cipher(&self) -> Option<Arc<dyn ChunkCipher>> {
        self.unlocked().map(|u| u.cipher.clone())
    }

    /// Loads (`Some`) or drops (`None`) the cipher that opens encrypted records: the
    /// vault's unlock and lock. Dropping it drops the plain chunks it opened too.
    /// Reads of encrypted records fail with `Locked` without one.
    pub fn set_cipher(&self, cipher: Option<Arc<dyn ChunkCipher>>) {
        let capacity = self.vault_cache_bytes;
        let next = cipher.map(|c| Arc::new(Unlocked::new(c, capacity)));
        let old = std::mem::replace(
            &mut *self.unlocked.write().unwrap_or_else(|p| p.into_inner()),
            next,
        );
        if let Some(old) = old {
            old.plain.invalidate_all();
            old.plain.run_pending_tasks();
        }
    }
}
