#!/usr/bin/env bash
# Long run of the model-checked exerciser (crates/verfs/tests/model_ops.rs): every
# variant for OPS ops (default 100000), one after another, each under `timeout`.
# Prints the seed, the result and the elapsed time per variant; a failing variant's
# panic (seed, step, first differing offset, last ops, op log path) is printed too.
#
#   scripts/model-ops-long.sh [OPS]
#
# Environment: VERFS_MODEL_SEED (default: random, printed), MODEL_TIMEOUT (seconds per
# variant, default 7200), VARIANTS (space-separated test names), MODEL_LOG_DIR (default
# /tmp/verfs-model-long), CARGO_TARGET_DIR as usual. Needs root (FUSE mounts).
# Exit status: 0 if every variant passed, 1 otherwise.
set -u
cd "$(dirname "$0")/.."

OPS=${1:-${VERFS_MODEL_OPS:-100000}}
SEED=${VERFS_MODEL_SEED:-0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')}
TIMEOUT=${MODEL_TIMEOUT:-7200}
LOGS=${MODEL_LOG_DIR:-/tmp/verfs-model-long}
VARIANTS=${VARIANTS:-"small_file_small_ops large_file_large_ops aligned_4k o_direct \
fsync_after_every_write reopen_every_few_ops with_cpu_hogs commit_overlay_race \
remount_after_sigint remount_after_kill9"}

mkdir -p "$LOGS"
echo "model-ops-long: seed $SEED, $OPS ops per variant, logs in $LOGS"
timeout 3600 cargo test --release -p verfs --test model_ops --no-run || exit 1

failed=0
total_start=$(date +%s)
for v in $VARIANTS; do
    start=$(date +%s)
    VERFS_MODEL_SEED=$SEED VERFS_MODEL_OPS=$OPS timeout -k 30 "$TIMEOUT" \
        cargo test --release -p verfs --test model_ops -- --exact "$v" --nocapture \
        >"$LOGS/$v.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    if [ "$rc" -eq 0 ]; then
        result=PASS
    else
        result="FAIL (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))"
        failed=1
    fi
    printf '%-26s seed %s  %7s ops  %6ss  %s\n' "$v" "$SEED" "$OPS" "$secs" "$result"
    if [ "$rc" -ne 0 ]; then
        grep -A40 "panicked at" "$LOGS/$v.log" | grep -v '^ *[0-9]*: \|^ *at ' | head -45
    fi
done
echo "model-ops-long: done in $(($(date +%s) - total_start))s"
exit "$failed"
