//! Detaching the daemon for the mount helper: mount(8) waits for the helper, so the
//! helper forks; the child starts a new session and serves, the parent waits on a pipe
//! and exits 0 when the child says the mount answers, or 1 with the child's error. No
//! sleeping and guessing: the child writes `R` once ready or `E` and its message, and a
//! child that dies first closes the pipe, which the parent reports too.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use verfs_core::Config;

use crate::fuse::{Lifecycle, ServeOptions};

/// Forks; the parent returns when the child is ready (Ok) or failed (Err with its
/// message); the child detaches, serves `cfg` until unmounted and exits.
///
/// Must run before any thread is started (fork copies only the calling thread).
pub fn serve_detached(cfg: Config, mut opts: ServeOptions, log_file: Option<&Path>) -> Result<()> {
    let (read_end, write_end) = pipe()?;
    // SAFETY: the process is single-threaded here (nothing spawned yet), so the child
    // may keep running Rust code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("cannot fork the daemon"),
        0 => {
            drop(read_end);
            let ready = Arc::new(Mutex::new(Some(File::from(write_end))));
            let code = child(cfg, &mut opts, log_file, &ready);
            std::process::exit(code)
        }
        _ => {
            drop(write_end);
            wait_ready(File::from(read_end))
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The parent's side: what the child wrote before closing the pipe.
fn wait_ready(mut pipe: File) -> Result<()> {
    let mut msg = Vec::new();
    pipe.read_to_end(&mut msg)
        .context("cannot read the daemon's readiness")?;
    match msg.split_first() {
        Some((b'R', _)) => Ok(()),
        Some((b'E', text)) => bail!("{}", String::from_utf8_lossy(text)),
        _ => bail!("the daemon exited before the filesystem was ready"),
    }
}

/// The child's side; returns the exit status.
fn child(
    cfg: Config,
    opts: &mut ServeOptions,
    log_file: Option<&Path>,
    ready: &Arc<Mutex<Option<File>>>,
) -> i32 {
    let report = |tag: u8, text: &str| {
        if let Some(mut f) = ready.lock().ok().and_then(|mut g| g.take()) {
            let _ = f.write_all(&[tag]);
            let _ = f.write_all(text.as_bytes());
        }
    };
    if let Err(e) = detach(log_file) {
        report(b'E', &format!("{e:#}"));
        return 1;
    }
    let on_ready = ready.clone();
    opts.on_event = Some(Box::new(move |e| {
        if e == Lifecycle::Ready {
            if let Some(mut f) = on_ready.lock().ok().and_then(|mut g| g.take()) {
                let _ = f.write_all(b"R");
            }
        }
    }));
    let opts = std::mem::take(opts);
    match super::mount::serve_config(cfg, opts) {
        Ok(()) => 0,
        Err(e) => {
            report(b'E', &format!("{e:#}"));
            tracing::error!(error = %format!("{e:#}"), "daemon stopped");
            1
        }
    }
}

/// New session (no controlling terminal, not killed with mount's process group),
/// working directory `/`, stdin from /dev/null; logs to `log_file`, else to the
/// inherited stderr when that is a journal socket or a file, else nowhere: a terminal
/// would get lines after the prompt, and a pipe held open would hang whoever reads
/// mount's output until the filesystem is unmounted.
fn detach(log_file: Option<&Path>) -> Result<()> {
    // SAFETY: setsid has no preconditions; it fails only for a group leader, which a
    // freshly forked child is not.
    if unsafe { libc::setsid() } < 0 {
        return Err(std::io::Error::last_os_error()).context("setsid");
    }
    std::env::set_current_dir("/").context("chdir /")?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("cannot open /dev/null")?;
    redirect(&null, libc::STDIN_FILENO)?;
    let log = match log_file {
        Some(p) => File::options()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(p)
            .with_context(|| format!("cannot open log file {}", p.display()))?,
        None => null,
    };
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        if log_file.is_some() || !keeps_logs(fd) {
            redirect(&log, fd)?;
        }
    }
    Ok(())
}

/// Whether `fd` is a socket (journald's stream) or a regular file.
fn keeps_logs(fd: libc::c_int) -> bool {
    // SAFETY: `st` is plain data fstat fills; an invalid fd only makes it fail.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    matches!(st.st_mode & libc::S_IFMT, libc::S_IFSOCK | libc::S_IFREG)
}

fn redirect(f: &File, target: libc::c_int) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: both are open descriptors; dup2 replaces `target` atomically.
    if unsafe { libc::dup2(f.as_raw_fd(), target) } < 0 {
        return Err(std::io::Error::last_os_error()).context("dup2");
    }
    Ok(())
}
