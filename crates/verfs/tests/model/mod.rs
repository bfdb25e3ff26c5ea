//! A model-checked random-operation exerciser: two files on a live mount driven by
//! seeded random ops, each applied also to an in-memory model with Linux semantics,
//! and both files checked (size by `fstat` and `lseek(SEEK_END)`, every byte by
//! `pread`) after every op.
//!
//! - [`rng`]: the seeded generator and write fills (a printed seed replays a run).
//! - [`sys`]: the raw syscalls, with aligned buffers for `O_DIRECT`.
//! - [`ops`]: the ops, their replayable text form, and the model's semantics.
//! - [`gen`]: variants and the random op mix.
//! - [`run`]: apply, check, report; CPU hogs; crash-state bookkeeping.
//! - [`drive`]: whole runs (random mix, the commit/overlay race pattern, remounts, replay).

pub mod drive;
pub mod gen;
pub mod ops;
pub mod rng;
pub mod run;
pub mod sys;

pub use gen::Variant;
