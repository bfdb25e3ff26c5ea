//! `snapshot diff`: what changed between two snapshots, or a snapshot and the live
//! tree, one entry per inode in the `zfs diff` convention: `+` created, `-` removed,
//! `M` content or metadata changed (atime ignored), `R` renamed (same inode, another
//! path; a rename that also changed content is listed as `R` and `M`).
//!
//! Both trees' inodes are walked in number order a page at a time and merged, so
//! memory stays bounded by the changes, not the tree. Paths are found by walking
//! parents; each directory searched for a child's name is listed once per diff.

use std::collections::HashMap;

use crate::control::{DiffEntry, DiffKind};
use crate::error::{FsError, FsResult};
use crate::fs::snapshots::SnapshotCmdError;
use crate::fs::Fs;
use crate::meta::{Inode, Reader, View};
use crate::types::Ino;

/// Inodes read per page from each tree.
const PAGE: usize = 1024;
/// Longest parent chain followed before a path is given up as broken.
const MAX_DEPTH: usize = 4096;

/// Names of directory children by inode, listed once per directory and tree.
struct Paths<'a> {
    view: &'a View,
    names: HashMap<Ino, HashMap<Ino, Vec<u8>>>,
}

impl<'a> Paths<'a> {
    fn new(view: &'a View) -> Paths<'a> {
        Paths {
            view,
            names: HashMap::new(),
        }
    }

    /// The name of `ino` in directory `dir`, if it has one there.
    fn name_in(&mut self, dir: Ino, ino: Ino) -> FsResult<Option<Vec<u8>>> {
        if !self.names.contains_key(&dir) {
            let mut m = HashMap::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = self.view.dir_entries_after(dir, after.as_deref(), PAGE)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (name, d) in page {
                    m.entry(d.ino).or_insert(name);
                }
            }
            self.names.insert(dir, m);
        }
        Ok(self.names.get(&dir).and_then(|m| m.get(&ino)).cloned())
    }

    /// Whether `path` (from the root, as [`Paths::path`] builds it) names `ino` here.
    fn resolves_to(&mut self, path: &str, ino: Ino) -> FsResult<bool> {
        let mut at = Ino::ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match self.view.dirent(at, part.as_bytes())? {
                Some(d) => at = d.ino,
                None => return Ok(false),
            }
        }
        Ok(at == ino)
    }

    /// The path of `inode` from the root, `None` if it has none (unlinked while open).
    fn path(&mut self, inode: &Inode) -> FsResult<Option<String>> {
        if inode.ino == Ino::ROOT {
            return Ok(Some("/".into()));
        }
        if inode.nlink == 0 {
            return Ok(None);
        }
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let (mut ino, mut parent) = (inode.ino, inode.parent);
        while ino != Ino::ROOT {
            if parts.len() > MAX_DEPTH {
                return Ok(None);
            }
            let Some(name) = self.name_in(parent, ino)? else {
                return Ok(None);
            };
            parts.push(name);
            let Some(p) = self.view.inode(parent)? else {
                return Ok(None);
            };
            (ino, parent) = (p.ino, p.parent);
        }
        let mut out = String::new();
        for p in parts.iter().rev() {
            out.push('/');
            out.push_str(&String::from_utf8_lossy(p));
        }
        Ok(Some(out))
    }
}

/// Whether two versions of an inode differ in content or metadata (atime and ctime
/// aside: ctime moves on a rename, which is reported as such).
fn changed(a: &Inode, b: &Inode) -> bool {
    let strip = |i: &Inode| Inode {
        atime: Default::default(),
        ctime: Default::default(),
        ..i.clone()
    };
    strip(a) != strip(b)
}

impl Fs {
    /// The changes from snapshot `from` to snapshot `to` (the live tree's committed
    /// state when `None`), in path order.
    ///
    /// Fails with `NotFound` for a missing snapshot, or if metadata cannot be read.
    pub fn diff_snapshots(
        &self,
        from: &str,
        to: Option<&str>,
    ) -> Result<Vec<DiffEntry>, SnapshotCmdError> {
        let gen_of = |name: &str| {
            self.snapshot_generation(name.as_bytes())
                .ok_or_else(|| SnapshotCmdError::NotFound(name.to_string()))
        };
        let a = self
            .engine
            .meta
            .view_at(gen_of(from)?)
            .map_err(FsError::from)?;
        let b = match to {
            Some(name) => self.engine.meta.view_at(gen_of(name)?),
            None => {
                self.settle_writes()?;
                self.engine.meta.view()
            }
        }
        .map_err(FsError::from)?;
        let mut out = diff_views(&a, &b)?;
        if !self.vault_unlocked() {
            // A locked vault is invisible, names included.
            out.retain(|e| !in_vault(&e.path) && !e.new_path.as_deref().is_some_and(in_vault));
        }
        out.sort_by(|x, y| x.path.cmp(&y.path));
        Ok(out)
    }
}

/// Whether a diff path names `/.vault` or something inside it.
fn in_vault(path: &str) -> bool {
    path == "/.vault" || path.starts_with("/.vault/")
}

/// Merges both trees' inodes in number order and reports each difference.
fn diff_views(a: &View, b: &View) -> FsResult<Vec<DiffEntry>> {
    let (mut pa, mut pb) = (Paths::new(a), Paths::new(b));
    let mut out = Vec::new();
    let (mut ia, mut ib) = (Pages::new(a), Pages::new(b));
    loop {
        let (x, y) = (ia.peek()?, ib.peek()?);
        match (x, y) {
            (None, None) => return Ok(out),
            (Some(x), Some(y)) if x.ino == y.ino => {
                let (x, y) = (x.clone(), y.clone());
                ia.next();
                ib.next();
                compare(&x, &y, &mut pa, &mut pb, &mut out)?;
            }
            (Some(x), y) if y.is_none_or(|y| x.ino < y.ino) => {
                let x = x.clone();
                ia.next();
                if let Some(path) = pa.path(&x)? {
                    out.push(entry(DiffKind::Removed, path, None));
                }
            }
            (_, Some(y)) => {
                let y = y.clone();
                ib.next();
                if let Some(path) = pb.path(&y)? {
                    out.push(entry(DiffKind::Created, path, None));
                }
            }
            // Covered by the arm before last (y is None there); kept for the
            // exhaustiveness check.
            (Some(_), None) => ia.next(),
        }
    }
}

fn compare(
    x: &Inode,
    y: &Inode,
    pa: &mut Paths<'_>,
    pb: &mut Paths<'_>,
    out: &mut Vec<DiffEntry>,
) -> FsResult<()> {
    let modified = changed(x, y);
    // Only a change or a rename (which moves ctime) can make a difference to report.
    if !modified && x.ctime == y.ctime {
        return Ok(());
    }
    let old = pa.path(x)?;
    // A hard-linked inode keeps its old path if that name still names it.
    let new = match &old {
        Some(o) if pb.resolves_to(o, y.ino)? => Some(o.clone()),
        _ => pb.path(y)?,
    };
    match (old, new) {
        (Some(o), Some(n)) if o != n => {
            out.push(entry(DiffKind::Renamed, o, Some(n.clone())));
            if modified {
                out.push(entry(DiffKind::Modified, n, None));
            }
        }
        // ctime moves with every metadata change (xattrs, ACLs, links) too.
        (Some(_), Some(n)) if modified || x.ctime != y.ctime => {
            out.push(entry(DiffKind::Modified, n, None))
        }
        (Some(o), None) => out.push(entry(DiffKind::Removed, o, None)),
        (None, Some(n)) => out.push(entry(DiffKind::Created, n, None)),
        _ => {}
    }
    Ok(())
}

fn entry(kind: DiffKind, path: String, new_path: Option<String>) -> DiffEntry {
    DiffEntry {
        kind,
        path,
        new_path,
    }
}

/// A tree's inodes in number order, read a page at a time.
struct Pages<'a> {
    view: &'a View,
    page: std::collections::VecDeque<Inode>,
    after: Ino,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(view: &'a View) -> Pages<'a> {
        Pages {
            view,
            page: Default::default(),
            after: Ino(0),
            done: false,
        }
    }

    fn peek(&mut self) -> FsResult<Option<&Inode>> {
        if self.page.is_empty() && !self.done {
            let page = self.view.inodes_after(self.after, PAGE)?;
            match page.last() {
                Some(last) => self.after = last.ino,
                None => self.done = true,
            }
            self.page = page.into();
        }
        Ok(self.page.front())
    }

    fn next(&mut self) {
        self.page.pop_front();
    }
}
