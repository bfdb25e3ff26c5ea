//! Process-level services: the data-dir lock, the periodic sync, the snapshot sweep
//! GC and the scrub.

pub mod gc;
pub mod lock;
pub mod scrub;
pub mod sweep;
pub mod sync;

pub use gc::GcService;
pub use lock::{DataDirLock, LockError};
pub use scrub::ScrubService;
pub use sweep::SweepService;
pub use sync::SyncService;
