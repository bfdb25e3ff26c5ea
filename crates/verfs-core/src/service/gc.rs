//! The GC service: runs the collector when the filesystem has been idle for
//! `gc_idle_min_ms` and there are chunks at refcount 0, and on request (`gc run`).
//! Idle means no write batch and no byte read since the last look.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::FsResult;
use crate::gc::{Collector, GcReport, GcStatus};

#[derive(Default)]
struct Signal {
    stop: bool,
    kicked: bool,
}

/// The running GC thread and the collector it drives.
pub struct GcService {
    engine: Arc<Engine>,
    collector: Arc<Collector>,
    signal: Arc<(Mutex<Signal>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GcService {
    /// Starts the GC thread; `idle` of zero turns idle runs off (requests still run).
    ///
    /// Fails if the thread cannot be spawned.
    pub fn start(
        engine: Arc<Engine>,
        collector: Collector,
        idle: Duration,
    ) -> std::io::Result<GcService> {
        let collector = Arc::new(collector);
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let (e, c, s) = (engine.clone(), collector.clone(), signal.clone());
        let thread = std::thread::Builder::new()
            .name("verfs-gc".into())
            .spawn(move || run(&e, &c, &s, idle))?;
        Ok(GcService {
            engine,
            collector,
            signal,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs GC now in the caller's thread (after a run in progress) and reports it.
    ///
    /// Fails as [`Collector::run`] does.
    pub fn run_now(&self) -> FsResult<GcReport> {
        self.collector.run(&self.engine)
    }

    /// Asks the GC thread to run soon, without waiting.
    pub fn kick(&self) {
        let (m, c) = &*self.signal;
        m.lock().unwrap_or_else(|p| p.into_inner()).kicked = true;
        c.notify_all();
    }

    /// The collector's state.
    pub fn status(&self) -> GcStatus {
        self.collector.status()
    }

    /// Stops the thread after the run in progress (each step of a run is durable on
    /// its own, so a stop between runs loses nothing).
    pub fn stop(&self) {
        let (m, c) = &*self.signal;
        m.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        c.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Activity counters that change with any write batch or read.
fn activity(engine: &Engine) -> (u64, u64) {
    let s = engine.stats.snapshot();
    (s.batches, s.bytes_read)
}

fn run(engine: &Engine, collector: &Collector, signal: &(Mutex<Signal>, Condvar), idle: Duration) {
    let (m, c) = signal;
    let tick = if idle.is_zero() {
        Duration::from_secs(3600)
    } else {
        idle
    };
    let mut last = activity(engine);
    loop {
        let kicked = {
            let g = m.lock().unwrap_or_else(|p| p.into_inner());
            let (mut g, _) = c
                .wait_timeout_while(g, tick, |s| !s.stop && !s.kicked)
                .unwrap_or_else(|p| p.into_inner());
            if g.stop {
                return;
            }
            std::mem::take(&mut g.kicked)
        };
        let now = activity(engine);
        let quiet = !idle.is_zero() && now == last;
        last = now;
        if kicked || (quiet && Collector::has_zero_ref_chunks(engine).unwrap_or(false)) {
            // The collector logs its own failures; the next idle period retries.
            let _ = collector.run(engine);
            last = activity(engine);
        }
    }
}
