//! Named crash points for the crash tests of GC and other multi-step work.
//!
//! Built with the `crash-points` feature (only the test build enables it, through the
//! `verfs` crate's dev-dependency), [`point`] aborts the process when the environment
//! variable `VERFS_CRASH_AT` names the point: the process dies as under `kill -9`, at
//! exactly that step. Without the feature it compiles to nothing.

/// The environment variable naming the point to abort at.
pub const CRASH_ENV: &str = "VERFS_CRASH_AT";

/// The environment variable naming how many times the point is passed before it
/// aborts (default 0: the first time).
pub const CRASH_SKIP_ENV: &str = "VERFS_CRASH_SKIP";

/// Aborts here if the test build was asked to (see the module docs).
#[cfg(feature = "crash-points")]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PASSED: AtomicU64 = AtomicU64::new(0);
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == name) {
        let skip = std::env::var(CRASH_SKIP_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if PASSED.fetch_add(1, Ordering::SeqCst) < skip {
            return;
        }
        eprintln!("verfsnext: crash point {name} reached; aborting");
        std::process::abort();
    }
}

/// Aborts here if the test build was asked to (see the module docs).
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_name: &str) {}
