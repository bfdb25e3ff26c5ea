//! The one errno-shaped error of the filesystem layer.
//!
//! Storage layers (`meta`, `data`) return their own errors with context; they become an
//! `FsError` through one `From` impl each, and the FUSE edge turns an `FsError` into an
//! errno with [`FsError::errno`]. `Io` and `Corrupt` carry a message and are logged once
//! at the edge; the POSIX outcomes (NotFound, Exists, ...) are ordinary answers.

use thiserror::Error;

/// Every way a filesystem operation can fail, each with exactly one errno.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FsError {
    /// ENOENT: the name or inode does not exist.
    #[error("no such file or directory")]
    NotFound,
    /// EEXIST: the name is taken.
    #[error("file exists")]
    Exists,
    /// ENOTDIR: a directory was required.
    #[error("not a directory")]
    NotDir,
    /// EISDIR: a non-directory was required.
    #[error("is a directory")]
    IsDir,
    /// ENOTEMPTY: the directory still has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// EACCES: permission bits deny the access.
    #[error("permission denied")]
    Access,
    /// EPERM: the operation is not permitted to this caller or on this object.
    #[error("operation not permitted")]
    Perm,
    /// EINVAL: an argument is invalid.
    #[error("invalid argument")]
    Inval,
    /// ENAMETOOLONG: a name is longer than 255 bytes.
    #[error("file name too long")]
    NameTooLong,
    /// ENOSPC: the disk holding the data dir is full.
    #[error("no space left on device")]
    NoSpace,
    /// EROFS: the object is read-only (snapshots).
    #[error("read-only file system")]
    ReadOnly,
    /// ESTALE: the inode belongs to a snapshot that was deleted.
    #[error("stale file handle")]
    Stale,
    /// EXDEV: the rename crosses a boundary it may not cross.
    #[error("cross-device link")]
    CrossDevice,
    /// EBADF: the handle is unknown or not open for this access.
    #[error("bad file descriptor")]
    BadHandle,
    /// EFBIG: the offset or size is beyond what a file may hold.
    #[error("file too large")]
    TooBig,
    /// EMLINK: too many links.
    #[error("too many links")]
    TooManyLinks,
    /// ENOTSUP: the operation or flag is not supported.
    #[error("operation not supported")]
    NotSupported,
    /// ENODATA: the extended attribute does not exist.
    #[error("no data available")]
    NoData,
    /// ERANGE: the caller's buffer is too small.
    #[error("result out of range")]
    Range,
    /// ENXIO: no data (or hole) at or after the offset (`lseek` SEEK_DATA/SEEK_HOLE).
    #[error("no such device or address")]
    NoSuchOffset,
    /// ESHUTDOWN-like: the filesystem is stopping and takes no new work (EIO to callers).
    #[error("filesystem is shutting down")]
    ShuttingDown,
    /// EIO: an I/O error of the data dir, with context.
    #[error("I/O error: {0}")]
    Io(String),
    /// EIO: stored data failed a check (CRC, magic, length), with context.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl FsError {
    /// The errno a Linux filesystem returns for this outcome.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Access => libc::EACCES,
            FsError::Perm => libc::EPERM,
            FsError::Inval => libc::EINVAL,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NoSpace => libc::ENOSPC,
            FsError::ReadOnly => libc::EROFS,
            FsError::Stale => libc::ESTALE,
            FsError::CrossDevice => libc::EXDEV,
            FsError::BadHandle => libc::EBADF,
            FsError::TooBig => libc::EFBIG,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::NoData => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::NoSuchOffset => libc::ENXIO,
            FsError::ShuttingDown | FsError::Io(_) | FsError::Corrupt(_) => libc::EIO,
        }
    }

    /// Whether this outcome is a fault worth an error log line (as opposed to an answer).
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            FsError::Io(_) | FsError::Corrupt(_) | FsError::NoSpace
        )
    }

    /// Maps an `std::io::Error` from the data dir, keeping ENOSPC distinct.
    pub fn from_io(context: &str, e: &std::io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => FsError::NoSpace,
            _ => FsError::Io(format!("{context}: {e}")),
        }
    }
}

/// Shorthand for results of filesystem operations.
impl From<crate::data::intent::IntentError> for FsError {
    fn from(e: crate::data::intent::IntentError) -> FsError {
        match e {
            crate::data::intent::IntentError::Io { cause } => {
                FsError::from_io("intent log", &cause)
            }
            other => FsError::Io(other.to_string()),
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_linux_errno() {
        let cases = [
            (FsError::NotFound, libc::ENOENT),
            (FsError::Exists, libc::EEXIST),
            (FsError::NotDir, libc::ENOTDIR),
            (FsError::IsDir, libc::EISDIR),
            (FsError::NotEmpty, libc::ENOTEMPTY),
            (FsError::Access, libc::EACCES),
            (FsError::Perm, libc::EPERM),
            (FsError::Inval, libc::EINVAL),
            (FsError::NameTooLong, libc::ENAMETOOLONG),
            (FsError::NoSpace, libc::ENOSPC),
            (FsError::ReadOnly, libc::EROFS),
            (FsError::Stale, libc::ESTALE),
            (FsError::CrossDevice, libc::EXDEV),
            (FsError::BadHandle, libc::EBADF),
            (FsError::TooBig, libc::EFBIG),
            (FsError::TooManyLinks, libc::EMLINK),
            (FsError::NotSupported, libc::EOPNOTSUPP),
            (FsError::NoData, libc::ENODATA),
            (FsError::Range, libc::ERANGE),
            (FsError::NoSuchOffset, libc::ENXIO),
            (FsError::ShuttingDown, libc::EIO),
            (FsError::Io("x".into()), libc::EIO),
            (FsError::Corrupt("x".into()), libc::EIO),
        ];
        for (e, errno) in cases {
            assert_eq!(e.errno(), errno, "{e:?}");
        }
    }

    #[test]
    fn enospc_from_io_stays_nospace() {
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(FsError::from_io("write", &e), FsError::NoSpace);
        let e = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(FsError::from_io("write", &e), FsError::Io(_)));
    }
}
