//! The one error of the vault's cryptographic core.
//!
//! Variants are split by what the user has to do about them, which is also how the CLI
//! picks its exit code: a malformed or foreign key file (`KeyFile*`, exit 4), a damaged
//! wrap record (`Wrap*`), a wrong password or wrong key file (`WrongKey`, one variant
//! for both so neither the message nor the timing tells which), a damaged or swapped
//! chunk (`ChunkAuth`). No variant ever carries a password or key byte.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Every way the vault's key handling and chunk encryption can fail.
#[derive(Debug, Error)]
pub enum VaultError {
    /// The key file is not a VerFSNext vault key file: wrong length, magic, CRC or
    /// reserved bytes. The message says which check failed.
    #[error("vault key file is malformed: {0}")]
    KeyFileMalformed(String),
    /// The key file is of a format version this build does not read.
    #[error("vault key file is version {0}; this build reads version 1")]
    KeyFileVersion(u16),
    /// The stored wrap record is damaged: wrong length, CRC or reserved bytes, or KDF
    /// parameters out of bounds. The message says which check failed.
    #[error("vault wrap record is malformed: {0}")]
    WrapMalformed(String),
    /// The stored wrap record is of a version this build does not read.
    #[error("vault wrap record is version {0}; this build reads version 1")]
    WrapVersion(u16),
    /// The password is wrong, or the key file is not the one this vault was created
    /// with (another secret or another vault id). Deliberately one variant: both are
    /// detected by the same AEAD check after the same Argon2 run.
    #[error("wrong password or wrong key file")]
    WrongKey,
    /// A vault chunk failed authentication: its bytes, nonce, id, codec or length were
    /// changed, or it belongs to another vault.
    #[error("vault chunk failed authentication (damaged, swapped or from another vault)")]
    ChunkAuth,
    /// A payload to seal is too long for a pack record (its stored length, tag included,
    /// must fit in a u32).
    #[error("vault chunk payload of {0} bytes is too large to seal")]
    ChunkTooLarge(usize),
    /// Argon2 parameters out of the accepted bounds, or Argon2 itself refused them (for
    /// example it could not allocate the memory they ask for).
    #[error("bad Argon2 parameters: {0}")]
    BadParams(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// Reading or writing the key file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error (in the message only, so a printed chain names it once).
        cause: io::Error,
    },
}

impl VaultError {
    /// An I/O error on `path`, for the key file reader and writer.
    pub(super) fn io(path: &std::path::Path, cause: io::Error) -> Self {
        VaultError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}
