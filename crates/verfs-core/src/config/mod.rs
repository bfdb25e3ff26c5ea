//! `config.toml`: every field has a default, unknown fields and invalid values are refused
//! with the field's name, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::datadir::DataDirPerms;

mod budget;
mod overrides;

pub use budget::{MemoryBudget, KNOWN_CHUNK_BYTES};

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {cause}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error (in the message only, so a printed chain names it once).
        cause: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown field or a value of the wrong type.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, which names the field.
        message: String,
    },
    /// A mount option (`-o key=value`) names no config field or has a value of the wrong
    /// type.
    #[error("bad mount option `{option}`: {message}")]
    Option {
        /// The option as given.
        option: String,
        /// What is wrong, on one line.
        message: String,
    },
    /// A field has a value outside its allowed range.
    #[error("invalid config value for `{field}`: {message}")]
    Invalid {
        /// The field's name as written in the file.
        field: &'static str,
        /// What is allowed.
        message: String,
    },
}

/// The daemon's configuration. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where metadata (`meta/`) and packs (`packs/`) live.
    pub data_dir: PathBuf,
    /// Lets the data dir's group read it (directories 0750, files 0640), e.g. for a
    /// backup group; by default only the owner may (0700/0600). Others never may.
    pub data_dir_group_access: bool,
    /// Where `verfsnext mount` mounts when no MOUNTPOINT is given.
    pub mount_point: PathBuf,
    /// The `fsname` shown in /proc/mounts.
    pub fsname: String,
    /// The FUSE subtype (`fuse.<subtype>` in /proc/mounts).
    pub subtype: String,
    /// FUSE worker threads, each with its own cloned /dev/fuse fd.
    pub n_threads: usize,
    /// Nice value of the FUSE worker threads (-20..=19; 0 leaves them as started). They
    /// serve applications' requests, like the kernel work of a native filesystem, so
    /// the default -5 lets a read overtake the daemon's own chunking and compression
    /// and other busy processes on a loaded machine. Needs root (`CAP_SYS_NICE`);
    /// without it the threads keep nice 0 and only get the short scheduler slice.
    pub request_nice: i32,
    /// A pack is sealed and a new one started once it reaches this size.
    pub pack_max_size_mb: u64,
    /// How often the sync service makes written data durable (packs, then metadata WAL).
    pub sync_interval_ms: u64,
    /// A write batch closes after this many write blocks.
    pub batch_max_blocks: usize,
    /// Longest a file's last partial chunk is held in memory before it is stored.
    pub batch_max_delay_ms: u64,
    /// A write batch closes once it holds this much write data; a cap below the batch's
    /// share of `memory_limit_mb` (half the write-back share), which wins when smaller.
    pub batch_max_memory_mb: u64,
    /// Smallest chunk the chunker cuts (except at end of file).
    pub ultracdc_min_size_bytes: u32,
    /// Average chunk size the chunker aims for.
    pub ultracdc_avg_size_bytes: u32,
    /// Largest chunk the chunker cuts.
    pub ultracdc_max_size_bytes: u32,
    /// zstd level for chunk compression (negative levels are the fast modes).
    pub zstd_compression_level: i32,
    /// Bytes of decompressed chunks kept in memory for reads; a cap below the chunk
    /// cache's share of `memory_limit_mb`, which wins when smaller.
    pub chunk_cache_mb: u64,
    /// MiB the daemon as a whole may use, divided into shares ([`MemoryBudget`]): one
    /// number so a small machine can bound every cache and buffer at once.
    pub memory_limit_mb: u64,
    /// Seconds the kernel may cache attributes and names.
    pub attr_ttl_secs: u64,
    /// Whether `ls -a` of the root lists `.snapshots` (it is reachable by name either
    /// way; hidden by default so `rsync`, `find` and backups do not walk snapshots).
    pub snapshots_visible: bool,
    /// Stored keys the sweep after a snapshot delete examines per transaction (writers
    /// wait for at most one such transaction).
    pub sweep_step_keys: usize,
    /// Pause between sweep transactions, to leave the disk to other work.
    pub sweep_pause_ms: u64,
    /// GC runs by itself once reads and writes have paused this long and some chunk
    /// is unreferenced; 0 leaves GC to `verfsnext gc run`.
    pub gc_idle_min_ms: u64,
    /// GC rewrites a pack once this share of it (percent) is dead ...
    pub gc_pack_rewrite_min_reclaim_percent: u64,
    /// ... or this many of its bytes are, whatever the share.
    pub gc_pack_rewrite_min_reclaim_bytes: u64,
    /// Most MiB per second `verfsnext scrub` reads from packs, so foreground reads and
    /// writes keep most of the disk; 0 means no limit.
    pub scrub_rate_mb_per_s: u64,
    /// Argon2id memory (KiB) for a vault created or re-keyed from now on; the default
    /// is RFC 9106's second recommendation and the least accepted.
    pub vault_argon2_memory_kib: u32,
    /// Argon2id passes (at least 3).
    pub vault_argon2_iterations: u32,
    /// Argon2id lanes (at least 4).
    pub vault_argon2_parallelism: u32,
    /// Serve the filesystem read-only: the kernel refuses every change with EROFS and
    /// the daemon itself writes nothing after startup recovery (no atime updates, no
    /// scheduled snapshots, no GC, no snapshot or vault changes from the CLI).
    pub read_only: bool,
    /// Never update atime on reads (default: relatime, which updates it only when it is
    /// older than mtime/ctime or a day old).
    pub noatime: bool,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: String,
    /// Scheduled snapshots and their retention (the `[snapshots]` table).
    pub snapshots: crate::fs::ScheduleConfig,
}

impl Config {
    /// The Argon2id cost of new vault passwords.
    pub fn vault_kdf(&self) -> crate::vault::KdfParams {
        crate::vault::KdfParams {
            m_cost_kib: self.vault_argon2_memory_kib,
            t_cost: self.vault_argon2_iterations,
            p_cost: self.vault_argon2_parallelism,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            data_dir_group_access: false,
            mount_point: PathBuf::from("/mnt/verfsnext"),
            fsname: "verfsnext".into(),
            subtype: "verfsnext".into(),
            n_threads: 4,
            request_nice: -5,
            pack_max_size_mb: 64,
            sync_interval_ms: 1000,
            batch_max_blocks: 3000,
            batch_max_delay_ms: 500,
            batch_max_memory_mb: 64,
            ultracdc_min_size_bytes: 16 * 1024,
            ultracdc_avg_size_bytes: 64 * 1024,
            ultracdc_max_size_bytes: 256 * 1024,
            zstd_compression_level: 3,
            chunk_cache_mb: 64,
            memory_limit_mb: 256,
            attr_ttl_secs: 1,
            snapshots_visible: false,
            sweep_step_keys: 2048,
            sweep_pause_ms: 0,
            gc_idle_min_ms: 5000,
            gc_pack_rewrite_min_reclaim_percent: 20,
            gc_pack_rewrite_min_reclaim_bytes: 256 << 20,
            scrub_rate_mb_per_s: 50,
            vault_argon2_memory_kib: 64 * 1024,
            vault_argon2_iterations: 3,
            vault_argon2_parallelism: 4,
            read_only: false,
            noatime: false,
            log_level: "info".into(),
            snapshots: crate::fs::ScheduleConfig::default(),
        }
    }
}

/// `$XDG_DATA_HOME/verfsnext`, else `~/.local/share/verfsnext`, else `./verfsnext-data`.
fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("verfsnext");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/verfsnext"),
        None => PathBuf::from("verfsnext-data"),
    }
}

impl Config {
    /// Parses TOML text and validates every field.
    ///
    /// Fails on malformed TOML, unknown fields, wrong types and out-of-range values.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a config file.
    ///
    /// Fails if the file cannot be read or [`Config::from_toml`] rejects it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Config::from_toml(&text, path)
    }

    /// The files looked at, in order, when no `--config` is given.
    pub fn search_path() -> Vec<PathBuf> {
        let mut v = vec![PathBuf::from("config.toml")];
        if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            v.push(PathBuf::from(h).join(".config/verfsnext/config.toml"));
        }
        v.push(PathBuf::from("/etc/verfsnext/config.toml"));
        v
    }

    /// Checks every numeric and enumerated field against its allowed range.
    ///
    /// Fails with the first invalid field's name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn range<T: PartialOrd + std::fmt::Display>(
            field: &'static str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), ConfigError> {
            if v < lo || v > hi {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!("{v} is outside {lo}..={hi}"),
                });
            }
            Ok(())
        }
        range("n_threads", self.n_threads, 1, 64)?;
        range("request_nice", self.request_nice, -20, 19)?;
        range("pack_max_size_mb", self.pack_max_size_mb, 1, 4096)?;
        range("sync_interval_ms", self.sync_interval_ms, 10, 600_000)?;
        range("batch_max_blocks", self.batch_max_blocks, 1, 1_000_000)?;
        range("batch_max_delay_ms", self.batch_max_delay_ms, 1, 60_000)?;
        range("batch_max_memory_mb", self.batch_max_memory_mb, 1, 16_384)?;
        range(
            "ultracdc_min_size_bytes",
            self.ultracdc_min_size_bytes,
            64,
            1 << 24,
        )?;
        range(
            "ultracdc_avg_size_bytes",
            self.ultracdc_avg_size_bytes,
            self.ultracdc_min_size_bytes,
            1 << 24,
        )?;
        range(
            "ultracdc_max_size_bytes",
            self.ultracdc_max_size_bytes,
            self.ultracdc_avg_size_bytes,
            1 << 24,
        )?;
        range(
            "zstd_compression_level",
            self.zstd_compression_level,
            -7,
            22,
        )?;
        range("chunk_cache_mb", self.chunk_cache_mb, 0, 1 << 20)?;
        range("memory_limit_mb", self.memory_limit_mb, 64, 65_536)?;
        range("attr_ttl_secs", self.attr_ttl_secs, 0, 3600)?;
        range("sweep_step_keys", self.sweep_step_keys, 1, 1_000_000)?;
        range("sweep_pause_ms", self.sweep_pause_ms, 0, 60_000)?;
        range("gc_idle_min_ms", self.gc_idle_min_ms, 0, 86_400_000)?;
        range(
            "gc_pack_rewrite_min_reclaim_percent",
            self.gc_pack_rewrite_min_reclaim_percent,
            1,
            100,
        )?;
        range(
            "gc_pack_rewrite_min_reclaim_bytes",
            self.gc_pack_rewrite_min_reclaim_bytes,
            1,
            u64::MAX,
        )?;
        range("scrub_rate_mb_per_s", self.scrub_rate_mb_per_s, 0, 1 << 20)?;
        range(
            "vault_argon2_memory_kib",
            self.vault_argon2_memory_kib,
            64 * 1024,
            4 * 1024 * 1024,
        )?;
        range(
            "vault_argon2_iterations",
            self.vault_argon2_iterations,
            3,
            64,
        )?;
        range(
            "vault_argon2_parallelism",
            self.vault_argon2_parallelism,
            4,
            64,
        )?;
        range("snapshots.unit_secs", self.snapshots.unit_secs, 1, 86_400)?;
        let p = &self.snapshots.prefix;
        if p.is_empty() || p.len() > 64 || p.contains(['/', '\0']) || p == "." || p == ".." {
            return Err(ConfigError::Invalid {
                field: "snapshots.prefix",
                message: format!("{p:?} must be 1-64 bytes without '/' or NUL"),
            });
        }
        for (field, v) in [("fsname", &self.fsname), ("subtype", &self.subtype)] {
            if v.is_empty() || v.contains([',', ' ', '\n', '\0']) {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!("{v:?} must be non-empty without commas or spaces"),
                });
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log_level.as_str()) {
            return Err(ConfigError::Invalid {
                field: "log_level",
                message: format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    self.log_level
                ),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                field: "data_dir",
                message: "must not be empty".into(),
            });
        }
        Ok(())
    }

    /// The permission policy of the data dir (`data_dir_group_access`).
    pub fn data_dir_perms(&self) -> DataDirPerms {
        DataDirPerms::new(self.data_dir_group_access)
    }

    /// When GC rewrites a pack.
    pub fn gc_config(&self) -> crate::gc::GcConfig {
        crate::gc::GcConfig {
            min_reclaim_percent: self.gc_pack_rewrite_min_reclaim_percent,
            min_reclaim_bytes: self.gc_pack_rewrite_min_reclaim_bytes,
        }
    }

    /// How fast the scrub may read.
    pub fn scrub_config(&self) -> crate::scrub::ScrubConfig {
        crate::scrub::ScrubConfig {
            rate_bytes_per_s: self.scrub_rate_mb_per_s * 1024 * 1024,
        }
    }

    /// `memory_limit_mb` divided into its shares, with the caps applied.
    pub fn memory_budget(&self) -> MemoryBudget {
        MemoryBudget::new(
            self.memory_limit_mb,
            self.chunk_cache_mb,
            self.batch_max_memory_mb,
        )
    }

    /// The pack rotation threshold in bytes.
    pub fn pack_max_bytes(&self) -> u64 {
        self.pack_max_size_mb * 1024 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::from_toml(s, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.n_threads, Config::default().n_threads);
        assert_eq!(c.batch_max_blocks, 3000);
        assert_eq!(c.batch_max_delay_ms, 500);
    }

    #[test]
    fn unknown_field_is_rejected_by_name() {
        let e = parse("n_thread = 3").unwrap_err().to_string();
        assert!(e.contains("n_thread"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = parse("n_threads = \"four\"").unwrap_err().to_string();
        assert!(e.contains("n_threads"), "{e}");
    }

    #[test]
    fn data_dir_group_access_is_a_bool() {
        assert!(!parse("").unwrap().data_dir_group_access);
        assert!(
            parse("data_dir_group_access = true")
                .unwrap()
                .data_dir_group_access
        );
        let e = parse("data_dir_group_access = \"yes\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_dir_group_access"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn out_of_range_value_names_the_field() {
        let e = parse("n_threads = 0").unwrap_err().to_string();
        assert!(e.contains("n_threads"), "{e}");
        let e = parse("ultracdc_min_size_bytes = 70000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ultracdc_avg_size_bytes"), "{e}");
        let e = parse("memory_limit_mb = 32").unwrap_err().to_string();
        assert!(e.contains("memory_limit_mb"), "{e}");
        let e = parse("log_level = \"loud\"").unwrap_err().to_string();
        assert!(e.contains("log_level"), "{e}");
    }

    /// Whether a commented-out line of the example is a setting (`key = value` or a
    /// `[table]` header) rather than prose.
    fn is_setting(line: &str) -> bool {
        line.starts_with("[snapshots]")
            || line.split_once(" = ").is_some_and(|(k, _)| {
                k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
    }

    #[test]
    fn example_file_parses_and_lists_every_field() {
        let text = include_str!("../../../../config.toml.example");
        let c = parse(text).unwrap();
        c.validate().unwrap();
        // Uncommented, the example is the defaults.
        let all: String = text
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|r| is_setting(r)).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut defaults = Config::default();
        let parsed = parse(&all).unwrap();
        defaults.data_dir = parsed.data_dir.clone();
        assert_eq!(
            parsed, defaults,
            "an example value differs from its default"
        );
        // Every field appears (commented or not) in the example.
        let uncommented: String = text
            .lines()
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        for field in [
            "data_dir",
            "data_dir_group_access",
            "mount_point",
            "fsname",
            "subtype",
            "n_threads",
            "request_nice",
            "pack_max_size_mb",
            "sync_interval_ms",
            "batch_max_blocks",
            "batch_max_delay_ms",
            "batch_max_memory_mb",
            "ultracdc_min_size_bytes",
            "ultracdc_avg_size_bytes",
            "ultracdc_max_size_bytes",
            "zstd_compression_level",
            "chunk_cache_mb",
            "memory_limit_mb",
            "attr_ttl_secs",
            "snapshots_visible",
            "sweep_step_keys",
            "sweep_pause_ms",
            "gc_idle_min_ms",
            "gc_pack_rewrite_min_reclaim_percent",
            "gc_pack_rewrite_min_reclaim_bytes",
            "scrub_rate_mb_per_s",
            "vault_argon2_memory_kib",
            "vault_argon2_iterations",
            "vault_argon2_parallelism",
            "read_only",
            "noatime",
            "log_level",
            "hourly",
            "daily",
            "weekly",
            "monthly",
            "prefix",
            "unit_secs",
        ] {
            assert!(
                uncommented.contains(&format!("{field} =")),
                "{field} missing from example"
            );
        }
    }
}
