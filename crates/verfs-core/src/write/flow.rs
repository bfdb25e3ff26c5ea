//! Write-back flow control: how many bytes are accepted but not committed, and the
//! errors that committing them met.
//!
//! A `write` is answered as soon as it is queued (the overlay already shows it to every
//! reader), so a sequential writer keeps the batcher and the compression pool busy
//! instead of waiting one round trip per request. The bytes in flight are bounded: a
//! writer blocks while more than the limit is waiting. A commit that fails is reported
//! the way Linux reports write-back errors: by the next `write`, `fsync` or `close`
//! (flush) of the same file.
//!
//! The bound is shared, but a bulk writer must not lock every other file out of it: a
//! file with at most [`FILE_ALLOWANCE`] in flight is admitted while the total stays
//! under the limit plus [`RESERVE`], so a database's small writes go through while a
//! large copy keeps the limit full.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::FsError;
use crate::types::Ino;

/// How long a blocked writer sleeps before re-checking (it is also woken by commits).
const RECHECK: Duration = Duration::from_millis(100);
/// A file with no more than this in flight is admitted past the shared limit...
const FILE_ALLOWANCE: u64 = 1 << 20;
/// ... while the total stays below the limit plus this.
const RESERVE: u64 = 16 << 20;

/// Bytes accepted but not committed: the total and each file's share.
#[derive(Debug, Default)]
struct InFlight {
    total: u64,
    by_file: HashMap<Ino, u64>,
}

impl InFlight {
    fn fits(&self, ino: Ino, n: u64, limit: u64) -> bool {
        let own = self.by_file.get(&ino).copied().unwrap_or(0);
        self.total == 0
            || self.total + n <= limit
            || (own + n <= FILE_ALLOWANCE && self.total + n <= limit + RESERVE)
    }
}

/// In-flight bytes and deferred errors, shared by FUSE threads and the batcher.
#[derive(Debug)]
pub(crate) struct Flow {
    limit: u64,
    inflight: Mutex<InFlight>,
    drained: Condvar,
    errors: Mutex<HashMap<Ino, FsError>>,
}

impl Flow {
    /// A flow that lets at most `limit` bytes wait for a commit (one larger write may
    /// go through alone).
    pub fn new(limit: u64) -> Flow {
        Flow {
            limit,
            inflight: Mutex::new(InFlight::default()),
            drained: Condvar::new(),
            errors: Mutex::new(HashMap::new()),
        }
    }

    fn lock_inflight(&self) -> MutexGuard<'_, InFlight> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_errors(&self) -> MutexGuard<'_, HashMap<Ino, FsError>> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `n` more bytes of `ino` fit (under the limit, or within the file's
    /// allowance; or `give_up` says to stop waiting), then counts them as in flight.
    pub fn admit(&self, ino: Ino, n: u64, give_up: impl Fn() -> bool) {
        let mut g = self.lock_inflight();
        while !g.fits(ino, n, self.limit) && !give_up() {
            g = self
                .drained
                .wait_timeout(g, RECHECK)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        g.total += n;
        *g.by_file.entry(ino).or_insert(0) += n;
    }

    /// Bytes accepted and not yet committed, all files together.
    pub fn in_flight(&self) -> u64 {
        self.lock_inflight().total
    }

    /// Counts `n` bytes of `ino` as no longer in flight (committed or failed).
    pub fn release(&self, ino: Ino, n: u64) {
        let mut g = self.lock_inflight();
        g.total = g.total.saturating_sub(n);
        if let Some(own) = g.by_file.get_mut(&ino) {
            *own = own.saturating_sub(n);
            if *own == 0 {
                g.by_file.remove(&ino);
            }
        }
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
        let a = Ino(2);
        let f = Arc::new(Flow::new(100 << 20));
        f.admit(a, 80 << 20, || false);
        let g = f.clone();
        let t = std::thread::spawn(move || g.admit(a, 50 << 20, || false));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "admitted past the limit");
        f.release(a, 80 << 20);
        t.join().unwrap();
        assert_eq!(f.lock_inflight().total, 50 << 20);
        // A write larger than the limit still goes through when nothing else waits.
        f.release(a, 50 << 20);
        assert!(f.lock_inflight().by_file.is_empty());
        f.admit(a, 500 << 20, || false);
        f.release(a, 500 << 20);

        f.record_error(Ino(4), FsError::NoSpace);
        f.record_error(Ino(4), FsError::Io("later".into()));
        f.record_error(Ino(5), FsError::NotFound);
        assert_eq!(f.take_error(Ino(4)), Some(FsError::NoSpace));
        assert_eq!(f.take_error(Ino(4)), None);
        assert_eq!(f.take_error(Ino(5)), None);
    }

    #[test]
    fn a_bulk_writer_does_not_lock_other_files_out() {
        let (bulk, small) = (Ino(2), Ino(3));
        let f = Arc::new(Flow::new(100 << 20));
        f.admit(bulk, 100 << 20, || false);
        // The bulk writer itself waits at the limit...
        let g = f.clone();
        let t = std::thread::spawn(move || g.admit(bulk, 1 << 20, || false));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "bulk writer admitted past the limit");
        // ... while another file's small writes go through, up to its allowance.
        f.admit(small, 64 << 10, || false);
        f.admit(small, FILE_ALLOWANCE - (64 << 10), || false);
        let h = f.clone();
        let u = std::thread::spawn(move || h.admit(small, 4096, || false));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!u.is_finished(), "small file admitted past its allowance");
        f.release(bulk, 100 << 20);
        t.join().unwrap();
        u.join().unwrap();
    }
}
