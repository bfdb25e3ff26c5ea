//! The metadata key layout: the only place that builds or parses a key.
//!
//! Keys are binary; integers are big-endian so range scans follow numeric order. One
//! prefix byte per family:
//!
//! | key                               | versioned | value                       |
//! |-----------------------------------|-----------|-----------------------------|
//! | `I` ino:u64                       | yes       | inode record                |
//! | `D` parent:u64 name 0x00          | yes       | dirent record               |
//! | `E` ino:u64 offset:u64            | yes       | extent record               |
//! | `X` ino:u64 name 0x00             | yes       | xattr value                 |
//! | `L` ino:u64                       | yes       | symlink target bytes        |
//! | `C` hash:[u8;16]                  | no        | chunk record                |
//! | `Z` hash:[u8;16]                  | no        | empty (zero-ref index)      |
//! | `O` ino:u64                       | no        | empty (orphan: open, unlinked) |
//! | `S` name                          | no        | snapshot record             |
//! | `Y` name                          | no        | system value                |
//!
//! A versioned key is `logical_key ++ 0x00*8` for the live version and
//! `logical_key ++ (u64::MAX - birth_generation)` (8 bytes, big-endian) for a version
//! frozen for snapshots, so the live version sorts first, then frozen ones newest first.
//! Names never contain 0x00, so the terminator keeps every logical key prefix-free: no
//! logical key plus suffix can fall inside another logical key's version range.

use crate::types::{ChunkHash, Generation, Ino};

/// Prefix bytes of the key families.
pub(crate) mod prefix {
    pub const INODE: u8 = b'I';
    pub const DIRENT: u8 = b'D';
    pub const EXTENT: u8 = b'E';
    pub const XATTR: u8 = b'X';
    pub const SYMLINK: u8 = b'L';
    pub const CHUNK: u8 = b'C';
    pub const ZERO_REF: u8 = b'Z';
    pub const ORPHAN: u8 = b'O';
    pub const SNAPSHOT: u8 = b'S';
    pub const SYSTEM: u8 = b'Y';
}

/// Length of the version suffix on versioned keys.
pub(crate) const GEN_SUFFIX_LEN: usize = 8;

/// Which version of a logical key a stored key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The live version (suffix all zeros, sorts first).
    Live,
    /// A version frozen for snapshots, born at this generation.
    Frozen(Generation),
}

/// The stored key of the live version of `logical`.
pub(crate) fn live(logical: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(logical.len() + GEN_SUFFIX_LEN);
    k.extend_from_slice(logical);
    k.extend_from_slice(&[0; GEN_SUFFIX_LEN]);
    k
}

/// The stored key of the version of `logical` frozen with birth generation `birth`
/// (1 or more), so newer frozen versions sort first, all after the live one.
pub(crate) fn frozen(logical: &[u8], birth: Generation) -> Vec<u8> {
    let mut k = Vec::with_capacity(logical.len() + GEN_SUFFIX_LEN);
    k.extend_from_slice(logical);
    k.extend_from_slice(&(u64::MAX - birth.0).to_be_bytes());
    k
}

/// Splits a stored versioned key into its logical key and version.
///
/// Returns `None` for a key too short to carry a suffix (a corrupt key).
pub(crate) fn split_stored(key: &[u8]) -> Option<(&[u8], Stored)> {
    if key.len() < GEN_SUFFIX_LEN + 1 {
        return None;
    }
    let (logical, suffix) = key.split_at(key.len() - GEN_SUFFIX_LEN);
    let mut b = [0u8; 8];
    b.copy_from_slice(suffix);
    let slot = match u64::from_be_bytes(b) {
        0 => Stored::Live,
        s => Stored::Frozen(Generation(u64::MAX - s)),
    };
    Some((logical, slot))
}

/// The prefix bytes of the versioned key families in key order, for whole-store sweeps.
pub(crate) const VERSIONED_FAMILIES: [u8; 5] = [
    prefix::DIRENT,
    prefix::EXTENT,
    prefix::INODE,
    prefix::SYMLINK,
    prefix::XATTR,
];

fn with_u64(p: u8, v: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 + 8 + GEN_SUFFIX_LEN);
    k.push(p);
    k.extend_from_slice(&v.to_be_bytes());
    k
}

/// Logical key of an inode record.
pub(crate) fn inode(ino: Ino) -> Vec<u8> {
    with_u64(prefix::INODE, ino.0)
}

/// Logical key of a directory entry.
pub(crate) fn dirent(parent: Ino, name: &[u8]) -> Vec<u8> {
    let mut k = with_u64(prefix::DIRENT, parent.0);
    k.extend_from_slice(name);
    k.push(0);
    k
}

/// The prefix shared by every entry of a directory.
pub(crate) fn dirent_prefix(parent: Ino) -> Vec<u8> {
    with_u64(prefix::DIRENT, parent.0)
}

/// The name of a dirent logical key (without prefix, parent and terminator).
pub(crate) fn dirent_name(logical: &[u8]) -> Option<&[u8]> {
    if logical.len() < 10 || logical[0] != prefix::DIRENT || logical[logical.len() - 1] != 0 {
        return None;
    }
    Some(&logical[9..logical.len() - 1])
}

/// Logical key of the extent that starts at `offset`.
pub(crate) fn extent(ino: Ino, offset: u64) -> Vec<u8> {
    let mut k = with_u64(prefix::EXTENT, ino.0);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// The prefix shared by every extent of a file.
pub(crate) fn extent_prefix(ino: Ino) -> Vec<u8> {
    with_u64(prefix::EXTENT, ino.0)
}

/// The file offset of an extent logical key.
pub(crate) fn extent_offset(logical: &[u8]) -> Option<u64> {
    if logical.len() != 17 || logical[0] != prefix::EXTENT {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&logical[9..17]);
    Some(u64::from_be_bytes(b))
}

/// The inode and file offset of an extent logical key.
pub(crate) fn extent_ino_offset(logical: &[u8]) -> Option<(Ino, u64)> {
    let offset = extent_offset(logical)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(&logical[1..9]);
    Some((Ino(u64::from_be_bytes(b)), offset))
}

/// The parent directory of a dirent logical key.
pub(crate) fn dirent_parent(logical: &[u8]) -> Option<Ino> {
    dirent_name(logical)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(&logical[1..9]);
    Some(Ino(u64::from_be_bytes(b)))
}

/// Logical key of an extended attribute.
pub(crate) fn xattr(ino: Ino, name: &[u8]) -> Vec<u8> {
    let mut k = with_u64(prefix::XATTR, ino.0);
    k.extend_from_slice(name);
    k.push(0);
    k
}

/// The prefix shared by every extended attribute of an inode.
pub(crate) fn xattr_prefix(ino: Ino) -> Vec<u8> {
    with_u64(prefix::XATTR, ino.0)
}

/// The name of an xattr logical key.
pub(crate) fn xattr_name(logical: &[u8]) -> Option<&[u8]> {
    if logical.len() < 10 || logical[0] != prefix::XATTR || logical[logical.len() - 1] != 0 {
        return None;
    }
    Some(&logical[9..logical.len() - 1])
}

/// Logical key of a symlink target.
pub(crate) fn symlink(ino: Ino) -> Vec<u8> {
    with_u64(prefix::SYMLINK, ino.0)
}

/// Key of a chunk record (not versioned).
pub(crate) fn chunk(hash: &ChunkHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix::CHUNK);
    k.extend_from_slice(&hash.0);
    k
}

/// The hash of a chunk key.
pub(crate) fn chunk_hash(key: &[u8]) -> Option<ChunkHash> {
    if key.len() != 17 || key[0] != prefix::CHUNK {
        return None;
    }
    let mut h = [0u8; 16];
    h.copy_from_slice(&key[1..]);
    Some(ChunkHash(h))
}

/// Key of a zero-refcount marker (not versioned).
pub(crate) fn zero_ref(hash: &ChunkHash) -> Vec<u8> {
    let mut k = chunk(hash);
    k[0] = prefix::ZERO_REF;
    k
}

/// Key of an orphan marker (not versioned).
pub(crate) fn orphan(ino: Ino) -> Vec<u8> {
    with_u64(prefix::ORPHAN, ino.0)
}

/// The inode of an orphan key.
pub(crate) fn orphan_ino(key: &[u8]) -> Option<Ino> {
    if key.len() != 9 || key[0] != prefix::ORPHAN {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[1..]);
    Some(Ino(u64::from_be_bytes(b)))
}

/// The inode number of an inode logical key.
pub(crate) fn inode_ino(logical: &[u8]) -> Option<Ino> {
    if logical.len() != 9 || logical[0] != prefix::INODE {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&logical[1..]);
    Some(Ino(u64::from_be_bytes(b)))
}

/// Key of a snapshot record.
pub(crate) fn snapshot(name: &[u8]) -> Vec<u8> {
    let mut k = vec![prefix::SNAPSHOT];
    k.extend_from_slice(name);
    k
}

/// The name of a snapshot key.
pub(crate) fn snapshot_name(key: &[u8]) -> Option<&[u8]> {
    match key.split_first() {
        Some((&prefix::SNAPSHOT, name)) if !name.is_empty() => Some(name),
        _ => None,
    }
}

/// Key of a system value.
pub(crate) fn system(name: &str) -> Vec<u8> {
    let mut k = vec![prefix::SYSTEM];
    k.extend_from_slice(name.as_bytes());
    k
}

/// The smallest key strictly greater than every key starting with `prefix`.
///
/// Returns `None` when no such key exists (prefix all 0xFF).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_sort_numerically() {
        let a = inode(Ino(2));
        let b = inode(Ino(256));
        let c = inode(Ino(u64::MAX - 1));
        assert!(a < b && b < c);
        assert!(extent(Ino(5), 4096) < extent(Ino(5), 65536));
        assert!(extent(Ino(5), u64::MAX) < extent(Ino(6), 0));
    }

    #[test]
    fn live_version_sorts_first_then_newest_frozen() {
        let l = inode(Ino(7));
        let old = frozen(&l, Generation(1));
        let new = frozen(&l, Generation(9));
        assert!(live(&l) < new && new < old);
        assert_eq!(
            split_stored(&new),
            Some((&l[..], Stored::Frozen(Generation(9))))
        );
        assert_eq!(split_stored(&live(&l)), Some((&l[..], Stored::Live)));
    }

    #[test]
    fn dirent_keys_are_prefix_free_and_ordered() {
        let p = Ino(1);
        let a = dirent(p, b"a");
        let ab = dirent(p, b"ab");
        let b = dirent(p, b"b");
        // All versions of "a" sort before any version of "ab".
        let a_oldest = frozen(&a, Generation(1));
        let ab_newest = live(&ab);
        assert!(a_oldest < ab_newest);
        assert!(ab < b);
        assert_eq!(dirent_name(&ab), Some(&b"ab"[..]));
        // Non-UTF-8 names are fine.
        let raw = dirent(p, &[0xff, 0xfe]);
        assert_eq!(dirent_name(&raw), Some(&[0xff, 0xfe][..]));
        // Every entry of the directory lies under the prefix and before its end.
        let end = prefix_end(&dirent_prefix(p)).unwrap();
        assert!(frozen(&raw, Generation(1)) < end);
        assert!(dirent_prefix(p) <= a);
        assert!(dirent(Ino(2), b"") >= end);
    }

    #[test]
    fn parsers_reject_foreign_keys() {
        assert_eq!(extent_offset(&extent(Ino(3), 77)), Some(77));
        assert_eq!(extent_offset(&inode(Ino(3))), None);
        assert_eq!(extent_ino_offset(&extent(Ino(3), 77)), Some((Ino(3), 77)));
        assert_eq!(dirent_parent(&dirent(Ino(4), b"n")), Some(Ino(4)));
        assert_eq!(dirent_parent(&inode(Ino(4))), None);
        assert_eq!(orphan_ino(&orphan(Ino(9))), Some(Ino(9)));
        assert_eq!(inode_ino(&inode(Ino(9))), Some(Ino(9)));
        let h = ChunkHash([7; 16]);
        assert_eq!(chunk_hash(&chunk(&h)), Some(h));
        assert_eq!(chunk_hash(&zero_ref(&h)), None);
        assert_eq!(split_stored(b"short"), None);
        assert_eq!(snapshot_name(&snapshot(b"daily")), Some(&b"daily"[..]));
        assert_eq!(snapshot_name(&system("x")), None);
    }

    #[test]
    fn versioned_families_are_in_key_order() {
        assert!(VERSIONED_FAMILIES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
