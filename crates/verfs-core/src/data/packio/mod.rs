//! The seam between the pack store and the storage that holds pack files.
//!
//! Everything the store and the pack codec do to a pack file goes through [`PackFile`]
//! (positional reads and writes, length, syncs, kernel hints) and everything they do to
//! the pack directory through [`PackIo`] (open, create, rename, remove, directory
//! sync). [`FileIo`] is the real implementation on a local directory; tests put
//! [`faulty::FaultyIo`] in its place to inject short writes, ENOSPC, EIO on reads and
//! failed syncs, and a later object-store backend would sit here too (DESIGN.md §10).
//!
//! `std::fs::File` implements [`PackFile`] itself, so code that already holds a file
//! (the offline checker) passes it where a `&dyn PackFile` is asked for.

pub mod faulty;

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// One open pack file. Every method may be called from several threads at once; reads
/// and writes are positional, so they never share a file offset.
///
/// # Safety
///
/// Callers read the bytes [`PackFile::read_split_at`] reports as read out of memory
/// that was uninitialised before the call: an implementation must have initialised
/// exactly that many bytes of `head` and `tail` (in that order) when it returns
/// `Ok(n)`, and never report more than `head.len() + tail.len()`.
pub unsafe trait PackFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at end of file).
    ///
    /// Fails as `pread(2)` does.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads into `head` and then `tail` from `offset` with as few calls as possible,
    /// until both are full or the file ends; returns the bytes read in all. `tail` may
    /// be uninitialised memory: only the first `returned - head.len()` bytes of it are
    /// written.
    ///
    /// Fails as `preadv(2)` does.
    fn read_split_at(
        &self,
        head: &mut [u8],
        tail: &mut [MaybeUninit<u8>],
        offset: u64,
    ) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`.
    ///
    /// Fails as `pwrite(2)` does (ENOSPC, EIO); part of `buf` may have been written then.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Cuts or extends the file to `len` bytes.
    ///
    /// Fails as `ftruncate(2)` does.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The file's length in bytes.
    ///
    /// Fails as `fstat(2)` does.
    fn size(&self) -> io::Result<u64>;

    /// Makes the file's data durable (`fdatasync`).
    ///
    /// Fails as `fdatasync(2)` does; the data written since the last successful sync
    /// may then be lost.
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's data and metadata durable (`fsync`).
    ///
    /// Fails as `fsync(2)` does.
    fn sync_all(&self) -> io::Result<()>;

    /// Starts writeback of `[offset, offset + len)` without waiting for it; a hint.
    fn start_writeback(&self, _offset: u64, _len: u64) {}

    /// Asks the storage to start reading `[offset, offset + len)` ahead; a hint.
    fn will_need(&self, _offset: u64, _len: u64) {}

    /// Tells the storage that reads come in no particular order, so it reads no more
    /// than asked (readahead is then only what [`PackFile::will_need`] requests); a hint.
    fn reads_random(&self) {}
}

/// How [`PackIo::open`] opens a pack file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for reading only (sealed packs).
    Read,
    /// An existing file, for reading and writing (the active pack at startup).
    ReadWrite,
    /// A new file that must not exist yet, with these permission bits.
    CreateNew(u32),
}

/// The pack directory's storage: opening pack files and changing directory entries.
pub trait PackIo: Send + Sync {
    /// Opens the file at `path` as `mode` says.
    ///
    /// Fails as `open(2)` does (ENOENT, EEXIST for `CreateNew`, EACCES, ENOSPC).
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn PackFile>>;

    /// Renames `from` over `to` atomically.
    ///
    /// Fails as `rename(2)` does.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`.
    ///
    /// Fails as `unlink(2)` does.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creates, renames, removes) durable.
    ///
    /// Fails if the directory cannot be opened or synced.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Pack files in a local directory: the implementation the daemon runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileIo;

impl FileIo {
    /// The local-directory implementation behind the shared handle the store keeps.
    pub fn shared() -> Arc<dyn PackIo> {
        Arc::new(FileIo)
    }
}

impl PackIo for FileIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn PackFile>> {
        let file = match mode {
            OpenMode::Read => File::open(path)?,
            OpenMode::ReadWrite => OpenOptions::new().read(true).write(true).open(path)?,
            OpenMode::CreateNew(bits) => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(bits)
                .open(path)?,
        };
        Ok(Arc::new(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

// SAFETY: read_split_at returns what preadv reported, which the kernel wrote in order
// into the iovecs, never more than their lengths.
unsafe impl PackFile for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn read_split_at(
        &self,
        head: &mut [u8],
        tail: &mut [MaybeUninit<u8>],
        offset: u64,
    ) -> io::Result<usize> {
        preadv_split(self, head, tail, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        let (Ok(off), Ok(n)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: sync_file_range only reads its integer arguments; a failure (e.g. a
        // filesystem without support) leaves the pages to normal writeback.
        let rc =
            unsafe { libc::sync_file_range(self.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range");
        }
    }

    fn will_need(&self, offset: u64, len: u64) {
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return;
        };
        // SAFETY: posix_fadvise only reads its integer arguments; a bad descriptor or
        // range gives an error code, which is ignored because readahead is only a hint.
        unsafe {
            libc::posix_fadvise(self.as_raw_fd(), off, n, libc::POSIX_FADV_WILLNEED);
        }
    }

    fn reads_random(&self) {
        // SAFETY: as in `will_need`; the whole file, a hint whose failure is ignored.
        unsafe {
            libc::posix_fadvise(self.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
        }
    }
}

/// `preadv` of `head` then `tail` from `offset`, retried until both are full or the
/// file ends; returns how many bytes were read in all.
fn preadv_split(
    file: &File,
    head: &mut [u8],
    tail: &mut [MaybeUninit<u8>],
    offset: u64,
) -> io::Result<usize> {
    let total = head.len() + tail.len();
    let mut done = 0usize;
    while done < total {
        let mut iov = [
            libc::iovec {
                iov_base: head.as_mut_ptr().cast(),
                iov_len: 0,
            },
            libc::iovec {
                iov_base: tail.as_mut_ptr().cast(),
                iov_len: 0,
            },
        ];
        let (first, n_iov) = if done < head.len() {
            iov[0].iov_base = head[done..].as_mut_ptr().cast();
            iov[0].iov_len = head.len() - done;
            iov[1].iov_len = tail.len();
            (0, 2)
        } else {
            let t = done - head.len();
            iov[1].iov_base = tail[t..].as_mut_ptr().cast();
            iov[1].iov_len = tail.len() - t;
            (1, 1)
        };
        let off = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: each iovec points into memory borrowed mutably for this call, with its
        // stated length; preadv writes at most that much and reports how many bytes.
        let n = unsafe { libc::preadv(file.as_raw_fd(), iov[first..].as_ptr(), n_iov, off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}
