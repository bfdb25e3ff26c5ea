//! What a check found: problems (each reported once, with an affected file where there
//! is one), informational notes, and how much was checked.

use serde::Serialize;

use crate::types::ChunkHash;

/// The class of a problem, so scripts (and tests) can tell problems apart without
/// parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A metadata key or record does not decode.
    CorruptRecord,
    /// An extent version names a chunk that has no `C` record.
    MissingChunk,
    /// A `C` record's refcount differs from the extent versions naming the chunk.
    Refcount,
    /// The zero-ref index (`Z`) disagrees with the refcounts.
    ZeroRef,
    /// A referenced chunk is flagged lost (its pack record vanished in a crash).
    LostChunk,
    /// A pack named by `C` records does not exist.
    MissingPack,
    /// A pack file's header, index or footer is damaged, or it cannot be read.
    BadPack,
    /// A `C` record names a pack that holds no record of that chunk.
    ChunkNotInPack,
    /// A pack record fails its CRC, does not decompress, or its bytes are not a record.
    DamagedRecord,
    /// A record's plain bytes hash to another id than the one it is stored under.
    HashMismatch,
    /// A dirent names no inode, an inode of another kind, or sits in a missing directory.
    DanglingEntry,
    /// An inode's link count differs from the dirents naming it.
    LinkCount,
    /// A directory's parent field, naming or reachability is wrong.
    Directory,
    /// An inode without links and without an orphan mark, or a wrong orphan mark.
    Orphan,
    /// An extent belongs to no live file.
    StrayExtent,
}

impl ProblemKind {
    /// The name printed and serialised for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CorruptRecord => "corrupt-record",
            ProblemKind::MissingChunk => "missing-chunk",
            ProblemKind::Refcount => "refcount",
            ProblemKind::ZeroRef => "zero-ref",
            ProblemKind::LostChunk => "lost-chunk",
            ProblemKind::MissingPack => "missing-pack",
            ProblemKind::BadPack => "bad-pack",
            ProblemKind::ChunkNotInPack => "chunk-not-in-pack",
            ProblemKind::DamagedRecord => "damaged-record",
            ProblemKind::HashMismatch => "hash-mismatch",
            ProblemKind::DanglingEntry => "dangling-entry",
            ProblemKind::LinkCount => "link-count",
            ProblemKind::Directory => "directory",
            ProblemKind::Orphan => "orphan",
            ProblemKind::StrayExtent => "stray-extent",
        }
    }
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Its class.
    pub kind: ProblemKind,
    /// What is wrong, naming the chunk, pack or inode.
    pub message: String,
    /// A file affected by it (live path, or an inode only a snapshot holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// How much the check looked at, so a clean result can be told from an empty one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Live inodes.
    pub inodes: u64,
    /// Live dirents.
    pub dirents: u64,
    /// Stored extent versions (live and frozen).
    pub extents: u64,
    /// `C` records.
    pub chunks: u64,
    /// `Z` marks.
    pub zero_refs: u64,
    /// Snapshots.
    pub snapshots: u64,
    /// Pack files looked at.
    pub packs: u64,
    /// Records read and verified with `--read-data`.
    pub records_read: u64,
    /// Record bytes read with `--read-data`.
    pub bytes_read: u64,
    /// Encrypted records whose CRC was checked but whose plain bytes could not be.
    pub encrypted_unverified: u64,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every problem found, each once.
    pub problems: Vec<Problem>,
    /// Notes that are not problems (files unlinked while open, harmless torn tails).
    pub info: Vec<String>,
    /// What was checked.
    pub counts: Counts,
    /// Chunks whose bytes cannot be served (no chunk record, marked lost, pack missing
    /// or unusable, record absent or damaged, wrong id): what `--repair` turns into
    /// holes.
    #[serde(skip)]
    pub unreadable: std::collections::BTreeSet<crate::types::ChunkHash>,
    /// Sealed packs whose index fails its check while the records scan: what
    /// `--repair` re-seals from a scan.
    #[serde(skip)]
    pub bad_index: std::collections::BTreeSet<crate::types::PackId>,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records a problem.
    pub(crate) fn problem(&mut self, kind: ProblemKind, message: String, path: Option<String>) {
        self.problems.push(Problem {
            kind,
            message,
            path,
        });
    }

    /// Records that `hash`'s bytes cannot be served.
    pub(crate) fn unreadable(&mut self, hash: ChunkHash) {
        self.unreadable.insert(hash);
    }

    /// Records a note.
    pub(crate) fn note(&mut self, message: String) {
        self.info.push(message);
    }
}
