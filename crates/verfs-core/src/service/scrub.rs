//! The scrub service: runs a scrub pass in its own thread when asked (`scrub` start),
//! answers `scrub status` at any time, and stops a pass on `scrub cancel` or at
//! shutdown with its cursor saved. Passes never run by themselves.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::engine::Engine;
use crate::scrub::{ScrubConfig, ScrubStatus, Scrubber};

/// The scrubber and the thread of its running pass.
pub struct ScrubService {
    engine: Arc<Engine>,
    scrubber: Arc<Scrubber>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What a start request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The run's number (the one already running, if one was).
    pub run: u64,
    /// Whether this request started it (`false`: one was running already).
    pub new: bool,
}

impl ScrubService {
    /// A service with no pass running.
    pub fn new(engine: Arc<Engine>, cfg: ScrubConfig) -> ScrubService {
        ScrubService {
            engine,
            scrubber: Arc::new(Scrubber::new(cfg)),
            thread: Mutex::new(None),
        }
    }

    /// Starts a pass in a new thread, going on from a saved cursor unless `restart`;
    /// if one runs already, says so and starts nothing.
    ///
    /// Fails if the thread cannot be spawned.
    pub fn start(&self, restart: bool) -> std::io::Result<Started> {
        let mut slot = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        let Some(run) = self.scrubber.claim() else {
            return Ok(Started {
                run: self.scrubber.status_run(),
                new: false,
            });
        };
        if let Some(old) = slot.take() {
            // The previous pass has ended (the claim succeeded); reap its thread.
            let _ = old.join();
        }
        let (e, s) = (self.engine.clone(), self.scrubber.clone());
        let spawned = std::thread::Builder::new()
            .name("verfs-scrub".into())
            .spawn(move || {
                s.run(&e, run, restart);
            });
        match spawned {
            Ok(h) => {
                *slot = Some(h);
                Ok(Started { run, new: true })
            }
            Err(err) => {
                self.scrubber.unclaim();
                Err(err)
            }
        }
    }

    /// The scrub's state.
    pub fn status(&self) -> ScrubStatus {
        self.scrubber.status(&self.engine)
    }

    /// Stops the running pass after its current record, keeping its cursor; returns
    /// whether one was running.
    pub fn cancel(&self) -> bool {
        self.scrubber.cancel()
    }

    /// Stops the running pass (its cursor saved) and waits for its thread; called
    /// before the metadata store closes.
    pub fn stop(&self) {
        self.scrubber.stop();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}
