//! The sync service: every `sync_interval_ms`, make committed data durable (packs, then
//! the metadata WAL). `fsync(2)` does not wait for it; it goes through the batcher.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Engine;

/// The running sync thread.
pub struct SyncService {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SyncService {
    /// Starts syncing `engine` every `interval`.
    ///
    /// Fails if the thread cannot be spawned.
    pub fn start(engine: Arc<Engine>, interval: Duration) -> std::io::Result<SyncService> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("verfs-sync".into())
            .spawn(move || run(&engine, &s, interval))?;
        Ok(SyncService {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread (after its current sync, if any).
    pub fn stop(&self) {
        {
            let (m, c) = &*self.stop;
            *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
            c.notify_all();
        }
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("sync thread panicked");
            }
        }
    }
}

fn run(engine: &Engine, stop: &(Mutex<bool>, Condvar), interval: Duration) {
    let (m, c) = stop;
    let mut stopped = m.lock().unwrap_or_else(|p| p.into_inner());
    // Logged once per run of failures (a failed pack sync keeps failing: fsyncgate).
    let mut failing = false;
    loop {
        // Checked before waiting too: a stop that came during the last sync (lock not
        // held) has already notified, and waiting would sleep a whole interval.
        if *stopped {
            return;
        }
        let (g, _) = c
            .wait_timeout(stopped, interval)
            .unwrap_or_else(|p| p.into_inner());
        stopped = g;
        if *stopped {
            return;
        }
        drop(stopped);
        match engine.sync_durable() {
            Err(e) if !failing => {
                tracing::error!(error = %e, "periodic sync failed");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        stopped = m.lock().unwrap_or_else(|p| p.into_inner());
    }
}
