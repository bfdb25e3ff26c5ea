//! `verfsnext`: mount and manage a VerFSNext filesystem.

use std::process::ExitCode;

fn main() -> ExitCode {
    verfs::heap::bound_malloc_caching();
    verfs::cli::main()
}
