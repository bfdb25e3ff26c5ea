//! Check 5: dirents and inodes agree in the live view. Also the path of every live inode,
//! so problems elsewhere can name an affected file.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::report::{ProblemKind, Report};
use super::Progress;
use crate::meta::{Dirent, MetaError, View};
use crate::types::{FileKind, Ino};

/// What check 5 needs of an inode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) kind: FileKind,
    pub(super) nlink: u32,
    pub(super) parent: Ino,
}

/// The live namespace: every inode and dirent, loaded once.
#[derive(Default)]
pub(super) struct Namespace {
    pub(super) inodes: BTreeMap<Ino, Node>,
    pub(super) dirents: Vec<(Ino, Vec<u8>, Dirent)>,
    /// The first dirent naming each inode, for paths.
    names: HashMap<Ino, (Ino, Vec<u8>)>,
}

impl Namespace {
    /// Loads the live inodes and dirents; undecodable ones are reported and skipped.
    ///
    /// Fails only if the store fails.
    pub(super) fn load(
        view: &View,
        report: &mut Report,
        progress: &mut dyn Progress,
    ) -> Result<Namespace, MetaError> {
        let mut ns = Namespace::default();
        let mut bad = Vec::new();
        progress.phase("inodes", 0);
        view.for_each_live_inode(|item| {
            match item {
                Ok(i) => {
                    let node = Node {
                        kind: i.kind,
                        nlink: i.nlink,
                        parent: i.parent,
                    };
                    ns.inodes.insert(i.ino, node);
                    progress.advance(ns.inodes.len() as u64);
                }
                Err(e) => bad.push(e.to_string()),
            }
            true
        })?;
        progress.phase("directory entries", 0);
        view.for_each_live_dirent(|item| {
            match item {
                Ok((parent, name, d)) => {
                    ns.names.entry(d.ino).or_insert((parent, name.clone()));
                    ns.dirents.push((parent, name, d));
                    progress.advance(ns.dirents.len() as u64);
                }
                Err(e) => bad.push(e.to_string()),
            }
            true
        })?;
        for m in bad {
            report.problem(ProblemKind::CorruptRecord, m, None);
        }
        report.counts.inodes = ns.inodes.len() as u64;
        report.counts.dirents = ns.dirents.len() as u64;
        Ok(ns)
    }

    /// Whether `ino` is a live file (an extent of anything else is stray).
    pub(super) fn is_live_file(&self, ino: Ino) -> bool {
        self.inodes
            .get(&ino)
            .is_some_and(|n| n.kind == FileKind::File)
    }

    /// A path of `ino` in the live tree, `None` if no chain of dirents leads to it.
    pub(super) fn path_of(&self, ino: Ino) -> Option<String> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut at = ino;
        while at != Ino::ROOT {
            let (parent, name) = self.names.get(&at)?;
            parts.push(name);
            at = *parent;
            if parts.len() > 4096 {
                return None;
            }
        }
        let mut path = String::new();
        for p in parts.iter().rev() {
            path.push('/');
            path.push_str(&String::from_utf8_lossy(p));
        }
        Some(if path.is_empty() { "/".into() } else { path })
    }

    /// The path of `ino` if it has one, else a description of the inode; `frozen` says
    /// it was seen only in a snapshot's version.
    pub(super) fn describe(&self, ino: Ino, frozen: bool) -> String {
        match self.path_of(ino) {
            Some(p) => p,
            None if frozen => format!("inode {} (in a snapshot)", ino.0),
            None => format!("inode {}", ino.0),
        }
    }

    /// The path of entry `name` of `parent`.
    pub(super) fn entry_path(&self, parent: Ino, name: &[u8]) -> String {
        let base = self.describe(parent, false);
        let sep = if base.ends_with('/') { "" } else { "/" };
        format!("{base}{sep}{}", String::from_utf8_lossy(name))
    }
}

/// Link counts derived from the dirents.
#[derive(Default)]
struct Links {
    /// Dirents naming each inode.
    named: HashMap<Ino, u32>,
    /// Subdirectories of each directory.
    subdirs: HashMap<Ino, u32>,
    /// The directory holding each named directory (its first dirent).
    dir_parent: HashMap<Ino, Ino>,
}

/// Runs check 5 over the namespace with the orphan marks `orphans`.
pub(super) fn check(ns: &Namespace, orphans: &[Ino], report: &mut Report) {
    match ns.inodes.get(&Ino::ROOT) {
        Some(n) if n.kind == FileKind::Dir => {}
        Some(_) => report.problem(
            ProblemKind::Directory,
            "the root inode is not a directory".into(),
            Some("/".into()),
        ),
        None => report.problem(
            ProblemKind::Directory,
            "the root inode is missing".into(),
            Some("/".into()),
        ),
    }
    let links = check_dirents(ns, report);
    let orphans: HashSet<Ino> = orphans.iter().copied().collect();
    for (&ino, node) in &ns.inodes {
        check_inode(ns, &links, &orphans, ino, node, report);
    }
    check_orphan_marks(ns, &orphans, report);
    check_reachable(ns, &links, report);
}

/// Every dirent names an existing inode of its kind inside an existing directory.
fn check_dirents(ns: &Namespace, report: &mut Report) -> Links {
    let mut links = Links::default();
    for (parent, name, d) in &ns.dirents {
        let path = Some(ns.entry_path(*parent, name));
        match ns.inodes.get(parent) {
            Some(p) if p.kind == FileKind::Dir => {}
            _ => report.problem(
                ProblemKind::DanglingEntry,
                format!("entry in inode {}, which is not a live directory", parent.0),
                path.clone(),
            ),
        }
        let Some(target) = ns.inodes.get(&d.ino) else {
            report.problem(
                ProblemKind::DanglingEntry,
                format!("entry names inode {}, which does not exist", d.ino.0),
                path,
            );
            continue;
        };
        if target.kind != d.kind {
            let msg = format!(
                "entry says {:?} but inode {} is {:?}",
                d.kind, d.ino.0, target.kind
            );
            report.problem(ProblemKind::DanglingEntry, msg, path.clone());
        }
        *links.named.entry(d.ino).or_default() += 1;
        if target.kind == FileKind::Dir {
            *links.subdirs.entry(*parent).or_default() += 1;
            links.dir_parent.entry(d.ino).or_insert(*parent);
        }
    }
    links
}

/// An inode's link count, parent field and orphan state match the dirents.
fn check_inode(
    ns: &Namespace,
    links: &Links,
    orphans: &HashSet<Ino>,
    ino: Ino,
    node: &Node,
    report: &mut Report,
) {
    let named = links.named.get(&ino).copied().unwrap_or(0);
    let path = || Some(ns.describe(ino, false));
    if node.nlink == 0 && named == 0 && ino != Ino::ROOT {
        if orphans.contains(&ino) {
            report.note(format!("inode {} is unlinked but was open (orphan)", ino.0));
        } else {
            report.problem(
                ProblemKind::Orphan,
                format!("inode {} has no links and no orphan mark", ino.0),
                path(),
            );
        }
    } else if node.kind == FileKind::Dir {
        check_dir(ns, links, ino, node, named, report);
    } else if node.nlink != named {
        let msg = format!(
            "inode {} has nlink {} but {named} entries name it",
            ino.0, node.nlink
        );
        report.problem(ProblemKind::LinkCount, msg, path());
    }
}

/// A directory: nlink = 2 + subdirectories, one entry names it (none for the root), and
/// its parent field is that entry's directory.
fn check_dir(
    ns: &Namespace,
    links: &Links,
    ino: Ino,
    node: &Node,
    named: u32,
    report: &mut Report,
) {
    let path = Some(ns.describe(ino, false));
    let subdirs = links.subdirs.get(&ino).copied().unwrap_or(0);
    if node.nlink != 2 + subdirs {
        let msg = format!(
            "directory inode {} has nlink {} but {subdirs} subdirectories",
            ino.0, node.nlink
        );
        report.problem(ProblemKind::LinkCount, msg, path.clone());
    }
    let (want_named, want_parent) = match ino {
        Ino::ROOT => (0, Ino::ROOT),
        _ => (
            1,
            links.dir_parent.get(&ino).copied().unwrap_or(node.parent),
        ),
    };
    if named != want_named {
        let msg = format!("directory inode {} is named by {named} entries", ino.0);
        report.problem(ProblemKind::Directory, msg, path.clone());
    }
    if node.parent != want_parent {
        let msg = format!(
            "directory inode {} has parent {} but is held by {}",
            ino.0, node.parent.0, want_parent.0
        );
        report.problem(ProblemKind::Directory, msg, path);
    }
}

/// Orphan marks name inodes without links (a mark on a linked inode would free it at
/// the next mount).
fn check_orphan_marks(ns: &Namespace, orphans: &HashSet<Ino>, report: &mut Report) {
    let mut sorted: Vec<Ino> = orphans.iter().copied().collect();
    sorted.sort();
    for ino in sorted {
        match ns.inodes.get(&ino) {
            None => report.note(format!("orphan mark for freed inode {}", ino.0)),
            Some(n) if n.nlink > 0 => report.problem(
                ProblemKind::Orphan,
                format!(
                    "inode {} has nlink {} but an orphan mark (the next mount frees it)",
                    ino.0, n.nlink
                ),
                Some(ns.describe(ino, false)),
            ),
            Some(_) => {}
        }
    }
}

/// Every named directory is reachable from the root (no detached cycles).
fn check_reachable(ns: &Namespace, links: &Links, report: &mut Report) {
    let mut children: HashMap<Ino, Vec<Ino>> = HashMap::new();
    for (parent, _, d) in &ns.dirents {
        if d.kind == FileKind::Dir {
            children.entry(*parent).or_default().push(d.ino);
        }
    }
    let mut seen = HashSet::from([Ino::ROOT]);
    let mut queue = VecDeque::from([Ino::ROOT]);
    while let Some(dir) = queue.pop_front() {
        for &c in children.get(&dir).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(c) {
                queue.push_back(c);
            }
        }
    }
    for (&ino, node) in &ns.inodes {
        // A directory no entry names is reported by `check_dir` already.
        let named = links.named.contains_key(&ino);
        if node.kind == FileKind::Dir && named && !seen.contains(&ino) {
            report.problem(
                ProblemKind::Directory,
                format!("directory inode {} is not reachable from the root", ino.0),
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(
        inodes: &[(u64, FileKind, u32, u64)],
        dirents: &[(u64, &str, u64, FileKind)],
    ) -> Namespace {
        let mut ns = Namespace::default();
        for &(ino, kind, nlink, parent) in inodes {
            let node = Node {
                kind,
                nlink,
                parent: Ino(parent),
            };
            ns.inodes.insert(Ino(ino), node);
        }
        for &(parent, name, ino, kind) in dirents {
            let d = Dirent {
                ino: Ino(ino),
                kind,
            };
            ns.names
                .entry(Ino(ino))
                .or_insert((Ino(parent), name.as_bytes().to_vec()));
            ns.dirents.push((Ino(parent), name.as_bytes().to_vec(), d));
        }
        ns
    }

    fn kinds(r: &Report) -> Vec<ProblemKind> {
        r.problems.iter().map(|p| p.kind).collect()
    }

    use FileKind::{Dir, File};

    #[test]
    fn a_consistent_tree_with_a_hard_link_is_clean() {
        let n = ns(
            &[(1, Dir, 3, 1), (2, Dir, 2, 1), (3, File, 2, 1)],
            &[(1, "d", 2, Dir), (1, "f", 3, File), (2, "g", 3, File)],
        );
        let mut r = Report::default();
        check(&n, &[], &mut r);
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!(n.path_of(Ino(3)).as_deref(), Some("/f"));
    }

    #[test]
    fn each_namespace_problem_is_reported_once() {
        let n = ns(
            &[
                (1, Dir, 2, 1),
                (3, File, 2, 1),
                (4, File, 0, 1),
                (5, File, 0, 1),
            ],
            &[(1, "f", 3, File), (1, "ghost", 9, File)],
        );
        let mut r = Report::default();
        check(&n, &[Ino(5)], &mut r);
        assert_eq!(
            kinds(&r),
            vec![
                ProblemKind::DanglingEntry,
                ProblemKind::LinkCount,
                ProblemKind::Orphan
            ],
            "{:?}",
            r.problems
        );
        assert_eq!(r.problems[0].path.as_deref(), Some("/ghost"));
        assert_eq!(r.info.len(), 1, "inode 5 is an orphan: {:?}", r.info);
    }

    #[test]
    fn directory_parent_and_count_are_checked() {
        let n = ns(&[(1, Dir, 2, 1), (2, Dir, 2, 7)], &[(1, "d", 2, Dir)]);
        let mut r = Report::default();
        check(&n, &[], &mut r);
        // Root's nlink should be 3 (one subdirectory); d's parent field is wrong.
        assert_eq!(
            kinds(&r),
            vec![ProblemKind::LinkCount, ProblemKind::Directory],
            "{:?}",
            r.problems
        );
    }
}
