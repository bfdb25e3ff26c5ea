//! `verfsnext status`: one look at a running daemon (mount point, data dir, pid, vault,
//! snapshots, GC, space), and exit status 2 without one.

mod common;

use common::*;

fn status(fs: &TestFs) -> std::process::Output {
    fs.command("timeout")
        .args(["60", BIN.as_str(), "status", "--json", "--data-dir"])
        .arg(&fs.data)
        .output()
        .expect("run status")
}

#[test]
fn status_reports_the_running_daemon_and_exit_2_without_one() {
    let mut fs = TestFs::new();
    fs.start();
    fs.snapshot_ok(&["create", "s1"]);
    let out = status(&fs);
    assert!(out.status.success(), "{out:?}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(s["mount_point"], path_str(&fs.mnt));
    assert_eq!(s["data_dir"], path_str(&fs.data));
    assert_eq!(s["pid"], fs.pid());
    assert_eq!(s["vault"], "none");
    assert_eq!(s["snapshots"], 1);
    assert!(s["disk_free_bytes"].as_u64().unwrap_or(0) > 0, "{s}");
    let human = fs
        .command("timeout")
        .args(["60", BIN.as_str(), "status", "--data-dir"])
        .arg(&fs.data)
        .output()
        .expect("run status");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("mounted on") && text.contains("vault        none"),
        "{text}"
    );
    fs.stop();
    let out = status(&fs);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
