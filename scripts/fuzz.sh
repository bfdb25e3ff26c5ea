#!/usr/bin/env bash
# Bounded fuzzing of every decoder of on-disk bytes (run by .ci/run): each decoder of
# the fuzz tests (meta/fuzz.rs, data/fuzz.rs, vault/tests/fuzz.rs) is hammered for SECS
# seconds (default 10, at most 60) from a fresh random seed, with random bytes and
# damaged copies of valid encodings and of the real files in
# crates/verfs-core/fuzz-corpus/. A panic fails the run; the seed of every decoder is
# printed, and VERFS_FUZZ_SEED=N VERFS_FUZZ_SECS=S replays one.
#
#   scripts/fuzz.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 60 ]; then
    echo "fuzz.sh: SECS must be 1..60, got $secs" >&2
    exit 2
fi
start=$(date +%s)
VERFS_FUZZ_SECS=$secs cargo test --release -p verfs-core --lib fuzz -- --test-threads=2
echo "fuzz.sh: every decoder ran ${secs}s; $(($(date +%s) - start))s in all"
