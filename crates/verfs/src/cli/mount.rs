//! `verfsnext mount`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use verfs_core::fs::Fs;

use super::ConfigArgs;

/// Mounts and serves until a signal or an external unmount, then shuts down cleanly.
pub fn run(args: &ConfigArgs, mountpoint: Option<PathBuf>) -> Result<()> {
    let mut cfg = super::config::load(args)?;
    if let Some(m) = mountpoint {
        cfg.mount_point = m;
    }
    init_logging(&cfg.log_level);
    check_mountpoint(&cfg.mount_point)?;
    let fs = Fs::start(&cfg).context("cannot start")?;
    eprintln!(
        "verfsnext: serving {} on {}",
        cfg.data_dir.display(),
        cfg.mount_point.display()
    );
    crate::fuse::serve(fs, &cfg)
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
