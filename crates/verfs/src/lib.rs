//! The VerFSNext daemon and command line: the only crate that knows fuser and clap.
//!
//! - [`cli`] parses the command line, finds the configuration and runs a command.
//! - [`control`] serves and calls the control socket.
//! - [`fuse`] adapts `fuser::Filesystem` calls to `verfs_core::fs::Fs` and runs the
//!   mount until a signal or an external unmount.
//! - [`heap`] bounds what glibc's allocator keeps after `free`.

pub mod cli;
pub mod control;
pub mod fuse;
pub mod heap;
