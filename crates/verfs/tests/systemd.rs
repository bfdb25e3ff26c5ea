//! systemd: the shipped unit passes `systemd-analyze verify`, and the daemon speaks the
//! `sd_notify` protocol of `Type=notify` (READY=1 once the mount answers, STOPPING=1 at
//! SIGTERM) to a socket the test listens on, stops cleanly under a writer well within
//! the unit's `TimeoutStopSec`, and logs without colour codes when not on a terminal.
//! (systemd is not PID 1 on the test machine, so `systemd-run --wait` is not used.)

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const UNIT: &str = include_str!("../../../packaging/verfsnext.service");

/// The unit's `TimeoutStopSec`, which a stop under load must stay well inside.
fn timeout_stop_secs() -> u64 {
    UNIT.lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("the unit sets TimeoutStopSec in seconds")
}

#[test]
fn shipped_unit_verifies() {
    let dir = tempdir();
    let bindir = std::path::Path::new(BIN.as_str())
        .parent()
        .expect("binary dir")
        .to_path_buf();
    let unit = dir.path().join("verfsnext.service");
    std::fs::write(&unit, UNIT.replace("@BINDIR@", &path_str(&bindir))).expect("write unit");
    // --man=no: the man pages are not installed on the test machine.
    let out = run_timeout(
        60,
        "systemd-analyze",
        &["verify", "--man=no", &path_str(&unit)],
    );
    assert!(out.status.success(), "{out:?}");
    // Unknown or misspelt settings are only warnings: none may appear.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        UNIT.contains("Type=notify"),
        "the unit must wait for READY=1"
    );
}

/// Kills the daemon if the test fails before it exits.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next notification's assignments (newline-separated `KEY=VALUE` lines).
fn recv(sock: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification before the timeout");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn notify_ready_then_stopping_and_a_clean_stop_under_a_writer() {
    let fs = TestFs::new();
    let sock_path = fs.dir().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let log_path = fs.dir().join("unit.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = fs
        .command(BIN.as_str())
        .args(["mount", "--data-dir"])
        .arg(&fs.data)
        .arg(&fs.mnt)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn daemon");
    let mut daemon = Daemon(child);
    assert_eq!(recv(&sock), vec!["READY=1".to_string()]);
    // Ready means mounted and answering, control socket included: no polling here.
    assert_eq!(mount_fstype(&fs.mnt).as_deref(), Some(FSTYPE));
    assert!(fs.stats().is_object());

    let writer = Background::spawn(&format!(
        "dd if=/dev/urandom of={} bs=1M count=4000 2>/dev/null",
        fs.m("big")
    ));
    std::thread::sleep(Duration::from_secs(2));
    let pid = libc::pid_t::try_from(daemon.0.id()).expect("pid");
    let stop = Instant::now();
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(recv(&sock), vec!["STOPPING=1".to_string()]);
    let deadline = stop + Duration::from_secs(timeout_stop_secs() / 2);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no clean stop within half of TimeoutStopSec"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("stopped under a writer in {:?}", stop.elapsed());
    assert!(status.success(), "{status}");
    let _ = writer.finish(Duration::from_secs(30));
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(text.contains("clean shutdown complete"), "{text}");
    // journald-friendly: no ANSI colour codes when stderr is not a terminal.
    assert!(!text.contains('\u{1b}'), "{text}");
    drop(daemon);
    let mut fs = fs;
    fs.assert_fsck_clean();
}
