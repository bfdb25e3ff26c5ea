//! `verfsnext`: mount and manage a VerFSNext filesystem.

use std::process::ExitCode;

fn main() -> ExitCode {
    verfs::cli::main()
}
