//! `/.vault`: the encrypted root folder as the filesystem sees it (DESIGN.md §8).
//!
//! The keys live in `vault/`; the data plane seals and opens chunks through the cipher
//! the pack store holds while the vault is unlocked (`data::cipher`). This module keeps
//! the namespace rules and the life cycle:
//!
//! - `/.vault` exists only after `crypt -c`; the name is reserved in the root (creating
//!   it is EPERM, or EEXIST while it is visible), and removing or renaming it is EPERM.
//! - Locked, it is absent from the root's lookup and listing in every tree (live and
//!   snapshots), and every inode inside answers EIO.
//! - Every inode inside carries `INODE_FLAG_VAULT`, set at creation from its parent;
//!   renames and links across the boundary are EXDEV, so a file never changes domain.
//! - Lock drains every queued write and held tail (they commit sealed), drops the
//!   cipher on the batcher thread so nothing later commits with it, bumps the epoch
//!   that open handles were stamped with (they then fail with EIO) and asks the kernel
//!   to forget its dentries and page cache of the vault. A restart starts locked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use thiserror::Error;

use crate::data::ChunkCipher;
use crate::error::{FsError, FsResult};
use crate::fs::node::Tree;
use crate::fs::Fs;
use crate::meta::{Dirent, Inode, MetaError, Reader, INODE_FLAG_VAULT};
use crate::types::{FileKind, Ino};
use crate::vault::{self, KdfParams, KeyFile, UnlockedVault, VaultError};

/// The vault's name in the root.
pub const VAULT_NAME: &[u8] = b".vault";
/// The system key of the stored wrap record.
const WRAP_KEY: &str = "vault.wrap";

/// What the kernel must be told when the vault locks or unlocks; implemented by the
/// FUSE adapter (fuser's notifier), absent in core tests.
pub trait KernelNotify: Send + Sync {
    /// Forget the cached entry `name` of directory `parent` (and what hangs below it).
    fn inval_entry(&self, parent: Ino, name: &[u8]);
    /// Forget the cached attributes and page cache of `ino`.
    fn inval_inode(&self, ino: Ino);
}

/// Whether a vault exists and is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultState {
    /// `crypt -c` was never run on this filesystem.
    None,
    /// The vault exists and its contents are hidden.
    Locked,
    /// The vault is visible and readable.
    Unlocked,
}

impl VaultState {
    /// The word the CLI prints.
    pub fn as_str(self) -> &'static str {
        match self {
            VaultState::None => "none",
            VaultState::Locked => "locked",
            VaultState::Unlocked => "unlocked",
        }
    }
}

/// Why a vault command was refused; each maps to one documented CLI exit status.
#[derive(Debug, Error)]
pub enum VaultCmdError {
    /// The vault is not in a state the command applies to (exists already, not
    /// created, already locked or unlocked).
    #[error("{0}")]
    State(String),
    /// Wrong password or wrong key file (one answer for both).
    #[error("wrong password or wrong key file")]
    WrongKey,
    /// The key file is malformed or of an unknown version.
    #[error("{0}")]
    KeyFile(String),
    /// Anything else (metadata, damaged wrap record).
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl From<MetaError> for VaultCmdError {
    fn from(e: MetaError) -> VaultCmdError {
        VaultCmdError::Fs(e.into())
    }
}

impl From<VaultError> for VaultCmdError {
    fn from(e: VaultError) -> VaultCmdError {
        match e {
            VaultError::WrongKey => VaultCmdError::WrongKey,
            VaultError::KeyFileMalformed(_) | VaultError::KeyFileVersion(_) => {
                VaultCmdError::KeyFile(e.to_string())
            }
            other => VaultCmdError::Fs(FsError::Corrupt(other.to_string())),
        }
    }
}

/// The vault's runtime state in a mounted filesystem.
pub(crate) struct VaultGate {
    /// Bumped at every lock and unlock; a handle opened inside the vault keeps the
    /// value of its open and fails once it changed.
    epoch: AtomicU64,
    /// Serializes create, unlock, lock and password changes.
    cmd: Mutex<()>,
    kdf: KdfParams,
    notify: RwLock<Option<Arc<dyn KernelNotify>>>,
}

impl VaultGate {
    /// A locked gate creating vaults with `kdf`.
    pub fn new(kdf: KdfParams) -> VaultGate {
        VaultGate {
            epoch: AtomicU64::new(0),
            cmd: Mutex::new(()),
            kdf,
            notify: RwLock::new(None),
        }
    }
}

/// The data plane's view of an unlocked vault.
struct VaultCipher(UnlockedVault);

impl ChunkCipher for VaultCipher {
    fn chunk_id(&self, plain: &[u8]) -> crate::types::ChunkHash {
        self.0.chunk_id(plain)
    }

    fn seal(
        &self,
        id: &crate::types::ChunkHash,
        codec: crate::data::Codec,
        plain_len: u32,
        payload: &[u8],
    ) -> Result<([u8; crate::data::pack::NONCE_LEN], Vec<u8>), String> {
        self.0
            .seal_chunk(*id, codec.to_byte(), plain_len, payload)
            .map_err(|e| e.to_string())
    }

    fn open_in_place(
        &self,
        id: &crate::types::ChunkHash,
        codec: crate::data::Codec,
        plain_len: u32,
        nonce: &[u8; crate::data::pack::NONCE_LEN],
        buf: &mut [u8],
    ) -> Option<usize> {
        self.0
            .open_chunk_in_place(*id, codec.to_byte(), plain_len, nonce, buf)
            .ok()
    }

    fn open(
        &self,
        id: &crate::types::ChunkHash,
        codec: crate::data::Codec,
        plain_len: u32,
        nonce: &[u8; crate::data::pack::NONCE_LEN],
        ciphertext: &[u8],
    ) -> Option<Vec<u8>> {
        self.0
            .open_chunk(*id, codec.to_byte(), plain_len, nonce, ciphertext)
            .ok()
    }
}

impl Fs {
    /// Lets the kernel be told to drop cached vault dentries and pages at lock/unlock.
    pub fn set_kernel_notify(&self, n: Arc<dyn KernelNotify>) {
        *self.vault.notify.write().unwrap_or_else(|p| p.into_inner()) = Some(n);
    }

    /// Whether the vault's keys are loaded.
    pub(crate) fn vault_unlocked(&self) -> bool {
        self.engine.packs.cipher().is_some()
    }

    /// The epoch a handle opened on `inode` is stamped with: `None` outside the vault.
    ///
    /// Fails with `Io` (EIO) for a vault inode while the vault is locked.
    pub(crate) fn vault_stamp(&self, inode: &Inode) -> FsResult<Option<u64>> {
        if inode.flags & INODE_FLAG_VAULT == 0 {
            return Ok(None);
        }
        self.vault_open(inode)?;
        Ok(Some(self.vault.epoch.load(Ordering::SeqCst)))
    }

    /// Checks a handle's stamp: a handle opened inside the vault works only in the
    /// unlock it was opened in.
    ///
    /// Fails with `Io` once the vault was locked since.
    pub(crate) fn vault_check_stamp(&self, stamp: Option<u64>) -> FsResult<()> {
        match stamp {
            Some(e) if e != self.vault.epoch.load(Ordering::SeqCst) || !self.vault_unlocked() => {
                Err(FsError::Io("the vault was locked".into()))
            }
            _ => Ok(()),
        }
    }

    /// Refuses access to anything inside the vault while it is locked.
    ///
    /// Fails with `Io` (EIO) for a vault inode while locked.
    pub(crate) fn vault_open(&self, inode: &Inode) -> FsResult<()> {
        if inode.flags & INODE_FLAG_VAULT != 0 && !self.vault_unlocked() {
            return Err(FsError::Io(format!("{}: the vault is locked", inode.ino)));
        }
        Ok(())
    }

    /// Whether `name` in `dir` of `tree` is the vault while it is hidden.
    pub(crate) fn vault_hidden(&self, _tree: Tree, dir: Ino, name: &[u8]) -> bool {
        dir == Ino::ROOT && name == VAULT_NAME && !self.vault_unlocked()
    }

    /// The vault's state.
    ///
    /// Fails if metadata cannot be read.
    pub fn vault_state(&self) -> FsResult<VaultState> {
        if self.vault_unlocked() {
            return Ok(VaultState::Unlocked);
        }
        Ok(match self.engine.meta.read_system(WRAP_KEY)? {
            Some(_) => VaultState::Locked,
            None => VaultState::None,
        })
    }

    fn vault_cmd(&self) -> std::sync::MutexGuard<'_, ()> {
        self.vault.cmd.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the vault: wraps a new folder key under `password` and `key_file`,
    /// creates `/.vault` (mode 0700, root's) and leaves it unlocked.
    ///
    /// Fails with `State` if a vault exists (or `/.vault` is taken), `KeyFile` if the
    /// key file does not decode, or the store's error.
    pub fn vault_create(&self, password: &[u8], key_file: &[u8]) -> Result<(), VaultCmdError> {
        let _cmd = self.vault_cmd();
        if self.engine.meta.read_system(WRAP_KEY)?.is_some() {
            return Err(VaultCmdError::State("a vault exists already".into()));
        }
        let key_file = KeyFile::decode(key_file)?;
        let (wrap, unlocked) = vault::create(password, &key_file, self.vault.kdf)?;
        let ino = self.alloc_ino()?;
        self.engine.meta.write(|txn| {
            if txn.dirent(Ino::ROOT, VAULT_NAME)?.is_some() {
                return Err(VaultCmdError::State(
                    "the root already holds an entry named .vault".into(),
                ));
            }
            let mut root = txn.inode(Ino::ROOT)?.ok_or(FsError::NotFound)?;
            let dir = vault_dir_inode(ino);
            txn.put_inode(&dir)?;
            txn.put_dirent(
                Ino::ROOT,
                VAULT_NAME,
                &Dirent {
                    ino,
                    kind: FileKind::Dir,
                },
            )?;
            root.nlink += 1;
            root.mtime = dir.mtime;
            root.ctime = dir.mtime;
            txn.put_inode(&root)?;
            txn.set_system(WRAP_KEY, &wrap)?;
            Ok(())
        })?;
        self.engine.sync_durable()?;
        self.load_keys(unlocked);
        tracing::info!("vault created");
        Ok(())
    }

    /// Unlocks the vault with `password` and `key_file`.
    ///
    /// Fails with `State` if there is no vault or it is unlocked, `WrongKey`, `KeyFile`,
    /// or the store's error; a failure changes nothing.
    pub fn vault_unlock(&self, password: &[u8], key_file: &[u8]) -> Result<(), VaultCmdError> {
        let _cmd = self.vault_cmd();
        let wrap = self.stored_wrap()?;
        if self.vault_unlocked() {
            return Err(VaultCmdError::State("the vault is unlocked already".into()));
        }
        let key_file = KeyFile::decode(key_file)?;
        let unlocked = vault::unlock(&wrap, password, &key_file)?;
        self.load_keys(unlocked);
        tracing::info!("vault unlocked");
        Ok(())
    }

    /// Locks the vault: every write queued so far commits (sealed), then the keys are
    /// dropped on the batcher thread, open handles inside start failing with EIO, and
    /// the kernel forgets its cached vault entries and pages.
    ///
    /// Fails with `State` if there is no vault or it is locked already, or `Fs` if the
    /// batcher stopped.
    pub fn vault_lock(&self) -> Result<(), VaultCmdError> {
        let _cmd = self.vault_cmd();
        self.stored_wrap()?;
        if !self.vault_unlocked() {
            return Err(VaultCmdError::State("the vault is locked already".into()));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let engine = self.engine.clone();
        self.batcher.freeze(Box::new(move || {
            engine.packs.set_cipher(None);
            let _ = tx.send(());
        }))?;
        rx.recv().map_err(|_| FsError::ShuttingDown)?;
        self.vault.epoch.fetch_add(1, Ordering::SeqCst);
        self.forget_vault_in_kernel();
        tracing::info!("vault locked");
        Ok(())
    }

    /// Re-wraps the folder key under `new_password`; data is untouched and the lock
    /// state does not change.
    ///
    /// Fails with `State` if there is no vault, `WrongKey` for a wrong old password or
    /// key file, `KeyFile`, or the store's error; a failure changes nothing.
    pub fn vault_change_password(
        &self,
        old_password: &[u8],
        new_password: &[u8],
        key_file: &[u8],
    ) -> Result<(), VaultCmdError> {
        let _cmd = self.vault_cmd();
        let wrap = self.stored_wrap()?;
        let key_file = KeyFile::decode(key_file)?;
        let rewrapped =
            vault::change_password(&wrap, old_password, new_password, &key_file, self.vault.kdf)?;
        self.engine
            .meta
            .write(|txn| txn.set_system(WRAP_KEY, &rewrapped))?;
        self.engine.sync_durable()?;
        tracing::info!("vault password changed");
        Ok(())
    }

    fn stored_wrap(&self) -> Result<Vec<u8>, VaultCmdError> {
        self.engine
            .meta
            .read_system(WRAP_KEY)?
            .ok_or_else(|| VaultCmdError::State("no vault exists; create one with crypt -c".into()))
    }

    fn load_keys(&self, unlocked: UnlockedVault) {
        self.engine
            .packs
            .set_cipher(Some(Arc::new(VaultCipher(unlocked))));
        self.vault.epoch.fetch_add(1, Ordering::SeqCst);
        // A lookup while locked may have left a negative entry for `/.vault`.
        if let Some(n) = self.notifier() {
            n.inval_entry(Ino::ROOT, VAULT_NAME);
        }
    }

    fn notifier(&self) -> Option<Arc<dyn KernelNotify>> {
        self.vault
            .notify
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Tells the kernel to drop `/.vault`'s dentry tree, in the live root and in every
    /// snapshot's root, and the pages of every vault inode that has an open handle
    /// (those inodes stay cached while open).
    fn forget_vault_in_kernel(&self) {
        let Some(n) = self.notifier() else { return };
        n.inval_entry(Ino::ROOT, VAULT_NAME);
        for (_, root) in self.snapshot_entries() {
            n.inval_entry(root, VAULT_NAME);
        }
        for ino in self.handles.vault_inodes() {
            n.inval_inode(ino);
        }
    }
}

/// The inode of a new `/.vault`: a root-owned 0700 directory in the vault.
fn vault_dir_inode(ino: Ino) -> Inode {
    Inode::new_dir(ino, Ino::ROOT, 0o700, (0, 0), INODE_FLAG_VAULT)
}
