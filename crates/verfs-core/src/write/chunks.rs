//! Turning new file bytes into extents: hash, dedup, compress in parallel, append, and
//! keep chunk refcounts exact (refcounts count extent versions).

use bytes::Bytes;

use rayon::prelude::*;

use crate::data::Domain;
use crate::engine::{ChunkPlace, Engine};
use crate::error::{FsError, FsResult};
use crate::meta::{ChunkRecord, Extent, Reader, WriteTxn, CHUNK_FLAG_ENCRYPTED, CHUNK_FLAG_LOST};
use crate::types::{ChunkHash, Ino};

use super::memo::is_zero;
pub(crate) use super::memo::Memo;

/// New contents for whole chunks of one file: `(offset, bytes)` in offset order.
pub(crate) type ChunkSpans = Vec<(u64, Bytes)>;

/// Chunk spans with their ids: `(offset, id, bytes)`, the id `None` for all zeros.
pub(crate) type HashedSpans = Vec<(u64, Option<ChunkHash>, Bytes)>;

/// Writes `spans` as the file's extents at those offsets: all-zero spans become holes,
/// the rest are hashed, deduplicated, compressed in parallel and appended to the pack.
///
/// Returns the change in the file's stored bytes.
///
/// Fails if a pack append or a metadata access fails.
pub(crate) fn put_spans(
    engine: &Engine,
    txn: &mut WriteTxn,
    (ino, domain): (Ino, &Domain),
    spans: ChunkSpans,
    memo: &mut Memo,
) -> FsResult<i64> {
    let hasher = engine.packs.hasher();
    let hash = |(off, bytes): (u64, Bytes)| {
        let h = (!is_zero(&bytes)).then(|| domain.chunk_id(hasher, &bytes));
        (off, h, bytes)
    };
    // A span or two (a cut or zeroed edge) is hashed here: handing it to the pool
    // costs more than hashing it.
    let hashed: HashedSpans = if spans.len() <= 2 {
        spans.into_iter().map(hash).collect()
    } else {
        spans.into_par_iter().map(hash).collect()
    };
    put_hashed(engine, txn, (ino, domain), hashed, memo)
}

/// [`put_spans`] for spans already hashed (the batcher hashes a chunk when it cuts it).
///
/// Fails if a pack append or a metadata access fails.
pub(crate) fn put_hashed(
    engine: &Engine,
    txn: &mut WriteTxn,
    (ino, domain): (Ino, &Domain),
    hashed: HashedSpans,
    memo: &mut Memo,
) -> FsResult<i64> {
    store_missing(engine, txn, &hashed, memo, domain)?;
    let mut delta = 0i64;
    for (off, hash, bytes) in hashed {
        match hash {
            None => delta -= remove_extent(txn, ino, off)? as i64,
            Some(hash) => {
                if !add_ref(txn, &hash, memo, Some(engine.packs.drop_epoch()))? {
                    // The dedup cache knew the chunk, but its record is gone (GC deleted
                    // it, its pack record is to be dropped), or this batch appended it
                    // before GC last dropped records: store the bytes again. The new
                    // append is made under the generation fence this transaction
                    // holds, so GC cannot drop it before the transaction commits.
                    engine.forget_chunk(&hash);
                    store_chunks(engine, vec![(hash, bytes.clone())], memo, domain)?;
                    if !add_ref(txn, &hash, memo, None)? {
                        return Err(FsError::Corrupt(format!(
                            "chunk {hash} stored but not placed"
                        )));
                    }
                }
                let e = Extent {
                    offset: off,
                    hash,
                    len: bytes.len() as u32,
                };
                let change = txn.put_extent(ino, &e)?;
                if let Some(old) = change.dropped {
                    drop_ref(txn, &old.hash)?;
                }
                delta += i64::from(e.len) - change.previous_len as i64;
                if !domain.is_sealed() {
                    engine.cache_chunk(hash, bytes);
                }
            }
        }
    }
    Ok(delta)
}

/// Removes the extent at `off`, dropping its chunk reference if its version is gone;
/// returns the stored bytes the file no longer holds there.
///
/// Fails if metadata cannot be read or written.
pub(crate) fn remove_extent(txn: &mut WriteTxn, ino: Ino, off: u64) -> FsResult<u64> {
    let change = txn.delete_extent(ino, off)?;
    if let Some(old) = change.dropped {
        drop_ref(txn, &old.hash)?;
    }
    Ok(change.previous_len)
}

/// Applies a change in stored bytes to an inode's count.
pub(crate) fn add_blocks(inode: &mut crate::meta::Inode, delta: i64) {
    inode.blocks = inode.blocks.saturating_add_signed(delta);
}

/// Stores every chunk of `hashed` that is not known to be stored: not in the memo, not
/// in the engine's known-chunk cache, and not (intact) in metadata.
fn store_missing(
    engine: &Engine,
    txn: &WriteTxn,
    hashed: &[(u64, Option<ChunkHash>, Bytes)],
    memo: &mut Memo,
    domain: &Domain,
) -> FsResult<()> {
    let mut todo: Vec<(ChunkHash, Bytes)> = Vec::new();
    let mut queued = std::collections::HashSet::new();
    for (_, hash, bytes) in hashed {
        let Some(hash) = hash else { continue };
        if memo.placed(hash).is_some() || !queued.insert(*hash) {
            engine.stats.dedup_hit();
            continue;
        }
        if engine.known_chunk(hash).is_some() {
            engine.stats.dedup_hit();
            continue;
        }
        match txn.chunk(hash)? {
            Some(c) if c.flags & CHUNK_FLAG_LOST == 0 => {
                engine.stats.dedup_hit();
                engine.remember_chunk(*hash, place_of(&c));
            }
            _ => {
                engine.stats.dedup_miss();
                todo.push((*hash, bytes.clone()));
            }
        }
    }
    store_chunks(engine, todo, memo, domain)
}

/// Compresses and appends `todo` to the pack store, placing each in the memo.
///
/// Fails if an append fails.
fn store_chunks(
    engine: &Engine,
    todo: Vec<(ChunkHash, Bytes)>,
    memo: &mut Memo,
    domain: &Domain,
) -> FsResult<()> {
    let mut appended = Ok(());
    memo.compress_all(
        todo,
        engine.zstd_level,
        domain,
        |memo, hash, plain_len, encoded| {
            if appended.is_err() {
                return;
            }
            let stored = match encoded {
                Ok(s) => s,
                Err(e) => {
                    appended = Err(FsError::Io(format!("chunk {hash}: {e}")));
                    return;
                }
            };
            // Read before the append: a bump between the two only makes the placement
            // look older than it is (a needless re-store), never younger.
            let epoch = engine.packs.drop_epoch();
            match engine.packs.append(hash, plain_len, &stored) {
                Ok(pack_id) => {
                    let place = ChunkPlace {
                        pack_id,
                        stored_len: stored.bytes.len() as u32,
                        plain_len,
                        codec: stored.codec.to_byte(),
                        flags: if stored.nonce.is_some() {
                            CHUNK_FLAG_ENCRYPTED
                        } else {
                            0
                        },
                    };
                    memo.place(hash, place, epoch);
                    // The chunk is in the pack whether or not this transaction commits, so
                    // later batches may skip storing it; whether a reference may be taken
                    // is still decided by the chunk record inside their transaction.
                    engine.remember_chunk(hash, place);
                }
                Err(e) => appended = Err(FsError::from(e)),
            }
        },
    );
    appended
}

fn place_of(c: &ChunkRecord) -> ChunkPlace {
    ChunkPlace {
        pack_id: c.pack_id,
        stored_len: c.stored_len,
        plain_len: c.plain_len,
        codec: c.codec,
        flags: c.flags & CHUNK_FLAG_ENCRYPTED,
    }
}

/// Adds one extent-version reference to `hash`, creating or repairing its record from
/// the chunk this batch stored (the memo). A dedup hit is decided here, inside the
/// transaction that takes the reference: the known-chunk cache only lets a batch skip
/// storing, never brings back a record GC deleted (its pack record may be dropped).
/// A record is created from the memo only for an append made under drop epoch `epoch`
/// (`None`: any append of this batch, for one just made under the caller's fence).
/// Returns `false`, taking nothing, when the record is missing or lost and this batch
/// did not store the chunk (usably): the caller stores it and asks again.
///
/// Fails if metadata cannot be read or written.
fn add_ref(
    txn: &mut WriteTxn,
    hash: &ChunkHash,
    memo: &Memo,
    epoch: Option<u64>,
) -> FsResult<bool> {
    let prev = txn.chunk(hash)?;
    let intact = prev.is_some_and(|c| c.flags & CHUNK_FLAG_LOST == 0);
    let fresh = match (intact, epoch) {
        (true, _) => None,
        (false, Some(e)) => memo.placed_at(hash, e),
        (false, None) => memo.placed(hash),
    };
    let next = match (prev, fresh) {
        (Some(c), _) if c.flags & CHUNK_FLAG_LOST == 0 => ChunkRecord {
            refcount: c.refcount + 1,
            ..c
        },
        (prev, Some(s)) => ChunkRecord {
            refcount: prev.map_or(0, |c| c.refcount) + 1,
            pack_id: s.pack_id,
            stored_len: s.stored_len,
            plain_len: s.plain_len,
            codec: s.codec,
            flags: s.flags,
        },
        (_, None) => return Ok(false),
    };
    txn.put_chunk(hash, &next, prev.as_ref())?;
    Ok(true)
}

/// Adds a reference to a chunk that already has a record (a cloned extent).
///
/// Fails with `Corrupt` if the chunk has no record.
pub(crate) fn add_ref_shared(txn: &mut WriteTxn, hash: &ChunkHash) -> FsResult<()> {
    if add_ref(txn, hash, &Memo::new(), None)? {
        Ok(())
    } else {
        Err(FsError::Corrupt(format!(
            "cloned extent names chunk {hash} without a record"
        )))
    }
}

/// Drops one extent-version reference to `hash`; at zero the `Z` index marks it for GC.
pub(crate) fn drop_ref(txn: &mut WriteTxn, hash: &ChunkHash) -> FsResult<()> {
    let Some(prev) = txn.chunk(hash)? else {
        tracing::warn!(%hash, "dropping a reference to a chunk with no record");
        return Ok(());
    };
    let next = ChunkRecord {
        refcount: prev.refcount.saturating_sub(1),
        ..prev
    };
    txn.put_chunk(hash, &next, Some(&prev))?;
    Ok(())
}
