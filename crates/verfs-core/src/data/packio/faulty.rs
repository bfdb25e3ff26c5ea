//! A fault-injecting [`PackIo`]: real files underneath, with faults switched on and off
//! by the test that owns the [`Faults`] handle. It models what a misbehaving disk does
//! to the pack store: a write that stops part way with ENOSPC (a full disk), writes,
//! reads or syncs that fail with an errno (EIO), and opens that fail.
//!
//! It is compiled into the library (not only under `cfg(test)`) so tests of every layer
//! (store unit tests today, core tests of `fs` later) can use the same implementation.

use std::io;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileIo, OpenMode, PackFile, PackIo};

/// The faults in force; every field off by default.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Bytes that may still be written in all; a write crossing it writes the part that
    /// fits and fails with ENOSPC, later writes fail at once (a disk filling up).
    pub write_budget: Option<u64>,
    /// Every write fails with this errno before writing anything.
    pub write_errno: Option<i32>,
    /// Every read fails with this errno.
    pub read_errno: Option<i32>,
    /// Every `sync_data`/`sync_all` of a file, and every directory sync, fails with this
    /// errno.
    pub sync_errno: Option<i32>,
    /// Every open (and create) fails with this errno.
    pub open_errno: Option<i32>,
}

/// The switchboard a test keeps to change the faults of a [`FaultyIo`] while the store
/// runs; cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    plan: Arc<Mutex<FaultPlan>>,
}

impl Faults {
    /// No faults yet.
    pub fn new() -> Faults {
        Faults::default()
    }

    fn lock(&self) -> MutexGuard<'_, FaultPlan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the faults in force.
    pub fn set(&self, plan: FaultPlan) {
        *self.lock() = plan;
    }

    /// Changes the faults in force with `f`.
    pub fn update(&self, f: impl FnOnce(&mut FaultPlan)) {
        f(&mut self.lock());
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        self.set(FaultPlan::default());
    }

    /// The faults in force now.
    pub fn plan(&self) -> FaultPlan {
        *self.lock()
    }

    fn check(errno: Option<i32>) -> io::Result<()> {
        match errno {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }

    /// How much of a `len`-byte write may go through: all of it, part of it followed by
    /// ENOSPC, or none (an errno).
    fn admit_write(&self, len: u64) -> Result<u64, io::Error> {
        let mut p = self.lock();
        Self::check(p.write_errno)?;
        match p.write_budget.as_mut() {
            None => Ok(len),
            Some(budget) => {
                let n = len.min(*budget);
                *budget -= n;
                Ok(n)
            }
        }
    }
}

/// [`FileIo`] with the faults of a [`Faults`] handle applied.
#[derive(Debug, Clone)]
pub struct FaultyIo {
    faults: Faults,
}

impl FaultyIo {
    /// A pack directory whose faults `faults` controls.
    pub fn new(faults: Faults) -> FaultyIo {
        FaultyIo { faults }
    }

    /// The same, behind the shared handle the store keeps.
    pub fn shared(faults: Faults) -> Arc<dyn PackIo> {
        Arc::new(FaultyIo::new(faults))
    }
}

impl PackIo for FaultyIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn PackFile>> {
        Faults::check(self.faults.plan().open_errno)?;
        let inner = FileIo.open(path, mode)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: self.faults.clone(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FileIo.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        FileIo.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        Faults::check(self.faults.plan().sync_errno)?;
        FileIo.sync_dir(dir)
    }
}

/// A pack file with faults applied.
struct FaultyFile {
    inner: Arc<dyn PackFile>,
    faults: Faults,
}

// SAFETY: read_split_at returns what the inner file reported, unchanged.
unsafe impl PackFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Faults::check(self.faults.plan().read_errno)?;
        self.inner.read_at(buf, offset)
    }

    fn read_split_at(
        &self,
        head: &mut [u8],
        tail: &mut [MaybeUninit<u8>],
        offset: u64,
    ) -> io::Result<usize> {
        Faults::check(self.faults.plan().read_errno)?;
        self.inner.read_split_at(head, tail, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = self.faults.admit_write(buf.len() as u64)? as usize;
        self.inner.write_all_at(&buf[..n], offset)?;
        if n < buf.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn sync_data(&self) -> io::Result<()> {
        Faults::check(self.faults.plan().sync_errno)?;
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        Faults::check(self.faults.plan().sync_errno)?;
        self.inner.sync_all()
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        self.inner.start_writeback(offset, len)
    }

    fn will_need(&self, offset: u64, len: u64) {
        self.inner.will_need(offset, len)
    }

    fn reads_random(&self) {
        self.inner.reads_random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_crossing_the_budget_is_short_then_enospc() {
        let d = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let io = FaultyIo::new(faults.clone());
        let f = io
            .open(&d.path().join("p"), OpenMode::CreateNew(0o600))
            .unwrap();
        faults.update(|p| p.write_budget = Some(10));
        let e = f.write_all_at(&[7u8; 16], 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(f.size().unwrap(), 10, "the part that fit was written");
        assert!(f.write_all_at(&[1], 10).is_err(), "budget spent");
        faults.clear();
        f.write_all_at(&[1], 10).unwrap();
        assert_eq!(f.size().unwrap(), 11);
    }

    #[test]
    fn read_sync_and_open_faults_give_their_errno() {
        let d = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let io = FaultyIo::new(faults.clone());
        let f = io
            .open(&d.path().join("p"), OpenMode::CreateNew(0o600))
            .unwrap();
        f.write_all_at(b"abc", 0).unwrap();
        faults.set(FaultPlan {
            read_errno: Some(libc::EIO),
            sync_errno: Some(libc::EIO),
            open_errno: Some(libc::EACCES),
            ..FaultPlan::default()
        });
        let mut b = [0u8; 3];
        assert_eq!(
            f.read_at(&mut b, 0).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(io.sync_dir(d.path()).is_err());
        let open = io.open(&d.path().join("p"), OpenMode::Read);
        assert_eq!(
            open.err().and_then(|e| e.raw_os_error()),
            Some(libc::EACCES)
        );
        faults.clear();
        assert_eq!(f.read_at(&mut b, 0).unwrap(), 3);
        assert_eq!(&b, b"abc");
    }
}
