//! Removing names: unlink, rmdir, and freeing inodes whose last link and last open
//! handle are gone.

use crate::engine::Engine;
use crate::error::{FsError, FsResult};
use crate::fs::ops::create::live_dir;
use crate::fs::{Caller, Fs, NAME_MAX};
use crate::meta::{Dirent, Inode, Reader, WriteTxn};
use crate::types::{FileKind, Ino, Timestamp};
use crate::write::drop_all_extents;

/// Outcome of a removal attempt that may have raced with a rename.
enum Attempt {
    Done,
    Raced,
}

impl Fs {
    /// Removes the non-directory `name` from `parent`. The inode is freed at once unless
    /// it is still open, in which case it is freed at its last close (or next start).
    ///
    /// Fails with `NotFound`, `IsDir`, `NotDir`, `NameTooLong`.
    pub fn unlink(&self, _caller: Caller, parent: Ino, name: &[u8]) -> FsResult<()> {
        let parent = self.live_old_name(parent, name)?;
        loop {
            let d = self.existing_entry(parent, name)?;
            if d.kind == FileKind::Dir {
                return Err(FsError::IsDir);
            }
            let open = self.handles.begin_unlink(d.ino);
            let res: FsResult<Attempt> = self.engine.meta.write(|txn| {
                if txn.dirent(parent, name)? != Some(d) {
                    return Ok(Attempt::Raced);
                }
                touch_dir(txn, parent, 0)?;
                txn.delete_dirent(parent, name)?;
                drop_link(txn, d.ino, open)?;
                Ok(Attempt::Done)
            });
            self.handles.end_unlink(d.ino);
            match res? {
                Attempt::Done => return Ok(()),
                Attempt::Raced => continue,
            }
        }
    }

    /// Removes the empty directory `name` from `parent`.
    ///
    /// Fails with `NotFound`, `NotDir`, `NotEmpty`, `NameTooLong`.
    pub fn rmdir(&self, _caller: Caller, parent: Ino, name: &[u8]) -> FsResult<()> {
        let parent = self.live_old_name(parent, name)?;
        if name == b"." {
            return Err(FsError::Inval);
        }
        if name == b".." {
            return Err(FsError::NotEmpty);
        }
        loop {
            let d = self.existing_entry(parent, name)?;
            if d.kind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            let res: FsResult<Attempt> = self.engine.meta.write(|txn| {
                if txn.dirent(parent, name)? != Some(d) {
                    return Ok(Attempt::Raced);
                }
                remove_dir_entry(txn, parent, name, d.ino)?;
                Ok(Attempt::Done)
            });
            match res? {
                Attempt::Done => return Ok(()),
                Attempt::Raced => continue,
            }
        }
    }

    /// The entry `name` of `parent`, read outside any write transaction.
    pub(crate) fn existing_entry(&self, parent: Ino, name: &[u8]) -> FsResult<Dirent> {
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let view = self.engine.meta.view()?;
        let p = view.inode(parent)?.ok_or(FsError::NotFound)?;
        if p.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        view.dirent(parent, name)?.ok_or(FsError::NotFound)
    }

    /// Frees `ino` after its last handle closed, if it has no links left.
    pub(crate) fn release_inode(&self, ino: Ino) -> FsResult<()> {
        if self.handles.begin_unlink(ino) {
            // Reopened meanwhile: the new handle's close will free it.
            self.handles.end_unlink(ino);
            return Ok(());
        }
        let res = purge_inode(&self.engine, ino);
        self.handles.end_unlink(ino);
        res
    }
}

/// Removes directory entry `name` (the empty directory `ino`) from `parent`.
pub(crate) fn remove_dir_entry(
    txn: &mut WriteTxn,
    parent: Ino,
    name: &[u8],
    ino: Ino,
) -> FsResult<()> {
    if !txn.dir_is_empty(ino)? {
        return Err(FsError::NotEmpty);
    }
    touch_dir(txn, parent, -1)?;
    txn.delete_dirent(parent, name)?;
    let dir = txn
        .inode(ino)?
        .ok_or_else(|| FsError::Corrupt(format!("entry names missing {ino}")))?;
    free_inode(txn, &dir)
}

/// Updates a directory's times for an entry change and adjusts its link count.
pub(crate) fn touch_dir(txn: &mut WriteTxn, dir: Ino, nlink_delta: i32) -> FsResult<()> {
    let mut p = live_dir(txn, dir)?;
    let now = Timestamp::now();
    p.mtime = now;
    p.ctime = now;
    p.nlink = p.nlink.saturating_add_signed(nlink_delta).max(2);
    txn.put_inode(&p)?;
    Ok(())
}

/// Drops one link of the non-directory `ino`; at zero links it is freed, or kept with an
/// orphan mark when `keep` (still open).
pub(crate) fn drop_link(txn: &mut WriteTxn, ino: Ino, keep: bool) -> FsResult<()> {
    let mut child = txn
        .inode(ino)?
        .ok_or_else(|| FsError::Corrupt(format!("entry names missing {ino}")))?;
    child.nlink = child.nlink.saturating_sub(1);
    child.ctime = Timestamp::now();
    if child.nlink > 0 || keep {
        txn.put_inode(&child)?;
        if child.nlink == 0 {
            txn.set_orphan(ino)?;
        }
        return Ok(());
    }
    free_inode(txn, &child)
}

/// Deletes an inode and everything it owns.
fn free_inode(txn: &mut WriteTxn, inode: &Inode) -> FsResult<()> {
    match inode.kind {
        FileKind::File => drop_all_extents(txn, inode.ino)?,
        FileKind::Symlink => txn.delete_symlink(inode.ino)?,
        _ => {}
    }
    for name in txn.xattr_names(inode.ino)? {
        txn.delete_xattr(inode.ino, &name)?;
    }
    txn.delete_inode(inode.ino)?;
    Ok(())
}

/// Frees `ino` if it has no links, and clears its orphan mark.
///
/// Fails if metadata cannot be read or written.
pub(crate) fn purge_inode(engine: &Engine, ino: Ino) -> FsResult<()> {
    engine.meta.write(|txn| {
        if let Some(inode) = txn.inode(ino)? {
            if inode.nlink > 0 {
                txn.clear_orphan(ino)?;
                return Ok(());
            }
            free_inode(txn, &inode)?;
        }
        txn.clear_orphan(ino)?;
        Ok(())
    })
}
