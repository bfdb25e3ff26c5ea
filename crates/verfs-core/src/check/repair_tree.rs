//! Step 3 of `fsck --repair`: the live namespace made consistent, like e2fsck's passes
//! 2–4. Entries naming a missing inode, an inode of another kind, or sitting in
//! something that is not a live directory are removed; inodes no entry names (and that
//! are not legitimately unlinked-while-open) are reattached under `/lost+found` as
//! `#INO`; then every link count, directory parent and orphan mark is set from the
//! entries. Vault inodes are not moved out of the vault: they stay reported.

use std::collections::{HashMap, HashSet};

use super::repair::Change;
use super::report::Report;
use super::tree::Namespace;
use super::NoProgress;
use crate::meta::{Dirent, Inode, MetaError, Reader, Store, WriteTxn, INODE_FLAG_VAULT};
use crate::types::{FileKind, Ino};

/// The name of the directory unnamed inodes are reattached to.
const LOST_FOUND: &[u8] = b"lost+found";

/// Link facts derived from the entries that stay.
#[derive(Default)]
struct Links {
    named: HashMap<Ino, u32>,
    subdirs: HashMap<Ino, u32>,
    dir_parent: HashMap<Ino, Ino>,
}

impl Links {
    fn add(&mut self, parent: Ino, ino: Ino, kind: FileKind) {
        *self.named.entry(ino).or_default() += 1;
        if kind == FileKind::Dir {
            *self.subdirs.entry(parent).or_default() += 1;
            self.dir_parent.entry(ino).or_insert(parent);
        }
    }
}

/// Repairs the live namespace of `store`, appending what it did to `changes`.
///
/// Fails only if the store fails.
pub(super) fn fix(store: &Store, changes: &mut Vec<Change>) -> Result<(), MetaError> {
    let view = store.view()?;
    let ns = Namespace::load(&view, &mut Report::default(), &mut NoProgress)?;
    if !ns
        .inodes
        .get(&Ino::ROOT)
        .is_some_and(|n| n.kind == FileKind::Dir)
    {
        // Without a root directory there is nothing to attach anything to.
        return Ok(());
    }
    let orphans: HashSet<Ino> = view.orphans()?.into_iter().collect();
    let lost_found = view.dirent(Ino::ROOT, LOST_FOUND)?;
    let next_ino = Ino(view.max_ino()?.0.max(Ino::ROOT.0) + 1);
    let mut log = Vec::new();
    store.write(|txn| {
        log.clear();
        fix_in(txn, &ns, &orphans, lost_found, next_ino, &mut log)
    })?;
    changes.extend(log);
    Ok(())
}

fn fix_in(
    txn: &mut WriteTxn,
    ns: &Namespace,
    orphans: &HashSet<Ino>,
    lost_found: Option<Dirent>,
    next_ino: Ino,
    log: &mut Vec<Change>,
) -> Result<(), MetaError> {
    let mut links = Links::default();
    remove_dangling(txn, ns, &mut links, log)?;
    let unnamed = unnamed_inodes(txn, ns, orphans, &links)?;
    if !unnamed.is_empty() {
        let lf = lost_found_dir(txn, lost_found, next_ino, &mut links, log)?;
        for (ino, kind) in unnamed {
            let name = format!("#{}", ino.0);
            txn.put_dirent(lf, name.as_bytes(), &Dirent { ino, kind })?;
            links.add(lf, ino, kind);
            log.push(Change {
                what: format!("inode {} was named by no entry: reattached", ino.0),
                path: Some(format!("/lost+found/{name}")),
            });
        }
    }
    set_counts(txn, ns, orphans, &links, next_ino, log)
}

/// Removes entries that cannot stay; counts the links of the others.
fn remove_dangling(
    txn: &mut WriteTxn,
    ns: &Namespace,
    links: &mut Links,
    log: &mut Vec<Change>,
) -> Result<(), MetaError> {
    for (parent, name, d) in &ns.dirents {
        let parent_ok = ns
            .inodes
            .get(parent)
            .is_some_and(|p| p.kind == FileKind::Dir);
        let target_ok = ns.inodes.get(&d.ino).is_some_and(|t| t.kind == d.kind);
        // A directory has one name; further entries for it are hard links it cannot have.
        let second_dir_name = d.kind == FileKind::Dir && links.named.contains_key(&d.ino);
        if parent_ok && target_ok && !second_dir_name {
            links.add(*parent, d.ino, d.kind);
            continue;
        }
        txn.delete_dirent(*parent, name)?;
        log.push(Change {
            what: format!("removed an entry naming inode {} (dangling)", d.ino.0),
            path: Some(ns.entry_path(*parent, name)),
        });
    }
    Ok(())
}

/// Inodes no remaining entry names, except the root, files legitimately unlinked while
/// open (no links and an orphan mark) and vault inodes.
fn unnamed_inodes(
    txn: &mut WriteTxn,
    ns: &Namespace,
    orphans: &HashSet<Ino>,
    links: &Links,
) -> Result<Vec<(Ino, FileKind)>, MetaError> {
    let mut out = Vec::new();
    for (&ino, node) in &ns.inodes {
        if ino == Ino::ROOT || links.named.contains_key(&ino) {
            continue;
        }
        if node.nlink == 0 && orphans.contains(&ino) {
            continue;
        }
        let in_vault = txn
            .inode(ino)?
            .is_some_and(|i| i.flags & INODE_FLAG_VAULT != 0);
        if !in_vault {
            out.push((ino, node.kind));
        }
    }
    Ok(out)
}

/// The `/lost+found` directory: the existing one, or a new one (mode 0700, root's).
fn lost_found_dir(
    txn: &mut WriteTxn,
    existing: Option<Dirent>,
    next_ino: Ino,
    links: &mut Links,
    log: &mut Vec<Change>,
) -> Result<Ino, MetaError> {
    if let Some(d) = existing.filter(|d| d.kind == FileKind::Dir) {
        return Ok(d.ino);
    }
    if existing.is_some() {
        // Something else holds the name: it goes too, reattached itself below if needed.
        txn.delete_dirent(Ino::ROOT, LOST_FOUND)?;
    }
    let dir = Inode::new_dir(next_ino, Ino::ROOT, 0o700, (0, 0), 0);
    txn.put_inode(&dir)?;
    let d = Dirent {
        ino: next_ino,
        kind: FileKind::Dir,
    };
    txn.put_dirent(Ino::ROOT, LOST_FOUND, &d)?;
    links.add(Ino::ROOT, next_ino, FileKind::Dir);
    log.push(Change {
        what: "created /lost+found".into(),
        path: Some("/lost+found".into()),
    });
    Ok(next_ino)
}

/// Sets every link count and directory parent from `links`, and clears orphan marks of
/// inodes that have links.
fn set_counts(
    txn: &mut WriteTxn,
    ns: &Namespace,
    orphans: &HashSet<Ino>,
    links: &Links,
    lost_found: Ino,
    log: &mut Vec<Change>,
) -> Result<(), MetaError> {
    let inos = ns.inodes.keys().copied().chain(std::iter::once(lost_found));
    for ino in inos {
        let Some(mut i) = txn.inode(ino)? else {
            continue;
        };
        let named = links.named.get(&ino).copied().unwrap_or(0);
        if named == 0 && ino != Ino::ROOT {
            continue; // unlinked while open (or a vault inode left as it is)
        }
        let (nlink, parent) = match i.kind {
            FileKind::Dir => (
                2 + links.subdirs.get(&ino).copied().unwrap_or(0),
                links.dir_parent.get(&ino).copied().unwrap_or(Ino::ROOT),
            ),
            _ => (named, i.parent),
        };
        if (nlink, parent) != (i.nlink, i.parent) {
            log.push(Change {
                what: format!(
                    "inode {}: link count {} -> {nlink}, parent {} -> {}",
                    ino.0, i.nlink, i.parent.0, parent.0
                ),
                path: Some(ns.describe(ino, false)),
            });
            i.nlink = nlink;
            i.parent = parent;
            txn.put_inode(&i)?;
        }
        if orphans.contains(&ino) {
            txn.clear_orphan(ino)?;
            log.push(Change {
                what: format!("inode {} has links: orphan mark cleared", ino.0),
                path: Some(ns.describe(ino, false)),
            });
        }
    }
    Ok(())
}
