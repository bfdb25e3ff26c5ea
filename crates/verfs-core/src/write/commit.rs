//! Committing a batch's groups: one metadata transaction for all of them (or one per
//! group when that fails), with the overlay settled under the commit gate of the files
//! they change, so readers never pair a commit with the overlay from before it.

use super::apply::{apply_group, Applied, InodeOps, Tails};
use super::chunks::Memo;
use super::intent::IntentState;
use super::tails::HeldTail;
use crate::engine::{Engine, PendingOp};
use crate::error::{FsError, FsResult};
use crate::meta::WriteTxn;
use crate::types::Ino;

/// After commit: removes the batch's ops from the overlay and records new held tails
/// in place of the last op of their group (keeping overlay order).
fn settle_overlay(
    engine: &Engine,
    groups: &[InodeOps],
    results: &[FsResult<Applied>],
    tails: &mut Tails,
) {
    let mut done: Vec<(Ino, u64)> = Vec::new();
    let mut keep: Vec<(Ino, u64, PendingOp)> = Vec::new();
    for (g, res) in groups.iter().zip(results) {
        let ops = g.ops.iter().map(|op| (g.ino, op.seq()));
        match res {
            Ok(a) => {
                if let Some(old) = tails.remove(&g.ino) {
                    done.push((g.ino, old.seq));
                }
                done.extend(ops);
                if let (Some(h), Some(last)) = (&a.held, g.ops.last()) {
                    let op = PendingOp::Held {
                        offset: h.offset,
                        data: h.data.clone(),
                    };
                    keep.push((g.ino, last.seq(), op));
                    tails.insert(
                        g.ino,
                        HeldTail {
                            seq: last.seq(),
                            held: h.clone(),
                        },
                    );
                }
            }
            Err(FsError::NotFound) => {
                if let Some(old) = tails.remove(&g.ino) {
                    done.push((g.ino, old.seq));
                }
                done.extend(ops);
            }
            // Any other failure keeps the held tail (and its overlay entry) for a retry.
            Err(_) => done.extend(ops),
        }
    }
    engine.pending.committed(&done, keep);
}

/// Commits every group in one transaction, or — if that fails — each group alone, and
/// settles the overlay of each commit before readers may see the commit (see
/// `Engine::commit_gate`): a reader never pairs the committed size, which stops at a
/// held tail, with an overlay that does not show that tail yet.
pub(super) fn commit_groups(
    engine: &Engine,
    groups: &[InodeOps],
    tails: &mut Tails,
    memo: &mut Memo,
    intent: &IntentState,
) -> Vec<FsResult<Applied>> {
    if groups.is_empty() {
        return Vec::new();
    }
    let inos: Vec<Ino> = groups.iter().map(|g| g.ino).collect();
    let all = engine.meta.write_fenced(
        |txn| {
            let mut out = Vec::with_capacity(groups.len());
            for g in groups {
                untrack_logged(txn, g, intent);
                out.push(apply_group(engine, txn, g, tails.get(&g.ino), memo)?);
            }
            Ok::<_, FsError>(out)
        },
        || engine.commit_gate(&inos),
    );
    let (results, gate) = match all {
        Ok((v, gate)) => (v.into_iter().map(Ok).collect(), Some(gate)),
        Err(e) if groups.len() == 1 => (vec![Err(e)], None),
        Err(_) => {
            let mut results = Vec::with_capacity(groups.len());
            for g in groups {
                results.push(commit_alone(engine, g, tails, memo, intent));
            }
            return results;
        }
    };
    settle_overlay(engine, groups, &results, tails);
    drop(gate);
    results
}

/// Commits one group in its own transaction and settles its overlay.
fn commit_alone(
    engine: &Engine,
    g: &InodeOps,
    tails: &mut Tails,
    memo: &mut Memo,
    intent: &IntentState,
) -> FsResult<Applied> {
    let res = engine.meta.write_fenced(
        |txn| {
            untrack_logged(txn, g, intent);
            apply_group(engine, txn, g, tails.get(&g.ino), memo)
        },
        || engine.commit_gate(&[g.ino]),
    );
    let (res, gate) = match res {
        Ok((a, gate)) => (Ok(a), Some(gate)),
        Err(e) => (Err(e), None),
    };
    let results = [res];
    settle_overlay(engine, std::slice::from_ref(g), &results, tails);
    drop(gate);
    let [res] = results;
    res
}

/// Keeps a logged file's data commit out of the unsynced-inode set: the intent log
/// carries it, so the file's next fsync may still take the fast path.
fn untrack_logged(txn: &mut WriteTxn, g: &InodeOps, intent: &IntentState) {
    if intent.is_logged(g.ino) && g.logged_whole() {
        txn.untrack(g.ino);
    }
}
