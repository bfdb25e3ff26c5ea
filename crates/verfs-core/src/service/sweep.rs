//! The sweep service: after a snapshot is deleted, remove every version no remaining
//! snapshot sees, one small transaction at a time (writers wait for at most one), and
//! drop the chunk references of removed extents so refcounts stay exact and chunks
//! nothing uses land in the `Z` index for GC. The cursor is in metadata, so a sweep cut
//! short by a crash or an unmount goes on at the next start.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::FsError;
use crate::write::drop_ref;

/// How the sweeper paces itself (config `sweep_step_keys`, `sweep_pause_ms`).
#[derive(Debug, Clone, Copy)]
pub struct SweepPace {
    /// Stored keys examined per transaction.
    pub step_keys: usize,
    /// Pause between transactions.
    pub pause: Duration,
}

/// How often an idle sweeper looks for work it was not told about.
const IDLE_CHECK: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Signal {
    stop: bool,
    kicked: bool,
}

/// Progress figures of the sweeper, for `stats` and `snapshot list`.
#[derive(Default)]
pub struct SweepFigures {
    /// Versions removed since the daemon started.
    pub removed: AtomicU64,
    /// Whether a sweep has work left.
    pub pending: AtomicBool,
}

/// The running sweep thread.
pub struct SweepService {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    figures: Arc<SweepFigures>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SweepService {
    /// Starts the sweeper; it begins with any sweep left from an earlier run.
    ///
    /// Fails if the thread cannot be spawned.
    pub fn start(engine: Arc<Engine>, pace: SweepPace) -> std::io::Result<SweepService> {
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let figures = Arc::new(SweepFigures::default());
        let (s, f) = (signal.clone(), figures.clone());
        let thread = std::thread::Builder::new()
            .name("verfs-sweep".into())
            .spawn(move || run(&engine, &s, &f, pace))?;
        Ok(SweepService {
            signal,
            figures,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Tells the sweeper there is work (a snapshot was deleted).
    pub fn kick(&self) {
        let (m, c) = &*self.signal;
        m.lock().unwrap_or_else(|p| p.into_inner()).kicked = true;
        self.figures.pending.store(true, Ordering::SeqCst);
        c.notify_all();
    }

    /// The sweeper's progress figures.
    pub fn figures(&self) -> &SweepFigures {
        &self.figures
    }

    /// Stops the thread after its current step; the rest resumes at the next start.
    pub fn stop(&self) {
        {
            let (m, c) = &*self.signal;
            m.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            c.notify_all();
        }
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("sweep thread panicked");
            }
        }
    }
}

fn stopped(signal: &(Mutex<Signal>, Condvar)) -> bool {
    signal.0.lock().unwrap_or_else(|p| p.into_inner()).stop
}

fn run(
    engine: &Engine,
    signal: &(Mutex<Signal>, Condvar),
    figures: &SweepFigures,
    pace: SweepPace,
) {
    loop {
        sweep_while_pending(engine, signal, figures, pace);
        let (m, c) = signal;
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        if !s.kicked && !s.stop {
            s = c
                .wait_timeout(s, IDLE_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if s.stop {
            return;
        }
        s.kicked = false;
    }
}

/// Runs sweep steps until the sweep is done, stopped, or fails (logged; retried at
/// the next kick or idle check).
fn sweep_while_pending(
    engine: &Engine,
    signal: &(Mutex<Signal>, Condvar),
    f: &SweepFigures,
    pace: SweepPace,
) {
    let mut first = true;
    loop {
        if !first && !pace.pause.is_zero() {
            std::thread::sleep(pace.pause);
        }
        first = false;
        if stopped(signal) {
            return;
        }
        let step = engine
            .meta
            .sweep_step(pace.step_keys, |txn, e| drop_ref(txn, &e.hash));
        match step {
            Ok(p) => {
                f.removed.fetch_add(p.removed, Ordering::Relaxed);
                f.pending.store(!p.done, Ordering::SeqCst);
                if p.done {
                    return;
                }
            }
            Err(e) => {
                log_failure(&e);
                return;
            }
        }
    }
}

fn log_failure(e: &FsError) {
    tracing::error!(error = %e, "snapshot sweep step failed; it is retried later");
}
