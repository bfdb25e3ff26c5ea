//! Snapshots in the store: creating one freezes the live generation in one small
//! transaction (O(1): nothing is copied); deleting one removes its record at once and
//! leaves a sweep cursor, from which [`Store::sweep_step`] removes, one bounded
//! transaction at a time, every frozen version no remaining snapshot sees.

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

use super::keys::{self, Stored};
use super::records::{self, Extent, SnapshotRecord};
use super::versioned::{decode, seen_by_snapshot};
use super::{scan_raw, MetaError, Reader, Store, WriteTxn, SYS_LIVE_GEN};
use crate::types::{ChunkHash, Generation, Timestamp};

/// Name of the system value holding the next unused view slot.
const SYS_NEXT_SNAPSHOT_SLOT: &str = "next_snapshot_slot";
/// Name of the system value present while a sweep has work: the stored key it resumes
/// from (empty: from the start).
const SYS_SWEEP_CURSOR: &str = "sweep_cursor";

/// Why a snapshot command failed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// A snapshot of that name exists.
    #[error("a snapshot of that name exists")]
    Exists,
    /// No snapshot has that name.
    #[error("no snapshot of that name")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What one sweep transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepProgress {
    /// Frozen versions removed (no snapshot saw them).
    pub removed: u64,
    /// Stored keys examined.
    pub examined: u64,
    /// Whether the sweep reached the end (no work left).
    pub done: bool,
}

impl Store {
    /// Loads the generations of the existing snapshots into memory.
    pub(super) fn load_snapshot_gens(&self) -> Result<(), MetaError> {
        let mut gens: Vec<u64> = self
            .view()?
            .snapshots()?
            .iter()
            .map(|(_, r)| r.generation.0)
            .collect();
        gens.sort_unstable();
        *self
            .snapshot_gens
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(gens);
        Ok(())
    }

    fn set_snapshot_gens(&self, f: impl FnOnce(&mut Vec<u64>)) {
        let mut guard = self
            .snapshot_gens
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut gens = guard.as_ref().clone();
        f(&mut gens);
        gens.sort_unstable();
        *guard = Arc::new(gens);
    }

    /// Creates snapshot `name` of the live tree as every committed transaction left it:
    /// freezes the live generation and starts the next, in one transaction taken while
    /// no other write transaction is in flight.
    ///
    /// Fails with `Exists` if the name is taken, or if the store cannot commit.
    pub fn create_snapshot(
        &self,
        name: &[u8],
        created: Timestamp,
    ) -> Result<SnapshotRecord, SnapshotError> {
        self.exclusively(|| {
            let frozen = self.live_generation();
            let next = frozen.0 + 1;
            let (rec, ()) = self.commit_loop(
                |w| {
                    if w.raw_get(&keys::snapshot(name))?.is_some() {
                        return Err(SnapshotError::Exists);
                    }
                    let slot = match w.system(SYS_NEXT_SNAPSHOT_SLOT)? {
                        Some(v) => records::decode_u64(SYS_NEXT_SNAPSHOT_SLOT, &v)?,
                        None => 1,
                    };
                    let slot = u32::try_from(slot).map_err(|_| {
                        MetaError::corrupt(format!("{SYS_NEXT_SNAPSHOT_SLOT} {slot}"))
                    })?;
                    let rec = SnapshotRecord {
                        generation: frozen,
                        slot,
                        created,
                    };
                    w.set(&keys::snapshot(name), &rec.encode())?;
                    w.set_system(
                        SYS_NEXT_SNAPSHOT_SLOT,
                        &records::encode_u64(u64::from(slot) + 1),
                    )?;
                    w.set_system(SYS_LIVE_GEN, &records::encode_u64(next))?;
                    Ok(rec)
                },
                || (),
            )?;
            self.live_gen
                .store(next, std::sync::atomic::Ordering::SeqCst);
            self.set_snapshot_gens(|g| g.push(frozen.0));
            Ok(rec)
        })
    }

    /// Deletes snapshot `name` at once and (re)starts the sweep of the versions only it
    /// kept.
    ///
    /// Fails with `NotFound`, or if the store cannot commit.
    pub fn delete_snapshot(&self, name: &[u8]) -> Result<SnapshotRecord, SnapshotError> {
        self.exclusively(|| {
            let (rec, ()) = self.commit_loop(
                |w| {
                    let Some(v) = w.raw_get(&keys::snapshot(name))? else {
                        return Err(SnapshotError::NotFound);
                    };
                    let rec = SnapshotRecord::decode(&v)?;
                    w.del(&keys::snapshot(name))?;
                    w.set_system(SYS_SWEEP_CURSOR, &[])?;
                    Ok(rec)
                },
                || (),
            )?;
            self.set_snapshot_gens(|g| g.retain(|&x| x != rec.generation.0));
            Ok(rec)
        })
    }

    /// Whether a sweep has work left (after a delete, also across restarts).
    ///
    /// Fails if the store cannot be read.
    pub fn sweep_pending(&self) -> Result<bool, MetaError> {
        Ok(self.read_system(SYS_SWEEP_CURSOR)?.is_some())
    }

    /// One sweep transaction: examines up to `budget` stored versioned keys from the
    /// cursor, removes the frozen versions no snapshot sees (calling `drop_extent` in
    /// the same transaction for each removed extent, so chunk refcounts stay exact) and
    /// moves the cursor on. Writers wait for at most this one small transaction.
    ///
    /// Fails with `drop_extent`'s error or the store's; nothing of the step is kept then.
    pub fn sweep_step<E>(
        &self,
        budget: usize,
        mut drop_extent: impl FnMut(&mut WriteTxn, &Extent) -> Result<(), E>,
    ) -> Result<SweepProgress, E>
    where
        E: From<MetaError>,
    {
        self.write(|w| {
            let Some(cursor) = w.system(SYS_SWEEP_CURSOR)? else {
                return Ok(SweepProgress {
                    done: true,
                    ..SweepProgress::default()
                });
            };
            let start = if cursor.is_empty() {
                vec![keys::VERSIONED_FAMILIES[0]]
            } else {
                cursor
            };
            let batch = frozen_batch(w, &start, budget)?;
            let mut p = SweepProgress {
                examined: batch.examined,
                ..SweepProgress::default()
            };
            for (key, value) in batch.frozen {
                if remove_if_unseen(w, &key, &value, &mut drop_extent)? {
                    p.removed += 1;
                }
            }
            match (batch.finished, batch.last) {
                (false, Some(mut k)) => {
                    k.push(0);
                    w.set_system(SYS_SWEEP_CURSOR, &k)?;
                }
                _ => {
                    w.del(&keys::system(SYS_SWEEP_CURSOR))?;
                    p.done = true;
                }
            }
            Ok(p)
        })
    }
}

/// What one sweep step read.
struct Batch {
    /// The frozen stored versions: key and value.
    frozen: Vec<(Vec<u8>, Vec<u8>)>,
    /// The last stored key examined.
    last: Option<Vec<u8>>,
    /// Stored keys examined.
    examined: u64,
    /// Whether the scan reached the end of the versioned families.
    finished: bool,
}

/// Up to `budget` stored keys of the versioned families from `start`.
fn frozen_batch(w: &WriteTxn, start: &[u8], budget: usize) -> Result<Batch, MetaError> {
    let end = [keys::VERSIONED_FAMILIES[keys::VERSIONED_FAMILIES.len() - 1] + 1];
    let mut out = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut seen = 0usize;
    let mut finished = true;
    scan_raw(w.tx(), start, &end, |k, v| {
        if seen == budget {
            finished = false;
            return Ok(false);
        }
        seen += 1;
        last = Some(k.to_vec());
        let versioned = k
            .first()
            .is_some_and(|p| keys::VERSIONED_FAMILIES.contains(p));
        if versioned && matches!(keys::split_stored(k), Some((_, Stored::Frozen(_)))) {
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(true)
    })?;
    Ok(Batch {
        frozen: out,
        last,
        examined: seen as u64,
        finished,
    })
}

/// Removes frozen version `(key, value)` if no snapshot sees it any more.
fn remove_if_unseen<E>(
    w: &mut WriteTxn,
    key: &[u8],
    value: &[u8],
    drop_extent: &mut impl FnMut(&mut WriteTxn, &Extent) -> Result<(), E>,
) -> Result<bool, E>
where
    E: From<MetaError>,
{
    let Some((logical, Stored::Frozen(birth))) = keys::split_stored(key) else {
        return Ok(false);
    };
    let (death, payload) = decode(value)?;
    if seen_by_snapshot(w.snapshot_gens(), birth, death) {
        return Ok(false);
    }
    w.del(key)?;
    if let Some(offset) = keys::extent_offset(logical) {
        let e = Extent::decode(offset, payload)?;
        drop_extent(w, &e)?;
    }
    Ok(true)
}

impl Store {
    /// Plain bytes of the extents snapshot generation `gen` sees, and of the chunks
    /// only it references (every reference is from an extent version no other view
    /// sees): what deleting it would free. One pass over the extent versions.
    ///
    /// Fails if metadata cannot be read or a record does not decode.
    pub fn snapshot_space(&self, gen: Generation) -> Result<(u64, u64), MetaError> {
        let view = self.view()?;
        let snaps = self
            .snapshot_gens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let start = [keys::prefix::EXTENT];
        let end = [keys::prefix::EXTENT + 1];
        let mut referenced = 0u64;
        let mut only_here: HashMap<ChunkHash, u64> = HashMap::new();
        scan_raw(view.tx(), &start, &end, |k, v| {
            let Some((logical, slot)) = keys::split_stored(k) else {
                return Err(MetaError::corrupt(format!("extent key {k:02x?}")));
            };
            let (g, payload) = decode(v)?;
            let (birth, death) = match slot {
                Stored::Live => (g, None),
                Stored::Frozen(b) => (b, Some(g)),
            };
            let seen_here = birth <= gen && death.is_none_or(|d| gen < d);
            if !seen_here {
                return Ok(true);
            }
            let offset = keys::extent_offset(logical)
                .ok_or_else(|| MetaError::corrupt(format!("extent key {k:02x?}")))?;
            let e = Extent::decode(offset, payload)?;
            referenced += u64::from(e.len);
            let others = death.is_none() // the live tree sees it
                || snaps
                    .iter()
                    .any(|&s| s != gen.0 && birth.0 <= s && death.is_none_or(|d| s < d.0));
            if !others {
                *only_here.entry(e.hash).or_default() += 1;
            }
            Ok(true)
        })?;
        let mut unique = 0u64;
        for (hash, n) in only_here {
            if let Some(c) = view.chunk(&hash)? {
                if c.refcount == n {
                    unique += u64::from(c.plain_len);
                }
            }
        }
        Ok((referenced, unique))
    }
}
