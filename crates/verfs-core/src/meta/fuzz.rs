//! Metadata decoders (records, versioned values, keys) against hostile bytes; see
//! `fuzz_util`.

use super::records::{ChunkRecord, Dirent, Extent, Inode, SnapshotRecord};
use super::{keys, versioned};
use crate::fuzz_util::{damaged, hammer, noise, rng, Budget};
use crate::types::{ChunkHash, FileKind, Generation, Ino, PackId, Timestamp};

fn inode() -> Inode {
    let mut i = Inode::new_dir(Ino(77), Ino(1), 0o750, (1000, 100), 1);
    i.kind = FileKind::File;
    i.size = 123_456;
    i.nlink = 3;
    i.blocks = 4096;
    i
}

#[test]
fn metadata_records_never_panic() {
    let i = inode();
    hammer(1, &i.encode(), &i, |b| Inode::decode(Ino(77), b).ok());
    let d = Dirent {
        ino: Ino(9),
        kind: FileKind::Symlink,
    };
    hammer(2, &d.encode(), &d, |b| Dirent::decode(b).ok());
    let e = Extent {
        offset: 65536,
        hash: ChunkHash([7; 16]),
        len: 4000,
    };
    hammer(3, &e.encode(), &e, |b| Extent::decode(65536, b).ok());
    let c = ChunkRecord {
        refcount: 5,
        pack_id: PackId(3),
        stored_len: 100,
        plain_len: 200,
        codec: 1,
        flags: 2,
    };
    hammer(4, &c.encode(), &c, |b| ChunkRecord::decode(b).ok());
    let s = SnapshotRecord {
        generation: Generation(12),
        slot: 4,
        created: Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        },
    };
    hammer(5, &s.encode(), &s, |b| SnapshotRecord::decode(b).ok());
    let v = versioned::encode(Generation(9), b"payload");
    hammer(6, &v, &(Generation(9), b"payload".to_vec()), |b| {
        versioned::decode(b).ok().map(|(g, p)| (g, p.to_vec()))
    });
}

#[test]
fn metadata_keys_never_panic() {
    let key = keys::live(&keys::dirent(Ino(5), b"name"));
    let mut rng = rng(7);
    assert!(keys::split_stored(&key).is_some());
    let mut budget = Budget::new(1);
    while budget.next() {
        for k in [noise(&mut rng, 64), damaged(&mut rng, &key)] {
            if let Some((logical, _)) = keys::split_stored(&k) {
                let _ = keys::dirent_name(logical);
                let _ = keys::dirent_parent(logical);
                let _ = keys::extent_offset(logical);
                let _ = keys::extent_ino_offset(logical);
                let _ = keys::xattr_name(logical);
            }
            let _ = keys::chunk_hash(&k);
        }
    }
}
