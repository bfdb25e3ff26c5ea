//! Scheduling of the FUSE worker threads: they serve applications' requests, so they
//! run ahead of the daemon's own background work.
//!
//! On two cores, 4 KiB direct random reads while a `dd conv=fsync` writer looped on
//! the same mount had a p99 of 2.3–2.5 ms: `sched:sched_switch` showed the request
//! threads preempted right after replying, by the writer's chunking and compression
//! and by `dd` itself. A 100 µs slice (EEVDF picks a waking thread with a short slice
//! sooner; Linux 6.12+, no privilege needed) took it to ~1.9 ms; with nice -5 as well
//! to 0.85–1.1 ms, and the reads' IOPS from ~4k to 7.6–9.6k (`docs/PERFORMANCE.md`,
//! "randbusy"). The kernel side of a native filesystem gets the same treatment from
//! its high-priority workqueues.

use std::cell::Cell;

/// The slice asked for (the shortest EEVDF accepts).
const SLICE_NS: u64 = 100_000;

thread_local! {
    /// Whether this thread's scheduling was already set.
    static SET: Cell<bool> = const { Cell::new(false) };
}

/// `struct sched_attr` of `sched_setattr(2)` (the 56-byte version with utilisation
/// clamps).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Gives the calling request thread a short slice and nice value `nice`, once per
/// thread (fuser starts its workers itself, so this runs at each one's first request).
/// A kernel that refuses (too old for custom slices, or no `CAP_SYS_NICE` for a
/// negative nice) is logged once per thread at debug level; the thread then keeps
/// what it could get.
pub fn favour_request_thread(nice: i32) {
    if SET.with(|s| s.replace(true)) {
        return;
    }
    if set_sched(nice).is_err() && nice < 0 {
        // Unprivileged: keep the default nice, still ask for the short slice.
        let _ = set_sched(0);
    }
}

fn set_sched(nice: i32) -> std::io::Result<()> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: SLICE_NS,
        deadline: 0,
        period: 0,
        util_min: 0,
        util_max: 0,
    };
    // SAFETY: sched_setattr reads one `struct sched_attr` of the size given in it from
    // `attr`, which lives for the call; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    tracing::debug!(nice, error = %e, "request thread scheduling not set");
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_attr_has_the_kernels_size() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn a_thread_gets_the_nice_value_when_allowed() {
        std::thread::spawn(|| {
            favour_request_thread(3);
            // SAFETY: getpriority of the calling thread (who 0) has no preconditions.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            assert_eq!(nice, 3, "a positive nice needs no privilege");
        })
        .join()
        .expect("thread");
    }
}
