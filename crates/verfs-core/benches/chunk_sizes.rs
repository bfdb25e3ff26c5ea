//! Chooses the UltraCDC size defaults: for several (min, avg, max) settings, chunks a
//! corpus and reports throughput, mean chunk size, chunks cut at the maximum, the
//! metadata cost of the chunk count, and how many new bytes 64 small edits (inserts,
//! deletes and overwrites at random offsets) make the edited copy store.
//!
//!   cargo bench -p verfs-core --bench chunk_sizes [-- FILE]
//!
//! Without FILE the corpus is C headers and documentation from /usr/include and
//! /usr/share/doc (the text the data-plane test compresses) followed by as much random
//! data (the incompressible half of a typical tree), 64 MiB in all.

use std::collections::HashSet;
use std::time::Instant;

use verfs_core::data::{ChunkHasher, UltraCdc};
use verfs_core::types::ChunkHash;

/// Bytes of metadata and pack overhead per stored chunk: the chunk record and its key
/// (~60), the extent (~40), the pack record header (36) and index entry (32).
const PER_CHUNK_OVERHEAD: u64 = 170;
const CORPUS_BYTES: usize = 64 << 20;
const EDITS: usize = 64;

fn main() {
    let corpus = match std::env::args().nth(1).filter(|a| !a.starts_with('-')) {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}")),
        None => default_corpus(),
    };
    let edited = edit(&corpus, EDITS, 0x5eed);
    let hasher = ChunkHasher::new(&[7; 16]);
    println!(
        "corpus {} MiB, {EDITS} edits; per-chunk overhead counted as {PER_CHUNK_OVERHEAD} bytes",
        corpus.len() >> 20
    );
    println!(
        "{:>22} {:>9} {:>10} {:>8} {:>11} {:>14} {:>12}",
        "min/avg/max KiB", "MB/s", "mean KiB", "at max", "chunks", "overhead KiB", "new KiB/edit"
    );
    for (min, avg, max) in [
        (4, 16, 64),
        (8, 32, 128),
        (16, 64, 256),
        (32, 128, 512),
        (64, 256, 1024),
    ] {
        let cdc = UltraCdc::new(min << 10, avg << 10, max << 10);
        let started = Instant::now();
        let lens = cdc.chunk_all(&corpus);
        let secs = started.elapsed().as_secs_f64();
        let at_max = lens.iter().filter(|&&l| l == cdc.max_size()).count();
        let original: HashSet<ChunkHash> = chunks(&corpus, &lens).map(|c| hasher.hash(c)).collect();
        let edited_lens = cdc.chunk_all(&edited);
        let new_bytes: u64 = chunks(&edited, &edited_lens)
            .filter(|c| !original.contains(&hasher.hash(c)))
            .map(|c| c.len() as u64)
            .sum();
        println!(
            "{:>22} {:>9.0} {:>10.1} {:>7.2}% {:>11} {:>14} {:>12.1}",
            format!("{min}/{avg}/{max}"),
            corpus.len() as f64 / secs / 1e6,
            corpus.len() as f64 / lens.len() as f64 / 1024.0,
            100.0 * at_max as f64 / lens.len() as f64,
            lens.len(),
            lens.len() as u64 * PER_CHUNK_OVERHEAD / 1024,
            new_bytes as f64 / EDITS as f64 / 1024.0,
        );
    }
}

fn chunks<'a>(data: &'a [u8], lens: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    lens.iter().map(move |&l| {
        let c = &data[at..at + l];
        at += l;
        c
    })
}

/// xorshift64*: deterministic bytes and offsets without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn default_corpus() -> Vec<u8> {
    let mut out = Vec::with_capacity(CORPUS_BYTES);
    let mut files = Vec::new();
    for dir in ["/usr/include", "/usr/share/doc"] {
        collect(std::path::Path::new(dir), &mut files);
    }
    files.sort();
    for f in files {
        if out.len() >= CORPUS_BYTES / 2 {
            break;
        }
        if let Ok(b) = std::fs::read(&f) {
            out.extend_from_slice(&b);
        }
    }
    out.truncate(CORPUS_BYTES / 2);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    while out.len() < CORPUS_BYTES {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => collect(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// `data` with `n` small edits at random offsets: inserts, deletes and overwrites of
/// 1–16 bytes.
fn edit(data: &[u8], n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = data.to_vec();
    for i in 0..n {
        let at = (rng.next() % out.len() as u64) as usize;
        let len = 1 + (rng.next() % 16) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match i % 3 {
            0 => {
                out.splice(at..at, bytes);
            }
            1 => {
                out.drain(at..(at + len).min(out.len()));
            }
            _ => {
                let end = (at + len).min(out.len());
                out[at..end].copy_from_slice(&bytes[..end - at]);
            }
        }
    }
    out
}
