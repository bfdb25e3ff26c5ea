//! The control plane's vocabulary: requests the CLI sends to a running daemon and the
//! answers, plus the [`Control`] trait the daemon's filesystem implements. The socket
//! and the wire encoding (one JSON object per line) live in the binary.

use serde::{Deserialize, Serialize};

use crate::engine::stats::StatsSnapshot;

/// A command for the running daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Space, dedup, compression and activity figures.
    Stats,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Stats`].
    Stats(StatsReport),
    /// The command failed; the message says why.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// What `verfsnext stats` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Bytes referenced by file extents (every extent version; holes excluded).
    pub logical_bytes: u64,
    /// Plain bytes of the distinct chunks those extents reference.
    pub unique_bytes: u64,
    /// Compressed payload bytes of those chunks.
    pub stored_chunk_bytes: u64,
    /// Bytes of all pack files on disk (payloads, headers, indexes, garbage).
    pub pack_bytes: u64,
    /// `logical_bytes / unique_bytes`.
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_chunk_bytes`.
    pub compression_ratio: f64,
    /// Chunks with at least one reference.
    pub chunk_count: u64,
    /// Chunks no longer referenced, waiting for GC.
    pub unreferenced_chunks: u64,
    /// Pack files.
    pub pack_count: u64,
    /// Counters since the daemon started.
    pub activity: StatsSnapshot,
    /// `chunk_cache_hits / (hits + misses)`, 0 when nothing was read.
    pub chunk_cache_hit_rate: f64,
    /// `dedup_cache_hits / (hits + misses)`: dedup lookups that skipped the chunk record.
    #[serde(default)]
    pub dedup_cache_hit_rate: f64,
    /// `pack_index_hits / (hits + misses)`: sealed-pack index lookups served from memory.
    #[serde(default)]
    pub pack_index_hit_rate: f64,
    /// Mean write blocks per committed batch.
    pub mean_batch_blocks: f64,
}

/// What a running filesystem offers the control plane.
pub trait Control: Send + Sync {
    /// Carries out one request.
    fn handle(&self, req: Request) -> Response;
}
