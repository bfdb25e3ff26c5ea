//! Conversions between core types and fuser's.

use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};
use verfs_core::fs::Attr;
use verfs_core::fs::TimeSet;
use verfs_core::types::{FileKind, Timestamp};
use verfs_core::FsError;

/// The FUSE attributes of an inode.
pub fn to_attr(i: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(i.ino.0),
        size: i.size,
        blocks: i.blocks.div_ceil(512),
        atime: i.atime.to_system(),
        mtime: i.mtime.to_system(),
        ctime: i.ctime.to_system(),
        crtime: i.crtime.to_system(),
        kind: to_kind(i.kind),
        perm: i.perm,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        rdev: i.rdev,
        blksize: 4096,
        flags: 0,
    }
}

/// The FUSE file type of a kind.
pub fn to_kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

/// A setattr time.
pub fn to_time(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(s) => TimeSet::At(Timestamp::from_system(s)),
    }
}

/// A time from the kernel.
pub fn to_timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from_system(t)
}

/// The errno of an error; faults are logged here, once, with the operation.
pub fn errno(op: &str, e: &FsError) -> Errno {
    if e.is_fault() {
        tracing::error!(op, error = %e, "request failed");
    } else {
        tracing::debug!(op, error = %e, "request refused");
    }
    Errno::from_i32(e.errno())
}
