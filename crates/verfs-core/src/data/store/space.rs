//! Free space on the disk holding the packs, and the share of it kept back.

use std::path::Path;

/// Available and total bytes of the filesystem holding `dir`.
pub(crate) fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a zeroed out-parameter of the
    // type statvfs(3) writes.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let f = st.f_frsize.max(1);
    Some((st.f_bavail.saturating_mul(f), st.f_blocks.saturating_mul(f)))
}

/// Space kept free for metadata: 2% of the disk, at least 4 MiB, at most 256 MiB.
/// Appends stop short of it; GC may use half of it to rewrite packs on a full disk,
/// the other half stays for metadata commits and a clean shutdown.
pub(crate) fn reserve_for(dir: &Path) -> u64 {
    let total = disk_space(dir).map_or(0, |(_, t)| t);
    (total / 50).clamp(4 << 20, 256 << 20)
}
