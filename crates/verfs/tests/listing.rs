//! Directory listings never teach the kernel a stale name (issue 9). A stream lists from
//! the snapshot taken at opendir, and readdirplus replies become cached dentries; an
//! entry from an old snapshot used to bind a renamed-away, exchanged or unlinked name to
//! its old inode again, so a later rename, open or stat acted on the wrong file.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// Reads a whole stream that was opened earlier (the kernel asks readdirplus now).
fn finish_listing(rd: fs::ReadDir) -> Vec<String> {
    rd.map(|e| {
        e.expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned()
    })
    .collect()
}

fn put(path: &Path, text: &str) {
    let mut f = File::create(path).expect("create file");
    f.write_all(text.as_bytes()).expect("write file");
}

fn get(path: &Path) -> String {
    fs::read_to_string(path).expect("read file")
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    let a = CString::new(from.as_os_str().as_bytes()).expect("path has no NUL");
    let b = CString::new(to.as_os_str().as_bytes()).expect("path has no NUL");
    // SAFETY: both pointers are NUL-terminated strings alive for the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A fresh mount with directory `d`.
fn mounted() -> (TestFs, std::path::PathBuf) {
    let mut fs = TestFs::new();
    fs.start();
    let d = fs.mnt.join("d");
    fs::create_dir(&d).expect("mkdir d");
    (fs, d)
}

#[test]
fn a_stale_listing_does_not_undo_a_rename() {
    let (mut fs, d) = mounted();
    put(&d.join("t"), "first");
    let rd = fs::read_dir(&d).expect("opendir");
    fs::rename(d.join("t"), d.join("n")).expect("rename t -> n");
    put(&d.join("t"), "second");
    finish_listing(rd);
    fs::rename(d.join("t"), d.join("n")).expect("rename the new t over n");
    assert_eq!(names(&d), ["n"]);
    assert_eq!(get(&d.join("n")), "second");
    fs.stop();
    fs.start();
    assert_eq!(names(&d), ["n"]);
    assert_eq!(get(&d.join("n")), "second");
    fs.stop();
}

#[test]
fn a_stale_listing_does_not_revive_a_renamed_away_name() {
    let (mut fs, d) = mounted();
    put(&d.join("a"), "content of a");
    let rd = fs::read_dir(&d).expect("opendir");
    fs::rename(d.join("a"), d.join("b")).expect("rename a -> b");
    finish_listing(rd);
    let err = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(d.join("a"))
        .expect_err("open of the renamed-away name must fail");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(get(&d.join("b")), "content of a");
    assert_eq!(names(&d), ["b"]);
    fs.stop();
    fs.start();
    assert_eq!(get(&d.join("b")), "content of a");
    fs.stop();
}

#[test]
fn a_stale_listing_does_not_swap_exchanged_names_back() {
    let (mut fs, d) = mounted();
    put(&d.join("a"), "A");
    put(&d.join("b"), "B");
    let rd = fs::read_dir(&d).expect("opendir");
    renameat2(&d.join("a"), &d.join("b"), libc::RENAME_EXCHANGE).expect("exchange");
    finish_listing(rd);
    assert_eq!(get(&d.join("a")), "B");
    assert_eq!(get(&d.join("b")), "A");
    let ia = fs::metadata(d.join("a")).expect("stat a").ino();
    let ib = fs::metadata(d.join("b")).expect("stat b").ino();
    assert_ne!(ia, ib);
    fs.stop();
}

#[test]
fn a_stale_listing_does_not_revive_an_unlinked_open_file() {
    let (mut fs, d) = mounted();
    put(&d.join("f"), "doomed");
    let keep = File::open(d.join("f")).expect("open f");
    let rd = fs::read_dir(&d).expect("opendir");
    fs::remove_file(d.join("f")).expect("unlink f");
    finish_listing(rd);
    let err = fs::metadata(d.join("f")).expect_err("stat of an unlinked name must fail");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(names(&d).is_empty());
    drop(keep);
    fs.stop();
}

/// What one writer thread knows: its own names and their contents.
type Model = BTreeMap<String, String>;

/// One step of a writer over its own names (`w<j>-<k>`): replace by rename over, move,
/// exchange, unlink or create; then checks the names it touched through the mount.
fn writer_step(d: &Path, j: usize, rng: &mut StdRng, model: &mut Model, serial: &mut u64) {
    let name = |k: usize| format!("w{j}-{k}");
    let a = name(rng.gen_range(0..12));
    let b = name(rng.gen_range(0..12));
    *serial += 1;
    let fresh = format!("{a}#{serial}");
    match rng.gen_range(0..5) {
        0 => {
            // The editor's save: write a temp file, rename it over the name.
            let tmp = d.join(format!(".tmp-{j}"));
            put(&tmp, &fresh);
            fs::rename(&tmp, d.join(&a)).expect("rename temp over");
            model.insert(a.clone(), fresh);
        }
        1 if model.contains_key(&a) && a != b => {
            fs::rename(d.join(&a), d.join(&b)).expect("rename a -> b");
            let v = model.remove(&a).expect("a in model");
            model.insert(b.clone(), v);
        }
        2 if model.contains_key(&a) && model.contains_key(&b) && a != b => {
            renameat2(&d.join(&a), &d.join(&b), libc::RENAME_EXCHANGE).expect("exchange");
            let va = model.remove(&a).expect("a in model");
            let vb = model.remove(&b).expect("b in model");
            model.insert(a.clone(), vb);
            model.insert(b.clone(), va);
        }
        3 if model.contains_key(&a) => {
            fs::remove_file(d.join(&a)).expect("unlink");
            model.remove(&a);
        }
        _ if !model.contains_key(&a) => {
            put(&d.join(&a), &fresh);
            model.insert(a.clone(), fresh);
        }
        _ => {}
    }
    for n in [&a, &b] {
        let got = match fs::read_to_string(d.join(n)) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("read {n}: {e}"),
        };
        assert_eq!(
            got.as_ref(),
            model.get(n),
            "name {n} after a step of writer {j}"
        );
    }
}

/// Checks the directory against the union of the writers' models: the same names,
/// each with its content and its own inode.
fn check_against(d: &Path, models: &[Model]) {
    let want: BTreeMap<&String, &String> = models.iter().flatten().collect();
    let listed: BTreeSet<String> = names(d)
        .into_iter()
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    let want_names: BTreeSet<String> = want.keys().map(|k| (*k).clone()).collect();
    assert_eq!(listed, want_names, "names in the directory");
    let mut inodes = BTreeSet::new();
    for (n, v) in want {
        assert_eq!(&get(&d.join(n)), v, "content of {n}");
        let ino = fs::metadata(d.join(n)).expect("stat").ino();
        assert!(
            inodes.insert(ino),
            "{n} shares inode {ino} with another name"
        );
    }
}

/// Writers rename, exchange, unlink and replace-by-rename while readers list the
/// directory (with `find` and with stat of each entry) as fast as they can; every name
/// must read what its writer last put there, during the storm and after a remount.
#[test]
fn rename_storm_with_listing_readers_keeps_every_name_right() {
    let (mut fs, d) = mounted();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2 {
        let (d, stop) = (d.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut lists = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if r == 0 {
                    let _ = run_timeout(30, "find", &[&path_str(&d), "-type", "f"]);
                } else if let Ok(rd) = fs::read_dir(&d) {
                    for e in rd.flatten() {
                        let _ = e.metadata();
                    }
                }
                lists += 1;
            }
            lists
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let writers: Vec<_> = (0..3)
        .map(|j| {
            let d = d.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(0x5702 + j as u64);
                let mut model = Model::new();
                let mut serial = 0u64;
                let mut steps = 0u64;
                while Instant::now() < deadline && steps < 20_000 {
                    writer_step(&d, j, &mut rng, &mut model, &mut serial);
                    steps += 1;
                }
                (model, steps)
            })
        })
        .collect();
    let mut models = Vec::new();
    let mut steps = 0;
    for w in writers {
        let (m, s) = w.join().expect("writer thread");
        models.push(m);
        steps += s;
    }
    stop.store(true, Ordering::Relaxed);
    let lists: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    eprintln!("rename storm: {steps} writer steps, {lists} listings");
    assert!(lists > 10, "the readers hardly listed ({lists})");
    check_against(&d, &models);
    fs.stop();
    fs.start();
    check_against(&d, &models);
    fs.stop();
}
