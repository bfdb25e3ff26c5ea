//! Process-level services: the data-dir lock and the periodic sync.

pub mod lock;
pub mod sweep;
pub mod sync;

pub use lock::{DataDirLock, LockError};
pub use sweep::SweepService;
pub use sync::SyncService;
