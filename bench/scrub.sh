#!/usr/bin/env bash
# Foreground throughput while `verfsnext scrub` runs (the scrub row of the faults
# issue): MiB/s of reading back a $READ_MIB MiB file of random data (its pack pages
# dropped from the page cache with POSIX_FADV_DONTNEED before each read; the daemon's
# 64 MiB chunk cache holds only its tail) and of writing $READ_MIB MiB with `cp` +
# `sync -f`, alternating idle rounds and rounds during a scrub of $SCRUB_MIB MiB of other data, at
# each scrub_rate_mb_per_s in $RATES (0: no limit). Prints one line per round and the
# medians with the during/idle ratio. Needs root, fuse3, python3 and bc; does not build:
# set VERFS_BIN to a binary, else target/release/verfsnext.
#
#   [VERFS_BIN=BIN] [SCRUB_MIB=1024] [READ_MIB=512] [ROUNDS=3] [RATES="50 0"]
#   bench/scrub.sh [WORKDIR]
set -euo pipefail
B=$(realpath -m "${VERFS_BIN:-target/release/verfsnext}")
W=${1:-$(mktemp -d /var/tmp/verfs-scrubbench.XXXXXX)}
mkdir -p "$W" && W=$(cd "$W" && pwd)
SCRUB_MIB=${SCRUB_MIB:-1024} READ_MIB=${READ_MIB:-512} ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"50 0"}
head -c "${READ_MIB}M" /dev/urandom > "$W/src"

drop() {
    python3 - "$W/data/packs" <<'PY'
import os, sys
d = sys.argv[1]
for n in os.listdir(d):
    fd = os.open(os.path.join(d, n), os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
}
now() { date +%s.%N; }
rate() { echo "scale=1; $READ_MIB / ($2 - $1)" | bc; }
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for R in $RATES; do
    rm -rf "$W/data" "$W/mnt" && mkdir -p "$W/data" "$W/mnt" && chmod 700 "$W/data"
    printf 'gc_idle_min_ms = 0\nscrub_rate_mb_per_s = %s\n' "$R" > "$W/config.toml"
    (cd "$W" && exec "$B" mount --data-dir "$W/data" "$W/mnt" >> "$W/daemon.log" 2>&1) &
    for _ in $(seq 100); do grep -q " $W/mnt " /proc/mounts && break; sleep 0.1; done
    for i in $(seq 0 $((SCRUB_MIB / 256 - 1))); do head -c 256M /dev/urandom > "$W/mnt/s$i"; done
    cp "$W/src" "$W/mnt/r0" && sync -f "$W/mnt"
    declare -A rd=() wr=()
    for k in $(seq "$ROUNDS"); do
        for mode in idle scrub; do
            if [ $mode = scrub ]; then
                (cd "$W" && "$B" scrub --restart --no-wait --data-dir "$W/data" > /dev/null 2>&1)
                sleep 0.5
            fi
            drop; t0=$(now); cat "$W/mnt/r0" > /dev/null; t1=$(now)
            t2=$(now); cp "$W/src" "$W/mnt/w$k$mode"; sync -f "$W/mnt"; t3=$(now)
            rm "$W/mnt/w$k$mode"
            running=$(cd "$W" && "$B" scrub status --json --data-dir "$W/data" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["running"])')
            (cd "$W" && "$B" scrub cancel --data-dir "$W/data" > /dev/null 2>&1)
            rd[$mode]+="$(rate "$t0" "$t1") "; wr[$mode]+="$(rate "$t2" "$t3") "
            echo "rate=$R round=$k $mode: read $(rate "$t0" "$t1") MiB/s, write $(rate "$t2" "$t3") MiB/s (scrub still running at the end: $running)"
        done
    done
    for what in read write; do
        if [ $what = read ]; then i=$(echo "${rd[idle]}" | median); s=$(echo "${rd[scrub]}" | median)
        else i=$(echo "${wr[idle]}" | median); s=$(echo "${wr[scrub]}" | median); fi
        echo "rate=$R median $what: idle $i MiB/s, during scrub $s MiB/s, ratio $(echo "scale=2; $s / $i" | bc)"
    done
    unset rd wr
    fusermount3 -u "$W/mnt"; wait
done
rm -rf "$W/data" "$W/src"
