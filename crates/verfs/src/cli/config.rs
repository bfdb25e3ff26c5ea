//! Finding and loading the configuration, the same way for every command.

use std::path::PathBuf;

use anyhow::{Context, Result};
use verfs_core::Config;

use super::ConfigArgs;

/// Loads `--config`, else the first existing file of the search path, else defaults;
/// `--data-dir` overrides the file. Silent, so a client command's error stays one line.
pub fn load(args: &ConfigArgs) -> Result<Config> {
    Ok(load_from(args)?.0)
}

/// [`load`] that also says on stderr which file was used (for the daemon's log).
pub fn load_noting(args: &ConfigArgs) -> Result<Config> {
    let (cfg, file) = load_from(args)?;
    match file {
        Some(p) => eprintln!("verfsnext: using config {}", p.display()),
        None => eprintln!("verfsnext: no config file found; using defaults"),
    }
    Ok(cfg)
}

fn load_from(args: &ConfigArgs) -> Result<(Config, Option<PathBuf>)> {
    let file = match &args.config {
        Some(p) => Some(p.clone()),
        None => Config::search_path().into_iter().find(|p| p.is_file()),
    };
    let mut cfg = match &file {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    cfg.validate()
        .context("after applying command-line flags")?;
    Ok((cfg, file))
}
