//! The intent log through a real mount: fsync'd small writes answered from the log
//! survive a crash between the log flush and the normal storing of their data (the
//! daemon aborts at a crash point right after answering such an fsync), the log is
//! replayed at the next start, and the fast path is what answered them.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::*;

/// One file under test and its bytes as of its last successful fsync.
struct Tracked {
    name: String,
    file: File,
    model: Vec<u8>,
    durable: Vec<u8>,
}

impl Tracked {
    fn create(fs: &TestFs, name: &str, rng: &mut StdRng) -> Tracked {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(fs.m(name))
            .expect("create");
        let mut model = vec![0u8; 100 * 1024];
        rng.fill(&mut model[..]);
        file.write_all_at(&model, 0).expect("first write");
        // The first fsync is answered the full way and makes the file logged.
        file.sync_all().expect("first fsync");
        Tracked {
            name: name.to_string(),
            file,
            durable: model.clone(),
            model,
        }
    }

    /// A small random change (mostly writes in and past the file, some truncates),
    /// then fdatasync; false once the daemon is gone.
    fn step(&mut self, rng: &mut StdRng) -> bool {
        let size = self.model.len() as u64;
        let done = if rng.gen_ratio(1, 8) {
            let to = rng.gen_range(size / 2..=size + 8192);
            self.model.resize(to as usize, 0);
            self.file.set_len(to)
        } else {
            let off = rng.gen_range(0..=size + 4096);
            let len = rng.gen_range(1..=8192usize);
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf[..]);
            let end = off as usize + len;
            if self.model.len() < end {
                self.model.resize(end, 0);
            }
            self.model[off as usize..end].copy_from_slice(&buf);
            self.file.write_all_at(&buf, off)
        };
        if done.is_err() || self.file.sync_data().is_err() {
            return false;
        }
        self.durable = self.model.clone();
        true
    }
}

fn check(fs: &TestFs, t: &Tracked, when: &str) {
    let got = std::fs::read(fs.m(&t.name)).expect("read back");
    assert_eq!(got.len(), t.durable.len(), "{}: size {when}", t.name);
    let first_diff = got.iter().zip(&t.durable).position(|(a, b)| a != b);
    assert!(
        first_diff.is_none(),
        "{}: bytes differ from offset {first_diff:?} {when}",
        t.name
    );
}

/// Several files do fsync'd small writes and truncates; the daemon aborts right after
/// answering the 40th fsync that the log alone made durable. Every fsync'd byte is
/// there after the restart, which replays the log.
#[test]
fn fsynced_small_writes_answered_by_the_log_survive_a_crash_before_catch_up() {
    let mut fs = TestFs::new();
    // No timer catch-up or periodic sync during the test: the fsync'd changes must
    // be durable through the log alone.
    std::fs::write(
        fs.dir().join("config.toml"),
        "batch_max_delay_ms = 60000\nsync_interval_ms = 600000\n",
    )
    .expect("config");
    fs.start_with_env(&[
        ("VERFS_CRASH_AT", "intent-answered"),
        ("VERFS_CRASH_SKIP", "39"),
    ]);
    let mut rng = StdRng::seed_from_u64(0x1e7e);
    let mut files: Vec<Tracked> = (0..3)
        .map(|i| Tracked::create(&fs, &format!("db{i}"), &mut rng))
        .collect();
    let mut steps = 0;
    'run: for _ in 0..200 {
        for t in files.iter_mut() {
            if !t.step(&mut rng) {
                break 'run;
            }
            steps += 1;
        }
    }
    assert!(steps >= 40, "daemon died after only {steps} fsyncs");
    let status = fs.reap_crashed(Duration::from_secs(60));
    assert!(status.code() != Some(0), "daemon exited cleanly");
    assert!(
        fs.log().contains("crash point intent-answered reached"),
        "crash point not reached; log:\n{}",
        fs.log()
    );
    fs.start();
    assert!(
        fs.log().contains("intent log replayed"),
        "no replay at restart; log:\n{}",
        fs.log()
    );
    for t in &files {
        check(&fs, t, "after the crash");
    }
    // The replayed data is stored the normal way: it survives a clean remount too, and
    // the filesystem checks clean.
    fs.restart();
    for t in &files {
        check(&fs, t, "after a clean remount");
    }
    fs.assert_no_panic();
    fs.assert_fsck_clean();
}

/// A database-like pattern (small overwrites, each fsync'd) is answered through the
/// log, not by syncing packs and metadata each time; a clean shutdown leaves nothing
/// to replay.
#[test]
fn repeated_small_fsyncs_take_the_log_path_and_a_clean_stop_empties_it() {
    let mut fs = TestFs::new();
    fs.start();
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = Tracked::create(&fs, "db", &mut rng);
    for _ in 0..50 {
        assert!(t.step(&mut rng), "fsync failed");
    }
    let activity = &fs.stats()["activity"];
    let logged = activity["fsyncs_logged"].as_u64().unwrap_or(0);
    assert!(
        logged >= 40,
        "only {logged} fsyncs through the log: {activity}"
    );
    drop(t.file);
    fs.restart();
    assert!(
        !fs.log().contains("intent log replayed"),
        "a clean stop left records to replay; log:\n{}",
        fs.log()
    );
    let got = std::fs::read(fs.m("db")).expect("read back");
    assert!(got == t.durable, "contents changed over a clean remount");
    fs.assert_fsck_clean();
}
