//! Directory streams: opendir, readdir(plus), releasedir.
//!
//! A stream reads an MVCC snapshot taken at opendir, and remembers the name of the last
//! entry it returned; the next readdir continues after that name. So `rm -rf`, which
//! deletes entries between readdir calls, never makes the listing skip an entry.
//! Offsets: 1 follows ".", 2 follows "..", (3 follows ".snapshots" in a root that lists
//! it), then base + n follows the n-th entry.
//!
//! What a listing tells the kernel is current, though: readdirplus replies become
//! cached dentries (name → inode, attributes), so an entry taken from an old snapshot
//! would bind a renamed-away or unlinked name to its old inode again. Each name the
//! snapshot yields is looked up in the live view when it is returned (the kernel holds
//! the directory lock shared during readdir, so no rename in it can run meanwhile): a
//! name bound elsewhere now is listed with its current inode, a name gone since is not
//! listed at all.

use crate::error::{FsError, FsResult};
use crate::fs::handles::DirStream;
use crate::fs::node::{Node, Tree, SNAPDIR_INO, SNAPDIR_NAME};
use crate::fs::{Attr, Fs};
use crate::meta::{Reader, View};
use crate::types::{FileHandle, FileKind, Ino};

/// Entries read from the store per page.
const PAGE: usize = 256;

/// One directory entry handed to the FUSE layer.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The child.
    pub ino: Ino,
    /// Its kind.
    pub kind: FileKind,
    /// Its name (raw bytes).
    pub name: Vec<u8>,
    /// The offset to resume after this entry.
    pub offset: u64,
    /// Attributes, for readdirplus.
    pub attr: Option<Attr>,
}

impl Fs {
    /// Opens a directory stream on `ino`.
    ///
    /// Fails with `NotFound` or `NotDir`.
    pub fn opendir(&self, ino: Ino) -> FsResult<FileHandle> {
        let (tree, ino) = match self.node(ino)? {
            Node::Stored(tree, i) => (tree, i),
            Node::SnapDir => {
                return Ok(self.handles.open_dir(DirStream {
                    ino: SNAPDIR_INO,
                    tree: Tree::Live,
                    listing: Some(self.snapshot_entries()),
                    view: self.engine.meta.view()?,
                    cursor: None,
                    vault: None,
                }));
            }
        };
        let view = self.view_of(tree)?;
        let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
        if inode.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        let vault = self.vault_stamp(&inode)?;
        Ok(self.handles.open_dir(DirStream {
            ino,
            tree,
            listing: None,
            view,
            cursor: None,
            vault,
        }))
    }

    /// Lists entries from `offset`, handing each to `add` until it returns `true`
    /// (reply buffer full); that entry is not consumed. With `plus`, entries carry attrs.
    ///
    /// Fails with `BadHandle` for an unknown stream, or if the store cannot be read.
    pub fn readdir(
        &self,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        mut add: impl FnMut(&DirEntry) -> bool,
    ) -> FsResult<()> {
        let stream = self.handles.dir(fh)?;
        let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
        self.vault_check_stamp(s.vault)?;
        if let Some(listing) = &s.listing {
            return self.list_snapdir(listing, offset, plus, add);
        }
        let tree = s.tree;
        // The current state of the tree (a snapshot's never changes).
        let live = self.view_of(tree)?;
        let fixed = self.fixed_entries(&s, &live)?;
        let base = fixed.len() as u64;
        for (next, ino, name) in fixed {
            if offset < next {
                let attr = if plus { self.current_attr(ino)? } else { None };
                let e = DirEntry {
                    ino,
                    kind: FileKind::Dir,
                    name: name.to_vec(),
                    offset: next,
                    attr,
                };
                if add(&e) {
                    return Ok(());
                }
            }
        }
        self.list_entries(&mut s, &live, base, offset, plus, add)
    }

    /// The entries every listing of this directory starts with: offset, inode, name.
    fn fixed_entries(
        &self,
        s: &DirStream,
        live: &View,
    ) -> FsResult<Vec<(u64, Ino, &'static [u8])>> {
        let tree = s.tree;
        let me = match live.inode(s.ino)? {
            Some(me) => me,
            None => s.view.inode(s.ino)?.ok_or(FsError::NotFound)?,
        };
        let up = if tree != Tree::Live && me.ino == Ino::ROOT {
            SNAPDIR_INO
        } else {
            tree.export_ino(me.parent)
        };
        let mut fixed = vec![
            (1u64, tree.export_ino(me.ino), &b"."[..]),
            (2, up, &b".."[..]),
        ];
        if tree == Tree::Live && s.ino == Ino::ROOT && self.snapshots_visible {
            fixed.push((3, SNAPDIR_INO, SNAPDIR_NAME));
        }
        Ok(fixed)
    }

    /// Lists the stream's entries after the `base` fixed ones from `offset`, each as
    /// the tree shows it now (see the module comment).
    fn list_entries(
        &self,
        s: &mut DirStream,
        live: &View,
        base: u64,
        offset: u64,
        plus: bool,
        mut add: impl FnMut(&DirEntry) -> bool,
    ) -> FsResult<()> {
        let tree = s.tree;
        let mut after: Option<Vec<u8>> = None;
        let mut skip = offset.saturating_sub(base);
        if let Some((coff, name)) = &s.cursor {
            if *coff == offset && offset > base {
                after = Some(name.clone());
                skip = 0;
            }
        }
        let mut index = if after.is_none() { 0 } else { offset - base };
        loop {
            let page = s.view.dir_entries_after(s.ino, after.as_deref(), PAGE)?;
            if page.is_empty() {
                return Ok(());
            }
            for (name, _) in page {
                after = Some(name.clone());
                if skip > 0 {
                    skip -= 1;
                    index += 1;
                    continue;
                }
                let offset = base + 1 + index;
                index += 1;
                // Gone since the stream opened: never taught to the kernel again.
                let found = if self.hidden_entry(tree, s.ino, &name) {
                    None
                } else {
                    live.dirent(s.ino, &name)?
                };
                let Some(d) = found else {
                    s.cursor = Some((offset, name));
                    continue;
                };
                let ino = tree.export_ino(d.ino);
                let attr = if plus { self.current_attr(ino)? } else { None };
                let e = DirEntry {
                    ino,
                    kind: d.kind,
                    name,
                    offset,
                    attr,
                };
                if add(&e) {
                    return Ok(());
                }
                s.cursor = Some((e.offset, e.name));
            }
        }
    }

    /// Lists `/.snapshots` from the snapshots there were at opendir, by index.
    fn list_snapdir(
        &self,
        listing: &[(Vec<u8>, Ino)],
        offset: u64,
        plus: bool,
        mut add: impl FnMut(&DirEntry) -> bool,
    ) -> FsResult<()> {
        let dots = [(SNAPDIR_INO, &b"."[..]), (Ino::ROOT, &b".."[..])];
        let entries = dots
            .iter()
            .map(|(i, n)| (*i, n.to_vec()))
            .chain(listing.iter().map(|(n, i)| (*i, n.clone())));
        for (index, (ino, name)) in entries.enumerate() {
            let next = index as u64 + 1;
            if offset >= next {
                continue;
            }
            let attr = if plus { self.current_attr(ino)? } else { None };
            if plus && attr.is_none() {
                continue; // deleted since opendir
            }
            let e = DirEntry {
                ino,
                kind: FileKind::Dir,
                name,
                offset: next,
                attr,
            };
            if add(&e) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Attributes for readdirplus: current ones, with writes still in the batcher or held
    /// (the kernel caches them like a lookup's), `None` if the inode is gone by now.
    fn current_attr(&self, ino: Ino) -> FsResult<Option<Attr>> {
        match self.getattr(ino) {
            Ok(a) => Ok(Some(a)),
            Err(FsError::NotFound | FsError::Stale) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Closes a directory stream.
    pub fn releasedir(&self, fh: FileHandle) {
        self.handles.close_dir(fh);
    }
}
