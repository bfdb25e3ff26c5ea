//! UltraCDC content-defined chunking (Zhou et al., 2022), written from the paper's
//! description so that chunk boundaries can be found on a stream.
//!
//! Algorithm: an 8-byte window slides in 8-byte words. `dist`, a distance of the window
//! from a fixed pattern, is updated per byte (add the byte coming in, subtract the one
//! going out); position `p` is a cut point when `dist & mask == 0`, with a harder mask
//! before the normal size and an easier one after it (normalized chunking). A word
//! equal to the previous word bumps a run counter; after `LEST` such words the chunk is
//! cut (low-entropy rule). Every piece of state restarts at each cut, so a boundary
//! depends only on the bytes since the previous boundary: streaming in any piece sizes
//! yields exactly the boundaries of a whole-buffer pass.
//!
//! Deviation from the paper, measured: the paper's distance is the Hamming distance to
//! `0xAA..AA` and its masks select the low tail of that distance. The tail's weight
//! depends on the byte distribution: on ASCII text (bit 7 clear, letters clustered) the
//! distance sits around 36–40 and almost never reaches the tail, and on a tar of Rust
//! sources 62% of chunks were cut at `max`, which shifted text cannot deduplicate. Here
//! each byte value contributes a fixed random 32-bit weight instead of its popcount
//! (the same per-byte update, wrapping), so `dist` of any non-repeating window is close
//! to uniform and a mask of `k` high bits cuts with probability 2^-k whatever the data.
//! The paper's other parts (8-byte words, the low-entropy rule, two masks around the
//! normal size) are kept.
//!
//! Mask choice: like FastCDC's level-2 normalization, the small-phase mask aims at a mean
//! gap of `4 * avg` and the large-phase one at `avg / 4`; of the two neighbouring powers
//! of two on each side, the pair whose predicted mean chunk size is closest to `avg` wins.
//!
//! Other deviations: a cut decision needs the whole 8-byte word (so a partial trailing
//! word is never examined: the chunk ends at EOF or `max`); empty input has no chunk.
//! With `avg == max` there is no easy phase and most chunks end at `max`.

/// Equal consecutive words needed to cut a low-entropy run (the paper's LEST).
const LEST: u32 = 64;
/// Largest mask width considered (a gap of 2^30 bytes is far past any chunk size).
const MAX_MASK_BITS: u32 = 30;
/// Each byte value's weight in `dist`: fixed pseudo-random values (xorshift64 from a
/// fixed seed). Never change them: boundaries, and with them dedup against data already
/// stored, would move.
const WEIGHT: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut b = 0;
    while b < 256 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t[b] = (x >> 32) as u32;
        b += 1;
    }
    t
};

/// `dist` of a whole window: the wrapping sum of its bytes' weights.
fn window_dist(win: u64) -> u32 {
    win.to_le_bytes()
        .iter()
        .fold(0u32, |d, &b| d.wrapping_add(WEIGHT[b as usize]))
}

/// The mask of the `k` high bits: a random `dist` passes it with probability 2^-k.
fn mask_of(k: u32) -> u32 {
    if k == 0 {
        0
    } else {
        u32::MAX << (32 - k)
    }
}

/// UltraCDC boundaries for one filesystem's chunk sizes; cheap to copy so every writer
/// can hold its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UltraCdc {
    min: usize,
    normal: usize,
    max: usize,
    mask_s: u32,
    mask_l: u32,
}

/// Where a scan of the current chunk stopped, so a stream resumes instead of rescanning.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Offset of the next word to read; 0 while the window is not yet loaded.
    pos: usize,
    win: u64,
    dist: u32,
    run: u32,
}

/// The 8 bytes at `at` as a little-endian word, if they are all present.
fn word(data: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Expected chunk size with mean gaps `gs` before and `gl` after normal.
fn predicted_mean(min: usize, normal: usize, max: usize, gs: f64, gl: f64) -> f64 {
    let (a, b) = ((normal - min) as f64, (max - normal) as f64);
    let reach_normal = (-a / gs).exp();
    min as f64 + gs * (1.0 - reach_normal) + reach_normal * gl * (1.0 - (-b / gl).exp())
}

/// The two mask widths whose gaps (2^k) bracket `target`.
fn bracket(target: f64) -> [u32; 2] {
    let hi = (1..=MAX_MASK_BITS)
        .find(|&k| f64::from(k).exp2() >= target)
        .unwrap_or(MAX_MASK_BITS);
    [hi.saturating_sub(1).max(1), hi]
}

impl UltraCdc {
    /// Panics never; clamps: min >= 64, min <= avg <= max. `avg` is the normal size where
    /// the mask switches, and the masks are chosen so the mean chunk is close to it.
    pub fn new(min: u32, avg: u32, max: u32) -> UltraCdc {
        let min = min.max(64) as usize;
        let normal = (avg as usize).max(min);
        let max = (max as usize).max(normal);
        let gap = |k: u32| f64::from(k).exp2();
        let mut best = (f64::INFINITY, MAX_MASK_BITS, 1);
        for s in bracket(normal as f64 * 4.0) {
            for l in bracket(normal as f64 / 4.0) {
                let mean = predicted_mean(min, normal, max, gap(s), gap(l));
                let cost = (mean / normal as f64).ln().abs();
                if s > l && cost < best.0 {
                    best = (cost, s, l);
                }
            }
        }
        UltraCdc {
            min,
            normal,
            max,
            mask_s: mask_of(best.1),
            mask_l: mask_of(best.2),
        }
    }

    /// Smallest chunk (except the last one of a stream); callers size buffers from it.
    pub fn min_size(&self) -> usize {
        self.min
    }

    /// Largest chunk; readers look back this far for the chunk covering an offset.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the first chunk of `data`, where `data` starts at a chunk boundary.
    /// If `eof` is false and no cut is found in `data` and data.len() < max, returns None
    /// (caller must supply more bytes). With `eof` true, returns Some(len) with
    /// len <= data.len() (the last chunk ends at EOF). Never returns Some(0): empty
    /// `data` has no chunk and gives None even at EOF, so a caller's loop always ends.
    pub fn cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        self.cut_from(data, eof, &mut Scan::default())
    }

    /// All chunk lengths of a whole buffer (data is all the bytes, up to EOF); the
    /// reference result that streaming must reproduce.
    pub fn chunk_all(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = data;
        while let Some(n) = self.cut(rest, true) {
            out.push(n);
            rest = rest.get(n..).unwrap_or_default();
        }
        out
    }

    /// `cut`, resuming the scan saved in `st` (which must belong to this `data` prefix).
    fn cut_from(&self, data: &[u8], eof: bool, st: &mut Scan) -> Option<usize> {
        let at_end = !data.is_empty() && (eof || data.len() >= self.max);
        self.scan(data, st)
            .or(at_end.then_some(data.len().min(self.max)))
    }

    /// Looks for a cut among the complete words of `data` below `max`, continuing from `st`.
    fn scan(&self, data: &[u8], st: &mut Scan) -> Option<usize> {
        let end = data.len().min(self.max);
        if st.pos == 0 {
            st.win = word(data, self.min - 8)?;
            st.dist = window_dist(st.win);
            st.pos = self.min;
        }
        while st.pos.saturating_add(8) <= end {
            let Some(inw) = word(data, st.pos) else { break };
            let at = st.pos;
            st.pos += 8;
            if inw == st.win {
                st.run += 1;
                if st.run >= LEST {
                    return Some(st.pos);
                }
                continue;
            }
            st.run = 0;
            // As in the paper the mask is per word: the word straddling `normal` is "large".
            let small = st.pos <= self.normal;
            let mask = if small { self.mask_s } else { self.mask_l };
            let (mut inb, mut outb) = (inw, st.win);
            for j in 0..8 {
                if st.dist & mask == 0 {
                    return Some(at + j);
                }
                let (i, o) = (
                    WEIGHT[(inb & 0xFF) as usize],
                    WEIGHT[(outb & 0xFF) as usize],
                );
                st.dist = st.dist.wrapping_add(i).wrapping_sub(o);
                inb >>= 8;
                outb >>= 8;
            }
            st.win = inw;
        }
        None
    }
}

/// Feeds a stream in pieces with memory bounded by max chunk size (plus one piece), so
/// files can be chunked as they are written without holding them whole.
pub struct StreamChunker {
    cdc: UltraCdc,
    /// Bytes of the current, still open chunk (starts at a boundary).
    buf: Vec<u8>,
    /// Scan progress through `buf`, so each byte is examined once.
    scan: Scan,
}

impl StreamChunker {
    /// An empty stream that will cut with `cdc`.
    pub fn new(cdc: UltraCdc) -> StreamChunker {
        StreamChunker {
            cdc,
            buf: Vec::new(),
            scan: Scan::default(),
        }
    }

    /// Appends bytes; returns the complete chunks now known (owned `Vec<u8>` each).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        self.drain(false)
    }

    /// Ends the stream; returns the remaining chunk(s).
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.drain(true)
    }

    /// Cuts every chunk that `buf` now determines and keeps the open remainder.
    fn drain(&mut self, eof: bool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let rest = self.buf.get(start..).unwrap_or_default();
            let found = self.cdc.cut_from(rest, eof, &mut self.scan);
            let Some(n) = found else { break };
            out.push(rest.get(..n).unwrap_or_default().to_vec());
            start += n;
            self.scan = Scan::default();
        }
        self.buf.drain(..start.min(self.buf.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};
    use std::collections::HashSet;

    const KIB: u32 = 1024;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    /// Mixed data: random bytes, runs of one byte, repeated 8-byte words, text.
    fn mixed(rng: &mut StdRng, len: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = ["the ", "chunk ", "of ", "data\n", "fuse ", "a ", "!", "\t"];
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            let n = rng.gen_range(1..=len.min(20_000));
            match rng.gen_range(0..4) {
                0 => v.extend((0..n).map(|_| rng.gen::<u8>())),
                1 => v.extend(std::iter::repeat_n(rng.gen::<u8>(), n)),
                2 => v.extend(rng.gen::<u64>().to_le_bytes().iter().cycle().take(n)),
                _ => (0..n / 4).for_each(|_| v.extend(WORDS[rng.gen_range(0..8)].bytes())),
            }
        }
        v.truncate(len);
        v
    }

    /// Chunk lengths from a `StreamChunker` fed random pieces of 1 ..= 3 * max bytes.
    fn stream(cdc: UltraCdc, data: &[u8], rng: &mut StdRng) -> (Vec<usize>, Vec<u8>) {
        let (mut s, mut out, mut rest) = (StreamChunker::new(cdc), Vec::new(), data);
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(rng.gen_range(1..=3 * cdc.max).min(rest.len()));
            out.extend(s.push(piece));
            rest = tail;
        }
        out.extend(s.finish());
        (out.iter().map(Vec::len).collect(), out.concat())
    }

    #[test]
    fn streaming_matches_whole_buffer() {
        let mut rng = StdRng::seed_from_u64(7);
        for case in 0..400 {
            let min = rng.gen_range(0..600);
            let avg = rng.gen_range(min..=min * 4 + 64);
            let cdc = UltraCdc::new(min, avg, rng.gen_range(avg..=avg * 4 + 64));
            let len = rng.gen_range(0..=20 * cdc.max);
            let data = mixed(&mut rng, len);
            let whole = cdc.chunk_all(&data);
            let (lens, bytes) = stream(cdc, &data, &mut rng);
            assert!(bytes == data && lens == whole, "case {case} {cdc:?}");
            let mut rest = &data[..];
            for (k, &c) in whole.iter().enumerate() {
                assert!(c <= cdc.max && (c >= cdc.min || k + 1 == whole.len()));
                // A prefix never yields another cut, and one 8 bytes past it yields it.
                let l = rng.gen_range(0..=rest.len());
                match cdc.cut(&rest[..l], false) {
                    Some(x) => assert_eq!(x, c, "case {case} prefix {l}"),
                    None => assert!(l < (c + 8).min(cdc.max), "case {case} prefix {l}"),
                }
                rest = &rest[c..];
            }
        }
    }

    #[test]
    fn size_distribution() {
        let configs = [(16, 64, 256), (8, 16, 64), (2, 8, 64)];
        for (seed, (min, avg, max)) in configs.into_iter().enumerate() {
            let cdc = UltraCdc::new(min * KIB, avg * KIB, max * KIB);
            for (kind, data) in [
                ("random", random(32 << 20, seed as u64)),
                ("text", text(32 << 20, seed as u64)),
            ] {
                check_distribution(cdc, (min, avg, max), kind, &data);
            }
        }
    }

    /// Pseudo-English: words of 1-10 lowercase letters from a 2000-word vocabulary,
    /// with spaces, punctuation and newlines; ASCII only, like source code and prose.
    fn text(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        let vocab: Vec<Vec<u8>> = (0..2000)
            .map(|_| {
                (0..rng.gen_range(1..=10))
                    .map(|_| rng.gen_range(b'a'..=b'z'))
                    .collect()
            })
            .collect();
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            v.extend_from_slice(&vocab[rng.gen_range(0..vocab.len())]);
            v.push(match rng.gen_range(0..20) {
                0 => b'\n',
                1 => b',',
                2 => b'.',
                _ => b' ',
            });
        }
        v.truncate(len);
        v
    }

    fn check_distribution(
        cdc: UltraCdc,
        (min, avg, max): (u32, u32, u32),
        kind: &str,
        data: &[u8],
    ) {
        {
            let lens = cdc.chunk_all(data);
            let (last, body) = lens.split_last().unwrap();
            let mean = data.len() as f64 / lens.len() as f64 / f64::from(avg * KIB);
            let at_max = body.iter().filter(|&&l| l == cdc.max).count() as f64;
            let at_max = at_max / lens.len() as f64;
            let (ms, ml, n) = (cdc.mask_s, cdc.mask_l, lens.len());
            let (pm, pmax) = ((mean - 1.0) * 100.0, at_max * 100.0);
            eprintln!("{kind} {min}/{avg}/{max} KiB: masks {ms:#x}/{ml:#x}, {n} chunks,");
            eprintln!("    mean {pm:+.1}% vs avg, {pmax:.2}% cut at max");
            assert!(
                (mean - 1.0).abs() < 0.25 && at_max < 0.05,
                "{kind}: {mean} {at_max}"
            );
            assert!(body.iter().all(|&l| l >= cdc.min) && *last <= cdc.max);
        }
    }

    fn pieces(cdc: UltraCdc, mut d: &[u8]) -> Vec<&[u8]> {
        cdc.chunk_all(d)
            .iter()
            .map(|&n| d.split_off(..n).unwrap())
            .collect()
    }

    #[test]
    fn one_inserted_byte_changes_few_chunks() {
        for (min, avg, max) in [(16, 64, 256), (2, 8, 64)] {
            let cdc = UltraCdc::new(min * KIB, avg * KIB, max * KIB);
            let old = random(8 << 20, 4);
            let mut new = old.clone();
            new.insert(100, 0x5A);
            let known: HashSet<&[u8]> = pieces(cdc, &old).into_iter().collect();
            let new = pieces(cdc, &new);
            let (changed, n) = (
                new.iter().filter(|c| !known.contains(*c)).count(),
                new.len(),
            );
            eprintln!("shift {min}/{avg}/{max} KiB: {changed} of {n} chunks new");
            assert!(changed <= 3 && n > 50, "{changed} changed");
        }
    }

    #[test]
    fn low_entropy_runs_cut_early_and_identically() {
        let cdc = UltraCdc::new(16 * KIB, 64 * KIB, 256 * KIB);
        // Different random prefixes, then 1 MiB of one byte: once a chunk starts inside
        // the run, every chunk is cut by the run rule at the same length.
        for (seed, fill) in [(5, 0u8), (6, 0), (7, 0x11), (8, 0xFF)] {
            let mut data = random(100_000 + seed as usize * 777, seed);
            data.extend(std::iter::repeat_n(fill, 1 << 20));
            let lens = cdc.chunk_all(&data);
            let run = &lens[lens.len() - 50..lens.len() - 1];
            assert!(
                run.iter().all(|&l| l == cdc.min + 8 * LEST as usize),
                "{lens:?}"
            );
        }
    }

    #[test]
    fn edge_cases() {
        let cdc = UltraCdc::new(1000, 4000, 16000);
        assert_eq!(cdc.chunk_all(&[]), Vec::<usize>::new());
        assert_eq!(cdc.cut(&[], true), None);
        assert!(StreamChunker::new(cdc).finish().is_empty());
        // A 16-byte cycle with no two equal consecutive words whose 16 window distances
        // all miss both masks: only `max` and EOF cut.
        let d = never_cutting(cdc, 48_000, |i, p: &[u8; 16]| p[i % 16]);
        for len in [999, 1000, 15999, 16000, 16001, 32003] {
            let want: Vec<usize> = (0..len)
                .step_by(16000)
                .map(|s| (len - s).min(16000))
                .collect();
            assert_eq!(cdc.chunk_all(&d[..len]), want);
            let mut rng = StdRng::seed_from_u64(len as u64);
            assert_eq!(stream(cdc, &d[..len], &mut rng).0, want);
        }
        // Runs of 40 equal words, alternating between two words: the run counter
        // restarts when words differ, so no cut.
        let runs = never_cutting(cdc, 48_000, |i, p: &[u8; 16]| p[(i / 320 % 2) * 8 + i % 8]);
        assert_eq!(cdc.chunk_all(&runs), [16000; 3]);
        assert_eq!(cdc.cut(&d[..15999], false), None);
        assert_eq!(cdc.cut(&d[..16000], false), Some(16000));
        assert_eq!(cdc.cut(&d[..5], true), Some(5));
        for len in [999, 16000, 16001] {
            let lens = cdc.chunk_all(&random(len, 9));
            assert!(lens.iter().sum::<usize>() == len && lens[0] >= 1000.min(len));
        }
        let tiny = UltraCdc::new(0, 0, 0);
        assert_eq!((tiny.min_size(), tiny.max_size()), (64, 64));
        assert_eq!(tiny.chunk_all(&random(130, 1)), vec![64, 64, 2]);
        let odd = UltraCdc::new(500, 100, 10);
        assert_eq!((odd.min, odd.normal, odd.max), (500, 500, 500));
    }

    /// `len` bytes from `pick(i, pattern)` for the first 16-byte pattern (from a fixed
    /// seed) that `cdc` cuts only at `max`.
    fn never_cutting(cdc: UltraCdc, len: usize, pick: impl Fn(usize, &[u8; 16]) -> u8) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(99);
        for _ in 0..1000 {
            let mut p = [0u8; 16];
            rng.fill_bytes(&mut p);
            let d: Vec<u8> = (0..len).map(|i| pick(i, &p)).collect();
            if cdc.chunk_all(&d).iter().all(|&l| l == cdc.max) {
                return d;
            }
        }
        panic!("no never-cutting pattern found");
    }

    #[test]
    fn a_mask_of_k_bits_cuts_every_2_pow_k_bytes_on_any_data() {
        for k in [6u32, 8, 10] {
            let mask = mask_of(k);
            for (kind, data) in [("random", random(4 << 20, 3)), ("text", text(4 << 20, 3))] {
                let mut dist = window_dist(u64::from_le_bytes(data[..8].try_into().unwrap()));
                let mut hits = 0usize;
                for i in 8..data.len() {
                    dist = dist
                        .wrapping_add(WEIGHT[data[i] as usize])
                        .wrapping_sub(WEIGHT[data[i - 8] as usize]);
                    hits += usize::from(dist & mask == 0);
                }
                let gap = data.len() as f64 / hits as f64 / f64::from(k).exp2();
                assert!((0.8..1.25).contains(&gap), "{kind} k={k}: gap ratio {gap}");
            }
        }
    }

    #[test]
    #[ignore]
    fn throughput() {
        let cdc = UltraCdc::new(16 * KIB, 64 * KIB, 256 * KIB);
        let data = random(256 << 20, 11);
        let t = std::time::Instant::now();
        let n = cdc.chunk_all(&data).len();
        let whole = 268.435456 / t.elapsed().as_secs_f64();
        let (t, mut s) = (std::time::Instant::now(), StreamChunker::new(cdc));
        let m: usize = data.chunks(1 << 20).map(|p| s.push(p).len()).sum::<usize>();
        let m = m + s.finish().len();
        let streamed = 268.435456 / t.elapsed().as_secs_f64();
        eprintln!(
            "{n} chunks: chunk_all {whole:.0} MB/s, stream (1 MiB pieces) {streamed:.0} MB/s"
        );
        assert_eq!(n, m);
    }
}
