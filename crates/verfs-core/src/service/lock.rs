//! One daemon per data dir: an exclusive `flock` on `data_dir/verfsnext.lock`, held for
//! the daemon's lifetime and released by the kernel even on `kill -9`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::datadir::DataDirPerms;

/// Why the data dir cannot be used.
#[derive(Debug, Error)]
pub enum LockError {
    /// The data dir cannot be created or is not a writable directory.
    #[error("data dir {path}: {message}")]
    Unusable {
        /// The data dir.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another daemon holds the lock.
    #[error("data dir {path} is in use by another verfsnext daemon{holder}")]
    InUse {
        /// The data dir.
        path: PathBuf,
        /// " (pid N)" when known.
        holder: String,
    },
}

/// The held lock; dropping it releases the data dir.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

fn unusable(path: &Path, message: String) -> LockError {
    LockError::Unusable {
        path: path.to_path_buf(),
        message,
    }
}

impl DataDirLock {
    /// Creates the data dir if needed (with `perms`' directory mode, the lock file with
    /// its file mode), checks it is a writable directory and takes the lock.
    ///
    /// Fails with `Unusable` (naming the path) if it cannot be created, is not a
    /// directory or is read-only, and with `InUse` if another daemon holds it.
    pub fn acquire(dir: &Path, perms: DataDirPerms) -> Result<DataDirLock, LockError> {
        if dir.exists() && !dir.is_dir() {
            return Err(unusable(dir, "not a directory".into()));
        }
        perms
            .create_dir_all(dir)
            .map_err(|e| unusable(dir, format!("cannot create: {e}")))?;
        let path = dir.join("verfsnext.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(perms.file_mode())
            .open(&path)
            .map_err(|e| unusable(dir, format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::InUse {
                    path: dir.to_path_buf(),
                    holder: holder_of(&path),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(unusable(
                    dir,
                    format!("cannot lock {}: {e}", path.display()),
                ))
            }
        }
        file.set_len(0)
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.sync_all())
            .map_err(|e| unusable(dir, format!("not writable: {e}")))?;
        Ok(DataDirLock { _file: file })
    }
}

impl DataDirLock {
    /// For offline tools (`verfsnext fsck`): takes a *shared* lock on an existing lock
    /// file, opened read-only, so a daemon cannot start while the tool runs and the tool
    /// refuses to run while a daemon holds the data dir; nothing is created or written.
    /// Returns `Ok(None)` when there is no lock file (no daemon ever ran here, so none
    /// holds it).
    ///
    /// Fails with `InUse` while a daemon holds the lock, `Unusable` if the lock file
    /// cannot be opened or locked.
    pub fn acquire_shared_existing(dir: &Path) -> Result<Option<DataDirLock>, LockError> {
        let path = dir.join("verfsnext.lock");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(unusable(
                    dir,
                    format!("cannot open {}: {e}", path.display()),
                ))
            }
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(DataDirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Err(LockError::InUse {
                path: dir.to_path_buf(),
                holder: holder_of(&path),
            }),
            Err(TryLockError::Error(e)) => Err(unusable(
                dir,
                format!("cannot lock {}: {e}", path.display()),
            )),
        }
    }
}

/// " (pid N)" from the lock file, when it names one.
fn holder_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|pid| format!(" (pid {pid})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_first_drops() {
        let d = tempfile::tempdir().unwrap();
        let a = DataDirLock::acquire(d.path(), DataDirPerms::OWNER_ONLY).unwrap();
        let e = DataDirLock::acquire(d.path(), DataDirPerms::OWNER_ONLY).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        assert!(
            e.to_string().contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(a);
        DataDirLock::acquire(d.path(), DataDirPerms::OWNER_ONLY).unwrap();
    }

    #[test]
    fn data_dir_and_lock_file_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("new/data");
        let _lock = DataDirLock::acquire(&d, DataDirPerms::OWNER_ONLY).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("verfsnext.lock")), 0o600);
    }

    #[test]
    fn shared_probe_is_refused_while_a_daemon_holds_the_lock() {
        let d = tempfile::tempdir().unwrap();
        assert!(DataDirLock::acquire_shared_existing(d.path())
            .unwrap()
            .is_none());
        assert!(
            !d.path().join("verfsnext.lock").exists(),
            "probe created nothing"
        );
        let a = DataDirLock::acquire(d.path(), DataDirPerms::OWNER_ONLY).unwrap();
        let e = DataDirLock::acquire_shared_existing(d.path()).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(a);
        let probe = DataDirLock::acquire_shared_existing(d.path()).unwrap();
        assert!(probe.is_some());
        // A daemon cannot start while the offline tool holds it.
        assert!(DataDirLock::acquire(d.path(), DataDirPerms::OWNER_ONLY).is_err());
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = DataDirLock::acquire(&f, DataDirPerms::OWNER_ONLY).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
