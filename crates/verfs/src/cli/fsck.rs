//! `verfsnext fsck`: the offline consistency check. Exit status 0 when clean, 1 when
//! problems were found, 2 when it cannot run (a daemon holds the data dir, no data dir,
//! unreadable metadata).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use verfs_core::check::{self, Options, Progress, Report};
use verfs_core::datadir::DataDirPerms;
use verfs_core::Config;

use super::progress::Bar;
use super::ConfigArgs;

/// Arguments of `verfsnext fsck`.
#[derive(Debug, clap::Args)]
pub struct FsckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also read every pack record back: CRC, decompression and chunk id.
    #[arg(long)]
    read_data: bool,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Repair what the check finds (copying meta/ aside first): unreadable data becomes
    /// holes in the files named, refcounts and zero-ref marks are recomputed, dangling
    /// entries removed, link counts set, unnamed inodes reattached under /lost+found.
    /// Exit 0 when the check afterwards is clean.
    #[arg(long)]
    repair: bool,
}

/// Runs the check (or the repair) and maps its outcome to the documented exit status.
pub fn run(args: &FsckArgs) -> ExitCode {
    let outcome = if args.repair {
        repair(args)
    } else {
        check(args)
    };
    match outcome {
        Ok(report) if report.is_clean() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("verfsnext: fsck: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The data dir to check: `--data-dir`, else that of `--config` or the first config
/// file of the search path, else the default; with the permission policy a repair
/// writes with. Found without the config loader's notes on stderr, so a refusal stays
/// one line.
fn target(args: &ConfigArgs) -> Result<(PathBuf, DataDirPerms)> {
    let file = match &args.config {
        Some(p) => Some(p.clone()),
        None => Config::search_path().into_iter().find(|p| p.is_file()),
    };
    let cfg = match file {
        Some(p) => Config::load(&p)?,
        None => Config::default(),
    };
    let dir = args.data_dir.clone().unwrap_or(cfg.data_dir.clone());
    Ok((dir, cfg.data_dir_perms()))
}

/// `fsck --repair`: check, repair, check again; prints the changes and the final check.
fn repair(args: &FsckArgs) -> Result<Report> {
    let (dir, perms) = target(&args.config)?;
    // What SurrealKV writes gets the data dir's modes, as in the daemon.
    super::mount::restrict_umask(perms);
    let opts = Options {
        read_data: args.read_data,
    };
    let mut bar = FsckProgress(Bar::new("fsck"));
    let out = check::repair(&dir, opts, perms, &mut bar);
    bar.0.finish();
    let out = out?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(out.after);
    }
    if out.changes.is_empty() && out.before.is_clean() {
        print_human(&out.after);
        println!("nothing to repair");
        return Ok(out.after);
    }
    println!("before repair: {} problem(s)", out.before.problems.len());
    if let Some(b) = &out.backup {
        println!("metadata copied to {} before any change", b.display());
    }
    for c in &out.changes {
        match &c.path {
            Some(p) => println!("repaired: {} ({p})", c.what),
            None => println!("repaired: {}", c.what),
        }
    }
    println!("{} change(s); checking again:", out.changes.len());
    print_human(&out.after);
    Ok(out.after)
}

fn check(args: &FsckArgs) -> Result<Report> {
    let (dir, perms) = target(&args.config)?;
    // SurrealKV may replay its WAL on open; what it writes gets the data dir's modes.
    super::mount::restrict_umask(perms);
    let opts = Options {
        read_data: args.read_data,
    };
    let mut bar = FsckProgress(Bar::new("fsck"));
    let report = check::run(&dir, opts, &mut bar);
    bar.0.finish();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(report)
}

fn print_human(r: &Report) {
    for p in &r.problems {
        match &p.path {
            Some(path) => println!("problem [{}] {} ({path})", p.kind.as_str(), p.message),
            None => println!("problem [{}] {}", p.kind.as_str(), p.message),
        }
    }
    for i in &r.info {
        println!("info: {i}");
    }
    let c = &r.counts;
    println!(
        "checked {} inodes, {} dirents, {} extent versions, {} chunks, {} packs, {} snapshots",
        c.inodes, c.dirents, c.extents, c.chunks, c.packs, c.snapshots
    );
    if c.records_read > 0 {
        println!("read {} records ({} bytes)", c.records_read, c.bytes_read);
    }
    match r.problems.len() {
        0 => println!("no problems found"),
        n => println!("{n} problem(s) found"),
    }
}

/// The checker's progress on the terminal's bar.
struct FsckProgress(Bar);

impl Progress for FsckProgress {
    fn phase(&mut self, name: &str, total: u64) {
        self.0.phase(name, total);
    }

    fn advance(&mut self, done: u64) {
        self.0.set(done);
    }
}
