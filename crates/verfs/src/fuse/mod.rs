//! The FUSE side: the adapter, the mount, and the shutdown barrier.
//!
//! `serve` mounts, runs the session threads, and waits for SIGINT/SIGTERM or for the
//! session to end (external unmount). Either way it then unmounts, waits for the
//! session threads (aborting the connection if open files keep a lazy unmount alive),
//! and shuts the filesystem down: drain batches, sync packs then metadata, clean mark.

mod adapter;
mod attr;
mod sched;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fuser::{Config as FuseConfig, MountOption, Session, SessionACL};
use signal_hook::consts::{SIGINT, SIGTERM};
use verfs_core::fs::Fs;
use verfs_core::Config;

pub use adapter::Adapter;

/// Kernel readahead for the mount, in KiB. The kernel starts FUSE mounts at 128 KiB,
/// so a sequential reader gets 128 KiB requests; with 4 MiB it sends 1 MiB requests
/// (the FUSE maximum) several at a time, which cut the per-request work on a 1 GiB
/// cold read by about a tenth here. The kernel only grows the window for readers it
/// sees reading sequentially.
const READ_AHEAD_KB: u32 = 4096;

/// How long to wait for the session threads after unmounting before aborting.
const UNMOUNT_GRACE: Duration = Duration::from_secs(10);

/// A kernel mount flag a mount option asks for (`mount -o nosuid,nodev,...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFlag {
    /// Ignore set-user-ID and set-group-ID bits.
    NoSuid,
    /// Do not interpret device files.
    NoDev,
    /// Do not allow programs to be executed.
    NoExec,
    /// All I/O synchronous.
    Sync,
    /// Directory changes synchronous.
    DirSync,
}

/// Where the daemon is in its life, for whoever waits on it: the mount helper's parent
/// process and systemd's `sd_notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Mounted and answering, control socket included.
    Ready,
    /// Shutting down (signal or external unmount); the final sync follows.
    Stopping,
}

/// What the caller adds to a mount beyond the config.
#[derive(Default)]
pub struct ServeOptions {
    /// Kernel flags from mount options.
    pub kernel_flags: Vec<KernelFlag>,
    /// Called at each [`Lifecycle`] step.
    pub on_event: Option<Box<dyn FnMut(Lifecycle) + Send>>,
}

impl ServeOptions {
    fn event(&mut self, e: Lifecycle) {
        if let Some(f) = self.on_event.as_mut() {
            f(e);
        }
    }
}

enum Event {
    Signal(i32),
    SessionEnded(std::io::Result<()>),
}

fn mount_config(cfg: &Config, flags: &[KernelFlag]) -> FuseConfig {
    let mut c = FuseConfig::default();
    let has = |f| flags.contains(&f);
    c.mount_options = vec![
        MountOption::FSName(cfg.fsname.clone()),
        // fuser's direct mount ignores `Subtype`; the kernel takes it as a mount option.
        MountOption::CUSTOM(format!("subtype={}", cfg.subtype)),
        MountOption::DefaultPermissions,
        if cfg.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
        if has(KernelFlag::NoSuid) {
            MountOption::NoSuid
        } else {
            MountOption::Suid
        },
        if has(KernelFlag::NoDev) {
            MountOption::NoDev
        } else {
            MountOption::Dev
        },
    ];
    for (flag, opt) in [
        (KernelFlag::NoExec, MountOption::NoExec),
        (KernelFlag::Sync, MountOption::Sync),
        (KernelFlag::DirSync, MountOption::DirSync),
    ] {
        if has(flag) {
            c.mount_options.push(opt);
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    c.acl = if root {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    c.n_threads = Some(cfg.n_threads);
    c.clone_fd = true;
    c
}

/// Mounts `fs` at `cfg.mount_point` and serves it until a signal or an unmount, then
/// shuts down cleanly; `opts` adds kernel flags and is told when the mount is ready and
/// when it stops.
///
/// Fails if the mount fails or the final shutdown cannot make data durable.
pub fn serve(fs: Fs, cfg: &Config, mut opts: ServeOptions) -> Result<()> {
    let fs = Arc::new(fs);
    let mut session = match Session::new(
        Adapter::new(fs.clone(), cfg.request_nice),
        &cfg.mount_point,
        &mount_config(cfg, &opts.kernel_flags),
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = fs.shutdown();
            return Err(e)
                .with_context(|| format!("cannot mount on {}", cfg.mount_point.display()));
        }
    };
    let mut unmounter = session.unmount_callable();
    fs.set_kernel_notify(Arc::new(KernelNotifier(session.notifier())));
    let (tx, rx) = mpsc::channel();
    let stx = tx.clone();
    let session_thread = std::thread::Builder::new()
        .name("verfs-session".into())
        .spawn(move || {
            let _ = stx.send(Event::SessionEnded(session.run()));
        })
        .context("cannot start session thread")?;
    // Only now: stat-ing the mount root needs the session threads to answer.
    let conn = connection_id(&cfg.mount_point);
    raise_readahead(&cfg.mount_point);
    watch_signals(tx)?;
    let control = crate::control::server::Server::start(fs.clone(), fs.data_dir())?;
    // A read-only mount takes no scheduled snapshots (the schedule is empty).
    let plan = if cfg.read_only {
        verfs_core::fs::ScheduleConfig::default()
    } else {
        cfg.snapshots.clone()
    };
    let mut schedule = verfs_core::fs::ScheduleService::start(fs.clone(), plan)
        .context("cannot start the snapshot schedule")?;
    tracing::info!(mount = %cfg.mount_point.display(), read_only = cfg.read_only, "mounted");
    opts.event(Lifecycle::Ready);
    let first = rx.recv().unwrap_or(Event::Signal(0));
    opts.event(Lifecycle::Stopping);
    if let Event::SessionEnded(Err(e)) = &first {
        tracing::error!(error = %e, "FUSE session ended with an error");
    }
    if let Event::Signal(sig) = first {
        tracing::info!(sig, "signal received; unmounting");
        if let Err(e) = unmounter.unmount() {
            tracing::warn!(error = %e, "unmount failed; detaching the mount lazily");
            lazy_unmount(&cfg.mount_point);
        }
        if !wait_session_end(&rx) {
            tracing::warn!("session still busy after unmount; aborting the connection");
            abort_connection(conn);
        }
    } else {
        tracing::info!("filesystem was unmounted externally");
    }
    let _ = session_thread.join();
    schedule.stop();
    control.stop();
    fs.shutdown().context("shutdown")?;
    tracing::info!("clean shutdown complete");
    Ok(())
}

/// Waits up to `UNMOUNT_GRACE` for the session to end, ignoring repeated signals.
fn wait_session_end(rx: &mpsc::Receiver<Event>) -> bool {
    let deadline = std::time::Instant::now() + UNMOUNT_GRACE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::SessionEnded(_)) => return true,
            Ok(Event::Signal(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn watch_signals(tx: mpsc::Sender<Event>) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("verfs-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .context("cannot start signal thread")?;
    Ok(())
}

/// The vault's lock and unlock through fuser's notifier: drop the kernel's dentries and
/// pages. ENOENT (the kernel does not have it cached) is the common case, not an error.
struct KernelNotifier(fuser::Notifier);

impl verfs_core::fs::KernelNotify for KernelNotifier {
    fn inval_entry(&self, parent: verfs_core::types::Ino, name: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(name);
        if let Err(e) = self.0.inval_entry(fuser::INodeNo(parent.0), name) {
            tracing::debug!(error = %e, "kernel entry invalidation");
        }
    }

    fn inval_inode(&self, ino: verfs_core::types::Ino) {
        if let Err(e) = self.0.inval_inode(fuser::INodeNo(ino.0), 0, 0) {
            tracing::debug!(error = %e, "kernel inode invalidation");
        }
    }
}

/// The FUSE connection number of the mount (minor of its device), for aborting it.
fn connection_id(mountpoint: &Path) -> Option<u64> {
    let dev = std::fs::metadata(mountpoint).ok()?.dev();
    Some(u64::from(libc::minor(dev)))
}

/// Sets the mount's readahead window (needs root; without it the kernel default stays).
fn raise_readahead(mountpoint: &Path) {
    let Ok(dev) = std::fs::metadata(mountpoint).map(|m| m.dev()) else {
        return;
    };
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    if let Err(e) = std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        tracing::debug!(error = %e, path, "cannot raise readahead");
    }
}

/// Detaches a busy mount (open files keep the session alive until closed or aborted).
fn lazy_unmount(mountpoint: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) {
        // SAFETY: `c` is a valid NUL-terminated path; umount2 has no other preconditions.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return;
        }
    }
    let status = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(mountpoint)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        tracing::warn!(mount = %mountpoint.display(), "lazy unmount failed");
    }
}

/// Mounts fusectl on /sys/fs/fuse/connections if it is not there (root only).
fn ensure_fusectl() {
    let dir = Path::new("/sys/fs/fuse/connections");
    let mounted = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if mounted {
        return;
    }
    let (src, target, fstype) = (c"fusectl", c"/sys/fs/fuse/connections", c"fusectl");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot mount fusectl");
    }
}

fn abort_connection(conn: Option<u64>) {
    let Some(id) = conn else { return };
    ensure_fusectl();
    let path = format!("/sys/fs/fuse/connections/{id}/abort");
    if let Err(e) = std::fs::write(&path, b"1") {
        tracing::warn!(error = %e, path, "cannot abort FUSE connection");
    }
}
