//! VerFSNext core: everything but the FUSE protocol and the command line.
//!
//! Layering, from the top:
//!
//! - [`fs`] — POSIX semantics: inodes, names, handles, links, permissions. It calls
//!   `meta` through typed accessors and never builds a key or decodes a record itself.
//! - [`write`] — the write batcher: group commit of file writes, replies sent when the
//!   batch holding them has committed.
//! - [`meta`] — SurrealKV, the versioned record layer, the key layout. The only module
//!   that knows SurrealKV exists.
//! - [`data`] — chunking, hashing, compression and the pack store. It never sees an
//!   inode; only `data::pack` knows the pack file format.
//! - [`service`] — the data-dir lock, the sync service and the shutdown barrier.
//! - [`check`] — the offline checker behind `verfsnext fsck`: reads `meta` through its
//!   read-only scans and packs through `data::pack`, and writes nothing.
//! - [`scrub`] — the online scrub: verifies every stored chunk record while mounted,
//!   with the record checks `check` uses (`data::pack::verify_record`), and names the
//!   files a damaged one breaks; run by `service::scrub`.
//! - [`vault`] — the vault's cryptographic core: key file, Argon2id password wrap of the
//!   folder key, domain keys, chunk ids and the chunk AEAD. Pure functions over bytes;
//!   `fs` and `data` call it, it calls nothing of ours.
//! - [`datadir`] — the owner-only permission policy of the data dir, used by `meta`,
//!   `data` and `service` for everything they create there.
//!
//! The binary crate `verfs` adds the FUSE adapter and the CLI; nothing here knows fuser.

pub mod check;
pub mod config;
pub mod control;
pub mod crash;
pub mod data;
pub mod datadir;
pub mod error;
pub mod meta;
pub mod types;

pub use config::Config;
pub use error::{FsError, FsResult};
pub mod engine;
pub mod fs;
pub mod gc;
pub mod scrub;
pub mod service;
pub mod vault;
pub mod write;

#[cfg(test)]
mod fuzz_util;
