//! The pack store's own tests: append, read, rotation, reopen, torn tails, damage.

use super::*;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

fn store(dir: &Path, max: u64) -> PackStore {
    PackStore::open(
        dir,
        DataDirPerms::OWNER_ONLY,
        max,
        ChunkHasher::new(&[9; 16]),
        true,
    )
    .unwrap()
    .0
}

fn put(s: &PackStore, data: &[u8]) -> (ChunkHash, PackId) {
    let h = s.hasher().hash(data);
    let stored = compress::compress(&Bytes::copy_from_slice(data), 3);
    (h, s.append(h, data.len() as u32, &stored).unwrap())
}

#[test]
fn append_read_rotate_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path(), 4096);
    let mut chunks = Vec::new();
    for i in 0..50u32 {
        let data: Vec<u8> = (0..1000u32)
            .map(|j| ((i * 7919 + j * 31) % 251) as u8)
            .collect();
        let (h, p) = put(&s, &data);
        chunks.push((h, p, data));
    }
    assert!(s.active_id().0 > 1, "should have rotated");
    for (h, p, data) in &chunks {
        assert_eq!(&s.read(*p, h, data.len() as u32).unwrap(), data);
    }
    s.sync().unwrap();
    drop(s);
    let s = store(d.path(), 4096);
    for (h, p, data) in &chunks {
        assert_eq!(&s.read(*p, h, data.len() as u32).unwrap(), data);
    }
    let missing = ChunkHash([0xEE; 16]);
    assert!(matches!(
        s.read(PackId(1), &missing, 1),
        Err(PackError::Missing { .. })
    ));
}

#[test]
fn packs_are_created_with_the_data_dir_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("packs");
    let s = store(&dir, 4096);
    for i in 0..50u32 {
        let data: Vec<u8> = (0..1000u32)
            .map(|j| ((i * 7919 + j * 31) % 251) as u8)
            .collect();
        put(&s, &data);
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let ids = list_packs(&dir).unwrap();
    assert!(ids.len() > 1, "no rotation");
    for id in ids {
        assert_eq!(mode(&pack_path(&dir, id)), 0o600, "{id}");
    }
}

#[test]
fn torn_active_tail_is_cut_at_reopen() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path(), 1 << 30);
    let (h1, p1) = put(&s, &[1u8; 5000]);
    let (h2, _) = put(&s, &vec![2u8; 7000]);
    let id = s.active_id();
    drop(s);
    let path = pack_path(d.path(), id);
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (s, report) = PackStore::open(
        d.path(),
        DataDirPerms::OWNER_ONLY,
        1 << 30,
        ChunkHasher::new(&[9; 16]),
        false,
    )
    .unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(s.read(p1, &h1, 5000).unwrap(), vec![1u8; 5000]);
    assert!(!s.contains(id, &h2));
    // Appending continues cleanly after the cut.
    let (h3, p3) = put(&s, &[3u8; 100]);
    assert_eq!(s.read(p3, &h3, 100).unwrap(), vec![3u8; 100]);
}

#[test]
fn unsealed_older_pack_is_sealed_at_open() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path(), 1 << 30);
    let (h1, p1) = put(&s, &[4u8; 300]);
    drop(s);
    // Simulate a crash after creating the next pack but before sealing the first.
    ActivePack::create(
        &FileIo,
        d.path(),
        DataDirPerms::OWNER_ONLY,
        PackId(p1.0 + 1),
    )
    .unwrap();
    let (s, report) = PackStore::open(
        d.path(),
        DataDirPerms::OWNER_ONLY,
        1 << 30,
        ChunkHasher::new(&[9; 16]),
        false,
    )
    .unwrap();
    assert_eq!(report.sealed_at_startup, vec![p1]);
    assert_eq!(s.read(p1, &h1, 300).unwrap(), vec![4u8; 300]);
}

#[test]
fn clean_open_keeps_records_after_a_damaged_one() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path(), 1 << 30);
    let noise = |seed: u32| -> Vec<u8> {
        (0..3000u32)
            .map(|j| (j.wrapping_mul(2654435761).wrapping_add(seed) >> 11) as u8)
            .collect()
    };
    let (d1, d2) = (noise(1), noise(2));
    let (h1, p1) = put(&s, &d1);
    let (h2, p2) = put(&s, &d2);
    drop(s);
    let f = OpenOptions::new()
        .write(true)
        .open(pack_path(d.path(), p1))
        .unwrap();
    FileExt::write_all_at(&f, &[0xAB; 64], pack::HEADER_LEN + 100).unwrap();
    let len = f.metadata().unwrap().len();
    let (s, report) = PackStore::open(
        d.path(),
        DataDirPerms::OWNER_ONLY,
        1 << 30,
        ChunkHasher::new(&[9; 16]),
        true,
    )
    .unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(
        std::fs::metadata(pack_path(d.path(), p1)).unwrap().len(),
        len
    );
    assert!(s.read(p1, &h1, 3000).is_err());
    assert_eq!(s.read(p2, &h2, 3000).unwrap(), d2);
}

#[test]
fn corrupted_record_reads_as_corrupt_not_wrong_bytes() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path(), 1 << 30);
    let data = vec![7u8; 2000];
    let (h, p) = put(&s, &data);
    let f = OpenOptions::new()
        .write(true)
        .open(pack_path(d.path(), p))
        .unwrap();
    FileExt::write_all_at(&f, &[0x55; 4], pack::HEADER_LEN + 40).unwrap();
    assert!(matches!(
        s.read(p, &h, 2000),
        Err(PackError::Corrupt { .. })
    ));
}
