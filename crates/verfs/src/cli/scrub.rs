//! `verfsnext scrub [run|status|cancel]`: the online scrub of a mounted filesystem.
//! Exit status of a run: 0 every record verified clean, 1 damage found, 2 no daemon,
//! 3 the pass did not finish (cancelled, the daemon stopped, or an error) and found no
//! damage so far.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use verfs_core::control::{Request, Response, ScrubReport, ScrubStatus};

use super::progress::Bar;
use super::ConfigArgs;
use crate::control::client::{self, NoDaemon};

/// Arguments of `verfsnext scrub`: a subcommand, or none to start and wait.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ScrubArgs {
    #[command(subcommand)]
    cmd: Option<ScrubCmd>,
    #[command(flatten)]
    run: RunArgs,
}

/// Options of a scrub run.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print the report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Begin at the first pack even if an interrupted pass saved where it stopped.
    #[arg(long)]
    restart: bool,
    /// Return once the pass is started instead of waiting for its report.
    #[arg(long)]
    no_wait: bool,
}

/// What `scrub` was asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum ScrubCmd {
    /// Start a pass (or go on with an interrupted one) and wait for its report; the
    /// same as `scrub` without a subcommand.
    Run(RunArgs),
    /// Whether a pass runs, how far it is, where an interrupted pass stands and the
    /// last report.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running pass after its current record; the next `scrub` goes on from
    /// where it stopped.
    Cancel {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON (the state after the request).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a scrub command and maps its outcome to the documented exit status.
pub fn run(args: ScrubArgs) -> ExitCode {
    let res = match args.cmd {
        None => start(&args.run),
        Some(ScrubCmd::Run(r)) => start(&r),
        Some(ScrubCmd::Status { config, json }) => show(&config, Request::ScrubStatus, json),
        Some(ScrubCmd::Cancel { config, json }) => show(&config, Request::ScrubCancel, json),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("verfsnext: scrub: {e:#}");
            if e.downcast_ref::<NoDaemon>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(3)
            }
        }
    }
}

fn data_dir(config: &ConfigArgs) -> Result<std::path::PathBuf> {
    Ok(super::config::load(config)?.data_dir)
}

/// `scrub status` and `scrub cancel`: one request, the state printed.
fn show(config: &ConfigArgs, req: Request, json: bool) -> Result<ExitCode> {
    let Response::ScrubState(s) = client::call(&data_dir(config)?, &req)? else {
        bail!("unexpected answer from the daemon");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_status(&s);
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts a pass and, unless `--no-wait`, follows it to its report.
fn start(args: &RunArgs) -> Result<ExitCode> {
    let dir = data_dir(&args.config)?;
    let req = Request::ScrubStart {
        restart: args.restart,
    };
    let Response::ScrubStarted { run, new } = client::call(&dir, &req)? else {
        bail!("unexpected answer to scrub start");
    };
    if args.no_wait {
        if args.json {
            println!("{}", serde_json::json!({ "run": run, "new": new }));
        } else if new {
            println!("scrub {run} started; `verfsnext scrub status` shows how far it is");
        } else {
            println!("scrub {run} was running already");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(report) = follow(&dir, run, args.json)? else {
        eprintln!(
            "verfsnext: scrub: the daemon stopped; the next `verfsnext scrub` goes on where the pass stopped"
        );
        return Ok(ExitCode::from(3));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(exit_code(&report))
}

/// 1 on damage, 0 on a complete clean pass, 3 on one that did not finish.
fn exit_code(r: &ScrubReport) -> ExitCode {
    if r.damaged_count > 0 {
        ExitCode::from(1)
    } else if r.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

/// Polls the status until run `run` ended and returns its report; `None` when the
/// daemon went away first. Draws a bar on a terminal, else (text mode) a plain line on
/// stderr every ten seconds.
fn follow(dir: &Path, run: u64, json: bool) -> Result<Option<ScrubReport>> {
    let bar = Bar::new("scrub");
    bar.phase("verifying chunk records", 0);
    let plain = !json && !std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    let mut total = 0;
    loop {
        let s = match client::call(dir, &Request::ScrubStatus) {
            Ok(Response::ScrubState(s)) => s,
            Ok(_) => bail!("unexpected answer to scrub status"),
            Err(e) if e.downcast_ref::<NoDaemon>().is_some() => {
                bar.finish();
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(r) = s
            .last
            .as_ref()
            .filter(|r| r.run >= run && (!s.running || s.run > run))
        {
            bar.finish();
            return Ok(Some(r.clone()));
        }
        if let Some(p) = s.progress.filter(|_| s.run == run) {
            if p.records_total != total {
                total = p.records_total;
                bar.phase("verifying chunk records", total);
            }
            bar.set(p.records_done);
            bar.message(format!("verifying chunk records, {} damaged", p.damaged));
            if plain && last_line.elapsed() >= Duration::from_secs(10) {
                last_line = Instant::now();
                eprintln!(
                    "scrub: {}/{} records, {} of {}, {} damaged",
                    p.records_done,
                    p.records_total,
                    mib(p.bytes_done),
                    mib(p.bytes_total),
                    p.damaged
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn print_report(r: &ScrubReport) {
    match (&r.error, r.complete, r.stopped_at) {
        (Some(e), _, _) => println!("scrub {}: failed: {e}", r.run),
        (None, true, _) => println!("scrub {}: complete", r.run),
        (None, false, Some(at)) => println!(
            "scrub {}: stopped at pack {} offset {}",
            r.run, at.pack, at.offset
        ),
        (None, false, None) => println!("scrub {}: stopped", r.run),
    }
    if let Some(at) = r.resumed_from {
        println!("resumed from      pack {} offset {}", at.pack, at.offset);
    }
    println!(
        "records verified  {} ({})",
        r.records_verified,
        mib(r.bytes_verified)
    );
    println!("crc only (vault)  {}", r.crc_only);
    println!("damaged           {}", r.damaged_count);
    println!("time              {:.2} s", r.millis as f64 / 1000.0);
    for d in &r.damaged {
        let at = d.offset.map_or_else(|| "-".into(), |o| o.to_string());
        println!(
            "damaged: pack {} offset {at} chunk {}: {}: {}",
            d.pack,
            d.chunk,
            d.kind.describe(),
            d.detail
        );
        if d.files.is_empty() {
            println!("    (no file references it)");
        }
        for f in &d.files {
            println!("    {f}");
        }
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

fn print_status(s: &ScrubStatus) {
    println!("running           {}", if s.running { "yes" } else { "no" });
    if let Some(p) = &s.progress {
        println!(
            "progress          {}/{} records, {} of {}, {} damaged",
            p.records_done,
            p.records_total,
            mib(p.bytes_done),
            mib(p.bytes_total),
            p.damaged
        );
    }
    match &s.saved {
        Some(at) => println!("saved cursor      pack {} offset {}", at.pack, at.offset),
        None => println!("saved cursor      none"),
    }
    if let Some(r) = &s.last {
        println!("last run:");
        print_report(r);
    }
}
