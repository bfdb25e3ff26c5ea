//! `verfs`: the short name of `verfsnext`.

use std::process::ExitCode;

fn main() -> ExitCode {
    verfs::cli::main()
}
