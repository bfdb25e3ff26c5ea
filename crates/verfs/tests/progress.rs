//! Long commands show a progress bar on a terminal and plain lines otherwise: `fsck
//! --read-data` run in a tmux pane (a real terminal) leaves a drawn bar in the captured
//! pane; the same command piped prints phase lines without escape codes or carriage
//! returns.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// A stopped filesystem holding some data, so fsck has records to read.
fn filled() -> TestFs {
    let mut fs = TestFs::new();
    fs.start();
    write_random(&fs.m("a.bin"), 48 << 20, 1);
    write_random(&fs.m("b.bin"), 16 << 20, 2);
    fs.stop();
    fs
}

#[test]
fn fsck_draws_a_bar_on_a_terminal_and_plain_lines_in_a_pipe() {
    let fs = filled();
    let fsck = format!(
        "{} fsck --read-data --data-dir {}",
        BIN.as_str(),
        path_str(&fs.data)
    );

    let socket = format!("verfs-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let mut all = vec!["-L", socket.as_str()];
        all.extend_from_slice(args);
        run_timeout(30, "tmux", &all)
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "40",
        &format!("{fsck}; echo FSCK-EXIT=$?; sleep 120"),
    ]);
    assert!(started.status.success(), "{started:?}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let pane = loop {
        let cap = tmux(&["capture-pane", "-p"]);
        let text = String::from_utf8_lossy(&cap.stdout).into_owned();
        if text.contains("FSCK-EXIT=") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "fsck did not finish in tmux:\n{text}"
        );
        sleep(Duration::from_millis(200));
    };
    let _ = tmux(&["kill-server"]);
    assert!(pane.contains("FSCK-EXIT=0"), "{pane}");
    // The bar as drawn: `fsck: reading pack ... [=====...] N/N`.
    let bar = pane
        .lines()
        .find(|l| l.starts_with("fsck: ") && l.contains("[===") && l.contains(']'));
    assert!(bar.is_some(), "no progress bar on the terminal:\n{pane}");
    assert!(
        !pane.contains("fsck: done"),
        "plain lines on a terminal:\n{pane}"
    );

    let piped = sh_ok(&format!("{fsck} 2>&1 | cat"));
    assert!(piped.contains("fsck: inodes\n"), "{piped}");
    assert!(piped.contains("fsck: reading pack "), "{piped}");
    assert!(piped.contains("fsck: done\n"), "{piped}");
    assert!(
        !piped.contains('\u{1b}') && !piped.contains('\r'),
        "{piped:?}"
    );
    assert!(piped.contains("no problems found"), "{piped}");
}

#[test]
fn snapshot_delete_wait_returns_once_the_sweep_is_done() {
    let mut fs = TestFs::new();
    fs.start();
    for i in 0..200 {
        std::fs::write(fs.mnt.join(format!("f{i}")), format!("{i}")).expect("write");
    }
    fs.snapshot_ok(&["create", "s1"]);
    for i in 0..200 {
        std::fs::remove_file(fs.mnt.join(format!("f{i}"))).expect("unlink");
    }
    let out = fs.snapshot_ok(&["delete", "--wait", "s1"]);
    assert!(
        out.contains("deleted s1") && out.contains("sweep finished"),
        "{out}"
    );
    let removed: u64 = out
        .split("sweep finished: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a count of removed versions");
    assert!(removed > 0, "{out}");
    let status = fs
        .command("timeout")
        .args(["60", BIN.as_str(), "status", "--json", "--data-dir"])
        .arg(&fs.data)
        .output()
        .expect("status");
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(s["sweep_pending"], false, "{s}");
    fs.stop();
}
