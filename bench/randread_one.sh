#!/usr/bin/env bash
# One VerFSNext daemon, no baseline: a 1 GiB fio file, `drop_caches`, then two 10 s
# runs of `fio --rw=randread --bs=4k --direct=1` (the first cold, the second with
# whatever the first left cached), optionally while a `dd conv=fsync` writer loops on
# the mount. For A/B runs of two builds in the same minutes (alternate them); the
# bindfs comparison is bench/fio.sh. Prints IOPS and latency percentiles per run, and
# how much of the packs the page cache holds after each.
#
#   bench/randread_one.sh BIN [busy]
set -u
BIN=$1
BUSY=${2:-}
W=$(mktemp -d /var/tmp/verfs-rr.XXXXXX)
mkdir -p "$W/m"
mkdir -m 0700 "$W/d"
"$BIN" mount --data-dir "$W/d" "$W/m" 2>"$W/log" &
P=$!
WP=""
cleanup() {
  [ -n "$WP" ] && kill "$WP" 2>/dev/null
  fusermount3 -uz "$W/m" 2>/dev/null
  kill "$P" 2>/dev/null
  wait "$P" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q " $W/m " /proc/mounts && break; sleep 0.1; done
timeout 300 fio --name=prep --directory="$W/m" --filename=fio.rand --rw=write --bs=1M \
  --size=1G --end_fsync=1 --output-format=json >/dev/null
sync
echo 3 >/proc/sys/vm/drop_caches
if [ -n "$BUSY" ]; then
  ( while :; do timeout 120 dd if=/dev/urandom of="$W/m/busy" bs=1M count=256 conv=fsync 2>/dev/null; done ) &
  WP=$!
fi
for r in 1 2; do
  timeout 300 fio --name=f --directory="$W/m" --filename=fio.rand --rw=randread --bs=4k \
    --size=1G --direct=1 --time_based --runtime=10 --output-format=json >"$W/o.json"
  python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))['jobs'][0]['read']; p = j['clat_ns']['percentile']
print('run', sys.argv[2], 'iops', round(j['iops']), *('p%s %d' % (k, p[v] // 1000) for k, v in
      (('50', '50.000000'), ('95', '95.000000'), ('99', '99.000000'), ('99.9', '99.900000'))))
" "$W/o.json" "$r"
  fincore -b "$W"/d/packs/* | awk '{s += $1} END {printf "  packs cached: %d MiB\n", s / 1048576}'
done
