//! The vault key file `verfsnext.vault.key`: the second factor of the vault.
//!
//! It holds a random vault id and a random 256-bit secret that Argon2id takes as its
//! *secret* input, so the password alone (say, read over a shoulder or guessed offline
//! from a stolen data dir) never opens the vault. It is small, fixed and checksummed so
//! a truncated copy or the wrong file is named as such instead of showing up as a
//! "wrong password":
//!
//! ```text
//! offset size field
//!      0    8 magic "VFSVKEY1"
//!      8    2 version u16 LE (1)
//!     10    2 reserved (0)
//!     12   16 vault id
//!     28   32 secret
//!     60    4 CRC32C of bytes 0..60, LE
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{fill_random, VaultError};

/// The file name `verfsnext crypt -c` gives the key file.
pub const KEY_FILE_NAME: &str = "verfsnext.vault.key";
/// Encoded length of a version-1 key file.
pub const KEY_FILE_LEN: usize = 64;
/// Length of the key file secret (Argon2's secret input).
const SECRET_LEN: usize = 32;

const MAGIC: &[u8; 8] = b"VFSVKEY1";
const VERSION: u16 = 1;
const OFF_VERSION: usize = 8;
const OFF_RESERVED: usize = 10;
const OFF_ID: usize = 12;
const OFF_SECRET: usize = 28;
const OFF_CRC: usize = 60;
/// Reading stops here: a key file is 64 bytes, anything much larger is the wrong file
/// and is not worth reading into memory.
const READ_CAP: u64 = 4096;

/// A vault's identity: 16 random bytes chosen at creation, stored in the key file, the
/// wrap record and the AAD of every vault chunk. Not secret; it ties a key file, a
/// wrap record and chunks to one vault so none can be moved to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VaultId(pub [u8; 16]);

impl std::fmt::Display for VaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The key file's secret. Zeroized on drop; no `Clone` or `Debug`, so it is never
/// copied or printed by accident. Only the KEK derivation reads it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct KeyFileSecret([u8; SECRET_LEN]);

impl KeyFileSecret {
    /// The raw bytes, for Argon2's secret input.
    pub(super) fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

/// A decoded (or freshly generated) key file. Holds the secret, so it has no `Clone`
/// or `Debug` and zeroizes the secret when dropped.
pub struct KeyFile {
    vault_id: VaultId,
    secret: KeyFileSecret,
}

impl KeyFile {
    /// A new key file with a random vault id and secret from the OS generator, for
    /// `crypt -c`.
    ///
    /// Fails with `Random` only if the OS random number generator fails.
    pub fn generate() -> Result<KeyFile, VaultError> {
        let mut id = [0u8; 16];
        fill_random(&mut id)?;
        let mut secret = KeyFileSecret([0u8; SECRET_LEN]);
        fill_random(&mut secret.0)?;
        Ok(KeyFile {
            vault_id: VaultId(id),
            secret,
        })
    }

    /// The vault this key file belongs to.
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// The secret, for the KEK derivation only.
    pub(super) fn secret(&self) -> &KeyFileSecret {
        &self.secret
    }

    /// The 64-byte file image. Zeroizing, since it contains the secret.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(KEY_FILE_LEN));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.vault_id.0);
        out.extend_from_slice(self.secret.as_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a key file image.
    ///
    /// Checks, in this order so the message names the real problem: the magic
    /// (`KeyFileMalformed` "not a vault key file"), the version (`KeyFileVersion`, a
    /// file from a newer build), the exact length, the CRC, the reserved bytes (all
    /// `KeyFileMalformed` with the check named). Never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<KeyFile, VaultError> {
        let malformed = |why: String| Err(VaultError::KeyFileMalformed(why));
        if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            return malformed("bad magic (not a VerFSNext vault key file)".into());
        }
        if bytes.len() < OFF_RESERVED {
            return malformed(format!("truncated: {} bytes", bytes.len()));
        }
        let version = u16::from_le_bytes([bytes[OFF_VERSION], bytes[OFF_VERSION + 1]]);
        if version != VERSION {
            return Err(VaultError::KeyFileVersion(version));
        }
        if bytes.len() != KEY_FILE_LEN {
            return malformed(format!(
                "length {} (expected {KEY_FILE_LEN}): truncated or not a key file",
                bytes.len()
            ));
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[OFF_CRC..]);
        if u32::from_le_bytes(crc) != crc32c::crc32c(&bytes[..OFF_CRC]) {
            return malformed("CRC mismatch: the file is damaged".into());
        }
        if bytes[OFF_RESERVED..OFF_ID] != [0, 0] {
            return malformed("reserved bytes are not zero".into());
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[OFF_ID..OFF_SECRET]);
        let mut secret = KeyFileSecret([0u8; SECRET_LEN]);
        secret.0.copy_from_slice(&bytes[OFF_SECRET..OFF_CRC]);
        Ok(KeyFile {
            vault_id: VaultId(id),
            secret,
        })
    }

    /// Reads and decodes the key file at `path`, reading at most a few KiB whatever the
    /// file's size.
    ///
    /// Fails with `Io` (with the path) if it cannot be opened or read, and as
    /// [`KeyFile::decode`] does if its bytes are not a key file.
    pub fn read(path: &Path) -> Result<KeyFile, VaultError> {
        let file = File::open(path).map_err(|e| VaultError::io(path, e))?;
        let mut buf = Zeroizing::new(Vec::with_capacity(KEY_FILE_LEN));
        file.take(READ_CAP)
            .read_to_end(&mut buf)
            .map_err(|e| VaultError::io(path, e))?;
        KeyFile::decode(&buf)
    }

    /// Writes the key file to `path`, which must not exist yet: created with mode 0600
    /// (`create_new`, so an existing key file, which may be the only copy of another
    /// vault's key, is never overwritten), written, fsync'd, and its directory fsync'd so
    /// the name survives a crash. A partly written file is removed.
    ///
    /// Fails with `Io` (with the path); an existing file gives kind `AlreadyExists`.
    pub fn write_new(&self, path: &Path) -> Result<(), VaultError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| VaultError::io(path, e))?;
        let written = file
            .write_all(&self.encode())
            .and_then(|()| file.sync_all())
            .and_then(|()| sync_parent(path));
        if let Err(e) = written {
            drop(file);
            // Best effort: the file is ours (create_new) and useless when incomplete.
            let _ = std::fs::remove_file(path);
            return Err(VaultError::io(path, e));
        }
        Ok(())
    }
}

/// Fsyncs the directory holding `path`, so a newly created name is durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
