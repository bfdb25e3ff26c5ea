//! Crash consistency through a real mount: fsync'd files survive `kill -9` of the daemon
//! in the middle of a large write (also when they were shaped by random writes and
//! truncates and fsync'd while the batcher was busy with another file), the filesystem
//! remounts and keeps working.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use common::*;

/// Writes `len` random bytes to `M/name` with `conv=fsync` and returns the expected sha256.
fn write_durable(fs: &TestFs, name: &str, len: usize, seed: u64) -> String {
    let src = fs.t(&format!("{}.src", name.replace('/', "_")));
    write_random(&src, len, seed);
    sh_ok(&format!(
        "dd if={src} of={} bs=64k conv=fsync status=none",
        fs.m(name)
    ));
    sha256(&src)
}

/// Checks every durable file, that the tree lists, and that the crashed file reads fully.
fn check_after_crash(fs: &TestFs, durable: &BTreeMap<String, String>) {
    for (name, sum) in durable {
        assert_eq!(
            &sha256(&fs.m(name)),
            sum,
            "fsync'd file {name} changed after crash"
        );
    }
    let listing = sh_ok(&format!("ls -la {} {}", fs.m(""), fs.m("dir")));
    assert!(listing.contains("f0"), "ls after crash: {listing}");
    let big = fs.m("big");
    if Path::new(&big).exists() {
        // Whatever survived of the interrupted write must read without I/O errors.
        eprintln!("after crash: {big} has {} bytes", size_of(&big));
        sh_ok(&format!("cat {big} > /dev/null"));
    }
}

/// Starts a 2000 MiB write in the background, waits `delay`, then kills the daemon.
fn crash_during_big_write(fs: &mut TestFs, delay: Duration) {
    let writer = Background::spawn(&format!(
        "dd if=/dev/urandom of={} bs=1M count=2000",
        fs.m("big")
    ));
    sleep(delay);
    fs.assert_alive();
    fs.kill9();
    let status = writer.finish(Duration::from_secs(60));
    assert!(
        status.is_some(),
        "background dd still running after the daemon died"
    );
}

#[test]
fn fsynced_files_survive_kill9_during_large_write() {
    let mut fs = TestFs::new();
    fs.start();
    sh_ok(&format!("mkdir {}", fs.m("dir")));
    let mut durable = BTreeMap::new();
    durable.insert("f0".to_owned(), write_durable(&fs, "f0", 1 << 20, 100));
    durable.insert(
        "dir/f1".to_owned(),
        write_durable(&fs, "dir/f1", 200_000, 101),
    );
    durable.insert("f2".to_owned(), write_durable(&fs, "f2", 5_000, 102));
    // A file overwritten in place, then made durable with sync(1).
    let patch = fs.t("patch");
    write_random(&patch, 8192, 103);
    let f0 = fs.m("f0");
    sh_ok(&format!(
        "dd if={patch} of={f0} bs=4k seek=10 conv=notrunc status=none && sync {f0}"
    ));
    let f0_expected = fs.t("f0.src");
    sh_ok(&format!(
        "dd if={patch} of={f0_expected} bs=4k seek=10 conv=notrunc status=none"
    ));
    durable.insert("f0".to_owned(), sha256(&f0_expected));

    for (round, delay_ms) in [(0u64, 1500u64), (1, 400)] {
        crash_during_big_write(&mut fs, Duration::from_millis(delay_ms));
        fs.start();
        check_after_crash(&fs, &durable);
        // New writes work after the crash; make them durable for the next round.
        let name = format!("dir/after{round}");
        let sum = write_durable(&fs, &name, 300_000, 110 + round);
        assert_eq!(sha256(&fs.m(&name)), sum, "write after crash");
        durable.insert(name, sum);
        sh_ok(&format!("rm -f {}", fs.m("big")));
    }

    fs.stop();
    fs.start();
    check_after_crash(&fs, &durable);
    fs.stop();
    fs.assert_no_panic();
}

/// Writes are answered before they commit, so a file's writes and its fsync can land in
/// one batch while another writer keeps the batcher busy. Every small file fsync'd that
/// way must survive `kill -9`: a tail held back in that batch once escaped the sync (it
/// was lost when the file was the last one synced before the crash, so several rounds).
#[test]
fn small_files_fsynced_while_the_batcher_is_busy_survive_kill9() {
    let mut fs = TestFs::new();
    let src = fs.t("small.src");
    write_random(&src, 12_000, 120);
    let want = sha256(&src);
    for round in 0..6 {
        fs.start();
        let busy = Background::spawn(&format!(
            "dd if=/dev/urandom of={} bs=1M count=600 status=none",
            fs.m(&format!("busy{round}"))
        ));
        sleep(Duration::from_millis(200));
        // Each file is smaller than one chunk (held back unless flushed) and synced.
        sh_ok(&format!(
            "for i in $(seq 1 8); do dd if={src} of={}/r{round}s$i bs=4k conv=fsync \
             status=none || exit 1; done",
            fs.m("")
        ));
        fs.kill9();
        let _ = busy.finish(Duration::from_secs(60));
        fs.start();
        for i in 1..=8 {
            let name = format!("r{round}s{i}");
            assert_eq!(sha256(&fs.m(&name)), want, "fsync'd {name} lost data");
        }
        sh_ok(&format!("rm -f {}", fs.m(&format!("busy{round}"))));
        fs.stop();
    }
    fs.assert_no_panic();
}

/// Applies random data ops to `f` and to its model: overlapping writes, writes past
/// EOF (holes), truncates that shrink and extend, appends.
fn random_ops(f: &std::fs::File, model: &mut Vec<u8>, rng: &mut rand::rngs::StdRng) -> bool {
    use rand::Rng;
    use std::os::unix::fs::FileExt;
    for _ in 0..rng.gen_range(3..12) {
        let ok = match rng.gen_range(0..10) {
            0 | 1 => {
                let size = rng.gen_range(0..400_000u64);
                model.resize(size as usize, 0);
                f.set_len(size).is_ok()
            }
            2 | 3 => {
                let data: Vec<u8> = (0..rng.gen_range(1..200_000)).map(|_| rng.gen()).collect();
                let at = model.len();
                model.extend_from_slice(&data);
                f.write_all_at(&data, at as u64).is_ok()
            }
            _ => {
                let at = rng.gen_range(0..500_000usize);
                let data: Vec<u8> = (0..rng.gen_range(1..150_000)).map(|_| rng.gen()).collect();
                if model.len() < at + data.len() {
                    model.resize(at + data.len(), 0);
                }
                model[at..at + data.len()].copy_from_slice(&data);
                f.write_all_at(&data, at as u64).is_ok()
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A file name and its contents when its fsync returned.
type Durable = (String, Vec<u8>);

/// Writers that each shape a file with random ops, fsync it and move on to the next,
/// while a bulk write keeps the batcher busy (so fsyncs are taken ahead of it); then
/// `kill -9`. Every file whose fsync returned must read back exactly as it was then,
/// after the crash and after a clean restart.
#[test]
fn random_ops_then_fsync_survive_kill9_while_a_bulk_write_runs() {
    use rand::SeedableRng;
    use std::sync::{Arc, Mutex};
    let mut fs = TestFs::new();
    fs.start();
    let durable: Arc<Mutex<Vec<Durable>>> = Arc::default();
    let bulk = Background::spawn(&format!(
        "dd if=/dev/urandom of={} bs=1M count=1500 status=none",
        fs.m("bulk")
    ));
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let (dir, durable) = (fs.m(""), durable.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(700 + w);
                for i in 0.. {
                    let name = format!("w{w}-{i}");
                    let Ok(f) = std::fs::File::create(format!("{dir}/{name}")) else {
                        return;
                    };
                    let mut model = Vec::new();
                    if !random_ops(&f, &mut model, &mut rng) || f.sync_all().is_err() {
                        return;
                    }
                    durable.lock().unwrap().push((name, model));
                }
            })
        })
        .collect();
    sleep(Duration::from_millis(2500));
    fs.assert_alive();
    fs.kill9();
    for t in writers {
        t.join().expect("writer thread");
    }
    let _ = bulk.finish(Duration::from_secs(60));
    let durable = durable.lock().unwrap().clone();
    assert!(durable.len() >= 6, "only {} files fsync'd", durable.len());
    eprintln!("{} files fsync'd before kill -9", durable.len());
    for round in ["after kill -9", "after a clean restart"] {
        fs.start();
        for (name, want) in &durable {
            let got =
                std::fs::read(fs.m(name)).unwrap_or_else(|e| panic!("{round}: read {name}: {e}"));
            assert!(
                got == *want,
                "{round}: {name} has {} bytes, fsync'd with {}",
                got.len(),
                want.len()
            );
        }
        fs.stop();
    }
    fs.assert_no_panic();
}

/// An unsynced write into the last chunk of an fsync'd file, then `kill -9`: the
/// batcher used to hold the re-chunked last chunk back and commit the size cut to its
/// start, so the crash cut fsync'd bytes off (found by the model exerciser: 0 bytes left
/// of 0x40ab, 0x1164b of 0x20000, 0x2a013 of 0x375bf, every time). Now the fsync'd
/// bytes survive and the written range holds its old or its new bytes.
#[test]
fn an_unsynced_write_into_the_last_chunk_keeps_fsynced_bytes_over_kill9() {
    use rand::{RngCore, SeedableRng};
    use std::os::unix::fs::FileExt;
    let mut fs = TestFs::new();
    fs.start();
    let cases = [
        (0x40abusize, 0x1b4au64, 0x5busize),
        (0x20000, 0x1ff00, 0x10),
        (0x375bf, 0x37313, 0x100),
    ];
    let mut models = Vec::new();
    for (i, &(len, at, n)) in cases.iter().enumerate() {
        let mut model = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(i as u64).fill_bytes(&mut model);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(fs.m(&format!("f{i}")))
            .expect("create");
        f.write_all_at(&model, 0).expect("write");
        f.sync_all().expect("fsync");
        f.write_all_at(&vec![0xeeu8; n], at)
            .expect("unsynced pwrite");
        models.push((model, at as usize, n));
    }
    // Well inside batch_max_delay_ms, so the tails are still held when the daemon dies.
    sleep(Duration::from_millis(100));
    fs.kill9();
    fs.start();
    for (i, (model, at, n)) in models.iter().enumerate() {
        let got = std::fs::read(fs.m(&format!("f{i}"))).expect("read after crash");
        assert_eq!(got.len(), model.len(), "f{i}: size after kill -9");
        for (p, (g, m)) in got.iter().zip(model).enumerate() {
            let written = (*at..at + n).contains(&p);
            assert!(
                g == m || (written && *g == 0xee),
                "f{i}: byte {p:#x} is {g:#x}, fsync'd {m:#x}"
            );
        }
    }
    fs.stop();
}
