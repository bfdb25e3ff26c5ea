//! `verfsnext status`: where the daemon of a data dir is mounted and how it is doing,
//! in one look (vault, GC, snapshots, space).

use anyhow::{bail, Result};
use verfs_core::control::{Request, Response, StatusReport};

use super::ConfigArgs;
use crate::control::client;

/// Asks the daemon of the configured data dir and prints its status.
///
/// Fails (exit 2) when no daemon runs there.
pub fn run(args: &ConfigArgs, json: bool) -> Result<()> {
    let cfg = super::config::load(args)?;
    let Response::Status(s) = client::call(&cfg.data_dir, &Request::Status)? else {
        bail!("unexpected answer to status");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_human(&s);
    }
    Ok(())
}

/// `n` bytes for a person: binary units with one decimal.
fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else {
        format!("{h}h {m}m {s}s")
    }
}

fn print_human(s: &StatusReport) {
    let mode = if s.read_only {
        "read-only"
    } else {
        "read-write"
    };
    println!("mounted on   {} ({mode})", s.mount_point);
    println!("data dir     {}", s.data_dir);
    println!("daemon       pid {}, up {}", s.pid, uptime(s.uptime_secs));
    println!("vault        {}", s.vault);
    let sweep = if s.sweep_pending {
        " (sweep running)"
    } else {
        ""
    };
    println!("snapshots    {}{sweep}", s.snapshots);
    let gc = if s.gc_running { "running" } else { "idle" };
    println!("gc           {gc}, {} runs finished", s.gc_runs);
    println!("packs        {}", human(s.pack_bytes));
    println!("disk free    {}", human(s.disk_free_bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_uptimes_read_naturally() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
        assert_eq!(uptime(59), "0h 0m 59s");
        assert_eq!(uptime(90061), "1d 1h 1m");
    }
}
