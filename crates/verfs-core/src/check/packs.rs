//! Check 2: every `C` record names an existing pack that holds a record of its chunk
//! (through the sealed index, or a scan of an unsealed pack). With `--read-data` every
//! record of every pack is read back as well (see `verify`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use super::chunks::{ChunkTable, References};
use super::report::{ProblemKind, Report};
use super::tree::Namespace;
use super::{verify, CheckError, Progress};
use crate::data::pack::{self, ScanResult, SealedIndex};
use crate::data::store::{list_packs, pack_path};
use crate::data::ChunkHasher;
use crate::meta::{ChunkRecord, CHUNK_FLAG_LOST};
use crate::types::{ChunkHash, PackId};

/// What the pack checks read besides the packs themselves.
pub(super) struct Context<'a> {
    /// The chunk records.
    pub table: &'a ChunkTable,
    /// Who uses each chunk.
    pub refs: &'a References,
    /// Paths.
    pub ns: &'a Namespace,
    /// `Some` with `--read-data`: the hasher that re-derives chunk ids (or `None` inside
    /// when the hash secret is unusable: then only CRCs and decoding are checked).
    pub read_data: Option<Option<&'a ChunkHasher>>,
}

/// The chunk records naming one pack.
type Named = BTreeMap<ChunkHash, ChunkRecord>;

/// Runs check 2 (and 6 with `--read-data`) over the pack directory `dir`.
///
/// Fails only if the pack directory exists but cannot be listed.
pub(super) fn check(
    dir: &Path,
    cx: &Context,
    report: &mut Report,
    progress: &mut dyn Progress,
) -> Result<(), CheckError> {
    let on_disk = match list_packs(dir) {
        Ok(ids) => ids,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(cause) => {
            return Err(CheckError::Io {
                path: dir.to_path_buf(),
                cause,
            })
        }
    };
    let mut by_pack: BTreeMap<PackId, Named> = BTreeMap::new();
    for (hash, c) in &cx.table.by_hash {
        if c.flags & CHUNK_FLAG_LOST != 0 {
            if c.refcount > 0 {
                let msg = format!("chunk {hash} is marked lost (its pack record did not survive a crash); reads of it fail");
                report.problem(ProblemKind::LostChunk, msg, cx.refs.user(hash, cx.ns));
                report.unreadable(*hash);
            }
            continue;
        }
        by_pack.entry(c.pack_id).or_default().insert(*hash, *c);
    }
    let ids: BTreeSet<PackId> = on_disk
        .iter()
        .copied()
        .chain(by_pack.keys().copied())
        .collect();
    progress.phase("packs", ids.len() as u64);
    let empty = Named::new();
    for (i, id) in ids.iter().enumerate() {
        let named = by_pack.get(id).unwrap_or(&empty);
        check_pack(&pack_path(dir, *id), *id, named, cx, report, progress);
        report.counts.packs += 1;
        progress.advance(i as u64 + 1);
    }
    Ok(())
}

/// Reports a whole pack as unusable: one problem, naming a file that loses data.
fn pack_problem(kind: ProblemKind, msg: String, named: &Named, cx: &Context, report: &mut Report) {
    let user = named.keys().find_map(|h| cx.refs.user(h, cx.ns));
    let msg = format!("{msg}; {} chunk record(s) name it", named.len());
    report.problem(kind, msg, user);
    for h in named.keys() {
        report.unreadable(*h);
    }
}

/// Checks one pack: it exists, its header and index are sound, and it holds every chunk
/// named to be in it.
fn check_pack(
    path: &Path,
    id: PackId,
    named: &Named,
    cx: &Context,
    report: &mut Report,
    progress: &mut dyn Progress,
) {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let msg = format!("{id} ({}) is missing", path.display());
            return pack_problem(ProblemKind::MissingPack, msg, named, cx, report);
        }
        Err(e) => {
            let msg = format!("{id}: cannot open {}: {e}", path.display());
            return pack_problem(ProblemKind::BadPack, msg, named, cx, report);
        }
    };
    let loaded = file
        .metadata()
        .map_err(|e| pack::PackError::io(id, 0, e))
        .and_then(|m| pack::check_file_header(&file, id).map(|()| m.len()))
        .and_then(|len| load_index(&file, id, len, cx.read_data.is_some()));
    let (index, scan, sealed_ok) = match loaded {
        Ok(l) => l,
        Err(e) => return pack_problem(ProblemKind::BadPack, e.to_string(), named, cx, report),
    };
    if !sealed_ok {
        let msg = format!("{id}: footer says sealed but the index fails its check");
        report.problem(ProblemKind::BadPack, msg, None);
        report.bad_index.insert(id);
    }
    let mut damaged = BTreeSet::new();
    if let Some(scan) = &scan {
        damaged = report_damage(&file, id, scan, named, cx, report);
    }
    check_named(&index, id, named, &damaged, cx, report);
    if let (Some(hasher), Some(scan)) = (cx.read_data, &scan) {
        verify::verify_records(&file, id, &scan.entries, hasher, cx, report, progress);
    }
}

/// Every chunk named to be in pack `id` has a record there of the stored length its
/// chunk record says; chunks in `damaged` are reported already.
fn check_named(
    index: &SealedIndex,
    id: PackId,
    named: &Named,
    damaged: &BTreeSet<ChunkHash>,
    cx: &Context,
    report: &mut Report,
) {
    for (hash, c) in named {
        if damaged.contains(hash) {
            continue;
        }
        let msg = match index.find(hash) {
            None => format!("chunk {hash} should be in {id}, which holds no record of it"),
            Some(loc) if loc.stored_len != c.stored_len => format!(
                "chunk {hash}: record in {id} is {} bytes, chunk record says {}",
                loc.stored_len, c.stored_len
            ),
            Some(_) => continue,
        };
        report.problem(ProblemKind::ChunkNotInPack, msg, cx.refs.user(hash, cx.ns));
        report.unreadable(*hash);
    }
}

/// The index to look chunks up in, the scan of the records (for unsealed packs, damaged
/// sealed indexes, and always with `--read-data`), and whether a sealed index was sound.
fn load_index(
    file: &File,
    id: PackId,
    len: u64,
    read_data: bool,
) -> Result<(SealedIndex, Option<ScanResult>, bool), pack::PackError> {
    let sealed = pack::is_sealed(file, id, len)?;
    let index = if sealed {
        pack::read_sealed_index(file, id, len)?
    } else {
        None
    };
    match index {
        Some(idx) if !read_data => Ok((idx, None, true)),
        Some(idx) => {
            let scan = pack::scan_records(file, id, idx.records_end)?;
            Ok((idx, Some(scan), true))
        }
        None => {
            // A damaged sealed index: its index and footer bytes show as a damaged tail.
            let scan = pack::scan_records(file, id, len)?;
            let idx = pack::index_from_scan(&scan.entries, scan.valid_end);
            Ok((idx, Some(scan), !sealed))
        }
    }
}

/// Reports the byte ranges a scan found not to be records, naming the chunk a damaged
/// record claims to hold when its header still decodes; returns those chunks. A torn
/// tail holding no named chunk is only noted: the next mount cuts it.
fn report_damage(
    file: &File,
    id: PackId,
    scan: &ScanResult,
    named: &Named,
    cx: &Context,
    report: &mut Report,
) -> BTreeSet<ChunkHash> {
    let mut hit = BTreeSet::new();
    let mut regions: Vec<(u64, Option<u64>)> =
        scan.damaged.iter().map(|&(a, b)| (a, Some(b))).collect();
    if scan.damaged_tail {
        regions.push((scan.valid_end, None));
    }
    for (start, end) in regions {
        let claimed = verify::claimed_hash(file, id, start);
        let known = claimed.filter(|h| named.contains_key(h));
        let what = match end {
            Some(end) => format!("{id}: bytes {start}..{end} are not a valid record"),
            None => format!("{id}: the bytes from {start} to the end are not a valid record"),
        };
        match (known, end) {
            (Some(h), _) => {
                hit.insert(h);
                let msg = format!("{what} (damaged record of chunk {h})");
                report.problem(ProblemKind::DamagedRecord, msg, cx.refs.user(&h, cx.ns));
                report.unreadable(h);
            }
            // A record no chunk record names any more (e.g. after `--repair`): dead
            // space, like any unreferenced record, which GC drops when it rewrites.
            (None, Some(_)) if claimed.is_some() => {
                report.note(format!("{what} (no chunk record names it: dead space)"))
            }
            (None, Some(_)) => report.problem(ProblemKind::DamagedRecord, what, None),
            (None, None) => report.note(format!("{what} (a torn tail; the next mount cuts it)")),
        }
    }
    hit
}
