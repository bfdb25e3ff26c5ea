//! Record codecs: fixed-layout little-endian values read in place with `zerocopy`.
//!
//! Every decoder checks the exact length and the version byte and returns
//! [`MetaError::Corrupt`] instead of panicking. Byte tables are in `docs/format.md`.

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::MetaError;
use crate::types::{ChunkHash, FileKind, Generation, Ino, PackId, Timestamp};

/// Version byte of the inode record layout.
const INODE_VERSION: u8 = 1;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct InodeRaw {
    version: u8,
    kind: u8,
    perm: U16,
    uid: U32,
    gid: U32,
    nlink: U32,
    size: U64,
    atime_s: I64,
    atime_ns: U32,
    mtime_s: I64,
    mtime_ns: U32,
    ctime_s: I64,
    ctime_ns: U32,
    crtime_s: I64,
    crtime_ns: U32,
    rdev: U32,
    flags: U32,
    generation: U64,
    data_version: U64,
    parent: U64,
    blocks: U64,
}

/// Inode flag: the inode lives inside `/.vault` (set at creation from its parent, never
/// changed: renames and links across the vault's boundary are refused), so its chunks
/// are encrypted.
pub const INODE_FLAG_VAULT: u32 = 1;

/// An inode as the filesystem layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// The inode number (from the key, not stored in the value).
    pub ino: Ino,
    /// File type.
    pub kind: FileKind,
    /// Permission bits including suid, sgid and sticky (mode & 0o7777).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Logical size in bytes.
    pub size: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// Creation.
    pub crtime: Timestamp,
    /// Device number of device nodes.
    pub rdev: u32,
    /// `INODE_FLAG_*` bits.
    pub flags: u32,
    /// Inode generation, so a reused inode number is distinguishable.
    pub generation: u64,
    /// Bumped on every data change; caches of extents compare it.
    pub data_version: u64,
    /// For a directory, the directory holding it (root: itself), so rename can refuse to
    /// move a directory into its own subtree and readdir can report `..`. For other kinds,
    /// the directory it was created in (informational).
    pub parent: Ino,
    /// Bytes of the file held in stored chunks (holes and held-back data excluded), so
    /// `st_blocks` and `du` report what the file occupies.
    pub blocks: u64,
}

impl Inode {
    /// A new empty directory `ino` in `parent`, created `now`: what the root at first
    /// mount and `/.vault` at `crypt -c` start as.
    pub fn new_dir(ino: Ino, parent: Ino, perm: u16, (uid, gid): (u32, u32), flags: u32) -> Inode {
        let now = Timestamp::now();
        Inode {
            ino,
            kind: FileKind::Dir,
            perm,
            uid,
            gid,
            nlink: 2,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            rdev: 0,
            flags,
            generation: 0,
            data_version: 0,
            parent,
            blocks: 0,
        }
    }
}

impl Inode {
    /// Encodes the record value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let raw = InodeRaw {
            version: INODE_VERSION,
            kind: self.kind.to_byte(),
            perm: U16::new(self.perm),
            uid: U32::new(self.uid),
            gid: U32::new(self.gid),
            nlink: U32::new(self.nlink),
            size: U64::new(self.size),
            atime_s: I64::new(self.atime.secs),
            atime_ns: U32::new(self.atime.nanos),
            mtime_s: I64::new(self.mtime.secs),
            mtime_ns: U32::new(self.mtime.nanos),
            ctime_s: I64::new(self.ctime.secs),
            ctime_ns: U32::new(self.ctime.nanos),
            crtime_s: I64::new(self.crtime.secs),
            crtime_ns: U32::new(self.crtime.nanos),
            rdev: U32::new(self.rdev),
            flags: U32::new(self.flags),
            generation: U64::new(self.generation),
            data_version: U64::new(self.data_version),
            parent: U64::new(self.parent.0),
            blocks: U64::new(self.blocks),
        };
        raw.as_bytes().to_vec()
    }

    /// Decodes a record value of inode `ino`.
    ///
    /// Fails with `Corrupt` on a wrong length, version or kind byte.
    pub(crate) fn decode(ino: Ino, bytes: &[u8]) -> Result<Inode, MetaError> {
        let raw = InodeRaw::read_from_bytes(bytes).map_err(|_| {
            MetaError::corrupt(format!("inode {} record length {}", ino.0, bytes.len()))
        })?;
        if raw.version != INODE_VERSION {
            return Err(MetaError::corrupt(format!(
                "inode {} record version {}",
                ino.0, raw.version
            )));
        }
        let kind = FileKind::from_byte(raw.kind)
            .ok_or_else(|| MetaError::corrupt(format!("inode {} kind byte {}", ino.0, raw.kind)))?;
        let ts = |s: I64, n: U32| Timestamp {
            secs: s.get(),
            nanos: n.get().min(999_999_999),
        };
        Ok(Inode {
            ino,
            kind,
            perm: raw.perm.get(),
            uid: raw.uid.get(),
            gid: raw.gid.get(),
            nlink: raw.nlink.get(),
            size: raw.size.get(),
            atime: ts(raw.atime_s, raw.atime_ns),
            mtime: ts(raw.mtime_s, raw.mtime_ns),
            ctime: ts(raw.ctime_s, raw.ctime_ns),
            crtime: ts(raw.crtime_s, raw.crtime_ns),
            rdev: raw.rdev.get(),
            flags: raw.flags.get(),
            generation: raw.generation.get(),
            data_version: raw.data_version.get(),
            parent: Ino(raw.parent.get()),
            blocks: raw.blocks.get(),
        })
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct DirentRaw {
    ino: U64,
    kind: u8,
}

/// A directory entry's value: the child and its type (for readdir without an inode read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent {
    /// The child inode.
    pub ino: Ino,
    /// The child's kind.
    pub kind: FileKind,
}

impl Dirent {
    /// Encodes the record value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        DirentRaw {
            ino: U64::new(self.ino.0),
            kind: self.kind.to_byte(),
        }
        .as_bytes()
        .to_vec()
    }

    /// Decodes a record value; fails with `Corrupt` on a wrong length or kind.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Dirent, MetaError> {
        let raw = DirentRaw::read_from_bytes(bytes)
            .map_err(|_| MetaError::corrupt(format!("dirent record length {}", bytes.len())))?;
        let kind = FileKind::from_byte(raw.kind)
            .ok_or_else(|| MetaError::corrupt(format!("dirent kind byte {}", raw.kind)))?;
        Ok(Dirent {
            ino: Ino(raw.ino.get()),
            kind,
        })
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ExtentRaw {
    hash: [u8; 16],
    len: U32,
}

/// One extent: the whole chunk `hash`, `len` bytes long, at the offset in its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// File offset where the extent starts.
    pub offset: u64,
    /// The chunk holding the bytes.
    pub hash: ChunkHash,
    /// Length in bytes (the chunk's plain length).
    pub len: u32,
}

impl Extent {
    /// One past the last byte the extent covers.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }

    /// Encodes the record value (offset lives in the key).
    pub(crate) fn encode(&self) -> Vec<u8> {
        ExtentRaw {
            hash: self.hash.0,
            len: U32::new(self.len),
        }
        .as_bytes()
        .to_vec()
    }

    /// Decodes a record value; fails with `Corrupt` on a wrong length or zero length.
    pub(crate) fn decode(offset: u64, bytes: &[u8]) -> Result<Extent, MetaError> {
        let raw = ExtentRaw::read_from_bytes(bytes)
            .map_err(|_| MetaError::corrupt(format!("extent record length {}", bytes.len())))?;
        if raw.len.get() == 0 {
            return Err(MetaError::corrupt(format!(
                "empty extent at offset {offset}"
            )));
        }
        Ok(Extent {
            offset,
            hash: ChunkHash(raw.hash),
            len: raw.len.get(),
        })
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ChunkRaw {
    refcount: U64,
    pack_id: U64,
    stored_len: U32,
    plain_len: U32,
    codec: u8,
    flags: u8,
}

/// Flag: the chunk's pack record was found missing after an unclean shutdown; dedup must
/// not reuse it and a new write of the same bytes re-stores it.
pub const CHUNK_FLAG_LOST: u8 = 1;

/// Flag: the chunk is encrypted (a vault chunk, `data::cipher`); its plain bytes are
/// never kept in the chunk cache, so locking the vault leaves none behind.
pub const CHUNK_FLAG_ENCRYPTED: u8 = 2;

/// A chunk record: where a chunk lives (pack id only, never an offset) and who uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Extent versions referencing the chunk.
    pub refcount: u64,
    /// The pack holding the chunk's record.
    pub pack_id: PackId,
    /// Payload bytes in the pack.
    pub stored_len: u32,
    /// Plain (decompressed) length.
    pub plain_len: u32,
    /// Codec of the payload (see `data::compress::Codec`).
    pub codec: u8,
    /// `CHUNK_FLAG_*` bits.
    pub flags: u8,
}

impl ChunkRecord {
    /// Encodes the record value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        ChunkRaw {
            refcount: U64::new(self.refcount),
            pack_id: U64::new(self.pack_id.0),
            stored_len: U32::new(self.stored_len),
            plain_len: U32::new(self.plain_len),
            codec: self.codec,
            flags: self.flags,
        }
        .as_bytes()
        .to_vec()
    }

    /// Decodes a record value; fails with `Corrupt` on a wrong length.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ChunkRecord, MetaError> {
        let raw = ChunkRaw::read_from_bytes(bytes)
            .map_err(|_| MetaError::corrupt(format!("chunk record length {}", bytes.len())))?;
        Ok(ChunkRecord {
            refcount: raw.refcount.get(),
            pack_id: PackId(raw.pack_id.get()),
            stored_len: raw.stored_len.get(),
            plain_len: raw.plain_len.get(),
            codec: raw.codec,
            flags: raw.flags,
        })
    }
}

/// Version byte of the snapshot record layout.
const SNAPSHOT_VERSION: u8 = 1;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct SnapshotRaw {
    version: u8,
    pad: [u8; 3],
    slot: U32,
    generation: U64,
    created_s: I64,
    created_ns: U32,
}

/// A snapshot: the generation it froze, its view slot (part of the inode numbers it
/// shows, so they are stable across remounts and unlike any other view's) and when it
/// was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The frozen generation the snapshot reads.
    pub generation: Generation,
    /// The view slot (1 or more; 0 is the live tree).
    pub slot: u32,
    /// Creation time.
    pub created: Timestamp,
}

impl SnapshotRecord {
    /// Encodes the record value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        SnapshotRaw {
            version: SNAPSHOT_VERSION,
            pad: [0; 3],
            slot: U32::new(self.slot),
            generation: U64::new(self.generation.0),
            created_s: I64::new(self.created.secs),
            created_ns: U32::new(self.created.nanos),
        }
        .as_bytes()
        .to_vec()
    }

    /// Decodes a record value; fails with `Corrupt` on a wrong length or version.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SnapshotRecord, MetaError> {
        let raw = SnapshotRaw::read_from_bytes(bytes)
            .map_err(|_| MetaError::corrupt(format!("snapshot record length {}", bytes.len())))?;
        if raw.version != SNAPSHOT_VERSION || raw.created_ns.get() >= 1_000_000_000 {
            return Err(MetaError::corrupt(format!(
                "snapshot record version {} nanos {}",
                raw.version,
                raw.created_ns.get()
            )));
        }
        Ok(SnapshotRecord {
            generation: Generation(raw.generation.get()),
            slot: raw.slot.get(),
            created: Timestamp {
                secs: raw.created_s.get(),
                nanos: raw.created_ns.get(),
            },
        })
    }
}

/// Encodes a `u64` system value.
pub(crate) fn encode_u64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Decodes a `u64` system value; fails with `Corrupt` on a wrong length.
pub(crate) fn decode_u64(what: &str, bytes: &[u8]) -> Result<u64, MetaError> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| MetaError::corrupt(format!("{what}: length {}", bytes.len())))?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_inode() -> Inode {
        Inode {
            ino: Ino(42),
            kind: FileKind::File,
            perm: 0o4755,
            uid: 1000,
            gid: 100,
            nlink: 3,
            size: 1 << 40,
            atime: Timestamp { secs: -3, nanos: 7 },
            mtime: Timestamp {
                secs: 1_700_000_000,
                nanos: 999_999_999,
            },
            ctime: Timestamp { secs: 5, nanos: 0 },
            crtime: Timestamp { secs: 6, nanos: 1 },
            rdev: 0x0801,
            flags: 0,
            generation: 9,
            data_version: 11,
            parent: Ino(1),
            blocks: 4096,
        }
    }

    #[test]
    fn inode_round_trips() {
        let i = sample_inode();
        // docs/format.md gives these sizes.
        assert_eq!(i.encode().len(), 112);
        assert_eq!(Inode::decode(Ino(42), &i.encode()).unwrap(), i);
    }

    #[test]
    fn inode_rejects_bad_bytes() {
        let mut b = sample_inode().encode();
        assert!(Inode::decode(Ino(42), &b[..b.len() - 1]).is_err());
        b[0] = 99;
        assert!(Inode::decode(Ino(42), &b).is_err());
        let mut b = sample_inode().encode();
        b[1] = 0;
        assert!(Inode::decode(Ino(42), &b).is_err());
    }

    #[test]
    fn dirent_extent_chunk_round_trip() {
        let d = Dirent {
            ino: Ino(77),
            kind: FileKind::Symlink,
        };
        assert_eq!(Dirent::decode(&d.encode()).unwrap(), d);
        let e = Extent {
            offset: 65536,
            hash: ChunkHash([3; 16]),
            len: 4096,
        };
        assert_eq!(Extent::decode(65536, &e.encode()).unwrap(), e);
        assert!(Extent::decode(0, &[0u8; 19]).is_err());
        let c = ChunkRecord {
            refcount: 2,
            pack_id: PackId(5),
            stored_len: 100,
            plain_len: 4096,
            codec: 1,
            flags: CHUNK_FLAG_LOST,
        };
        assert_eq!(ChunkRecord::decode(&c.encode()).unwrap(), c);
        assert!(ChunkRecord::decode(&[1, 2, 3]).is_err());
        assert_eq!(decode_u64("x", &encode_u64(77)).unwrap(), 77);
        assert!(decode_u64("x", &[1]).is_err());
    }

    #[test]
    fn snapshot_record_round_trips_and_rejects_other_layouts() {
        let r = SnapshotRecord {
            generation: Generation(42),
            slot: 7,
            created: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), 28);
        assert_eq!(SnapshotRecord::decode(&bytes).unwrap(), r);
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(SnapshotRecord::decode(&v2).is_err());
        assert!(SnapshotRecord::decode(&bytes[..27]).is_err());
    }
}
