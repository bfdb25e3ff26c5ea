//! `verfsnext mount`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use verfs_core::datadir::DataDirPerms;
use verfs_core::fs::Fs;

use super::ConfigArgs;

/// Mounts and serves until a signal or an external unmount, then shuts down cleanly.
pub fn run(args: &ConfigArgs, mountpoint: Option<PathBuf>) -> Result<()> {
    let mut cfg = super::config::load(args)?;
    if let Some(m) = mountpoint {
        cfg.mount_point = m;
    }
    init_logging(&cfg.log_level);
    restrict_umask(cfg.data_dir_perms());
    check_mountpoint(&cfg.mount_point)?;
    let fs = Fs::start(&cfg).context("cannot start")?;
    eprintln!(
        "verfsnext: serving {} on {}",
        cfg.data_dir.display(),
        cfg.mount_point.display()
    );
    crate::fuse::serve(fs, &cfg)
}

/// Sets the umask so that every file the daemon creates in the data dir, including
/// SurrealKV's, gets no bit `perms` refuses (the library sets its own modes explicitly;
/// this covers what it does not create itself). Requests through the mount carry the
/// caller's umask, so this changes nothing inside the filesystem.
fn restrict_umask(perms: DataDirPerms) {
    // SAFETY: umask(2) cannot fail and has no memory-safety preconditions; no thread
    // creating files is running yet.
    unsafe { libc::umask(perms.umask() as libc::mode_t) };
}

fn check_mountpoint(p: &Path) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("mount point {} is not a directory", p.display()),
        Err(e) => bail!("mount point {}: {e}", p.display()),
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},fuser=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
