//! The mount(8) helper: `mount -t fuse.verfsnext DATA_DIR MOUNTPOINT -o OPTIONS` runs
//! `/sbin/mount.fuse.verfsnext DATA_DIR MOUNTPOINT [-sfnv] [-o OPTIONS]` (and fuse3's
//! `mount.fuse3` runs `verfsnext DATA_DIR MOUNTPOINT -o OPTIONS`). Options are the
//! standard ones mount(8) users write, plus any config field as `key=value`; the helper
//! detaches the daemon and returns once the filesystem answers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use verfs_core::Config;

use crate::fuse::{KernelFlag, ServeOptions};

/// Options accepted and left to mount(8), systemd or the kernel's defaults.
const IGNORED: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "nofail",
    "_netdev",
    "allow_other",
    "allow_root",
    "default_permissions",
    "suid",
    "dev",
    "exec",
    "async",
    "nodiratime",
    "diratime",
    "lazytime",
    "nolazytime",
];

/// Whether this invocation is the mount helper's: called as `mount.*`, or with a path
/// where a command name would be (fuse3's `mount.fuse3` runs `verfsnext SOURCE MNT`).
pub fn is_helper_call(args: &[String]) -> bool {
    let name = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");
    name.starts_with("mount.") || args.get(1).is_some_and(|a| a.contains('/'))
}

/// The helper's command line as mount(8) passes it.
#[derive(Debug, Default, PartialEq)]
struct HelperArgs {
    source: String,
    mountpoint: PathBuf,
    options: Vec<String>,
    /// `-f`: do everything but the mount.
    fake: bool,
    /// `-s`: ignore options we do not know.
    sloppy: bool,
}

/// What the options ask for.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    config_file: Option<PathBuf>,
    overrides: Vec<(String, String)>,
    kernel_flags: Vec<KernelFlag>,
    log_file: Option<PathBuf>,
    foreground: bool,
}

/// Runs the helper; errors are one line on stderr, naming the bad option where there
/// is one, and exit status 1 (mount(8) reports the failure).
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verfsnext: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let h = parse_args(args.get(1..).unwrap_or_default())?;
    let plan = plan(&h)?;
    let cfg = load_config(&h, &plan)?;
    super::mount::check_mountpoint(&cfg.mount_point)?;
    if h.fake {
        return Ok(());
    }
    let opts = ServeOptions {
        kernel_flags: plan.kernel_flags.clone(),
        on_event: None,
    };
    if plan.foreground {
        return super::mount::serve_config(cfg, opts);
    }
    super::daemon::serve_detached(cfg, opts, plan.log_file.as_deref())
}

fn parse_args(args: &[String]) -> Result<HelperArgs> {
    let mut h = HelperArgs::default();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => match it.next() {
                Some(o) => h
                    .options
                    .extend(o.split(',').filter(|s| !s.is_empty()).map(String::from)),
                None => bail!("-o needs a value"),
            },
            "-t" | "-N" => {
                // The type (known) and a namespace (not supported, refused below).
                let v = it.next().with_context(|| format!("{a} needs a value"))?;
                if a == "-N" {
                    bail!("mount namespaces (-N {v}) are not supported");
                }
            }
            s if s.starts_with("-o") => h.options.extend(
                s[2..]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            s if s.starts_with('-') && s.len() > 1 => {
                for c in s[1..].chars() {
                    match c {
                        'f' => h.fake = true,
                        's' => h.sloppy = true,
                        'n' | 'v' | 'r' | 'w' => {}
                        _ => bail!("unknown flag -{c}"),
                    }
                }
                if s.contains('r') {
                    h.options.push("ro".into());
                }
            }
            _ => positional.push(a.clone()),
        }
    }
    let [source, mountpoint] = <[String; 2]>::try_from(positional).map_err(|p| {
        anyhow::anyhow!(
            "usage: mount.fuse.verfsnext DATA_DIR MOUNTPOINT [-o OPTIONS] (got {} arguments)",
            p.len()
        )
    })?;
    h.source = source;
    h.mountpoint = PathBuf::from(mountpoint);
    Ok(h)
}

/// Sorts the options into config overrides, kernel flags and the helper's own.
fn plan(h: &HelperArgs) -> Result<Plan> {
    let mut p = Plan::default();
    let set = |p: &mut Plan, k: &str, v: &str| p.overrides.push((k.into(), v.into()));
    for o in &h.options {
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        match (key, value) {
            ("ro", None) => set(&mut p, "read_only", "true"),
            ("rw", None) => set(&mut p, "read_only", "false"),
            ("noatime", None) => set(&mut p, "noatime", "true"),
            ("atime" | "relatime" | "strictatime", None) => set(&mut p, "noatime", "false"),
            ("nosuid", None) => p.kernel_flags.push(KernelFlag::NoSuid),
            ("nodev", None) => p.kernel_flags.push(KernelFlag::NoDev),
            ("noexec", None) => p.kernel_flags.push(KernelFlag::NoExec),
            ("sync", None) => p.kernel_flags.push(KernelFlag::Sync),
            ("dirsync", None) => p.kernel_flags.push(KernelFlag::DirSync),
            ("foreground", None) => p.foreground = true,
            ("config", Some(v)) => p.config_file = Some(PathBuf::from(v)),
            ("log_file", Some(v)) => p.log_file = Some(absolute(Path::new(v))?),
            (k, _) if IGNORED.contains(&k) => {}
            (k, _) if k.starts_with("x-") || k == "comment" => {}
            (k, Some(v)) => set(&mut p, k, v),
            (k, None) if h.sloppy => tracing::debug!(option = k, "ignored (sloppy)"),
            (k, None) => bail!("bad mount option `{k}`: not a known option or config field"),
        }
    }
    Ok(p)
}

/// The config file (`config=`, else the search path, else defaults) with the source as
/// data dir and the options on top; paths made absolute, since the daemon detaches.
fn load_config(h: &HelperArgs, plan: &Plan) -> Result<Config> {
    let file = match &plan.config_file {
        Some(p) => Some(p.clone()),
        None => Config::search_path().into_iter().find(|p| p.is_file()),
    };
    let (text, path) = match &file {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config {}", p.display()))?,
            p.clone(),
        ),
        None => (String::new(), PathBuf::from("(defaults)")),
    };
    let mut overrides = Vec::new();
    // A source that is a path is the data dir; `none` or a bare name leaves the config's.
    if h.source.contains('/') {
        overrides.push(("data_dir".to_string(), h.source.clone()));
        // Shown in /proc/mounts, so `mount -a` sees the line as mounted.
        if !h.source.contains([',', ' ', '\n', '\t']) {
            overrides.push(("fsname".to_string(), h.source.clone()));
        }
    }
    overrides.extend(plan.overrides.iter().cloned());
    let mut cfg = Config::from_toml_with(&text, &path, &overrides)?;
    cfg.data_dir = absolute(&cfg.data_dir)?;
    cfg.mount_point = absolute(&h.mountpoint)?;
    Ok(cfg)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn helper_calls_are_recognised() {
        assert!(is_helper_call(&args("/sbin/mount.fuse.verfsnext /d /m")));
        assert!(is_helper_call(&args("verfsnext /d /m -o rw")));
        assert!(!is_helper_call(&args("verfsnext mount /m")));
        assert!(!is_helper_call(&args("verfsnext")));
    }

    #[test]
    fn mount_8_arguments_parse() {
        let h = parse_args(&args(
            "/d /m -s -o ro,n_threads=2 -t fuse.verfsnext -oconfig=/c",
        ))
        .unwrap();
        assert_eq!(h.source, "/d");
        assert_eq!(h.mountpoint, Path::new("/m"));
        assert_eq!(h.options, ["ro", "n_threads=2", "config=/c"]);
        assert!(h.sloppy && !h.fake);
        assert!(parse_args(&args("/d")).is_err());
        assert!(parse_args(&args("/d /m -q")).is_err());
    }

    #[test]
    fn options_sort_into_config_flags_and_ignored() {
        let h = HelperArgs {
            options: args("ro,noatime,nosuid,nodev,nofail,_netdev,x-systemd.automount,n_threads=3,config=/etc/v.toml,foreground")
                .join("")
                .split(',')
                .map(String::from)
                .collect(),
            ..HelperArgs::default()
        };
        let p = plan(&h).unwrap();
        assert_eq!(
            p.overrides,
            [
                ("read_only".to_string(), "true".to_string()),
                ("noatime".into(), "true".into()),
                ("n_threads".into(), "3".into()),
            ]
        );
        assert_eq!(p.kernel_flags, [KernelFlag::NoSuid, KernelFlag::NoDev]);
        assert_eq!(p.config_file.as_deref(), Some(Path::new("/etc/v.toml")));
        assert!(p.foreground);
    }

    #[test]
    fn an_unknown_bare_option_is_named_unless_sloppy() {
        let mut h = HelperArgs {
            options: vec!["bogus".into()],
            ..HelperArgs::default()
        };
        let e = plan(&h).unwrap_err().to_string();
        assert!(e.contains("`bogus`"), "{e}");
        h.sloppy = true;
        assert!(plan(&h).is_ok());
    }
}
