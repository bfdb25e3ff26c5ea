//! Name resolution and attributes.

use crate::error::{FsError, FsResult};
use crate::fs::{Attr, Fs, NAME_MAX};
use crate::meta::Reader;
use crate::types::{FileKind, Ino};

impl Fs {
    /// Resolves `name` in directory `parent`.
    ///
    /// Fails with `NotFound`, `NotDir` (parent is not a directory) or `NameTooLong`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> FsResult<Attr> {
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let view = self.engine.meta.view()?;
        let dir = view.inode(parent)?.ok_or(FsError::NotFound)?;
        if dir.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        let ino = match name {
            b"." => parent,
            b".." => dir.parent,
            _ => view.dirent(parent, name)?.ok_or(FsError::NotFound)?.ino,
        };
        drop(view);
        self.engine.inode_with_pending(ino)
    }

    /// The attributes of `ino`, including writes not yet committed.
    ///
    /// Fails with `NotFound` if the inode is gone.
    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        self.engine.inode_with_pending(ino)
    }

    /// The target of symlink `ino`.
    ///
    /// Fails with `NotFound` if gone, `Inval` if `ino` is not a symlink.
    pub fn readlink(&self, ino: Ino) -> FsResult<Vec<u8>> {
        let view = self.engine.meta.view()?;
        let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
        if inode.kind != FileKind::Symlink {
            return Err(FsError::Inval);
        }
        view.symlink(ino)?
            .ok_or_else(|| FsError::Corrupt(format!("{ino}: symlink without target")))
    }
}
