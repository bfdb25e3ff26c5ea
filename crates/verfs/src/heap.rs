//! The daemon's use of glibc's allocator: bounds on what it keeps after `free`.
//!
//! The memory budget (`memory_limit_mb`) bounds what the daemon holds; glibc decides
//! what it gives back to the system. Left alone it kept far more than the daemon
//! held: freed 1 MiB write buffers and 64 KiB chunk buffers stay in per-thread arenas,
//! fragmented, counted in RSS.

use std::time::Duration;

/// How often the daemon hands free heap pages back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Makes glibc's allocator return large buffers to the system when they are freed,
/// and keep fewer arenas. Call first thing in `main`, before any other thread exists.
///
/// The daemon moves 1 MiB write buffers and chunk-sized copies between threads; glibc
/// raises its mmap threshold to the largest such buffer freed (up to 32 MiB), after
/// which they come from per-thread arenas that keep their pages. A fixed 256 KiB
/// threshold took the daemon's peak RSS during a 1 GiB `fio` write from 275–368 MiB
/// to 164–189 MiB at the default 256 MiB memory limit, at the same throughput. Chunks
/// read by FUSE threads and evicted from the cache by others fragment one arena per
/// thread (glibc allows eight per core); one per core keeps random reads' peak down.
pub fn bound_malloc_caching() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(2);
        // SAFETY: mallopt only sets allocator parameters; called first thing in main,
        // before any other thread exists. A failure (0) leaves the defaults.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Starts a thread that returns the heap's free pages to the system every second
/// (`malloc_trim(0)`), for a daemon that runs for days.
///
/// After a 1 GiB write and 10 s of 4 KiB random reads the daemon's RSS was 166 MiB of
/// which a `malloc_trim(0)` (called from gdb) gave back 97 MiB: free chunks inside
/// the arenas, which glibc only returns from the top of a heap by itself. Without
/// trimming, what one workload left behind raised the peak of the next one (the
/// `bench/fio.sh` run peaked at 261 MiB against the 256 MiB budget).
pub fn start_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("verfs-heap".into())
            .spawn(|| loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: malloc_trim only walks the allocator's own free lists under
                // its locks and returns pages with madvise; no pointer is passed.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "heap trimming thread not started; RSS may stay above the memory budget after bursts");
        }
    }
}
