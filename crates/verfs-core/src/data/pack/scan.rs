//! Scanning a pack's records (index rebuild, torn-tail detection) and the sealed index
//! with its footer.

use crate::data::packio::PackFile;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::read::{read_at_most, verify};
use super::*;

/// Checks the file header of a pack.
///
/// Fails with `Corrupt` on a wrong magic or version, `Io` on a failed read.
pub fn check_file_header(file: &dyn PackFile, pack: PackId) -> Result<(), PackError> {
    let mut b = [0u8; HEADER_LEN as usize];
    let got = read_at_most(file, &mut b, 0).map_err(|e| PackError::io(pack, 0, e))?;
    let h = FileHeader::read_from_bytes(&b[..got])
        .map_err(|_| PackError::corrupt(pack, 0, "short file header"))?;
    if &h.magic != FILE_MAGIC || h.version.get() != FORMAT_VERSION {
        return Err(PackError::corrupt(pack, 0, "bad pack file header"));
    }
    Ok(())
}

/// The result of scanning a pack's records from the start.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Every valid record, in file order (later duplicates of a hash win).
    pub entries: Vec<(ChunkHash, Location)>,
    /// End of the last valid record: where a torn tail would be cut.
    pub valid_end: u64,
    /// Whether bytes after the last valid record are not a record (torn or damaged tail).
    pub damaged_tail: bool,
    /// Damaged regions `[start, end)` that valid records follow (corruption, not a tail).
    pub damaged: Vec<(u64, u64)>,
}

/// Reads and fully checks the record at `off`; `None` if there is no valid record there.
fn record_at(
    file: &dyn PackFile,
    pack: PackId,
    off: u64,
    limit: u64,
) -> Result<Option<RecordHeader>, PackError> {
    if off + RECORD_HEADER_LEN as u64 > limit {
        return Ok(None);
    }
    let mut hbuf = [0u8; RECORD_HEADER_LEN];
    let got = read_at_most(file, &mut hbuf, off).map_err(|e| PackError::io(pack, off, e))?;
    let Ok(header) = decode_record_header(pack, off, &hbuf[..got]) else {
        return Ok(None);
    };
    let len = header.record_len();
    if off + len > limit {
        return Ok(None);
    }
    let mut rec = vec![0u8; len as usize];
    let got = read_at_most(file, &mut rec, off).map_err(|e| PackError::io(pack, off, e))?;
    if got as u64 != len || verify(pack, off, header, &rec).is_err() {
        return Ok(None);
    }
    Ok(Some(header))
}

/// The offset of the next valid record at or after `from`, searching for the record
/// magic and checking each candidate fully.
fn next_record(
    file: &dyn PackFile,
    pack: PackId,
    from: u64,
    limit: u64,
) -> Result<Option<u64>, PackError> {
    const BLOCK: usize = 1 << 20;
    let mut base = from;
    let mut buf = vec![0u8; BLOCK + RECORD_MAGIC.len()];
    while base < limit {
        let want = ((limit - base) as usize).min(buf.len());
        let got =
            read_at_most(file, &mut buf[..want], base).map_err(|e| PackError::io(pack, base, e))?;
        if got < RECORD_MAGIC.len() {
            return Ok(None);
        }
        for (i, w) in buf[..got].windows(RECORD_MAGIC.len()).enumerate() {
            if w == RECORD_MAGIC && record_at(file, pack, base + i as u64, limit)?.is_some() {
                return Ok(Some(base + i as u64));
            }
        }
        // Overlap by the magic's length so a magic across the block edge is found.
        base += (got - (RECORD_MAGIC.len() - 1)) as u64;
        if got < want {
            break;
        }
    }
    Ok(None)
}

/// Scans records in `[HEADER_LEN, limit)`. A record that fails its checks is skipped
/// by searching for the next valid record; the region is reported in `damaged` when
/// valid records follow it, else as a damaged tail. Never panics on any input.
///
/// Fails only on an I/O error of the read itself.
pub fn scan_records(
    file: &dyn PackFile,
    pack: PackId,
    limit: u64,
) -> Result<ScanResult, PackError> {
    let mut out = ScanResult {
        valid_end: HEADER_LEN,
        ..ScanResult::default()
    };
    let mut off = HEADER_LEN;
    while off < limit {
        match record_at(file, pack, off, limit)? {
            Some(h) => {
                out.entries.push((
                    h.hash,
                    Location {
                        offset: off,
                        stored_len: h.stored_len,
                    },
                ));
                off += h.record_len();
                out.valid_end = off;
            }
            None => match next_record(file, pack, off + 1, limit)? {
                Some(next) => {
                    out.damaged.push((off, next));
                    off = next;
                }
                None => {
                    out.damaged_tail = true;
                    break;
                }
            },
        }
    }
    Ok(out)
}

/// A sealed pack's index, sorted by hash for binary search.
#[derive(Debug, Default)]
pub struct SealedIndex {
    entries: Vec<(ChunkHash, Location)>,
    /// Where the records end (the index offset).
    pub records_end: u64,
}

impl SealedIndex {
    /// Finds a chunk's record.
    pub fn find(&self, hash: &ChunkHash) -> Option<Location> {
        self.entries
            .binary_search_by(|(h, _)| h.cmp(hash))
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// Approximate memory use, for cache weighting.
    pub fn weight(&self) -> u32 {
        (self.entries.len() * 40 + 64).min(u32::MAX as usize) as u32
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in hash order.
    pub fn entries(&self) -> &[(ChunkHash, Location)] {
        &self.entries
    }
}

/// `fsck --repair`: rewrites the index and footer of pack `file` from a scan of its
/// records (its sealed index is damaged): cuts what follows the last valid record and
/// seals it again, synced. Returns how many records the new index holds.
///
/// Fails if the pack cannot be read, written or synced.
pub fn rebuild_seal(file: &std::fs::File, pack: PackId) -> Result<usize, PackError> {
    use std::os::unix::fs::FileExt;
    let len = file
        .metadata()
        .map_err(|e| PackError::io(pack, 0, e))?
        .len();
    let scan = scan_records(file, pack, len)?;
    let end = scan.valid_end;
    let seal = encode_seal(&scan.entries, end);
    file.set_len(end).map_err(|e| PackError::io(pack, end, e))?;
    FileExt::write_all_at(file, &seal, end).map_err(|e| PackError::io(pack, end, e))?;
    std::fs::File::sync_all(file).map_err(|e| PackError::io(pack, end, e))?;
    Ok(scan.entries.len())
}

/// Encodes the index and footer that seal a pack whose records end at `records_end`.
/// For duplicate hashes the last entry wins.
pub fn encode_seal(entries: &[(ChunkHash, Location)], records_end: u64) -> Vec<u8> {
    let sorted = index_from_scan(entries, records_end).entries;
    let mut index = Vec::with_capacity(sorted.len() * INDEX_ENTRY_LEN + FOOTER_LEN as usize);
    for (h, l) in &sorted {
        index.extend_from_slice(
            IndexEntryRaw {
                hash: h.0,
                offset: U64::new(l.offset),
                stored_len: U32::new(l.stored_len),
                reserved: U32::new(0),
            }
            .as_bytes(),
        );
    }
    let footer = FooterRaw {
        index_offset: U64::new(records_end),
        entry_count: U64::new(sorted.len() as u64),
        index_crc: U32::new(crc32c::crc32c(&index)),
        version: U32::new(FORMAT_VERSION),
        magic: *FOOTER_MAGIC,
    };
    index.extend_from_slice(footer.as_bytes());
    index
}

/// Where a well-formed footer says the index is: `[index_off, foff)` with `count`
/// entries whose CRC32C is `crc`.
struct Footer {
    index_off: u64,
    foff: u64,
    count: u64,
    crc: u32,
}

/// Reads and checks a pack's footer (magic, version, index bounds); `Ok(None)` when
/// there is none or it is damaged.
///
/// Fails only on an I/O error.
fn read_footer(
    file: &dyn PackFile,
    pack: PackId,
    file_len: u64,
) -> Result<Option<Footer>, PackError> {
    if file_len < HEADER_LEN + FOOTER_LEN {
        return Ok(None);
    }
    let foff = file_len - FOOTER_LEN;
    let mut fb = [0u8; FOOTER_LEN as usize];
    let got = read_at_most(file, &mut fb, foff).map_err(|e| PackError::io(pack, foff, e))?;
    let Ok(footer) = FooterRaw::read_from_bytes(&fb[..got]) else {
        return Ok(None);
    };
    if &footer.magic != FOOTER_MAGIC || footer.version.get() != FORMAT_VERSION {
        return Ok(None);
    }
    let index_off = footer.index_offset.get();
    let count = footer.entry_count.get();
    let expect_len = count.checked_mul(INDEX_ENTRY_LEN as u64);
    if index_off < HEADER_LEN || expect_len.and_then(|l| index_off.checked_add(l)) != Some(foff) {
        return Ok(None);
    }
    Ok(Some(Footer {
        index_off,
        foff,
        count,
        crc: footer.index_crc.get(),
    }))
}

/// Whether a pack was sealed: it ends in a well-formed footer. Only the footer is read,
/// so opening a store costs one small read per pack however large the indexes are; an
/// index damaged under a good footer is found, and rebuilt by scanning, when it is
/// first needed ([`read_sealed_index`] returns `None`).
///
/// Fails only on an I/O error.
pub fn is_sealed(file: &dyn PackFile, pack: PackId, file_len: u64) -> Result<bool, PackError> {
    Ok(read_footer(file, pack, file_len)?.is_some())
}

/// Reads the index of a sealed pack. Returns `Ok(None)` when the file has no valid footer
/// (not sealed, or the seal is damaged) or the index fails its CRC, so the caller can
/// fall back to scanning.
///
/// Fails only on an I/O error.
pub fn read_sealed_index(
    file: &dyn PackFile,
    pack: PackId,
    file_len: u64,
) -> Result<Option<SealedIndex>, PackError> {
    let Some(Footer {
        index_off,
        foff,
        count,
        crc,
    }) = read_footer(file, pack, file_len)?
    else {
        return Ok(None);
    };
    let mut ib = vec![0u8; (foff - index_off) as usize];
    let got =
        read_at_most(file, &mut ib, index_off).map_err(|e| PackError::io(pack, index_off, e))?;
    if got != ib.len() || crc32c::crc32c(&ib) != crc {
        return Ok(None);
    }
    let mut entries = Vec::with_capacity(count as usize);
    for chunk in ib.chunks_exact(INDEX_ENTRY_LEN) {
        let Ok(e) = IndexEntryRaw::read_from_bytes(chunk) else {
            return Ok(None);
        };
        entries.push((
            ChunkHash(e.hash),
            Location {
                offset: e.offset.get(),
                stored_len: e.stored_len.get(),
            },
        ));
    }
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return Ok(None);
    }
    Ok(Some(SealedIndex {
        entries,
        records_end: index_off,
    }))
}

/// Builds a sealed-index structure from scanned entries (for unsealed packs).
pub fn index_from_scan(entries: &[(ChunkHash, Location)], records_end: u64) -> SealedIndex {
    // Reversed then stable-sorted, so dedup keeps the last record of each hash.
    let mut sorted: Vec<(ChunkHash, Location)> = entries.iter().rev().copied().collect();
    sorted.sort_by_key(|e| e.0);
    sorted.dedup_by(|b, a| a.0 == b.0);
    SealedIndex {
        entries: sorted,
        records_end,
    }
}
