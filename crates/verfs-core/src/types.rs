//! Typed identifiers shared by every layer.
//!
//! Raw `u64`s travel between the FUSE edge, the metadata store and the pack store; wrapping
//! them keeps an inode number from ever being passed where a pack id is expected.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An inode number. `Ino::ROOT` is 1, as the kernel expects for the mount root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(pub u64);

impl Ino {
    /// The root directory; the kernel addresses it as node id 1.
    pub const ROOT: Ino = Ino(1);
}

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ino {}", self.0)
    }
}

/// A pack file id; the file is `packs/<id as 16 hex digits>.vpk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackId(pub u64);

impl fmt::Display for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pack {:016x}", self.0)
    }
}

/// A chunk's identity: keyed XXH3-128 of its plain bytes, stored big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkHash(pub [u8; 16]);

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A metadata generation. The live view writes at the current generation; a snapshot
/// freezes one. Versions born after a view's generation are invisible to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

/// A handle the FUSE layer hands back on every call on an open file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileHandle(pub u64);

/// The kind of an inode, stored as one byte in the inode record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file with extents.
    File,
    /// A directory with dirents.
    Dir,
    /// A symbolic link with an `L` target record.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A unix socket node.
    Socket,
    /// A character device node (rdev).
    CharDev,
    /// A block device node (rdev).
    BlockDev,
}

impl FileKind {
    /// The on-disk byte; never renumber, records depend on it.
    pub fn to_byte(self) -> u8 {
        match self {
            FileKind::File => 1,
            FileKind::Dir => 2,
            FileKind::Symlink => 3,
            FileKind::Fifo => 4,
            FileKind::Socket => 5,
            FileKind::CharDev => 6,
            FileKind::BlockDev => 7,
        }
    }

    /// Decodes the on-disk byte; `None` means the record is corrupt.
    pub fn from_byte(b: u8) -> Option<FileKind> {
        Some(match b {
            1 => FileKind::File,
            2 => FileKind::Dir,
            3 => FileKind::Symlink,
            4 => FileKind::Fifo,
            5 => FileKind::Socket,
            6 => FileKind::CharDev,
            7 => FileKind::BlockDev,
            _ => return None,
        })
    }

    /// The kind encoded in the `S_IFMT` bits of a mode, as mknod passes it.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            _ => return None,
        })
    }
}

/// A point in time as seconds and nanoseconds since the epoch, the way inodes store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Seconds since the epoch; negative before 1970.
    pub secs: i64,
    /// Nanoseconds within the second, below 1e9.
    pub nanos: u32,
}

impl Timestamp {
    /// The wall clock now.
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    /// Converts from `SystemTime`, keeping times before the epoch.
    pub fn from_system(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Timestamp { secs, nanos }
            }
        }
    }

    /// Converts to `SystemTime` for the FUSE reply.
    pub fn to_system(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::new(self.secs as u64, self.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs())
                + Duration::from_nanos(u64::from(self.nanos))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_before_and_after_epoch() {
        for (s, n) in [
            (0i64, 0u32),
            (1_700_000_000, 123),
            (-1, 500_000_000),
            (-5, 0),
        ] {
            let t = Timestamp { secs: s, nanos: n };
            assert_eq!(Timestamp::from_system(t.to_system()), t);
        }
    }

    #[test]
    fn file_kind_bytes_round_trip() {
        for b in 1..=7u8 {
            let k = FileKind::from_byte(b).unwrap();
            assert_eq!(k.to_byte(), b);
        }
        assert!(FileKind::from_byte(0).is_none());
        assert!(FileKind::from_byte(8).is_none());
    }
}
