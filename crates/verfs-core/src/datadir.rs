//! Who may read the data dir: the daemon's own user, and with `data_dir_group_access`
//! also a group (a backup group), never others.
//!
//! Packs hold every file's bytes and metadata every name, whatever the permission bits
//! of those files inside the filesystem, so a data dir that other local users can read
//! bypasses them all (PostgreSQL refuses a data directory that group or others can read
//! for the same reason). Three rules keep it closed:
//!
//! - everything the library creates in the data dir gets [`DataDirPerms::dir_mode`] or
//!   [`DataDirPerms::file_mode`] explicitly, whatever the umask;
//! - the daemon sets its umask to [`DataDirPerms::umask`] before opening the data dir, so
//!   the files SurrealKV creates are covered too, and [`DataDirPerms::tighten`] takes back
//!   what SurrealKV opens up itself (it chmods its WAL directory to 0750 at every open);
//! - at startup [`DataDirPerms::check`] refuses a data dir, subdirectory or file that is
//!   more open than allowed, naming it and the `chmod` that fixes it.

use std::fs::{DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// How deep below the data dir [`DataDirPerms::check`] and [`DataDirPerms::tighten`]
/// look: `meta/wal/<segment>` is three levels down; one more for what a SurrealKV
/// version may nest below.
const MAX_DEPTH: usize = 4;

/// Why the data dir is refused before anything in it is opened.
#[derive(Debug, Error)]
pub enum PermsError {
    /// A directory or file in the data dir is open to more users than allowed.
    #[error("{subject} is accessible by {who} (mode {mode:04o}{more}); run: {fix}")]
    TooOpen {
        /// "data dir D", or "data dir D: P" for something inside it.
        subject: String,
        /// The first offending path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Who may get in that should not ("group or others", or "others or group
        /// writers" when group access is allowed).
        who: &'static str,
        /// ", and N more entries in it" when more than one path offends.
        more: String,
        /// The command that fixes it.
        fix: String,
    },
    /// A directory in the data dir could not be listed or an entry not examined.
    #[error("data dir {data_dir}: cannot check the permissions of {path}: {cause}")]
    Io {
        /// The data dir.
        data_dir: PathBuf,
        /// What could not be examined.
        path: PathBuf,
        /// The underlying error (in the message only, so a printed chain names it once).
        cause: io::Error,
    },
}

/// The permission policy of one data dir: owner-only, or owner plus a read-only group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataDirPerms {
    group_read: bool,
}

impl DataDirPerms {
    /// Directories 0700, files 0600: the default.
    pub const OWNER_ONLY: DataDirPerms = DataDirPerms { group_read: false };

    /// Owner-only, or with `group_read` directories 0750 and files 0640 (the
    /// `data_dir_group_access` config field).
    pub fn new(group_read: bool) -> DataDirPerms {
        DataDirPerms { group_read }
    }

    /// Mode of every directory created in the data dir (and of the data dir itself).
    pub fn dir_mode(self) -> u32 {
        0o777 & !self.refused()
    }

    /// Mode of every file created in the data dir.
    pub fn file_mode(self) -> u32 {
        0o666 & !self.refused()
    }

    /// The daemon's umask: the bits no file in the data dir may have.
    pub fn umask(self) -> u32 {
        self.refused()
    }

    /// Permission bits that make a data dir entry too open: every group and other bit,
    /// or with group read allowed, group write and every other bit.
    fn refused(self) -> u32 {
        if self.group_read {
            0o027
        } else {
            0o077
        }
    }

    fn who(self) -> &'static str {
        if self.group_read {
            "others or group writers"
        } else {
            "group or others"
        }
    }

    /// Creates `dir` and its missing parents with [`Self::dir_mode`]; an existing `dir`
    /// is left as it is (startup has checked it).
    ///
    /// Fails like `create_dir_all`.
    pub fn create_dir_all(self, dir: &Path) -> io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(self.dir_mode())
            .create(dir)
    }

    /// Refuses `data_dir` if it, or a directory or file up to [`MAX_DEPTH`] levels
    /// inside it, has a refused permission bit. Symlinks are followed (the daemon
    /// follows them too). A missing data dir passes: it is created owner-only. With one
    /// offending directory the fix named is its `chmod`; with more, a recursive one.
    ///
    /// Fails with `TooOpen` for the first offending path, with `Io` if a directory
    /// cannot be listed.
    pub fn check(self, data_dir: &Path) -> Result<(), PermsError> {
        let io_err = |path: &Path, cause| PermsError::Io {
            data_dir: data_dir.to_path_buf(),
            path: path.to_path_buf(),
            cause,
        };
        let meta = match std::fs::metadata(data_dir) {
            Ok(m) if m.is_dir() => m,
            // Missing: created later; not a directory: the lock says so.
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(data_dir, e)),
        };
        let mut bad = Vec::new();
        if self.too_open(&meta) {
            bad.push((data_dir.to_path_buf(), meta));
        }
        let mut stack = vec![(data_dir.to_path_buf(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
            for entry in entries {
                let path = entry.map_err(|e| io_err(&dir, e))?.path();
                let meta = match std::fs::metadata(&path) {
                    Ok(m) => m,
                    // Removed meanwhile, or a dangling symlink: nothing to read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&path, e)),
                };
                if !meta.is_dir() && !meta.is_file() {
                    // The control socket: recreated 0600 at every start.
                    continue;
                }
                if self.too_open(&meta) {
                    bad.push((path.clone(), meta.clone()));
                }
                if meta.is_dir() && depth + 1 < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            }
        }
        let Some((path, meta)) = bad.first() else {
            return Ok(());
        };
        let mode = meta.permissions().mode() & 0o7777;
        let fix = if bad.len() == 1 && meta.is_dir() {
            format!("chmod {:04o} {}", mode & !self.refused(), path.display())
        } else if self.group_read {
            format!("chmod -R g-w,o-rwx {}", data_dir.display())
        } else {
            format!("chmod -R go-rwx {}", data_dir.display())
        };
        let subject = if path == data_dir {
            format!("data dir {}", data_dir.display())
        } else {
            format!("data dir {}: {}", data_dir.display(), path.display())
        };
        let more = match bad.len() - 1 {
            0 => String::new(),
            n => format!(", and {n} more entries in it"),
        };
        Err(PermsError::TooOpen {
            subject,
            path: path.clone(),
            mode,
            who: self.who(),
            more,
            fix,
        })
    }

    fn too_open(self, meta: &Metadata) -> bool {
        meta.permissions().mode() & self.refused() != 0
    }

    /// Removes refused bits from `dir` and everything up to [`MAX_DEPTH`] levels inside
    /// it; called on the metadata dir after SurrealKV has opened it, since SurrealKV
    /// sets its WAL directory to 0750 itself (not configurable in surrealkv 1.2).
    ///
    /// Fails if an entry cannot be listed or its mode changed.
    pub fn tighten(self, dir: &Path) -> io::Result<()> {
        let mut stack = vec![(dir.to_path_buf(), 0)];
        while let Some((path, depth)) = stack.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode();
            if (meta.is_dir() || meta.is_file()) && mode & self.refused() != 0 {
                let tight = std::fs::Permissions::from_mode(mode & 0o7777 & !self.refused());
                std::fs::set_permissions(&path, tight)?;
            }
            if meta.is_dir() && depth < MAX_DEPTH {
                for entry in std::fs::read_dir(&path)? {
                    stack.push((entry?.path(), depth + 1));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A data dir with `packs/` and a file in it, all owner-only.
    fn tidy() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("data");
        DataDirPerms::OWNER_ONLY
            .create_dir_all(&d.join("packs"))
            .unwrap();
        let f = d.join("packs/p.vpk");
        std::fs::write(&f, b"x").unwrap();
        chmod(&f, 0o600);
        (t, d)
    }

    #[test]
    fn modes_follow_the_policy() {
        let o = DataDirPerms::OWNER_ONLY;
        assert_eq!(
            (o.dir_mode(), o.file_mode(), o.umask()),
            (0o700, 0o600, 0o077)
        );
        let g = DataDirPerms::new(true);
        assert_eq!(
            (g.dir_mode(), g.file_mode(), g.umask()),
            (0o750, 0o640, 0o027)
        );
    }

    #[test]
    fn created_dirs_are_owner_only() {
        let (_t, d) = tidy();
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("packs")), 0o700);
        DataDirPerms::OWNER_ONLY.check(&d).unwrap();
    }

    #[test]
    fn missing_data_dir_passes() {
        let t = tempfile::tempdir().unwrap();
        DataDirPerms::OWNER_ONLY
            .check(&t.path().join("absent"))
            .unwrap();
    }

    #[test]
    fn open_data_dir_is_refused_with_its_chmod() {
        let (_t, d) = tidy();
        chmod(&d, 0o755);
        let e = DataDirPerms::OWNER_ONLY.check(&d).unwrap_err().to_string();
        let want = format!(
            "data dir {0} is accessible by group or others (mode 0755); run: chmod 0700 {0}",
            d.display()
        );
        assert_eq!(e, want);
    }

    #[test]
    fn open_subdirectory_is_refused_by_name() {
        let (_t, d) = tidy();
        let p = d.join("packs");
        chmod(&p, 0o750);
        let e = DataDirPerms::OWNER_ONLY.check(&d).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}: {} is", d.display(), p.display())),
            "{e}"
        );
        assert!(
            e.ends_with(&format!("run: chmod 0700 {}", p.display())),
            "{e}"
        );
    }

    #[test]
    fn open_files_are_refused_with_a_recursive_fix() {
        let (_t, d) = tidy();
        chmod(&d.join("packs/p.vpk"), 0o644);
        chmod(&d, 0o755);
        let e = DataDirPerms::OWNER_ONLY.check(&d).unwrap_err().to_string();
        assert!(e.contains("(mode 0755, and 1 more entries in it)"), "{e}");
        assert!(
            e.ends_with(&format!("run: chmod -R go-rwx {}", d.display())),
            "{e}"
        );
    }

    #[test]
    fn group_access_accepts_group_read_but_never_others() {
        let (_t, d) = tidy();
        let g = DataDirPerms::new(true);
        chmod(&d, 0o750);
        chmod(&d.join("packs/p.vpk"), 0o640);
        g.check(&d).unwrap();
        assert!(DataDirPerms::OWNER_ONLY.check(&d).is_err());
        chmod(&d, 0o755);
        let e = g.check(&d).unwrap_err().to_string();
        assert!(e.contains("accessible by others or group writers"), "{e}");
        assert!(
            e.ends_with(&format!("run: chmod 0750 {}", d.display())),
            "{e}"
        );
        chmod(&d, 0o770);
        assert!(g.check(&d).is_err());
    }

    #[test]
    fn tighten_takes_back_refused_bits() {
        let (_t, d) = tidy();
        let wal = d.join("wal");
        std::fs::create_dir(&wal).unwrap();
        chmod(&wal, 0o750);
        chmod(&d.join("packs/p.vpk"), 0o644);
        DataDirPerms::OWNER_ONLY.tighten(&d).unwrap();
        assert_eq!(mode(&wal), 0o700);
        assert_eq!(mode(&d.join("packs/p.vpk")), 0o600);
        DataDirPerms::OWNER_ONLY.check(&d).unwrap();
    }
}
