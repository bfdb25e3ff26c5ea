//! Name resolution and attributes, in whichever tree the inode belongs to.

use crate::error::{FsError, FsResult};
use crate::fs::node::{Node, Tree, SNAPDIR_NAME};
use crate::fs::{Attr, Fs, NAME_MAX};
use crate::meta::Reader;
use crate::types::{FileKind, Ino};

impl Fs {
    /// Resolves `name` in directory `parent`.
    ///
    /// Fails with `NotFound`, `NotDir` (parent is not a directory), `NameTooLong`, or
    /// `Stale` in a deleted snapshot.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> FsResult<Attr> {
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let (tree, parent) = match self.node(parent)? {
            Node::SnapDir => return self.lookup_snapshot(name),
            Node::Stored(Tree::Live, p) if p == Ino::ROOT && name == SNAPDIR_NAME => {
                return self.snapdir_attr();
            }
            Node::Stored(tree, p) => (tree, p),
        };
        if self.hidden_entry(tree, parent, name) {
            return Err(FsError::NotFound);
        }
        let view = self.view_of(tree)?;
        let dir = view.inode(parent)?.ok_or(FsError::NotFound)?;
        if dir.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        self.vault_open(&dir)?;
        let ino = match name {
            b"." => parent,
            b".." if tree != Tree::Live && parent == Ino::ROOT => {
                return self.snapdir_attr();
            }
            b".." => dir.parent,
            _ => view.dirent(parent, name)?.ok_or(FsError::NotFound)?.ino,
        };
        match tree {
            Tree::Live => {
                drop(view);
                self.engine.inode_with_pending(ino)
            }
            Tree::Snap(_) => {
                let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
                Ok(tree.export_attr(inode))
            }
        }
    }

    /// The attributes of `ino`; in the live tree including writes not yet committed.
    ///
    /// Fails with `NotFound` if the inode is gone, `Stale` in a deleted snapshot.
    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        match self.node(ino)? {
            Node::Stored(Tree::Live, i) => self.engine.inode_with_pending(i),
            Node::Stored(tree, i) => {
                let inode = self.view_of(tree)?.inode(i)?.ok_or(FsError::NotFound)?;
                Ok(tree.export_attr(inode))
            }
            Node::SnapDir => self.snapdir_attr(),
        }
    }

    /// The target of symlink `ino`.
    ///
    /// Fails with `NotFound` if gone, `Inval` if `ino` is not a symlink.
    pub fn readlink(&self, ino: Ino) -> FsResult<Vec<u8>> {
        let Node::Stored(tree, ino) = self.node(ino)? else {
            return Err(FsError::Inval);
        };
        let view = self.view_of(tree)?;
        let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
        if inode.kind != FileKind::Symlink {
            return Err(FsError::Inval);
        }
        view.symlink(ino)?
            .ok_or_else(|| FsError::Corrupt(format!("{ino}: symlink without target")))
    }
}
