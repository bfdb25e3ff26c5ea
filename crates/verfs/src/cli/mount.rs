//! `verfsnext mount`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use verfs_core::datadir::DataDirPerms;
use verfs_core::fs::Fs;
use verfs_core::Config;

use crate::fuse::{Lifecycle, ServeOptions};

use super::ConfigArgs;

/// Mounts and serves in the foreground until a signal or an external unmount, then
/// shuts down cleanly; tells systemd (`Type=notify`) when it is ready and stopping.
pub fn run(args: &ConfigArgs, mountpoint: Option<PathBuf>, read_only: bool) -> Result<()> {
    let mut cfg = super::config::load_noting(args)?;
    if let Some(m) = mountpoint {
        cfg.mount_point = m;
    }
    cfg.read_only |= read_only;
    check_mountpoint(&cfg.mount_point)?;
    let opts = ServeOptions {
        kernel_flags: Vec::new(),
        on_event: Some(Box::new(notify_systemd)),
    };
    serve_config(cfg, opts)
}

/// Starts the filesystem of `cfg` and serves it (the foreground command and the
/// detached helper's child share this).
///
/// Fails if the data dir cannot be opened, the mount fails, or the final sync fails.
pub(super) fn serve_config(cfg: Config, opts: ServeOptions) -> Result<()> {
    init_logging(&cfg.log_level);
    restrict_umask(cfg.data_dir_perms());
    let fs = Fs::start(&cfg).context("cannot start")?;
    crate::heap::start_trimmer();
    eprintln!(
        "verfsnext: serving {} on {}{}",
        cfg.data_dir.display(),
        cfg.mount_point.display(),
        if cfg.read_only { " (read-only)" } else { "" }
    );
    crate::fuse::serve(fs, &cfg, opts)
}

/// `sd_notify` READY=1 and STOPPING=1 when started by systemd with `Type=notify`
/// (`NOTIFY_SOCKET` set); nothing otherwise.
fn notify_systemd(e: Lifecycle) {
    let state = match e {
        Lifecycle::Ready => sd_notify::NotifyState::Ready,
        Lifecycle::Stopping => sd_notify::NotifyState::Stopping,
    };
    if let Err(err) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}

/// Sets the umask so that every file the daemon creates in the data dir, including
/// SurrealKV's, gets no bit `perms` refuses (the library sets its own modes explicitly;
/// this covers what it does not create itself). Requests through the mount carry the
/// caller's umask, so this changes nothing inside the filesystem.
pub(super) fn restrict_umask(perms: DataDirPerms) {
    // SAFETY: umask(2) cannot fail and has no memory-safety preconditions; no thread
    // creating files is running yet.
    unsafe { libc::umask(perms.umask() as libc::mode_t) };
}

/// Fails unless `p` is an existing directory (said before anything is started).
pub(super) fn check_mountpoint(p: &Path) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("mount point {} is not a directory", p.display()),
        Err(e) => bail!("mount point {}: {e}", p.display()),
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},fuser=warn,fuser::session=error"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
