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
    // Sizes in binary units by default, exact with --bytes.
    let line = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("packs        "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no packs line: {t}"))
    };
    assert!(
        line(&text).ends_with("iB") || line(&text).ends_with(" B"),
        "{text}"
    );
    let exact = fs
        .command("timeout")
        .args(["60", BIN.as_str(), "status", "--bytes", "--data-dir"])
        .arg(&fs.data)
        .output()
        .expect("run status --bytes");
    let exact = String::from_utf8_lossy(&exact.stdout).into_owned();
    assert_eq!(
        line(&exact).parse::<u64>().ok(),
        s["pack_bytes"].as_u64(),
        "{exact}"
    );
    fs.stop();
    let out = status(&fs);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // One line, saying what to do next.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("mount it first"), "{err}");
}
