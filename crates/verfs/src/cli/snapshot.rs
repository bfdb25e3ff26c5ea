//! `verfsnext snapshot create|list|delete|diff`.

use std::path::Path;

use anyhow::{bail, Result};
use verfs_core::control::{DiffEntry, DiffKind, Request, Response, SnapshotInfo};

use super::progress::Bar;
use super::units::Sizes;
use super::ConfigArgs;
use crate::control::client;

/// What `snapshot` was asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCmd {
    /// Take a snapshot of the live tree (instant; prints its name and generation).
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// Its name: 1-255 bytes, no '/', not '.' or '..'.
        name: String,
    },
    /// List the snapshots: name, creation time, generation.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also show the bytes each references and the bytes only it holds (what
        /// deleting it frees); walks every extent.
        #[arg(long)]
        space: bool,
        /// With --space: exact byte counts instead of KiB/MiB/GiB.
        #[arg(long)]
        bytes: bool,
    },
    /// Delete a snapshot; the space only it held is freed by a background sweep.
    Delete {
        #[command(flatten)]
        config: ConfigArgs,
        /// Its name.
        name: String,
        /// Wait until the background sweep has removed its versions (progress on a
        /// terminal); GC can then give the space back.
        #[arg(long)]
        wait: bool,
    },
    /// What changed from snapshot A to snapshot B, or to the live tree: `+` created,
    /// `-` removed, `M` changed, `R old -> new` renamed.
    Diff {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The older snapshot.
        from: String,
        /// The newer snapshot (default: the live tree).
        to: Option<String>,
    },
}

/// Runs a snapshot command against the daemon of the configured data dir.
pub fn run(cmd: SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Create { config, name } => {
            let s = expect_snapshot(call(&config, Request::SnapshotCreate { name })?)?;
            println!("{}\tgeneration {}", s.name, s.generation);
        }
        SnapshotCmd::Delete { config, name, wait } => {
            let dir = super::config::load(&config)?.data_dir;
            // Counted from before the delete: a small sweep may end before a first poll.
            let before = if wait { sweep_state(&dir)?.1 } else { 0 };
            let s = expect_snapshot(client::call(&dir, &Request::SnapshotDelete { name })?)?;
            println!("deleted {}", s.name);
            if wait {
                let removed = wait_for_sweep(&dir, before)?;
                println!("sweep finished: {removed} versions removed");
            }
        }
        SnapshotCmd::List {
            config,
            json,
            space,
            bytes,
        } => {
            let Response::Snapshots(list) = call(&config, Request::SnapshotList { space })? else {
                bail!("unexpected answer to snapshot list");
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list_json(&list.snapshots))?
                );
            } else {
                print_list(&list.snapshots, space, Sizes { exact: bytes });
                if list.sweep_pending {
                    println!("(sweep of deleted snapshots in progress)");
                }
            }
        }
        SnapshotCmd::Diff {
            config,
            json,
            from,
            to,
        } => {
            let Response::Diff { entries } = call(&config, Request::SnapshotDiff { from, to })?
            else {
                bail!("unexpected answer to snapshot diff");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for e in &entries {
                    println!("{}", diff_line(e));
                }
            }
        }
    }
    Ok(())
}

fn call(config: &ConfigArgs, req: Request) -> Result<Response> {
    let cfg = super::config::load(config)?;
    client::call(&cfg.data_dir, &req)
}

/// Whether a sweep is pending, and the versions swept since the daemon started.
fn sweep_state(dir: &Path) -> Result<(bool, u64)> {
    match client::call(dir, &Request::Status)? {
        Response::Status(s) => Ok((s.sweep_pending, s.sweep_removed)),
        _ => bail!("unexpected answer to status"),
    }
}

/// Polls the daemon until no sweep is pending, showing the versions removed since
/// `before`; returns that count.
fn wait_for_sweep(dir: &Path, before: u64) -> Result<u64> {
    let bar = Bar::new("sweep");
    bar.phase("removing the deleted snapshot's versions", 0);
    loop {
        let (pending, removed) = sweep_state(dir)?;
        let done = removed.saturating_sub(before);
        bar.set(done);
        if !pending {
            bar.finish();
            return Ok(done);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn expect_snapshot(r: Response) -> Result<SnapshotInfo> {
    match r {
        Response::Snapshot(s) => Ok(s),
        _ => bail!("unexpected answer from the daemon"),
    }
}

/// A creation time in local time, RFC 3339.
fn local_time(s: &SnapshotInfo) -> String {
    chrono::DateTime::from_timestamp(s.created_secs, s.created_nanos)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        })
        .unwrap_or_else(|| format!("@{}", s.created_secs))
}

fn list_json(list: &[SnapshotInfo]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|s| {
            let mut v = serde_json::json!({
                "name": s.name,
                "created": local_time(s),
                "generation": s.generation,
                "scheduled": s.scheduled,
            });
            if let (Some(r), Some(u)) = (s.referenced_bytes, s.unique_bytes) {
                v["referenced_bytes"] = r.into();
                v["unique_bytes"] = u.into();
            }
            v
        })
        .collect()
}

fn print_list(list: &[SnapshotInfo], space: bool, sizes: Sizes) {
    let width = list.iter().map(|s| s.name.len()).max().unwrap_or(0).max(24);
    if space {
        println!(
            "{:<width$} {:<25} {:>10} {:<8} {:>14} {:>14}",
            "NAME", "CREATED", "GEN", "SCHEDULE", "REFER", "UNIQUE"
        );
    } else {
        println!(
            "{:<width$} {:<25} {:>10} {:<8}",
            "NAME", "CREATED", "GEN", "SCHEDULE"
        );
    }
    for s in list {
        let kind = s.scheduled.as_deref().unwrap_or("-");
        match (s.referenced_bytes, s.unique_bytes) {
            (Some(r), Some(u)) if space => println!(
                "{:<width$} {:<25} {:>10} {:<8} {:>14} {:>14}",
                s.name,
                local_time(s),
                s.generation,
                kind,
                sizes.fmt(r),
                sizes.fmt(u)
            ),
            _ => println!(
                "{:<width$} {:<25} {:>10} {:<8}",
                s.name,
                local_time(s),
                s.generation,
                kind
            ),
        }
    }
}

fn diff_line(e: &DiffEntry) -> String {
    match e.kind {
        DiffKind::Created => format!("+\t{}", e.path),
        DiffKind::Removed => format!("-\t{}", e.path),
        DiffKind::Modified => format!("M\t{}", e.path),
        DiffKind::Renamed => format!("R\t{} -> {}", e.path, e.new_path.as_deref().unwrap_or("?")),
    }
}
