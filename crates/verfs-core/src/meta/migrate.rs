//! In-place upgrade of metadata layout 1 to layout 2.
//!
//! Layout 1 stored every version under `logical ++ (u64::MAX - birth)` with value
//! `[1] ++ payload` or `[0]` (tombstone). It was written before snapshots could be
//! created, so each logical key has one version, whose birth becomes the birth of the
//! live version of layout 2. The upgrade runs in bounded transactions, one group of
//! logical keys each, and is idempotent: a key already under the live suffix is layout 2,
//! so an upgrade cut short by a crash goes on where it stopped.

use super::keys::{self, Stored};
use super::versioned::encode;
use super::{scan_raw, MetaError, Reader, Store, WriteTxn};

/// Stored keys read per upgrade transaction (a logical key's versions are never split).
const BATCH: usize = 4096;

/// Rewrites every layout-1 version as a layout-2 live version; returns how many.
///
/// Fails on an undecodable layout-1 value or a store error; what was upgraded so far
/// stays upgraded and the rest is still layout 1.
pub(super) fn layout1_to_2(store: &Store) -> Result<u64, MetaError> {
    let mut total = 0;
    for family in keys::VERSIONED_FAMILIES {
        let end = [family + 1];
        let mut start = vec![family];
        loop {
            let (n, next) = store.write(|w| upgrade_batch(w, &start, &end))?;
            total += n;
            match next {
                Some(k) => start = k,
                None => break,
            }
        }
    }
    Ok(total)
}

/// Upgrades up to [`BATCH`] stored keys in `[start, end)`; returns how many versions
/// became live versions and where to go on (`None`: the range is done).
fn upgrade_batch(
    w: &mut WriteTxn,
    start: &[u8],
    end: &[u8],
) -> Result<(u64, Option<Vec<u8>>), MetaError> {
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut next = None;
    scan_raw(w.tx(), start, end, |k, v| {
        if rows.len() >= BATCH {
            let same = keys::split_stored(k).map(|(l, _)| l)
                == rows
                    .last()
                    .and_then(|(lk, _)| keys::split_stored(lk).map(|(l, _)| l));
            if !same {
                next = Some(k.to_vec());
                return Ok(false);
            }
        }
        rows.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })?;
    let mut upgraded = 0;
    let mut decided: Option<Vec<u8>> = None;
    for (key, value) in rows {
        let Some((logical, Stored::Frozen(birth))) = keys::split_stored(&key) else {
            continue;
        };
        w.del(&key)?;
        // The newest version of a logical key decides; older ones (there are none in
        // layout-1 stores, which never had snapshots) are dropped.
        if decided.as_deref() == Some(logical) {
            continue;
        }
        decided = Some(logical.to_vec());
        match value.split_first() {
            Some((1, payload)) => {
                w.set(&keys::live(logical), &encode(birth, payload))?;
                upgraded += 1;
            }
            Some((0, [])) => {}
            _ => {
                return Err(MetaError::corrupt(format!(
                    "layout-1 value tag {:?} length {} under {key:02x?}",
                    value.first(),
                    value.len()
                )))
            }
        }
    }
    Ok((upgraded, next))
}
