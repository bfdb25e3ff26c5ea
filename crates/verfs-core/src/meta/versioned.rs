//! The versioned record layer (DESIGN.md §4): copy-on-write at record level.
//!
//! A logical key has one stored key per version, `logical ++ (u64::MAX - birth)`, newest
//! first. A stored value is `[1] ++ payload` or `[0]` for a tombstone. A view at generation
//! `g` sees, per logical key, the newest version born at or before `g`, unless it is a
//! tombstone. With no snapshots every logical key has exactly one version.

use surrealkv::Transaction;

use super::keys::{self, GEN_SUFFIX_LEN};
use super::{scan_raw, MetaError};
use crate::types::Generation;

const LIVE: u8 = 1;
const TOMBSTONE: u8 = 0;

/// Wraps a payload as a live stored value.
pub(crate) fn live_value(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(LIVE);
    v.extend_from_slice(payload);
    v
}

/// The stored value of a tombstone.
pub(crate) fn tombstone_value() -> Vec<u8> {
    vec![TOMBSTONE]
}

/// The payload of a stored value, or `None` for a tombstone.
///
/// Fails with `Corrupt` on an empty value or unknown tag.
pub(crate) fn payload(stored: &[u8]) -> Result<Option<&[u8]>, MetaError> {
    match stored.first() {
        Some(&LIVE) => Ok(Some(&stored[1..])),
        Some(&TOMBSTONE) if stored.len() == 1 => Ok(None),
        _ => Err(MetaError::corrupt(format!(
            "versioned value tag {:?} length {}",
            stored.first(),
            stored.len()
        ))),
    }
}

/// The end of `logical`'s version range (exclusive).
fn versions_end(logical: &[u8]) -> Result<Vec<u8>, MetaError> {
    keys::prefix_end(logical).ok_or_else(|| MetaError::corrupt("unbounded logical key".into()))
}

/// One stored version of a logical key.
pub(crate) struct Version {
    /// The stored key (logical ++ suffix).
    pub key: Vec<u8>,
    /// The stored value (tagged).
    pub stored: Vec<u8>,
}

/// The version of `logical` born exactly at `gen`, by point lookup.
///
/// Point lookups stay fast on keys rewritten many times (a directory's inode on every
/// create), where a range scan would step over every superseded internal version.
pub(crate) fn born_at(
    tx: &Transaction,
    logical: &[u8],
    gen: Generation,
) -> Result<Option<Version>, MetaError> {
    let key = keys::versioned(logical, gen);
    let stored = tx.get(&key).map_err(|e| MetaError::kv("get", e))?;
    Ok(stored.map(|stored| Version { key, stored }))
}

/// The first generation live writes are born at; nothing is ever stored at 0.
const FIRST_GENERATION: u64 = 1;
/// Up to this many older generations are probed one point lookup each; more are
/// searched with one range scan.
const MAX_POINT_PROBES: u64 = 8;

/// The newest version of `logical` born strictly before `gen` (tombstones included).
///
/// Most calls are misses (a name looked up before it is created, an xattr a file does
/// not have) and SurrealKV answers a missing point lookup from its bloom filters, while
/// setting up a range scan cost a fifth of a small-file workload's CPU. So the few
/// generations of a filesystem with few snapshots are probed one by one.
pub(crate) fn newest_before(
    tx: &Transaction,
    logical: &[u8],
    gen: Generation,
) -> Result<Option<Version>, MetaError> {
    let older = gen.0.saturating_sub(FIRST_GENERATION);
    if older <= MAX_POINT_PROBES {
        for g in (FIRST_GENERATION..gen.0).rev() {
            if let Some(v) = born_at(tx, logical, Generation(g))? {
                return Ok(Some(v));
            }
        }
        return Ok(None);
    }
    let start = keys::versioned(logical, Generation(gen.0 - 1));
    let end = versions_end(logical)?;
    let mut found = None;
    scan_raw(tx, &start, &end, |k, v| {
        if let Some((lk, _)) = keys::split_versioned(k) {
            if lk == logical {
                found = Some(Version {
                    key: k.to_vec(),
                    stored: v.to_vec(),
                });
            }
        }
        Ok(false)
    })?;
    Ok(found)
}

/// The newest version of `logical` visible at `at` (tombstones included), if any.
pub(crate) fn newest_visible(
    tx: &Transaction,
    logical: &[u8],
    at: Generation,
) -> Result<Option<Version>, MetaError> {
    match born_at(tx, logical, at)? {
        Some(v) => Ok(Some(v)),
        None => newest_before(tx, logical, at),
    }
}

/// Visits, in key order, the visible payload of every logical key under `prefix` whose
/// stored keys are at or after `start`, until `visit` returns `false`.
pub(crate) fn scan_visible(
    tx: &Transaction,
    prefix: &[u8],
    start: &[u8],
    at: Generation,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, MetaError>,
) -> Result<(), MetaError> {
    let end = versions_end(prefix)?;
    let mut decided: Vec<u8> = Vec::new();
    let mut have_decided = false;
    scan_raw(tx, start, &end, |k, v| {
        if k.len() < GEN_SUFFIX_LEN + 1 {
            return Err(MetaError::corrupt(format!("short versioned key {k:02x?}")));
        }
        let Some((lk, birth)) = keys::split_versioned(k) else {
            return Ok(true);
        };
        if have_decided && lk == decided.as_slice() {
            return Ok(true);
        }
        if birth > at {
            return Ok(true);
        }
        decided.clear();
        decided.extend_from_slice(lk);
        have_decided = true;
        match payload(v)? {
            Some(p) => visit(lk, p),
            None => Ok(true),
        }
    })
}
