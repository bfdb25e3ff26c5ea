//! Raw syscalls on one file of the mount, with page-aligned buffers so the same calls
//! work on an `O_DIRECT` descriptor.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

/// Buffer and offset alignment `O_DIRECT` needs (a page covers every block size).
pub const ALIGN: usize = 4096;

/// A zeroed heap buffer aligned to [`ALIGN`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl AlignedBuf {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), ALIGN).expect("buffer layout")
    }

    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut b = Self::zeroed(data.len());
        b.as_mut_slice().copy_from_slice(data);
        b
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed) bytes we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this same layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

fn cvt(r: i64) -> io::Result<i64> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).expect("page size")
}

/// An open file of the mount, known by path so it can be closed, reopened and recreated.
pub struct File {
    path: CString,
    flags: i32,
    /// The descriptor; -1 while closed.
    pub fd: i32,
}

impl File {
    /// Opens (creating if needed) `path` read-write with `extra` flags (e.g. `O_DIRECT`).
    pub fn open(path: &Path, extra: i32) -> io::Result<File> {
        let path = CString::new(path.as_os_str().as_bytes()).expect("path has no NUL");
        let mut f = File {
            path,
            flags: libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | extra,
            fd: -1,
        };
        f.reopen()?;
        Ok(f)
    }

    /// Closes the descriptor (errors ignored: after a crash the mount is gone).
    pub fn close(&mut self) {
        if self.fd >= 0 {
            // SAFETY: we own the descriptor and forget it right after.
            unsafe { libc::close(self.fd) };
            self.fd = -1;
        }
    }

    /// Closes and opens the path again with the same flags.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.close();
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = unsafe { libc::open(self.path.as_ptr(), self.flags, 0o644) };
        self.fd = cvt(fd.into())? as i32;
        Ok(())
    }

    /// Closes, unlinks and creates the path again, empty.
    pub fn recreate(&mut self) -> io::Result<()> {
        self.close();
        // SAFETY: `path` is a valid NUL-terminated string.
        cvt(unsafe { libc::unlink(self.path.as_ptr()) }.into())?;
        self.reopen()
    }

    /// `pwrite` until all of `data` is written.
    pub fn pwrite_all(&self, data: &[u8], off: u64) -> io::Result<()> {
        let buf = AlignedBuf::from_slice(data);
        let mut done = 0usize;
        while done < data.len() {
            let rest = &buf.as_slice()[done..];
            // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
            let r = unsafe {
                libc::pwrite(
                    self.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    (off + done as u64) as libc::off_t,
                )
            };
            match cvt(r as i64)? {
                0 => return Err(io::Error::other("pwrite returned 0")),
                n => done += n as usize,
            }
        }
        Ok(())
    }

    /// One `pread` into `buf`; the bytes read (fewer than asked means end of file).
    pub fn pread(&self, buf: &mut AlignedBuf, off: u64) -> io::Result<usize> {
        let s = buf.as_mut_slice();
        // SAFETY: `s` is a live, writable buffer of `s.len()` bytes.
        let r = unsafe { libc::pread(self.fd, s.as_mut_ptr().cast(), s.len(), off as libc::off_t) };
        cvt(r as i64).map(|n| n as usize)
    }

    /// `ftruncate`.
    pub fn ftruncate(&self, size: u64) -> io::Result<()> {
        // SAFETY: no memory-safety preconditions.
        cvt(unsafe { libc::ftruncate(self.fd, size as libc::off_t) }.into()).map(drop)
    }

    /// `fallocate` with raw `mode` flags.
    pub fn fallocate(&self, mode: i32, off: u64, len: u64) -> io::Result<()> {
        // SAFETY: no memory-safety preconditions.
        let r = unsafe { libc::fallocate(self.fd, mode, off as libc::off_t, len as libc::off_t) };
        cvt(r.into()).map(drop)
    }

    /// One `copy_file_range` call from this file to `dst`; the bytes it reports copied.
    pub fn copy_to(&self, off_in: u64, dst: &File, off_out: u64, len: u64) -> io::Result<u64> {
        let mut oi = off_in as libc::loff_t;
        let mut oo = off_out as libc::loff_t;
        // SAFETY: both descriptors are open and the offsets point to live locals.
        let r =
            unsafe { libc::copy_file_range(self.fd, &mut oi, dst.fd, &mut oo, len as usize, 0) };
        cvt(r as i64).map(|n| n as u64)
    }

    /// `fsync`.
    pub fn fsync(&self) -> io::Result<()> {
        // SAFETY: no memory-safety preconditions.
        cvt(unsafe { libc::fsync(self.fd) }.into()).map(drop)
    }

    /// `fdatasync`.
    pub fn fdatasync(&self) -> io::Result<()> {
        // SAFETY: no memory-safety preconditions.
        cvt(unsafe { libc::fdatasync(self.fd) }.into()).map(drop)
    }

    /// `st_size` from `fstat`.
    pub fn fstat_size(&self) -> io::Result<u64> {
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a live, writable `stat`.
        cvt(unsafe { libc::fstat(self.fd, &mut st) }.into())?;
        Ok(st.st_size as u64)
    }

    /// `lseek(fd, 0, SEEK_END)`.
    pub fn seek_end(&self) -> io::Result<u64> {
        // SAFETY: no memory-safety preconditions.
        cvt(unsafe { libc::lseek(self.fd, 0, libc::SEEK_END) }).map(|n| n as u64)
    }

    /// `posix_fadvise(DONTNEED)` over the whole file: drops its clean cached pages.
    pub fn fadvise_dontneed(&self) -> io::Result<()> {
        // SAFETY: no memory-safety preconditions.
        let r = unsafe { libc::posix_fadvise(self.fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    }

    /// Maps `[off, off + len)` shared (from its page start), runs `f` on those bytes,
    /// then (when writable) `msync(MS_SYNC)` and unmaps. The caller keeps the range
    /// inside the file size; a file shorter than the kernel thinks raises SIGBUS.
    fn with_map<R>(
        &self,
        off: u64,
        len: usize,
        write: bool,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> io::Result<R> {
        let base = off / page_size() * page_size();
        let skip = (off - base) as usize;
        let maplen = skip + len;
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping of our own descriptor at a page-aligned offset; nothing
        // else aliases it and it is unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                maplen,
                prot,
                libc::MAP_SHARED,
                self.fd,
                base as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is `maplen` bytes long and we hold the only reference.
        let bytes = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), maplen) };
        let out = f(&mut bytes[skip..]);
        let synced = if write {
            // SAFETY: `p`/`maplen` are exactly the mapping made above.
            cvt(unsafe { libc::msync(p, maplen, libc::MS_SYNC) }.into()).map(drop)
        } else {
            Ok(())
        };
        // SAFETY: as above; `bytes` is not used after this.
        unsafe { libc::munmap(p, maplen) };
        synced.map(|()| out)
    }

    /// The bytes `[off, off + len)` read through a shared mapping.
    pub fn mmap_read(&self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        self.with_map(off, len, false, |b| b.to_vec())
    }

    /// Writes `data` at `off` through a shared mapping, then `msync(MS_SYNC)`.
    pub fn mmap_write(&self, off: u64, data: &[u8]) -> io::Result<()> {
        self.with_map(off, data.len(), true, |b| b.copy_from_slice(data))
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.close();
    }
}

/// `echo 1 > /proc/sys/vm/drop_caches` (root only); false when it could not.
pub fn drop_caches_global() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", b"1").is_ok()
}

/// Makes a SIGBUS (an mmap access past the real end of file) print where to look and
/// exit the test process, instead of dying without a word.
pub fn install_sigbus_note() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn on_sigbus(_: libc::c_int) {
        const MSG: &[u8] = b"\nmodel_ops: SIGBUS in an mmap op: the file is shorter than the \
kernel thinks; the op log (path printed at start) ends with the op\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is static.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(135);
        }
    }
    ONCE.call_once(|| {
        // SAFETY: an all-zero sigaction is valid; we set the handler and an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    });
}
