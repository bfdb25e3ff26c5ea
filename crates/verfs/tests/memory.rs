//! The memory budget: with `memory_limit_mb = 128` a 2 GiB write of random data keeps
//! the daemon's peak resident set (VmHWM) under 1.5 times the limit, and `stats --json`
//! reports every share of the budget.

mod common;

use common::*;

/// The limit the daemon runs with, in MiB.
const LIMIT_MB: u64 = 128;
/// MiB written: far more than every buffer and cache together, so anything that grows
/// with the data written shows.
const WRITE_MB: u64 = 2048;

/// The shares `stats` must report, in order.
const SHARES: [&str; 10] = [
    "write_back",
    "compression",
    "held_tails",
    "chunk_cache",
    "dedup_cache",
    "pack_index_cache",
    "vault_cache",
    "meta_memtables",
    "meta_block_cache",
    "runtime",
];

/// A `kB` field of the daemon's `/proc/PID/status`, in bytes.
fn status_bytes(pid: libc::pid_t, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in status"));
    kib * 1024
}

#[test]
fn a_2_gib_write_stays_within_1_5_times_memory_limit_mb() {
    let mut fs = TestFs::new();
    std::fs::write(
        fs.dir().join("config.toml"),
        format!("memory_limit_mb = {LIMIT_MB}\n"),
    )
    .expect("write config");
    fs.start();
    let out = fs
        .command("timeout")
        .args(["600", "dd", "if=/dev/urandom", "bs=1M", "conv=fsync"])
        .arg(format!("count={WRITE_MB}"))
        .arg(format!("of={}", fs.m("big")))
        .output()
        .expect("run dd");
    assert!(out.status.success(), "dd: {out:?}");
    let peak = status_bytes(fs.pid(), "VmHWM:");
    let bound = (LIMIT_MB * 3 / 2) << 20;
    eprintln!(
        "daemon VmHWM after writing {WRITE_MB} MiB with memory_limit_mb = {LIMIT_MB}: {} MiB",
        peak >> 20
    );
    assert!(
        peak < bound,
        "VmHWM {} MiB after a {WRITE_MB} MiB write, bound {} MiB",
        peak >> 20,
        bound >> 20
    );

    let s = fs.stats();
    let m = &s["memory"];
    assert_eq!(m["limit_bytes"].as_u64(), Some(LIMIT_MB << 20), "{m}");
    let shares = m["shares"].as_array().expect("shares");
    let names: Vec<&str> = shares.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, SHARES, "{m}");
    let total: u64 = shares
        .iter()
        .filter_map(|s| s["limit_bytes"].as_u64())
        .sum();
    assert_eq!(total, LIMIT_MB << 20, "shares add up to the limit: {m}");
    for share in shares {
        if let Some(used) = share["used_bytes"].as_u64() {
            let limit = share["limit_bytes"].as_u64().unwrap_or(0);
            // moka evicts in its housekeeping, so a cache may briefly run a little over.
            assert!(
                used <= limit / 4 * 5 + (1 << 20),
                "share over its limit: {share}"
            );
        }
    }
    // The data went through the caches, so the measured ones are not all empty.
    let used = |name: &str| {
        shares
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["used_bytes"].as_u64())
    };
    assert!(used("dedup_cache").unwrap_or(0) > 0, "{m}");
    assert!(m["peak_rss_bytes"].as_u64().unwrap_or(0) >= peak, "{m}");
    fs.stop();
    fs.assert_no_panic();
}
