//! Who references a damaged chunk: chunk → extent versions → inodes → paths, in the
//! live tree and in every snapshot (`/.snapshots/NAME/...`).
//!
//! Runs only when a pass found damage. One scan of the extent versions finds the
//! candidate inodes; each tree (live, then every snapshot) is walked once from its root
//! to name them, so hard links get every name; an inode counts for a tree only if its
//! extents in that tree's view name the chunk. The cost is one walk of each tree, paid
//! only on damage.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use crate::error::FsResult;
use crate::meta::{Reader, View};
use crate::types::{ChunkHash, FileKind, Ino};

/// Entries read per directory page while walking a tree.
const PAGE: usize = 1024;
/// Directory levels followed before a walk gives up on a branch (a cycle in damaged
/// metadata would otherwise never end).
const MAX_DEPTH: usize = 4096;

/// The paths of every file referencing each chunk of `hashes`, sorted per chunk.
///
/// Fails if metadata cannot be read.
pub(super) fn files_referencing(
    meta: &crate::meta::Store,
    hashes: &BTreeSet<ChunkHash>,
) -> FsResult<BTreeMap<ChunkHash, Vec<String>>> {
    let mut out: BTreeMap<ChunkHash, BTreeSet<String>> = BTreeMap::new();
    if hashes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let live = meta.view()?;
    let mut candidates = HashSet::new();
    live.for_each_extent_version(|v| {
        if let Ok(v) = v {
            if hashes.contains(&v.extent.hash) {
                candidates.insert(v.ino);
            }
        }
        true
    })?;
    name_in(&live, "", &candidates, hashes, &mut out)?;
    for (name, rec) in live.snapshots()? {
        let view = meta.view_at(rec.generation)?;
        let prefix = format!("/.snapshots/{}", String::from_utf8_lossy(&name));
        name_in(&view, &prefix, &candidates, hashes, &mut out)?;
    }
    Ok(out
        .into_iter()
        .map(|(h, paths)| (h, paths.into_iter().collect()))
        .collect())
}

/// Adds, under `prefix`, the paths in `view` of each candidate file whose extents in
/// `view` name a chunk of `hashes`.
fn name_in(
    view: &View,
    prefix: &str,
    candidates: &HashSet<Ino>,
    hashes: &BTreeSet<ChunkHash>,
    out: &mut BTreeMap<ChunkHash, BTreeSet<String>>,
) -> FsResult<()> {
    let mut uses: BTreeMap<Ino, Vec<ChunkHash>> = BTreeMap::new();
    for &ino in candidates {
        let hit: Vec<ChunkHash> = view
            .all_extents(ino)?
            .into_iter()
            .map(|e| e.hash)
            .filter(|h| hashes.contains(h))
            .collect();
        if !hit.is_empty() {
            uses.insert(ino, hit);
        }
    }
    if uses.is_empty() {
        return Ok(());
    }
    for (ino, path) in walk(view, &uses)? {
        for h in uses.get(&ino).map(Vec::as_slice).unwrap_or(&[]) {
            out.entry(*h).or_default().insert(format!("{prefix}{path}"));
        }
    }
    Ok(())
}

/// Every path (from the root of `view`) of the inodes in `wanted`.
fn walk<T>(view: &View, wanted: &BTreeMap<Ino, T>) -> FsResult<Vec<(Ino, String)>> {
    let mut found = Vec::new();
    let mut queue = VecDeque::from([(Ino::ROOT, String::new(), 0usize)]);
    let mut seen = HashSet::from([Ino::ROOT]);
    while let Some((dir, path, depth)) = queue.pop_front() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = view.dir_entries_after(dir, after.as_deref(), PAGE)?;
            for (name, d) in &page {
                let child = format!("{path}/{}", String::from_utf8_lossy(name));
                if wanted.contains_key(&d.ino) {
                    found.push((d.ino, child.clone()));
                }
                if d.kind == FileKind::Dir && depth < MAX_DEPTH && seen.insert(d.ino) {
                    queue.push_back((d.ino, child, depth + 1));
                }
            }
            match page.last() {
                Some((name, _)) if page.len() == PAGE => after = Some(name.clone()),
                _ => break,
            }
        }
    }
    Ok(found)
}
