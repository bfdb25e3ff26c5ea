//! Reading records back: whole records, or a raw payload straight into a caller's
//! buffer.

use crate::data::packio::PackFile;

use bytes::Bytes;

use super::*;

/// A record read back and CRC-checked: header, nonce (if encrypted) and payload.
#[derive(Debug)]
pub struct RecordData {
    /// The header.
    pub header: RecordHeader,
    /// The nonce of an encrypted record.
    pub nonce: Option<[u8; NONCE_LEN]>,
    /// The stored payload: a slice of the buffer the record was read into, no copy.
    pub payload: Bytes,
}

/// Reads the record at `loc` and verifies magic, hash and CRC.
///
/// Fails with `Corrupt` when a check fails, `Io` when the read fails.
pub fn read_record(
    file: &dyn PackFile,
    pack: PackId,
    loc: Location,
    expect: &ChunkHash,
) -> Result<RecordData, PackError> {
    let total = RECORD_HEADER_LEN + NONCE_LEN + loc.stored_len as usize;
    let mut buf =
        read_fresh(file, total, loc.offset).map_err(|e| PackError::io(pack, loc.offset, e))?;
    let got = buf.len();
    if got < RECORD_HEADER_LEN {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    let header = decode_record_header(pack, loc.offset, &buf[..RECORD_HEADER_LEN])?;
    if &header.hash != expect {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record hash differs from index",
        ));
    }
    let need = header.record_len() as usize;
    if got < need || header.stored_len != loc.stored_len {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    let (nonce, payload) = verify(pack, loc.offset, header, &buf[..need])?;
    buf.truncate(need);
    Ok(RecordData {
        header,
        nonce,
        payload: Bytes::from(buf).slice(payload),
    })
}

/// Reads the payload of the raw, unencrypted record at `loc` straight onto the end of
/// `out` and verifies magic, hash, codec and CRC: the sequential read path stores no
/// copy of the chunk and makes none (the header goes to a small buffer with the same
/// `preadv`). Returns `Ok(false)`, with nothing appended, when the record turns out to
/// be compressed or encrypted; the caller then reads it with [`read_record`].
///
/// Fails with `Corrupt` when a check fails, `Io` when the read fails; `out` keeps its
/// length on failure.
pub fn read_raw_payload_into(
    file: &dyn PackFile,
    pack: PackId,
    loc: Location,
    expect: &ChunkHash,
    out: &mut Vec<u8>,
) -> Result<bool, PackError> {
    let len = loc.stored_len as usize;
    let mut head = [0u8; RECORD_HEADER_LEN];
    out.reserve(len);
    let got = file
        .read_split_at(&mut head, &mut out.spare_capacity_mut()[..len], loc.offset)
        .map_err(|e| PackError::io(pack, loc.offset, e))?;
    if got < RECORD_HEADER_LEN + len {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    let header = decode_record_header(pack, loc.offset, &head)?;
    if &header.hash != expect {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record hash differs from index",
        ));
    }
    if header.codec != Codec::Raw || header.flags & FLAG_ENCRYPTED != 0 {
        return Ok(false);
    }
    if header.stored_len != loc.stored_len || header.plain_len != loc.stored_len {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record length differs",
        ));
    }
    // SAFETY: read_split_at filled the first `len` spare bytes (checked above).
    let payload = unsafe { std::slice::from_raw_parts(out.as_ptr().add(out.len()), len) };
    if record_crc(&header.raw(), &[], payload) != header.crc {
        return Err(PackError::corrupt(pack, loc.offset, "record CRC mismatch"));
    }
    // SAFETY: the `len` bytes after the current length are initialised (see above).
    unsafe { out.set_len(out.len() + len) };
    Ok(true)
}

/// Reads the payload of the encrypted record at `loc` straight onto the end of `out`
/// (header and nonce to a small buffer with the same `preadv`) and verifies magic,
/// hash, lengths and CRC, so the caller can decrypt it in place: the vault's read path
/// makes no copy of the ciphertext. Returns the header and nonce, or `Ok(None)`, with
/// nothing appended, when the record turns out not to be encrypted.
///
/// Fails with `Corrupt` when a check fails, `Io` when the read fails; `out` keeps its
/// length on failure.
pub fn read_sealed_payload_into(
    file: &dyn PackFile,
    pack: PackId,
    loc: Location,
    expect: &ChunkHash,
    out: &mut Vec<u8>,
) -> Result<Option<(RecordHeader, [u8; NONCE_LEN])>, PackError> {
    let len = loc.stored_len as usize;
    let mut head = [0u8; RECORD_HEADER_LEN + NONCE_LEN];
    out.reserve(len);
    let got = file
        .read_split_at(&mut head, &mut out.spare_capacity_mut()[..len], loc.offset)
        .map_err(|e| PackError::io(pack, loc.offset, e))?;
    let header = decode_record_header(pack, loc.offset, &head[..RECORD_HEADER_LEN])?;
    if &header.hash != expect {
        return Err(PackError::corrupt(
            pack,
            loc.offset,
            "record hash differs from index",
        ));
    }
    if header.flags & FLAG_ENCRYPTED == 0 {
        return Ok(None);
    }
    if got < head.len() + len || header.stored_len != loc.stored_len {
        return Err(PackError::corrupt(pack, loc.offset, "record truncated"));
    }
    // SAFETY: read_split_at filled the first `len` spare bytes (checked above).
    let payload = unsafe { std::slice::from_raw_parts(out.as_ptr().add(out.len()), len) };
    let nonce_bytes = &head[RECORD_HEADER_LEN..];
    if record_crc(&header.raw(), nonce_bytes, payload) != header.crc {
        return Err(PackError::corrupt(pack, loc.offset, "record CRC mismatch"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(nonce_bytes);
    // SAFETY: the `len` bytes after the current length are initialised (see above).
    unsafe { out.set_len(out.len() + len) };
    Ok(Some((header, nonce)))
}

/// Checks a whole record's CRC; returns its nonce and the range of its payload.
pub(super) fn verify(
    pack: PackId,
    offset: u64,
    header: RecordHeader,
    rec: &[u8],
) -> Result<(Option<[u8; NONCE_LEN]>, std::ops::Range<usize>), PackError> {
    let nonce_len = if header.flags & FLAG_ENCRYPTED != 0 {
        NONCE_LEN
    } else {
        0
    };
    let nonce_bytes = &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + nonce_len];
    let payload = &rec[RECORD_HEADER_LEN + nonce_len..];
    let raw = header.raw();
    if record_crc(&raw, nonce_bytes, payload) != header.crc {
        return Err(PackError::corrupt(pack, offset, "record CRC mismatch"));
    }
    let nonce = if nonce_len > 0 {
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce_bytes);
        Some(n)
    } else {
        None
    };
    Ok((nonce, RECORD_HEADER_LEN + nonce_len..rec.len()))
}

/// Reads up to `len` bytes at `offset` into a new buffer without zero-filling it first
/// (zeroing showed up as a tenth of the sequential-read profile). Short at end of file.
fn read_fresh(file: &dyn PackFile, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let n = file.read_split_at(&mut [], &mut buf.spare_capacity_mut()[..len], offset)?;
    // SAFETY: read_split_at initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(n) };
    Ok(buf)
}

/// Reads as many bytes as the file has at `offset`, up to `buf.len()`.
pub(super) fn read_at_most(
    file: &dyn PackFile,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
