//! Command-line parsing and the commands.

mod config;
mod crypt;
mod daemon;
mod docs;
mod fsck;
mod gc;
mod helper;
mod mount;
mod progress;
mod scrub;
mod snapshot;
mod stats;
mod status;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::control::client;

/// VerFSNext: a deduplicating, compressing, snapshotting FUSE filesystem.
#[derive(Debug, Parser)]
#[command(
    name = "verfsnext",
    version,
    about = "VerFSNext: a deduplicating, compressing, snapshotting FUSE filesystem with an encrypted folder (/.vault)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount the filesystem and serve it in the foreground until SIGINT, SIGTERM or an
    /// external unmount (`mount -t fuse.verfsnext` detaches instead; see the README).
    #[command(after_long_help = MOUNT_HELPER_HELP)]
    Mount(MountArgs),
    /// Print space, dedup, compression and activity figures of the running daemon.
    Stats(StatsArgs),
    /// Print where the daemon of a data dir is mounted, its uptime, vault state, GC
    /// state, snapshot count and space (exit 2: no daemon).
    Status(StatsArgs),
    /// Create, list, delete and compare snapshots of the running daemon's filesystem.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Run garbage collection on the running daemon, or show its state.
    #[command(subcommand)]
    Gc(gc::GcCmd),
    /// Verify every stored chunk of the running daemon's filesystem at a bounded rate,
    /// like `zpool scrub`, and name the files a damaged one breaks: exit 0 clean, 1
    /// damage found, 2 no daemon, 3 the pass did not finish. Without a subcommand:
    /// `scrub run`.
    Scrub(scrub::ScrubArgs),
    /// Check an unmounted data dir offline, writing nothing (with --repair: fix what it
    /// finds): exit 0 clean, 1 problems found (left), 2 cannot run (a daemon holds it).
    Fsck(fsck::FsckArgs),
    /// Create, unlock, lock or re-key the encrypted folder /.vault, or show its state:
    /// exit 0 done, 1 usage or state error, 2 no daemon, 3 wrong password or key file,
    /// 4 key file unreadable or malformed.
    Crypt(crypt::CryptArgs),
    /// Print a shell completion script: `verfsnext completions bash > /etc/bash_completion.d/verfsnext`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (verfsnext(1)), or with --dir write one page per command there.
    Man {
        /// Write verfsnext.1 and verfsnext-COMMAND.1 into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The mount(8) helper's usage, shown by `mount --help` and in verfsnext-mount(1).
const MOUNT_HELPER_HELP: &str = "\
From mount(8) or /etc/fstab (installed as /sbin/mount.fuse.verfsnext):
  mount -t fuse.verfsnext DATA_DIR MOUNTPOINT [-o OPTIONS]
  fstab: DATA_DIR MOUNTPOINT fuse.verfsnext config=/etc/verfsnext/config.toml,nofail 0 0
The daemon detaches and mount returns once the filesystem answers; `umount MOUNTPOINT`
ends it after its final sync. OPTIONS: config=FILE, any config field as key=value
(n_threads=8, snapshots.hourly=24), ro/rw, noatime/relatime, nosuid, nodev, noexec,
sync, dirsync, log_file=FILE (else logs go to a journal or file on stderr, or nowhere),
foreground; defaults, auto, noauto, user(s), nofail, _netdev, x-* and comment= are
left to mount(8) and systemd. -s ignores unknown options, -f checks without mounting.";

#[derive(Debug, clap::Args)]
struct StatsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print sizes as exact byte counts instead of KiB/MiB/GiB.
    #[arg(long)]
    bytes: bool,
}

/// Where the configuration and data live; shared by every command that finds a daemon.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (default: ./config.toml, ~/.config/verfsnext/config.toml,
    /// /etc/verfsnext/config.toml, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct MountArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Where to mount (overrides `mount_point` of the configuration).
    mountpoint: Option<PathBuf>,
    /// Serve read-only (config `read_only`): changes fail with EROFS.
    #[arg(long)]
    read_only: bool,
}

/// Runs the command line; errors are printed as one line on stderr.
pub fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    if helper::is_helper_call(&raw) {
        return helper::main(&raw);
    }
    let args = crypt::seed_aliases(raw);
    let crypt = args.get(1).is_some_and(|a| a == "crypt");
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // `crypt` documents 1 for a usage error; clap's own 2 elsewhere.
            return match e.exit_code() {
                0 => ExitCode::SUCCESS,
                _ if crypt => ExitCode::FAILURE,
                c => ExitCode::from(c as u8),
            };
        }
    };
    let res = match cli.command {
        Command::Mount(a) => mount::run(&a.config, a.mountpoint, a.read_only),
        Command::Stats(a) => stats::run(&a.config, a.json, units::Sizes { exact: a.bytes }),
        Command::Status(a) => status::run(&a.config, a.json, units::Sizes { exact: a.bytes }),
        Command::Snapshot(c) => snapshot::run(c),
        Command::Gc(c) => gc::run(c),
        Command::Fsck(a) => return fsck::run(&a),
        Command::Scrub(a) => return scrub::run(a),
        Command::Crypt(a) => return crypt::run(&a),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verfsnext: error: {e:#}");
            // No daemon to talk to is told apart from a refused command.
            if e.downcast_ref::<client::NoDaemon>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
