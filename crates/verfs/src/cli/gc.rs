//! `verfsnext gc run|status`.

use std::time::Duration;

use anyhow::{bail, Result};
use verfs_core::control::{GcReport, GcStatus, Request, Response};

use super::progress::Bar;
use super::units::{human, Sizes};
use super::ConfigArgs;
use crate::control::client;

/// What `gc` was asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum GcCmd {
    /// Free the chunks nothing references and give their pack space back: deleted
    /// chunk records go to packs/.DISCARD, then packs holding enough dead bytes are
    /// removed or rewritten.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Wait until the run finished and print what it did.
        #[arg(long)]
        wait: bool,
        /// Print JSON (with --wait: the run's figures).
        #[arg(long)]
        json: bool,
        /// Print sizes as exact byte counts instead of KiB/MiB/GiB.
        #[arg(long)]
        bytes: bool,
    },
    /// Whether GC runs, how many runs finished and what the last one did.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print sizes as exact byte counts instead of KiB/MiB/GiB.
        #[arg(long)]
        bytes: bool,
    },
}

/// Runs a GC command against the daemon of the configured data dir.
pub fn run(cmd: GcCmd) -> Result<()> {
    match cmd {
        GcCmd::Run {
            config,
            wait: true,
            json: false,
            bytes,
        } => print_report(&run_with_progress(&config)?, Sizes { exact: bytes }),
        GcCmd::Run {
            config,
            wait,
            json,
            bytes,
        } => match call(&config, Request::GcRun { wait })? {
            Response::GcDone(r) if json => println!("{}", serde_json::to_string_pretty(&r)?),
            Response::GcDone(r) => print_report(&r, Sizes { exact: bytes }),
            Response::GcStarted if json => println!("{{\"started\": true}}"),
            Response::GcStarted => println!("GC started; `verfsnext gc status` shows when it ends"),
            _ => bail!("unexpected answer to gc run"),
        },
        GcCmd::Status {
            config,
            json,
            bytes,
        } => {
            let Response::GcState(s) = call(&config, Request::GcStatus)? else {
                bail!("unexpected answer to gc status");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s, Sizes { exact: bytes });
            }
        }
    }
    Ok(())
}

fn call(config: &ConfigArgs, req: Request) -> Result<Response> {
    let cfg = super::config::load(config)?;
    client::call(&cfg.data_dir, &req)
}

/// `gc run --wait` for a person: the run is asked for on one connection while another
/// polls `gc status` for the progress bar (drawn only on a terminal).
fn run_with_progress(config: &ConfigArgs) -> Result<GcReport> {
    let dir = super::config::load(config)?.data_dir;
    let run_dir = dir.clone();
    let worker = std::thread::spawn(move || client::call(&run_dir, &Request::GcRun { wait: true }));
    let bar = Bar::new("gc");
    let mut stage = 0;
    while !worker.is_finished() {
        if let Ok(Response::GcState(GcStatus {
            progress: Some(p), ..
        })) = client::call(&dir, &Request::GcStatus)
        {
            if p.stage != stage {
                stage = p.stage;
                match stage {
                    1 => bar.phase("freeing chunk records", 0),
                    _ => bar.phase("reclaiming packs", p.packs_total),
                }
            }
            if stage == 1 {
                bar.set(p.chunks_freed);
            } else {
                bar.set(p.packs_done);
                bar.message(format!(
                    "reclaiming packs, {} back",
                    human(p.bytes_reclaimed)
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish();
    match worker.join() {
        Ok(answer) => match answer? {
            Response::GcDone(r) => Ok(r),
            _ => bail!("unexpected answer to gc run"),
        },
        Err(_) => bail!("gc run: the request thread failed"),
    }
}

fn print_report(r: &GcReport, sizes: Sizes) {
    let mib = |b| sizes.fmt(b);
    println!(
        "chunks freed      {} ({} stored)",
        r.chunks_freed,
        mib(r.chunk_bytes_freed)
    );
    println!("packs removed     {}", r.packs_deleted);
    println!("packs rewritten   {}", r.packs_rewritten);
    println!("space reclaimed   {}", mib(r.bytes_reclaimed));
    println!("bytes rewritten   {}", mib(r.bytes_written));
    println!("time              {:.2} s", r.millis as f64 / 1000.0);
}

fn print_status(s: &GcStatus, sizes: Sizes) {
    println!("running           {}", if s.running { "yes" } else { "no" });
    println!("runs finished     {}", s.runs);
    println!("discard entries   {}", s.discard_entries);
    if let Some(r) = &s.last {
        println!("last run:");
        print_report(r, sizes);
    }
}
