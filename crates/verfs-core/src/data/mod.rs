//! The data plane: chunk boundaries, chunk ids, compression and the pack store.
//!
//! Nothing here knows about inodes or metadata; it turns bytes into stored chunks and
//! stored chunks back into bytes.

pub mod cipher;
pub mod compress;
pub mod discard;
#[cfg(test)]
mod fuzz;
pub mod hash;
pub mod intent;
pub mod pack;
pub mod packio;
pub mod readahead;
pub mod store;
pub mod ultracdc;

pub use cipher::{ChunkCipher, Domain};
pub use compress::{Codec, Stored};
pub use hash::ChunkHasher;
pub use pack::PackError;
pub use store::PackStore;
pub use ultracdc::{StreamChunker, UltraCdc};

use crate::error::FsError;

impl From<PackError> for FsError {
    fn from(e: PackError) -> FsError {
        match &e {
            PackError::Io { cause, .. } => FsError::from_io("pack", cause),
            PackError::Corrupt { .. } | PackError::Missing { .. } => {
                FsError::Corrupt(e.to_string())
            }
            PackError::Locked { .. } => FsError::Io(e.to_string()),
        }
    }
}
