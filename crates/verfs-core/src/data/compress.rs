//! Chunk payload codecs. A chunk that does not shrink under zstd is stored raw.

use bytes::Bytes;
use thiserror::Error;

/// The payload codec byte stored in pack records and chunk records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Payload is the plain bytes.
    Raw,
    /// Payload is one zstd frame.
    Zstd,
}

impl Codec {
    /// The on-disk byte; never renumber.
    pub fn to_byte(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        }
    }

    /// Decodes the on-disk byte.
    pub fn from_byte(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// A chunk's payload as stored: compressed or raw bytes plus the codec that reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The codec of `bytes`.
    pub codec: Codec,
    /// The payload (the plain bytes themselves, shared, when raw; ciphertext and tag
    /// when encrypted).
    pub bytes: Bytes,
    /// The nonce of an encrypted payload (`data::cipher`); `None` for a plain one.
    pub nonce: Option<[u8; super::pack::NONCE_LEN]>,
}

/// A payload could not be decoded.
#[derive(Debug, Error)]
#[error("decompress: {0}")]
pub struct DecompressError(pub String);

/// Bytes sampled to predict whether a chunk compresses.
const SAMPLE: usize = 4096;

/// What a sample predicts about compressing a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outlook {
    /// Shrinks by less than an eighth, as random-looking data does (already compressed
    /// media, encrypted files): stored raw without paying for a full compression
    /// attempt, which costs as much as compressing text. ZFS keeps a block raw below
    /// the same saving; reads of it skip decompression too.
    Raw,
    /// Shrinks by an eighth to a quarter: a higher level spends twice the time of level 1
    /// or more to save next to nothing more (`fio`'s buffers, 1.12x: 118 MB/s at level
    /// 3, 266 MB/s at level 1, the same ratio within 0.2%; `zstd -b -B64K`). Negative
    /// levels are faster still but skip entropy coding, so data that shrinks only by
    /// it would not shrink at all.
    Weak,
    /// Worth the configured level.
    Good,
}

/// zstd level for chunks whose sample compresses weakly ([`Outlook::Weak`]).
const WEAK_LEVEL: i32 = 1;

/// Predicts from a sample of `plain` (compressed at level 1) how it compresses.
fn outlook(plain: &[u8]) -> Outlook {
    if plain.len() < 4 * SAMPLE {
        return Outlook::Good;
    }
    let mid = plain.len() / 2;
    let sample = &plain[mid - SAMPLE / 2..mid + SAMPLE / 2];
    match with_compressor(1, |c| c.compress(sample)) {
        Some(Ok(c)) if c.len() > SAMPLE * 7 / 8 => Outlook::Raw,
        Some(Ok(c)) if c.len() > SAMPLE * 3 / 4 => Outlook::Weak,
        _ => Outlook::Good,
    }
}

thread_local! {
    /// One zstd context per thread and level: creating a context per chunk (what
    /// `zstd::bulk::compress` does) zero-fills and page-faults in its tables, ~8% of
    /// the CPU samples when writing text.
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's compressor for `level`; `None` if one cannot be made.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> T,
) -> Option<T> {
    COMPRESSORS.with(|cell| {
        let mut list = cell.try_borrow_mut().ok()?;
        let i = match list.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                list.push((level, zstd::bulk::Compressor::new(level).ok()?));
                list.len() - 1
            }
        };
        Some(f(&mut list[i].1))
    })
}

/// Compresses `plain` at `level`, keeping it raw when zstd does not make it smaller (or a
/// sample predicts it will not); a chunk whose sample shrinks by less than a quarter is
/// compressed at zstd's fastest level instead (see [`Outlook::Weak`]).
pub fn compress(plain: &Bytes, level: i32) -> Stored {
    let level = match outlook(plain) {
        Outlook::Raw => {
            return Stored {
                codec: Codec::Raw,
                bytes: plain.clone(),
                nonce: None,
            }
        }
        Outlook::Weak => level.min(WEAK_LEVEL),
        Outlook::Good => level,
    };
    match with_compressor(level, |c| c.compress(plain)) {
        Some(Ok(c)) if c.len() < plain.len() => Stored {
            codec: Codec::Zstd,
            bytes: Bytes::from(c),
            nonce: None,
        },
        _ => Stored {
            codec: Codec::Raw,
            bytes: plain.clone(),
            nonce: None,
        },
    }
}

/// Decodes a payload back into exactly `plain_len` bytes; a raw payload is returned
/// as is, without a copy.
///
/// Fails when the payload is not a valid frame or decodes to another length.
pub fn decompress(
    codec: Codec,
    payload: Bytes,
    plain_len: usize,
) -> Result<Bytes, DecompressError> {
    let out = match codec {
        Codec::Raw => payload,
        Codec::Zstd => Bytes::from(
            zstd::bulk::decompress(&payload, plain_len)
                .map_err(|e| DecompressError(e.to_string()))?,
        ),
    };
    if out.len() != plain_len {
        return Err(DecompressError(format!(
            "decoded {} bytes, expected {plain_len}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_shrinks_and_round_trips() {
        let plain = b"abcabcabc".repeat(1000);
        let s = compress(&Bytes::from(plain.clone()), 3);
        assert_eq!(s.codec, Codec::Zstd);
        assert!(s.bytes.len() < plain.len());
        assert_eq!(
            decompress(s.codec, s.bytes.clone(), plain.len()).unwrap(),
            plain
        );
    }

    #[test]
    fn incompressible_data_stays_raw() {
        let plain: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let s = compress(&Bytes::from(plain.clone()), 3);
        if s.codec == Codec::Raw {
            assert_eq!(s.bytes, plain);
        }
        assert_eq!(
            decompress(s.codec, s.bytes.clone(), plain.len()).unwrap(),
            plain
        );
    }

    #[test]
    fn random_chunks_skip_compression_but_text_with_a_random_middle_does_not_lose() {
        let mut x = 1u64;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(outlook(&random), Outlook::Raw);
        assert_eq!(compress(&Bytes::from(random.clone()), 3).codec, Codec::Raw);
        let text = b"the quick brown fox jumps over the lazy dog\n".repeat(2000);
        assert_eq!(outlook(&text), Outlook::Good);
        assert_eq!(compress(&Bytes::from(text.clone()), 3).codec, Codec::Zstd);
        // Random 6-bit bytes shrink by about a fifth: compressed at level 1, and still
        // round-trip.
        let weak: Vec<u8> = random.iter().map(|b| b & 0x3f).collect();
        assert_eq!(outlook(&weak), Outlook::Weak);
        let stored = compress(&Bytes::from(weak.clone()), 3);
        assert_eq!(stored.codec, Codec::Zstd);
        assert!(stored.bytes.len() < weak.len());
        let back = decompress(stored.codec, stored.bytes, weak.len()).expect("decode");
        assert_eq!(&back[..], &weak[..]);
    }

    #[test]
    fn wrong_length_or_garbage_is_an_error() {
        let s = compress(&Bytes::from(vec![7u8; 1000]), 3);
        assert!(decompress(s.codec, s.bytes.clone(), 999).is_err());
        assert!(decompress(Codec::Zstd, Bytes::from_static(b"not zstd"), 10).is_err());
    }
}
