//! `verfsnext completions SHELL` and `verfsnext man`: generated from the same clap
//! definitions the parser uses, so they never drift from the flags.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "verfsnext", &mut out);
    print_all(&out)
}

/// Writes verfsnext(1) to stdout, or one page per command into `dir`.
///
/// Fails if a page cannot be rendered or written.
pub fn man(dir: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        return print_all(&out);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    write_page(dir, "verfsnext", cmd.clone())?;
    for sub in cmd.get_subcommands() {
        let name = format!("verfsnext-{}", sub.get_name());
        write_page(dir, &name, sub.clone().display_name(name.clone()))?;
    }
    Ok(())
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    std::fs::write(&path, out).with_context(|| format!("{}", path.display()))?;
    print_all(format!("{}\n", path.display()).as_bytes())
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn print_all(bytes: &[u8]) -> Result<()> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
