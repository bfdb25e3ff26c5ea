//! Which tree an inode number belongs to, and the one gate every mutation passes.
//!
//! The kernel sees one inode number space. The live tree uses stored inode numbers as
//! they are (below [`SLOT_SHIFT`] bits); a snapshot's inodes carry its view slot in
//! the high bits, so they differ from the live ones and from every other snapshot's,
//! and stay the same across remounts (the slot is in the snapshot record). The virtual
//! `/.snapshots` directory has a reserved number of its own. A request names a tree by
//! the inode it is about: reads resolve the number to a [`Node`] and read that tree's
//! view; every mutation asks [`Fs::live`], which answers EROFS for anything but the live
//! tree.

use crate::error::{FsError, FsResult};
use crate::fs::{Attr, Fs, VAULT_NAME};
use crate::meta::View;
use crate::types::{Generation, Ino};

/// Bits of a kernel inode number that hold the stored inode number.
pub const SLOT_SHIFT: u32 = 44;
/// Mask of the stored inode number.
const INO_MASK: u64 = (1 << SLOT_SHIFT) - 1;
/// The kernel inode number of `/.snapshots` (never allocated to a stored inode).
pub const SNAPDIR_INO: Ino = Ino(INO_MASK);
/// The name `/.snapshots` has in the root of the live tree.
pub const SNAPDIR_NAME: &[u8] = b".snapshots";
/// The highest view slot a snapshot can have.
pub const MAX_SLOT: u32 = (1 << (64 - SLOT_SHIFT)) - 1;

/// A snapshot as a read view: its view slot and the generation it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapView {
    /// The view slot (high bits of its inode numbers).
    pub slot: u32,
    /// The frozen generation.
    pub gen: Generation,
}

/// The tree a request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The live tree: committed metadata plus writes still in the overlay.
    Live,
    /// A snapshot: its frozen generation, read-only, no overlay.
    Snap(SnapView),
}

/// What a kernel inode number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A stored inode in a tree.
    Stored(Tree, Ino),
    /// The virtual `/.snapshots` directory.
    SnapDir,
}

impl Tree {
    /// The kernel inode number of stored inode `ino` in this tree.
    pub fn export_ino(self, ino: Ino) -> Ino {
        match self {
            Tree::Live => ino,
            Tree::Snap(v) => Ino((u64::from(v.slot) << SLOT_SHIFT) | ino.0),
        }
    }

    /// Attributes as the kernel must see them in this tree: inode numbers exported, and
    /// a snapshot root's parent is `/.snapshots`.
    pub fn export_attr(self, mut a: Attr) -> Attr {
        if let Tree::Snap(_) = self {
            a.parent = if a.ino == Ino::ROOT {
                SNAPDIR_INO
            } else {
                self.export_ino(a.parent)
            };
            a.ino = self.export_ino(a.ino);
        }
        a
    }
}

impl Fs {
    /// What kernel inode number `ino` names.
    ///
    /// Fails with `Stale` for an inode of a snapshot that no longer exists.
    pub(crate) fn node(&self, ino: Ino) -> FsResult<Node> {
        let slot = ino.0 >> SLOT_SHIFT;
        if slot == 0 {
            return Ok(if ino == SNAPDIR_INO {
                Node::SnapDir
            } else {
                Node::Stored(Tree::Live, ino)
            });
        }
        let view = u32::try_from(slot)
            .ok()
            .and_then(|s| self.snapshot_view(s))
            .ok_or(FsError::Stale)?;
        Ok(Node::Stored(Tree::Snap(view), Ino(ino.0 & INO_MASK)))
    }

    /// The mutation gate: the stored inode of a live-tree inode number, or `ReadOnly`
    /// (EROFS) for anything in a snapshot or `/.snapshots` itself. Every request that
    /// changes something passes each inode it names through here first.
    ///
    /// Fails with `ReadOnly` (also for everything on a read-only mount), or `Stale` for
    /// an inode of a deleted snapshot.
    pub(crate) fn live(&self, ino: Ino) -> FsResult<Ino> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        match self.node(ino)? {
            Node::Stored(Tree::Live, i) => Ok(i),
            Node::Stored(Tree::Snap(_), _) | Node::SnapDir => Err(FsError::ReadOnly),
        }
    }

    /// The gate for a request that adds name `name` to `parent`: `parent` must be live,
    /// and `.snapshots` in the root is taken (EEXIST).
    ///
    /// Fails with `ReadOnly`, `Stale` or `Exists`.
    pub(crate) fn live_new_name(&self, parent: Ino, name: &[u8]) -> FsResult<Ino> {
        let p = self.live(parent)?;
        if p == Ino::ROOT && name == SNAPDIR_NAME {
            return Err(FsError::Exists);
        }
        if p == Ino::ROOT && name == VAULT_NAME {
            // Reserved: only `crypt -c` makes it.
            return Err(if self.vault_unlocked() {
                FsError::Exists
            } else {
                FsError::Perm
            });
        }
        Ok(p)
    }

    /// The gate for a request that removes or renames name `name` of `parent`: `parent`
    /// must be live, and `.snapshots` in the root cannot be removed or renamed (EPERM).
    ///
    /// Fails with `ReadOnly`, `Stale` or `Perm`.
    pub(crate) fn live_old_name(&self, parent: Ino, name: &[u8]) -> FsResult<Ino> {
        let p = self.live(parent)?;
        if p == Ino::ROOT && (name == SNAPDIR_NAME || name == VAULT_NAME) {
            return Err(FsError::Perm);
        }
        Ok(p)
    }

    /// Whether entry `name` of directory `dir` in `tree` must not be seen: `/.vault`
    /// while the vault is locked, in the live tree and in every snapshot alike (a
    /// snapshot must never show a locked vault's names). Lookups and listings of every
    /// tree ask.
    pub(crate) fn hidden_entry(&self, tree: Tree, dir: Ino, name: &[u8]) -> bool {
        self.vault_hidden(tree, dir, name)
    }

    /// A metadata view of `tree`.
    ///
    /// Fails if the store cannot open a view.
    pub(crate) fn view_of(&self, tree: Tree) -> FsResult<View> {
        Ok(match tree {
            Tree::Live => self.engine.meta.view()?,
            Tree::Snap(v) => self.engine.meta.view_at(v.gen)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_inode_numbers_never_collide_with_live_ones() {
        let v = |slot| {
            Tree::Snap(SnapView {
                slot,
                gen: Generation(1),
            })
        };
        assert_eq!(Tree::Live.export_ino(Ino(5)), Ino(5));
        assert_ne!(v(1).export_ino(Ino(5)), v(2).export_ino(Ino(5)));
        assert!(v(1).export_ino(Ino(1)).0 > SNAPDIR_INO.0);
        assert_eq!(
            v(MAX_SLOT).export_ino(Ino(INO_MASK - 1)).0 >> SLOT_SHIFT,
            u64::from(MAX_SLOT)
        );
    }
}
