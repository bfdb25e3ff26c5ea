//! Tests of the versioned record layer against a real SurrealKV store.

use std::sync::Arc;

use super::*;
use crate::types::{ChunkHash, FileKind, Generation, PackId, Timestamp};

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&d.path().join("meta"), DataDirPerms::OWNER_ONLY).unwrap();
    (d, s)
}

fn inode(ino: u64, size: u64) -> Inode {
    Inode {
        ino: Ino(ino),
        kind: FileKind::File,
        perm: 0o644,
        uid: 0,
        gid: 0,
        nlink: 1,
        size,
        atime: Timestamp::default(),
        mtime: Timestamp::default(),
        ctime: Timestamp::default(),
        crtime: Timestamp::default(),
        rdev: 0,
        flags: 0,
        generation: 0,
        data_version: 0,
        parent: Ino(1),
        blocks: 0,
    }
}

/// Takes a snapshot with a fresh name; returns the generation it froze.
fn freeze(s: &Store) -> Generation {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    s.create_snapshot(format!("s{n}").as_bytes(), Timestamp::default())
        .unwrap()
        .generation
}

fn raw_versions(s: &Store, logical: &[u8]) -> usize {
    let v = s.view().unwrap();
    let mut n = 0;
    let end = keys::prefix_end(logical).unwrap();
    scan_raw(v.tx(), logical, &end, |_, _| {
        n += 1;
        Ok(true)
    })
    .unwrap();
    n
}

#[test]
fn without_snapshots_each_key_has_one_version_and_delete_removes_it() {
    let (_d, s) = store();
    s.write(|w| w.put_inode(&inode(5, 1))).unwrap();
    s.write(|w| w.put_inode(&inode(5, 2))).unwrap();
    assert_eq!(raw_versions(&s, &keys::inode(Ino(5))), 1);
    assert_eq!(s.view().unwrap().inode(Ino(5)).unwrap().unwrap().size, 2);
    s.write(|w| w.delete_inode(Ino(5))).unwrap();
    assert_eq!(raw_versions(&s, &keys::inode(Ino(5))), 0);
    assert!(s.view().unwrap().inode(Ino(5)).unwrap().is_none());
}

#[test]
fn older_generation_keeps_its_version_after_overwrite_and_delete() {
    let (_d, s) = store();
    s.write(|w| w.put_inode(&inode(7, 10))).unwrap();
    let frozen = freeze(&s);
    s.write(|w| w.put_inode(&inode(7, 20))).unwrap();
    assert_eq!(raw_versions(&s, &keys::inode(Ino(7))), 2);
    assert_eq!(s.view().unwrap().inode(Ino(7)).unwrap().unwrap().size, 20);
    assert_eq!(
        s.view_at(frozen)
            .unwrap()
            .inode(Ino(7))
            .unwrap()
            .unwrap()
            .size,
        10
    );
    // Delete in the live generation: the live version goes, the frozen one stays.
    s.write(|w| w.delete_inode(Ino(7))).unwrap();
    assert!(s.view().unwrap().inode(Ino(7)).unwrap().is_none());
    assert_eq!(
        s.view_at(frozen)
            .unwrap()
            .inode(Ino(7))
            .unwrap()
            .unwrap()
            .size,
        10
    );
    assert_eq!(raw_versions(&s, &keys::inode(Ino(7))), 1);
    // Re-create: a new live version; the frozen one is untouched.
    s.write(|w| w.put_inode(&inode(7, 30))).unwrap();
    assert_eq!(raw_versions(&s, &keys::inode(Ino(7))), 2);
    assert_eq!(size_at(&s, frozen, 7), Some(10));
    assert_eq!(s.view().unwrap().inode(Ino(7)).unwrap().unwrap().size, 30);
}

/// Size of inode `ino` as generation `gen` sees it, if it exists there.
fn size_at(s: &Store, gen: Generation, ino: u64) -> Option<u64> {
    s.view_at(gen)
        .unwrap()
        .inode(Ino(ino))
        .unwrap()
        .map(|i| i.size)
}

/// Views of many generations each find the version that was live when they froze.
#[test]
fn old_versions_are_found_across_many_generations() {
    let (_d, s) = store();
    s.write(|w| w.put_inode(&inode(3, 1))).unwrap();
    let mut frozen = Vec::new();
    for round in 0..14u64 {
        frozen.push(freeze(&s));
        if round == 5 {
            s.write(|w| w.put_inode(&inode(3, 6))).unwrap();
        }
    }
    let live = |ino| s.view().unwrap().inode(Ino(ino)).unwrap().map(|i| i.size);
    assert_eq!(live(3), Some(6));
    assert_eq!(size_at(&s, frozen[0], 3), Some(1));
    assert_eq!(size_at(&s, frozen[5], 3), Some(1));
    assert_eq!(size_at(&s, frozen[6], 3), Some(6));
    assert_eq!(live(4), None);
    assert_eq!(size_at(&s, frozen[2], 4), None);
    s.write(|w| w.delete_inode(Ino(3))).unwrap();
    assert_eq!(live(3), None);
    assert_eq!(size_at(&s, frozen[13], 3), Some(6));
    assert_eq!(size_at(&s, frozen[0], 3), Some(1));
}

#[test]
fn extent_replacement_reports_what_storage_lost() {
    let (_d, s) = store();
    let e = |h: u8| Extent {
        offset: 0,
        hash: ChunkHash([h; 16]),
        len: 10,
    };
    let first = s.write(|w| w.put_extent(Ino(3), &e(1))).unwrap();
    assert_eq!(first, ExtentChange::default());
    let replaced = s.write(|w| w.put_extent(Ino(3), &e(2))).unwrap();
    assert_eq!(replaced.dropped, Some(e(1)));
    assert_eq!(replaced.previous_len, 10);
    freeze(&s);
    // The version is kept for the older generation: nothing to unreference.
    let kept = s.write(|w| w.put_extent(Ino(3), &e(3))).unwrap();
    assert_eq!(kept.dropped, None);
    assert_eq!(kept.previous_len, 10);
    let gone = s.write(|w| w.delete_extent(Ino(3), 0)).unwrap();
    assert_eq!(gone.dropped, Some(e(3)));
}

#[test]
fn directory_listing_pages_in_name_order_and_skips_deleted_names() {
    let (_d, s) = store();
    let names: Vec<Vec<u8>> = vec![
        b"b".to_vec(),
        b"a".to_vec(),
        vec![0xff, 0x01],
        b"ab".to_vec(),
    ];
    s.write(|w| {
        for (i, n) in names.iter().enumerate() {
            w.put_dirent(
                Ino(1),
                n,
                &Dirent {
                    ino: Ino(10 + i as u64),
                    kind: FileKind::File,
                },
            )?;
        }
        w.put_dirent(
            Ino(2),
            b"other",
            &Dirent {
                ino: Ino(99),
                kind: FileKind::Dir,
            },
        )
    })
    .unwrap();
    freeze(&s);
    s.write(|w| w.delete_dirent(Ino(1), b"ab")).unwrap();
    let v = s.view().unwrap();
    let page1 = v.dir_entries_after(Ino(1), None, 2).unwrap();
    let got: Vec<&[u8]> = page1.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(got, vec![&b"a"[..], &b"b"[..]]);
    let page2 = v.dir_entries_after(Ino(1), Some(b"b"), 10).unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0].0, vec![0xff, 0x01]);
    assert!(!v.dir_is_empty(Ino(1)).unwrap());
    assert!(v.dir_is_empty(Ino(3)).unwrap());
}

#[test]
fn extents_overlapping_finds_the_one_starting_before() {
    let (_d, s) = store();
    s.write(|w| {
        for i in 0..10u64 {
            w.put_extent(
                Ino(4),
                &Extent {
                    offset: i * 100,
                    hash: ChunkHash([i as u8; 16]),
                    len: 100,
                },
            )?;
        }
        Ok::<_, MetaError>(())
    })
    .unwrap();
    let v = s.view().unwrap();
    let got: Vec<u64> = v
        .extents_overlapping(Ino(4), 250, 420, 100)
        .unwrap()
        .iter()
        .map(|e| e.offset)
        .collect();
    assert_eq!(got, vec![200, 300, 400]);
    assert_eq!(v.all_extents(Ino(4)).unwrap().len(), 10);
    assert!(v.all_extents(Ino(5)).unwrap().is_empty());
}

#[test]
fn concurrent_writers_retry_on_conflict_without_losing_updates() {
    let (_d, s) = store();
    let s = Arc::new(s);
    let h = ChunkHash([9; 16]);
    let rec = ChunkRecord {
        refcount: 0,
        pack_id: PackId(1),
        stored_len: 1,
        plain_len: 1,
        codec: 0,
        flags: 0,
    };
    s.write(|w| w.put_chunk(&h, &rec, None)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    s.write(|w| {
                        let c = w.chunk(&h)?.unwrap();
                        let n = ChunkRecord {
                            refcount: c.refcount + 1,
                            ..c
                        };
                        w.put_chunk(&h, &n, Some(&c))
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.view().unwrap().chunk(&h).unwrap().unwrap().refcount, 200);
}

#[test]
fn state_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("meta");
    {
        let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
        s.write(|w| w.put_inode(&inode(11, 77))).unwrap();
        freeze(&s);
        s.close().unwrap();
    }
    let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
    assert_eq!(s.view().unwrap().inode(Ino(11)).unwrap().unwrap().size, 77);
    assert_eq!(s.live_generation(), Generation(2));
    assert_eq!(s.max_ino().unwrap(), Ino(11));
}

/// Prints the cost of the store's basic operations (not asserted; run with --ignored).
#[test]
#[ignore]
fn measure_store_latency() {
    let (_d, s) = store();
    let n = 5000u64;
    let t = std::time::Instant::now();
    for i in 0..n {
        s.write(|w| w.put_inode(&inode(100 + i, i))).unwrap();
    }
    eprintln!("commit of one inode: {:?}", t.elapsed() / n as u32);
    let t = std::time::Instant::now();
    for i in 0..n {
        let v = s.view().unwrap();
        v.inode(Ino(100 + i)).unwrap().unwrap();
    }
    eprintln!("view + inode read: {:?}", t.elapsed() / n as u32);
    let v = s.view().unwrap();
    let t = std::time::Instant::now();
    for i in 0..n {
        v.inode(Ino(100 + i)).unwrap().unwrap();
    }
    eprintln!("inode read in one view: {:?}", t.elapsed() / n as u32);
    let t = std::time::Instant::now();
    for _ in 0..n {
        s.view().unwrap();
    }
    eprintln!("view alone: {:?}", t.elapsed() / n as u32);
    let t = std::time::Instant::now();
    for i in 0..n {
        v.tx().get(keys::live(&keys::inode(Ino(100 + i)))).unwrap();
    }
    eprintln!("raw point get: {:?}", t.elapsed() / n as u32);
}

/// Prints how reads of one key slow down as it is overwritten (run with --ignored).
#[test]
#[ignore]
fn measure_hot_key_reads() {
    let (_d, s) = store();
    for round in 0..5 {
        for i in 0..2000u64 {
            s.write(|w| w.put_inode(&inode(1, i))).unwrap();
        }
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            s.view().unwrap().inode(Ino(1)).unwrap().unwrap();
        }
        let ranged = t.elapsed() / 1000;
        let v = s.view().unwrap();
        let key = keys::live(&keys::inode(Ino(1)));
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            v.tx().get(&key).unwrap().unwrap();
        }
        eprintln!(
            "after {} overwrites: range read {ranged:?}, point get {:?}",
            (round + 1) * 2000,
            t.elapsed() / 1000
        );
    }
}

/// A write transaction that read the live generation before a freeze must not commit
/// into the frozen generation after it: what a frozen view shows never changes.
#[test]
fn a_frozen_generation_never_changes_under_concurrent_writes() {
    let (_d, s) = store();
    let s = Arc::new(s);
    s.write(|w| w.put_inode(&inode(11, 0))).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                s.write(|w| {
                    // Widen the window between reading the generation and committing.
                    std::thread::sleep(std::time::Duration::from_micros(300));
                    w.put_inode(&inode(11, n))
                })
                .unwrap();
            }
        })
    };
    for _ in 0..100 {
        let g = s
            .create_snapshot(
                format!("c{}", s.live_generation().0).as_bytes(),
                Timestamp::default(),
            )
            .unwrap()
            .generation;
        let before = s.view_at(g).unwrap().inode(Ino(11)).unwrap().unwrap().size;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = s.view_at(g).unwrap().inode(Ino(11)).unwrap().unwrap().size;
        assert_eq!(before, after, "frozen generation {g:?} changed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}

/// A version deleted before a later snapshot is not resurrected in it: a frozen
/// version's death generation bounds who sees it.
#[test]
fn a_snapshot_after_a_delete_does_not_see_the_deleted_version() {
    let (_d, s) = store();
    s.write(|w| w.put_inode(&inode(4, 1))).unwrap();
    let before = freeze(&s);
    s.write(|w| w.delete_inode(Ino(4))).unwrap();
    let after = freeze(&s);
    s.write(|w| w.put_inode(&inode(4, 3))).unwrap();
    let recreated = freeze(&s);
    assert_eq!(size_at(&s, before, 4), Some(1));
    assert_eq!(size_at(&s, after, 4), None);
    assert_eq!(size_at(&s, recreated, 4), Some(3));
    let names = |g: Generation| {
        s.view_at(g)
            .unwrap()
            .dir_entries_after(Ino(1), None, 10)
            .unwrap()
            .len()
    };
    assert_eq!(names(after), 0);
}

/// Without snapshots an overwrite replaces the version in storage even after older
/// snapshots were deleted: nothing is frozen that no view could read.
#[test]
fn nothing_is_frozen_without_a_snapshot_that_sees_it() {
    let (_d, s) = store();
    s.write(|w| w.put_inode(&inode(9, 1))).unwrap();
    freeze(&s);
    s.write(|w| w.put_inode(&inode(9, 2))).unwrap();
    assert_eq!(raw_versions(&s, &keys::inode(Ino(9))), 2);
    // The snapshot after this write sees only the live version: nothing more frozen.
    freeze(&s);
    s.write(|w| w.put_inode(&inode(9, 3))).unwrap();
    assert_eq!(raw_versions(&s, &keys::inode(Ino(9))), 3);
    for (name, _) in s.view().unwrap().snapshots().unwrap() {
        s.delete_snapshot(&name).unwrap();
    }
    s.write(|w| w.put_inode(&inode(9, 4))).unwrap();
    assert_eq!(
        raw_versions(&s, &keys::inode(Ino(9))),
        3,
        "frozen ones wait for the sweep"
    );
}

#[test]
fn snapshot_names_are_unique_and_delete_reports_missing_ones() {
    let (_d, s) = store();
    let a = s.create_snapshot(b"a", Timestamp::default()).unwrap();
    assert!(matches!(
        s.create_snapshot(b"a", Timestamp::default()),
        Err(SnapshotError::Exists)
    ));
    let b = s.create_snapshot(b"b", Timestamp::default()).unwrap();
    assert!(b.generation > a.generation && b.slot > a.slot);
    assert_eq!(s.delete_snapshot(b"a").unwrap(), a);
    assert!(matches!(
        s.delete_snapshot(b"a"),
        Err(SnapshotError::NotFound)
    ));
    // Slots are never reused: a stale handle of a deleted snapshot stays stale.
    let c = s.create_snapshot(b"a", Timestamp::default()).unwrap();
    assert!(c.slot > b.slot);
}

/// The sweep removes exactly the frozen versions no remaining snapshot sees, drops the
/// references of removed extents, resumes from its cursor after a reopen, and leaves
/// every remaining view as it was.
#[test]
fn sweep_removes_only_unseen_versions_and_resumes_after_reopen() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("meta");
    let ext = |h: u8| Extent {
        offset: 0,
        hash: ChunkHash([h; 16]),
        len: 10,
    };
    let (kept, dropped) = {
        let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
        for i in 0..100u64 {
            s.write(|w| w.put_inode(&inode(100 + i, 1))).unwrap();
        }
        s.write(|w| w.put_extent(Ino(100), &ext(1))).unwrap();
        s.create_snapshot(b"old", Timestamp::default()).unwrap();
        for i in 0..100u64 {
            s.write(|w| w.put_inode(&inode(100 + i, 2))).unwrap();
        }
        s.write(|w| w.put_extent(Ino(100), &ext(2))).unwrap();
        let kept = s.create_snapshot(b"kept", Timestamp::default()).unwrap();
        for i in 0..50u64 {
            s.write(|w| w.put_inode(&inode(100 + i, 3))).unwrap();
        }
        s.delete_snapshot(b"old").unwrap();
        assert!(s.sweep_pending().unwrap());
        let mut dropped = Vec::new();
        let step = s
            .sweep_step(64, |_, e| {
                dropped.push(e.hash);
                Ok::<(), MetaError>(())
            })
            .unwrap();
        assert!(!step.done && step.examined == 64);
        s.close().unwrap();
        (kept, dropped)
    };
    let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
    assert!(s.sweep_pending().unwrap(), "the cursor survives a reopen");
    let mut dropped = dropped;
    loop {
        let step = s
            .sweep_step(64, |_, e| {
                dropped.push(e.hash);
                Ok::<(), MetaError>(())
            })
            .unwrap();
        if step.done {
            break;
        }
    }
    assert!(!s.sweep_pending().unwrap());
    assert_eq!(dropped, vec![ChunkHash([1; 16])]);
    for i in 0..100u64 {
        let want = if i < 50 { 2 } else { 1 };
        assert_eq!(
            raw_versions(&s, &keys::inode(Ino(100 + i))),
            want,
            "ino {i}"
        );
        assert_eq!(size_at(&s, kept.generation, 100 + i), Some(2));
    }
}

/// A layout-1 store (before snapshots existed) is upgraded in place on open.
#[test]
fn layout1_metadata_is_upgraded_on_open() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("meta");
    {
        let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
        s.write(|w| {
            for i in 0..5000u64 {
                let mut v = vec![1u8];
                v.extend_from_slice(&inode(10 + i, i).encode());
                w.set(&keys::frozen(&keys::inode(Ino(10 + i)), Generation(1)), &v)?;
            }
            w.set(&keys::frozen(&keys::inode(Ino(9)), Generation(1)), &[0])?;
            w.del(&keys::system(SYS_META_FORMAT))
        })
        .unwrap();
        s.close().unwrap();
    }
    let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
    let v = s.view().unwrap();
    for i in 0..5000u64 {
        assert_eq!(v.inode(Ino(10 + i)).unwrap().unwrap().size, i);
        assert_eq!(raw_versions(&s, &keys::inode(Ino(10 + i))), 1);
    }
    assert!(v.inode(Ino(9)).unwrap().is_none());
    assert_eq!(raw_versions(&s, &keys::inode(Ino(9))), 0);
    assert_eq!(s.max_ino().unwrap(), Ino(5009));
}

/// A layout this build does not know is refused, not guessed at.
#[test]
fn an_unknown_metadata_layout_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("meta");
    {
        let s = Store::open(&path, DataDirPerms::OWNER_ONLY).unwrap();
        s.set_system_u64(SYS_META_FORMAT, 9).unwrap();
        s.close().unwrap();
    }
    let err = Store::open(&path, DataDirPerms::OWNER_ONLY).err().unwrap();
    assert!(err.to_string().contains("layout 9"), "{err}");
}

#[test]
fn a_full_disk_is_told_by_the_os_code_not_by_a_guess_on_any_message() {
    use surrealkv::Error as E;
    let io = |code| E::Io(Arc::new(std::io::Error::from_raw_os_error(code)));
    assert!(super::is_no_space(&io(libc::ENOSPC)));
    assert!(super::is_no_space(&io(libc::EDQUOT)));
    assert!(!super::is_no_space(&io(libc::EIO)));
    assert!(super::is_no_space(&E::DatabasePoisoned(Box::new(io(
        libc::ENOSPC
    )))));
    // SurrealKV's message-only variants keep the OS's wording.
    assert!(super::is_no_space(&E::Wal(
        "write: No space left on device (os error 28)".into()
    )));
    assert!(!super::is_no_space(&E::Corruption("No space left".into())));
    assert!(matches!(
        crate::error::FsError::from(MetaError::kv("commit", io(libc::ENOSPC))),
        crate::error::FsError::NoSpace
    ));
    assert!(matches!(
        crate::error::FsError::from(MetaError::Kv("No space left".into())),
        crate::error::FsError::Io(_)
    ));
}
