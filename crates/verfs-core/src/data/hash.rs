//! Chunk identity: XXH3-128 keyed by a per-filesystem secret.
//!
//! The 16 random bytes stored at first mount (`Y hash_secret`) are expanded into a
//! 192-byte XXH3 secret, so chunk ids cannot be precomputed against the plain hash
//! function. Collisions are otherwise ignored by design.

use xxhash_rust::xxh3::{xxh3_128_with_secret, xxh3_128_with_seed};

use crate::types::ChunkHash;

/// Length of the expanded XXH3 secret (XXH3's default secret size).
const EXPANDED_LEN: usize = 192;

/// Hashes chunk bytes into chunk ids for one filesystem.
#[derive(Clone)]
pub struct ChunkHasher {
    secret: Box<[u8; EXPANDED_LEN]>,
}

impl ChunkHasher {
    /// Builds the hasher from the filesystem's 16-byte secret.
    pub fn new(seed: &[u8; 16]) -> ChunkHasher {
        let mut secret = Box::new([0u8; EXPANDED_LEN]);
        for (i, block) in secret.chunks_mut(16).enumerate() {
            let v = xxh3_128_with_seed(seed, i as u64);
            block.copy_from_slice(&v.to_be_bytes());
        }
        ChunkHasher { secret }
    }

    /// The id of a chunk's plain bytes.
    pub fn hash(&self, data: &[u8]) -> ChunkHash {
        ChunkHash(xxh3_128_with_secret(data, &self.secret[..]).to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_secret_and_data() {
        let a = ChunkHasher::new(&[1; 16]);
        let b = ChunkHasher::new(&[2; 16]);
        assert_eq!(a.hash(b"hello"), a.hash(b"hello"));
        assert_ne!(a.hash(b"hello"), a.hash(b"hellp"));
        assert_ne!(a.hash(b"hello"), b.hash(b"hello"));
    }
}
