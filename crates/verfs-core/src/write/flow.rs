//! Write-back flow control: how many bytes are accepted but not committed, and the
//! errors that committing them met.
//!
//! A `write` is answered as soon as it is queued (the overlay already shows it to every
//! reader), so a sequential writer keeps the batcher and the compression pool busy
//! instead of waiting one round trip per request. The bytes in flight are bounded: a
//! writer blocks while more than the limit is waiting. A commit that fails is reported
//! the way Linux reports write-back errors: by the next `write`, `fsync` or `close`
//! (flush) of the same file.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::FsError;
use crate::types::Ino;

/// How long a blocked writer sleeps before re-checking (it is also woken by commits).
const RECHECK: Duration = Duration::from_millis(100);

/// In-flight bytes and deferred errors, shared by FUSE threads and the batcher.
#[derive(Debug)]
pub(crate) struct Flow {
    limit: u64,
    inflight: Mutex<u64>,
    drained: Condvar,
    errors: Mutex<HashMap<Ino, FsError>>,
}

impl Flow {
    /// A flow that lets at most `limit` bytes wait for a commit (one larger write may
    /// go through alone).
    pub fn new(limit: u64) -> Flow {
        Flow {
            limit,
            inflight: Mutex::new(0),
            drained: Condvar::new(),
            errors: Mutex::new(HashMap::new()),
        }
    }

    fn lock_inflight(&self) -> MutexGuard<'_, u64> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_errors(&self) -> MutexGuard<'_, HashMap<Ino, FsError>> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `n` more bytes fit under the limit (or `give_up` says to stop
    /// waiting), then counts them as in flight.
    pub fn admit(&self, n: u64, give_up: impl Fn() -> bool) {
        let mut g = self.lock_inflight();
        while *g > 0 && *g + n > self.limit && !give_up() {
            g = self
                .drained
                .wait_timeout(g, RECHECK)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        *g += n;
    }

    /// Counts `n` bytes as no longer in flight (committed or failed).
    pub fn release(&self, n: u64) {
        let mut g = self.lock_inflight();
        *g = g.saturating_sub(n);
        drop(g);
        self.drained.notify_all();
    }

    /// Remembers that a commit of `ino`'s data failed; a vanished file is not an error.
    pub fn record_error(&self, ino: Ino, e: FsError) {
        if e != FsError::NotFound {
            self.lock_errors().entry(ino).or_insert(e);
        }
    }

    /// The failure recorded for `ino` since it was last reported, which is now reported.
    pub fn take_error(&self, ino: Ino) -> Option<FsError> {
        self.lock_errors().remove(&ino)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn writers_wait_for_room_and_errors_are_reported_once() {
        let f = Arc::new(Flow::new(100));
        f.admit(80, || false);
        let g = f.clone();
        let t = std::thread::spawn(move || g.admit(50, || false));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "admitted past the limit");
        f.release(80);
        t.join().unwrap();
        assert_eq!(*f.lock_inflight(), 50);
        // A write larger than the limit still goes through when nothing else waits.
        f.release(50);
        f.admit(500, || false);

        f.record_error(Ino(4), FsError::NoSpace);
        f.record_error(Ino(4), FsError::Io("later".into()));
        f.record_error(Ino(5), FsError::NotFound);
        assert_eq!(f.take_error(Ino(4)), Some(FsError::NoSpace));
        assert_eq!(f.take_error(Ino(4)), None);
        assert_eq!(f.take_error(Ino(5)), None);
    }
}
