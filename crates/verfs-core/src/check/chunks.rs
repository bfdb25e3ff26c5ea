//! Checks 1, 3 and 4: every extent version names a `C` record, every refcount equals the
//! extent versions (live and frozen) naming the chunk, and `Z` holds exactly the chunks
//! at refcount 0.

use std::collections::{BTreeMap, BTreeSet};

use super::report::{ProblemKind, Report};
use super::tree::Namespace;
use super::Progress;
use crate::meta::{ChunkRecord, MetaError, Reader, View};
use crate::types::{ChunkHash, Ino};

/// Who uses a chunk: how many extent versions, and one of them for messages.
#[derive(Debug, Clone, Copy)]
struct Use {
    count: u64,
    ino: Ino,
    frozen: bool,
}

/// Every chunk named by a stored extent version.
#[derive(Default)]
pub(super) struct References {
    by_hash: BTreeMap<ChunkHash, Use>,
}

impl References {
    /// Counts the extent versions naming each chunk; reports undecodable extents, and
    /// live extents of inodes that are not live files.
    ///
    /// Fails only if the store fails.
    pub(super) fn collect(
        view: &View,
        ns: &Namespace,
        report: &mut Report,
        progress: &mut dyn Progress,
    ) -> Result<References, MetaError> {
        let mut refs = References::default();
        let mut n = 0u64;
        let mut stray = BTreeSet::new();
        progress.phase("extents", 0);
        view.for_each_extent_version(|item| {
            match item {
                Ok(v) => {
                    n += 1;
                    progress.advance(n);
                    if v.frozen.is_none() && !ns.is_live_file(v.ino) {
                        stray.insert(v.ino);
                    }
                    refs.add(v.extent.hash, v.ino, v.frozen.is_some());
                }
                Err(e) => report.problem(ProblemKind::CorruptRecord, e.to_string(), None),
            }
            true
        })?;
        for ino in stray {
            report.problem(
                ProblemKind::StrayExtent,
                format!("live extents of inode {}, which is not a live file", ino.0),
                None,
            );
        }
        report.counts.extents = n;
        Ok(refs)
    }

    fn add(&mut self, hash: ChunkHash, ino: Ino, frozen: bool) {
        let u = self.by_hash.entry(hash).or_insert(Use {
            count: 0,
            ino,
            frozen,
        });
        u.count += 1;
        // Prefer naming a live file over one only a snapshot holds.
        if u.frozen && !frozen {
            u.ino = ino;
            u.frozen = false;
        }
    }

    /// Extent versions naming `hash`.
    pub(super) fn count(&self, hash: &ChunkHash) -> u64 {
        self.by_hash.get(hash).map_or(0, |u| u.count)
    }

    /// A file using `hash`, for messages; `None` if nothing references it.
    pub(super) fn user(&self, hash: &ChunkHash, ns: &Namespace) -> Option<String> {
        self.by_hash.get(hash).map(|u| ns.describe(u.ino, u.frozen))
    }
}

/// Every `C` record.
#[derive(Default)]
pub(super) struct ChunkTable {
    pub(super) by_hash: BTreeMap<ChunkHash, ChunkRecord>,
}

impl ChunkTable {
    /// Loads the chunk records.
    ///
    /// Fails if the store fails or a chunk record does not decode (a scan cannot go
    /// on past it); the caller reports that as a cannot-run error.
    pub(super) fn load(view: &View, report: &mut Report) -> Result<ChunkTable, MetaError> {
        let mut t = ChunkTable::default();
        view.for_each_chunk(|hash, c| {
            t.by_hash.insert(hash, c);
            Ok(true)
        })?;
        report.counts.chunks = t.by_hash.len() as u64;
        Ok(t)
    }
}

/// Checks 1 and 3: extents name existing chunks; refcounts match.
pub(super) fn check_references(
    refs: &References,
    table: &ChunkTable,
    ns: &Namespace,
    report: &mut Report,
) {
    for (hash, u) in &refs.by_hash {
        if !table.by_hash.contains_key(hash) {
            report.problem(
                ProblemKind::MissingChunk,
                format!(
                    "chunk {hash} is named by {} extent version(s) but has no chunk record",
                    u.count
                ),
                Some(ns.describe(u.ino, u.frozen)),
            );
            report.unreadable(*hash);
        }
    }
    for (hash, c) in &table.by_hash {
        let counted = refs.count(hash);
        if counted != c.refcount {
            report.problem(
                ProblemKind::Refcount,
                format!(
                    "chunk {hash} has refcount {} but {counted} extent version(s) name it",
                    c.refcount
                ),
                refs.user(hash, ns),
            );
        }
    }
}

/// Check 4: `Z` marks exactly the chunk records whose refcount is 0.
///
/// Fails only if the store fails.
pub(super) fn check_zero_refs(
    view: &View,
    table: &ChunkTable,
    report: &mut Report,
) -> Result<(), MetaError> {
    let mut marked = BTreeSet::new();
    view.for_each_zero_ref(|item| {
        match item {
            Ok(h) => {
                marked.insert(h);
            }
            Err(e) => report.problem(ProblemKind::CorruptRecord, e.to_string(), None),
        }
        true
    })?;
    report.counts.zero_refs = marked.len() as u64;
    for (hash, c) in &table.by_hash {
        if c.refcount == 0 && !marked.contains(hash) {
            let msg =
                format!("chunk {hash} has refcount 0 but no zero-ref mark (GC never frees it)");
            report.problem(ProblemKind::ZeroRef, msg, None);
        }
    }
    for hash in &marked {
        match table.by_hash.get(hash) {
            None => report.problem(
                ProblemKind::ZeroRef,
                format!("zero-ref mark for chunk {hash}, which has no chunk record"),
                None,
            ),
            Some(c) if c.refcount > 0 => report.problem(
                ProblemKind::ZeroRef,
                format!(
                    "zero-ref mark for chunk {hash}, which has refcount {} (GC would free it)",
                    c.refcount
                ),
                None,
            ),
            Some(_) => {}
        }
    }
    Ok(())
}
