//! `verfsnext fsck`: the offline consistency check. Exit status 0 when clean, 1 when
//! problems were found, 2 when it cannot run (a daemon holds the data dir, no data dir,
//! unreadable metadata).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use verfs_core::check::{self, Options, Progress, Report};
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
}

/// Runs the check and maps its outcome to the documented exit status.
pub fn run(args: &FsckArgs) -> ExitCode {
    match check(args) {
        Ok(report) if report.is_clean() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("verfsnext: fsck: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The data dir to check: `--data-dir`, else that of `--config` or the first config
/// file of the search path, else the default. Found without the config loader's notes
/// on stderr, so a refusal stays one line.
fn data_dir(args: &ConfigArgs) -> Result<PathBuf> {
    if let Some(d) = &args.data_dir {
        return Ok(d.clone());
    }
    let file = match &args.config {
        Some(p) => Some(p.clone()),
        None => Config::search_path().into_iter().find(|p| p.is_file()),
    };
    Ok(match file {
        Some(p) => Config::load(&p)?.data_dir,
        None => Config::default().data_dir,
    })
}

fn check(args: &FsckArgs) -> Result<Report> {
    let dir = data_dir(&args.config)?;
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
