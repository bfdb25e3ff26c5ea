//! Model-checked random operations through a real mount (issue 9): pwrite, ftruncate up
//! and down, fallocate in every mode the mount supports (punch hole and zero range
//! among them), copy_file_range within and across two files, mmap reads and writes with
//! msync, preads, fsync/fdatasync, close and reopen, page-cache drops. After every op
//! both files are checked against an in-memory model (size by `fstat` and
//! `lseek(SEEK_END)`, every byte by `pread`). Each run prints its seed; a failure panics
//! with the seed, the step, the first differing offset and the last ops, and leaves the
//! full op log in the system temp dir.
//!
//! Environment: `VERFS_MODEL_SEED` replays a seed, `VERFS_MODEL_OPS` sets ops per
//! variant (`scripts/model-ops-long.sh` runs 100k). The ignored `replay` test loops an
//! op log (`VERFS_MODEL_REPLAY=file`, `VERFS_MODEL_LOOPS`, `VERFS_MODEL_HOGS`).

mod common;
mod model;

use model::drive;
use model::Variant;

#[test]
fn small_file_small_ops() {
    drive::random(Variant {
        ops: 3000,
        ..Variant::small("small_file_small_ops")
    });
}

/// The random mix on files inside the vault: sealed chunks, keyed-BLAKE3 ids, decryption
/// on every read.
#[test]
fn in_vault() {
    drive::random(Variant {
        ops: 600,
        vault: true,
        ..Variant::small("in_vault")
    });
}

#[test]
fn large_file_large_ops() {
    drive::random(Variant {
        ops: 600,
        max_size: 9 << 20,
        max_len: 1 << 20,
        initial: 8 << 20,
        ..Variant::small("large_file_large_ops")
    });
}

#[test]
fn aligned_4k() {
    drive::random(Variant {
        ops: 2400,
        max_size: 1 << 20,
        max_len: 128 << 10,
        align: 4096,
        ..Variant::small("aligned_4k")
    });
}

#[test]
fn o_direct() {
    drive::random(Variant {
        ops: 2000,
        max_size: 1 << 20,
        max_len: 128 << 10,
        align: 4096,
        direct: true,
        ..Variant::small("o_direct")
    });
}

#[test]
fn fsync_after_every_write() {
    drive::random(Variant {
        ops: 2000,
        fsync_after_write: true,
        ..Variant::small("fsync_after_every_write")
    });
}

#[test]
fn reopen_every_few_ops() {
    drive::random(Variant {
        ops: 3000,
        reopen_every: 4,
        ..Variant::small("reopen_every_few_ops")
    });
}

#[test]
fn with_cpu_hogs() {
    drive::random(Variant {
        ops: 3000,
        hogs: 2,
        ..Variant::small("with_cpu_hogs")
    });
}

#[test]
fn commit_overlay_race() {
    drive::race(Variant {
        ops: 12000,
        hogs: 2,
        ..Variant::small("commit_overlay_race")
    });
}

#[test]
fn remount_after_sigint() {
    drive::remount(
        Variant {
            ops: 2400,
            initial: 64 << 10,
            ..Variant::small("remount_after_sigint")
        },
        false,
    );
}

#[test]
fn remount_after_kill9() {
    drive::remount(
        Variant {
            ops: 2400,
            max_len: 64 << 10,
            initial: 64 << 10,
            atomic_only: true,
            ..Variant::small("remount_after_kill9")
        },
        true,
    );
}

/// Loops an op log on fresh files (see the module docs); a tool for minimizing.
#[test]
#[ignore]
fn replay() {
    drive::replay();
}
