//! The versioned record layer (DESIGN.md §4): copy-on-write at record level, layout 2.
//!
//! A logical key has at most one *live* version, stored under `logical ++ 0x00*8`, and
//! any number of *frozen* versions kept for snapshots, stored under
//! `logical ++ (u64::MAX - birth)`, so the live version sorts first and frozen ones
//! follow newest first. A stored value is `[2] ++ gen:u64 ++ payload`, where `gen` is
//! the live version's birth generation or a frozen version's death generation (the
//! first generation that no longer sees it): a frozen version is visible to views in
//! `[birth, death)`, the live one to views from its birth on and to the live view.
//!
//! The live view reads one point lookup per key however many snapshots exist; a
//! snapshot view reads the live key and, when that was born after it, one short range
//! scan. Without snapshots every logical key has exactly one version and no tombstone
//! exists (a deletion is recorded by the death generation of the frozen version).

use surrealkv::Transaction;

use super::keys::{self, Stored};
use super::{scan_raw, MetaError};
use crate::types::Generation;

/// Tag byte of a layout-2 stored value.
const TAG: u8 = 2;
/// Bytes before the payload: tag and generation.
const HEADER_LEN: usize = 9;

/// Which versions a reader sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewAt {
    /// The live tree: the live version of each key.
    Live,
    /// A frozen generation (a snapshot).
    Frozen(Generation),
}

/// Encodes a stored value: `gen` is a birth (live key) or a death (frozen key).
pub(crate) fn encode(gen: Generation, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.push(TAG);
    v.extend_from_slice(&gen.0.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Splits a stored value into its generation and payload.
///
/// Fails with `Corrupt` on a short value or an unknown tag (an older layout included).
pub(crate) fn decode(stored: &[u8]) -> Result<(Generation, &[u8]), MetaError> {
    if stored.len() < HEADER_LEN || stored[0] != TAG {
        return Err(MetaError::corrupt(format!(
            "versioned value tag {:?} length {} (layout 2 expected)",
            stored.first(),
            stored.len()
        )));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&stored[1..HEADER_LEN]);
    Ok((Generation(u64::from_be_bytes(b)), &stored[HEADER_LEN..]))
}

/// The live version of `logical`: its birth generation and payload.
pub(crate) fn get_live(
    tx: &Transaction,
    logical: &[u8],
) -> Result<Option<(Generation, Vec<u8>)>, MetaError> {
    let Some(stored) = tx
        .get(keys::live(logical))
        .map_err(|e| MetaError::kv("get", e))?
    else {
        return Ok(None);
    };
    let (birth, payload) = decode(&stored)?;
    Ok(Some((birth, payload.to_vec())))
}

/// The payload of `logical` visible at `at`, if any.
pub(crate) fn get_visible(
    tx: &Transaction,
    logical: &[u8],
    at: ViewAt,
) -> Result<Option<Vec<u8>>, MetaError> {
    let live = get_live(tx, logical)?;
    let g = match at {
        ViewAt::Live => return Ok(live.map(|(_, p)| p)),
        ViewAt::Frozen(g) => g,
    };
    if let Some((birth, payload)) = live {
        if birth <= g {
            return Ok(Some(payload));
        }
    }
    frozen_visible(tx, logical, g)
}

/// The frozen version of `logical` visible at `g`: the newest born at or before `g`,
/// if it was still alive at `g`.
fn frozen_visible(
    tx: &Transaction,
    logical: &[u8],
    g: Generation,
) -> Result<Option<Vec<u8>>, MetaError> {
    let start = keys::frozen(logical, g);
    let end = keys::prefix_end(logical)
        .ok_or_else(|| MetaError::corrupt("unbounded logical key".into()))?;
    let mut found = None;
    scan_raw(tx, &start, &end, |k, v| {
        if let Some((lk, Stored::Frozen(_))) = keys::split_stored(k) {
            if lk == logical {
                let (death, payload) = decode(v)?;
                if death > g {
                    found = Some(payload.to_vec());
                }
            }
        }
        Ok(false)
    })?;
    Ok(found)
}

/// Whether version `(key, value)` is the one a view at `at` sees of its logical key;
/// versions of one logical key come newest first, so the first that is seen decides.
fn seen_at(slot: Stored, stored_gen: Generation, at: ViewAt) -> bool {
    match (slot, at) {
        (Stored::Live, ViewAt::Live) => true,
        (Stored::Frozen(_), ViewAt::Live) => false,
        (Stored::Live, ViewAt::Frozen(g)) => stored_gen <= g,
        (Stored::Frozen(birth), ViewAt::Frozen(g)) => birth <= g && g < stored_gen,
    }
}

/// Visits, in key order, the visible payload of every logical key under `prefix` whose
/// stored keys are at or after `start`, until `visit` returns `false`.
pub(crate) fn scan_visible(
    tx: &Transaction,
    prefix: &[u8],
    start: &[u8],
    at: ViewAt,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, MetaError>,
) -> Result<(), MetaError> {
    let end = keys::prefix_end(prefix)
        .ok_or_else(|| MetaError::corrupt("unbounded logical key".into()))?;
    let mut decided: Vec<u8> = Vec::new();
    let mut have_decided = false;
    scan_raw(tx, start, &end, |k, v| {
        let Some((lk, slot)) = keys::split_stored(k) else {
            return Err(MetaError::corrupt(format!("short versioned key {k:02x?}")));
        };
        if have_decided && lk == decided.as_slice() {
            return Ok(true);
        }
        let (gen, payload) = decode(v)?;
        if !seen_at(slot, gen, at) {
            return Ok(true);
        }
        decided.clear();
        decided.extend_from_slice(lk);
        have_decided = true;
        visit(lk, payload)
    })
}

/// Whether any snapshot generation in `snapshots` (sorted) lies in `[birth, death)`:
/// whether a version with that lifetime is still seen by some snapshot.
pub(crate) fn seen_by_snapshot(snapshots: &[u64], birth: Generation, death: Generation) -> bool {
    let i = snapshots.partition_point(|&s| s < birth.0);
    snapshots.get(i).is_some_and(|&s| s < death.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_older_layouts_are_rejected() {
        let v = encode(Generation(7), b"abc");
        assert_eq!(decode(&v).unwrap(), (Generation(7), &b"abc"[..]));
        assert!(decode(&[1, b'x']).is_err(), "layout 1 live value");
        assert!(decode(&[0]).is_err(), "layout 1 tombstone");
        assert!(decode(&v[..8]).is_err(), "short");
    }

    #[test]
    fn snapshot_ranges_are_half_open() {
        let s = [3, 5, 9];
        assert!(seen_by_snapshot(&s, Generation(3), Generation(4)));
        assert!(!seen_by_snapshot(&s, Generation(4), Generation(5)));
        assert!(seen_by_snapshot(&s, Generation(1), Generation(10)));
        assert!(!seen_by_snapshot(&s, Generation(10), Generation(11)));
        assert!(!seen_by_snapshot(&[], Generation(1), Generation(2)));
    }

    #[test]
    fn visibility_follows_lifetimes() {
        let g = Generation;
        assert!(seen_at(Stored::Live, g(4), ViewAt::Live));
        assert!(!seen_at(Stored::Frozen(g(1)), g(4), ViewAt::Live));
        assert!(seen_at(Stored::Live, g(4), ViewAt::Frozen(g(4))));
        assert!(!seen_at(Stored::Live, g(4), ViewAt::Frozen(g(3))));
        assert!(seen_at(Stored::Frozen(g(1)), g(4), ViewAt::Frozen(g(3))));
        assert!(!seen_at(Stored::Frozen(g(1)), g(4), ViewAt::Frozen(g(4))));
        assert!(!seen_at(Stored::Frozen(g(2)), g(4), ViewAt::Frozen(g(1))));
    }
}
