//! Finding and loading the configuration, the same way for every command.

use anyhow::{Context, Result};
use verfs_core::Config;

use super::ConfigArgs;

/// Loads `--config`, else the first existing file of the search path, else defaults;
/// says on stderr which one was used. `--data-dir` overrides the file.
pub fn load(args: &ConfigArgs) -> Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => {
            let c = Config::load(path)?;
            eprintln!("verfsnext: using config {}", path.display());
            c
        }
        None => match Config::search_path().into_iter().find(|p| p.is_file()) {
            Some(path) => {
                let c = Config::load(&path)?;
                eprintln!("verfsnext: using config {}", path.display());
                c
            }
            None => {
                eprintln!("verfsnext: no config file found; using defaults");
                Config::default()
            }
        },
    };
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    cfg.validate()
        .context("after applying command-line flags")?;
    Ok(cfg)
}
