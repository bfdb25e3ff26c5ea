//! rename(2) and renameat2's RENAME_NOREPLACE / RENAME_EXCHANGE, atomically in one
//! transaction.

use crate::error::{FsError, FsResult};
use crate::fs::ops::create::live_dir;
use crate::fs::ops::remove::{drop_link, remove_dir_entry, touch_dir};
use crate::fs::{check_name, Caller, Fs};
use crate::meta::{Dirent, Inode, Reader, WriteTxn, INODE_FLAG_VAULT};
use crate::types::{FileKind, Ino, Timestamp};

/// renameat2 flag: fail if the target exists.
pub const RENAME_NOREPLACE: u32 = 1;
/// renameat2 flag: swap source and target.
pub const RENAME_EXCHANGE: u32 = 2;

/// One side of a rename.
#[derive(Clone, Copy)]
struct Side<'a> {
    dir: Ino,
    name: &'a [u8],
}

impl Fs {
    /// Moves `name` in `parent` to `newname` in `newparent`, replacing a target that is
    /// a file or an empty directory.
    ///
    /// Fails with `NotFound`, `Exists` (NOREPLACE), `NotEmpty`, `IsDir`, `NotDir`,
    /// `Inval` (directory into its own subtree, unknown flags).
    pub fn rename(
        &self,
        _caller: Caller,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(FsError::Inval);
        }
        check_name(name)?;
        check_name(newname)?;
        let parent = self.live_old_name(parent, name)?;
        let newparent = if flags & RENAME_EXCHANGE != 0 {
            self.live_old_name(newparent, newname)?
        } else {
            self.live_new_name(newparent, newname)?
        };
        let src = Side { dir: parent, name };
        let dst = Side {
            dir: newparent,
            name: newname,
        };
        loop {
            let target = self.existing_entry(newparent, newname).ok();
            let guard = target.filter(|t| t.kind != FileKind::Dir).map(|t| t.ino);
            let open = guard.is_some_and(|ino| self.handles.begin_unlink(ino));
            let res: FsResult<bool> = self.engine.meta.write(|txn| {
                if txn.dirent(newparent, newname)? != target {
                    return Ok(false);
                }
                if flags & RENAME_EXCHANGE != 0 {
                    exchange(txn, src, dst)?;
                } else {
                    move_entry(txn, src, dst, flags & RENAME_NOREPLACE != 0, open)?;
                }
                Ok(true)
            });
            if let Some(ino) = guard {
                self.handles.end_unlink(ino);
            }
            if res? {
                return Ok(());
            }
        }
    }
}

/// Refuses a move between the vault and the rest with EXDEV, so `mv` copies the file
/// and it is re-encoded in its new domain.
fn same_domain(a: &Inode, b: &Inode) -> FsResult<()> {
    if (a.flags ^ b.flags) & INODE_FLAG_VAULT != 0 {
        return Err(FsError::CrossDevice);
    }
    Ok(())
}

/// Whether `dir` is `ancestor` or lies below it.
fn is_within(txn: &WriteTxn, mut dir: Ino, ancestor: Ino) -> FsResult<bool> {
    for _ in 0..4096 {
        if dir == ancestor {
            return Ok(true);
        }
        if dir == Ino::ROOT {
            return Ok(false);
        }
        dir = txn.inode(dir)?.ok_or(FsError::NotFound)?.parent;
    }
    Err(FsError::Corrupt(format!(
        "directory parent chain from {dir} does not reach the root"
    )))
}

fn move_entry(
    txn: &mut WriteTxn,
    src: Side<'_>,
    dst: Side<'_>,
    noreplace: bool,
    keep: bool,
) -> FsResult<()> {
    same_domain(&live_dir(txn, src.dir)?, &live_dir(txn, dst.dir)?)?;
    let s = txn.dirent(src.dir, src.name)?.ok_or(FsError::NotFound)?;
    if s.kind == FileKind::Dir && dst.dir != src.dir && is_within(txn, dst.dir, s.ino)? {
        return Err(FsError::Inval);
    }
    if let Some(t) = txn.dirent(dst.dir, dst.name)? {
        if noreplace {
            return Err(FsError::Exists);
        }
        if t.ino == s.ino {
            // Both names are links to one inode: POSIX says do nothing.
            return Ok(());
        }
        match (s.kind == FileKind::Dir, t.kind == FileKind::Dir) {
            (true, false) => return Err(FsError::NotDir),
            (false, true) => return Err(FsError::IsDir),
            (true, true) => remove_dir_entry(txn, dst.dir, dst.name, t.ino)?,
            (false, false) => {
                txn.delete_dirent(dst.dir, dst.name)?;
                drop_link(txn, t.ino, keep)?;
            }
        }
    }
    txn.delete_dirent(src.dir, src.name)?;
    txn.put_dirent(dst.dir, dst.name, &s)?;
    relink(txn, s, src.dir, dst.dir)?;
    let delta = i32::from(s.kind == FileKind::Dir && src.dir != dst.dir);
    touch_dir(txn, src.dir, -delta)?;
    touch_dir(txn, dst.dir, delta)?;
    Ok(())
}

fn exchange(txn: &mut WriteTxn, a: Side<'_>, b: Side<'_>) -> FsResult<()> {
    same_domain(&live_dir(txn, a.dir)?, &live_dir(txn, b.dir)?)?;
    let ea = txn.dirent(a.dir, a.name)?.ok_or(FsError::NotFound)?;
    let eb = txn.dirent(b.dir, b.name)?.ok_or(FsError::NotFound)?;
    if a.dir != b.dir {
        if ea.kind == FileKind::Dir && is_within(txn, b.dir, ea.ino)? {
            return Err(FsError::Inval);
        }
        if eb.kind == FileKind::Dir && is_within(txn, a.dir, eb.ino)? {
            return Err(FsError::Inval);
        }
    }
    txn.put_dirent(a.dir, a.name, &eb)?;
    txn.put_dirent(b.dir, b.name, &ea)?;
    relink(txn, ea, a.dir, b.dir)?;
    relink(txn, eb, b.dir, a.dir)?;
    let moved_dirs = |e: Dirent| i32::from(e.kind == FileKind::Dir && a.dir != b.dir);
    let delta = moved_dirs(eb) - moved_dirs(ea);
    touch_dir(txn, a.dir, delta)?;
    touch_dir(txn, b.dir, -delta)?;
    Ok(())
}

/// Updates the moved inode: ctime, and its parent pointer (a directory's `..`; for
/// other kinds the directory that holds the name last moved, where `snapshot diff`
/// looks for its path).
fn relink(txn: &mut WriteTxn, e: Dirent, from: Ino, to: Ino) -> FsResult<()> {
    let mut i = txn
        .inode(e.ino)?
        .ok_or_else(|| FsError::Corrupt(format!("entry names missing {}", e.ino)))?;
    i.ctime = Timestamp::now();
    if from != to {
        i.parent = to;
    }
    txn.put_inode(&i)?;
    Ok(())
}
