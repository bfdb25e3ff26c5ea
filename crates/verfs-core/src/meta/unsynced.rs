//! Which inodes metadata commits changed since the last WAL sync.
//!
//! The fast fsync path (`write/intent.rs`) makes a file's data durable through the
//! intent log alone; that is only enough when the file's own metadata record (its
//! creation, mode, owner, link) is already durable. Every write transaction notes the
//! inodes it writes, and a commit outside the batcher's logged data path adds them here;
//! a WAL sync empties the set (taken just before the sync, so a commit racing with it
//! stays in the next set).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::types::Ino;

/// Most inodes tracked one by one; past that every inode counts as changed until the
/// next sync (a bound on memory for a metadata storm such as an untar).
const MAX_TRACKED: usize = 65_536;

#[derive(Default)]
struct Set {
    inos: HashSet<Ino>,
    overflow: bool,
}

/// The set of inodes changed by commits not yet synced.
#[derive(Default)]
pub(crate) struct Unsynced {
    set: Mutex<Set>,
}

impl Unsynced {
    fn lock(&self) -> std::sync::MutexGuard<'_, Set> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the inodes a commit changed.
    pub fn add(&self, inos: &[Ino]) {
        if inos.is_empty() {
            return;
        }
        let mut s = self.lock();
        if s.overflow {
            return;
        }
        s.inos.extend(inos.iter().copied());
        if s.inos.len() > MAX_TRACKED {
            s.inos = HashSet::new();
            s.overflow = true;
        }
    }

    /// Whether a commit not yet synced changed `ino`.
    pub fn contains(&self, ino: Ino) -> bool {
        let s = self.lock();
        s.overflow || s.inos.contains(&ino)
    }

    /// Takes the set before a sync; [`Unsynced::restore`] puts it back if the sync fails.
    pub fn take(&self) -> (HashSet<Ino>, bool) {
        let mut s = self.lock();
        (std::mem::take(&mut s.inos), std::mem::take(&mut s.overflow))
    }

    /// Puts back a set taken for a sync that failed.
    pub fn restore(&self, (inos, overflow): (HashSet<Ino>, bool)) {
        let mut s = self.lock();
        s.overflow |= overflow;
        if !s.overflow {
            s.inos.extend(inos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_clears_what_was_added_before_it() {
        let u = Unsynced::default();
        u.add(&[Ino(3)]);
        assert!(u.contains(Ino(3)) && !u.contains(Ino(4)));
        let taken = u.take();
        u.add(&[Ino(4)]);
        assert!(!u.contains(Ino(3)) && u.contains(Ino(4)));
        u.restore(taken);
        assert!(u.contains(Ino(3)) && u.contains(Ino(4)));
    }

    #[test]
    fn past_the_bound_everything_counts_as_changed() {
        let u = Unsynced::default();
        let many: Vec<Ino> = (0..MAX_TRACKED as u64 + 1).map(Ino).collect();
        u.add(&many);
        assert!(u.contains(Ino(u64::MAX)));
        let _ = u.take();
        assert!(!u.contains(Ino(1)));
    }
}
