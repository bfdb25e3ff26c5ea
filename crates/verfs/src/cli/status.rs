//! `verfsnext status`: where the daemon of a data dir is mounted and how it is doing,
//! in one look (vault, GC, snapshots, space).

use anyhow::{bail, Result};
use verfs_core::control::{Request, Response, StatusReport};

use super::units::Sizes;
use super::ConfigArgs;
use crate::control::client;

/// Asks the daemon of the configured data dir and prints its status.
///
/// Fails (exit 2) when no daemon runs there.
pub fn run(args: &ConfigArgs, json: bool, sizes: Sizes) -> Result<()> {
    let cfg = super::config::load(args)?;
    let Response::Status(s) = client::call(&cfg.data_dir, &Request::Status)? else {
        bail!("unexpected answer to status");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_human(&s, sizes);
    }
    Ok(())
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else {
        format!("{h}h {m}m {s}s")
    }
}

fn print_human(s: &StatusReport, sizes: Sizes) {
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
    println!("packs        {}", sizes.fmt(s.pack_bytes));
    println!("disk free    {}", sizes.fmt(s.disk_free_bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_naturally() {
        assert_eq!(uptime(59), "0h 0m 59s");
        assert_eq!(uptime(90061), "1d 1h 1m");
    }
}
