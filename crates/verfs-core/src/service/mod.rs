//! Process-level services: the data-dir lock, the periodic sync, the snapshot sweep
//! and GC.

pub mod gc;
pub mod lock;
pub mod sweep;
pub mod sync;

pub use gc::GcService;
pub use lock::{DataDirLock, LockError};
pub use sweep::SweepService;
pub use sync::SyncService;
