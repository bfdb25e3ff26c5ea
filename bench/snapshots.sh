#!/usr/bin/env bash
# Measures snapshots on a live VerFSNext mount, in one run, and prints one row per
# measurement: the value, the baseline measured in the same run where there is one, the
# ratio value/baseline and the goal.
#   1. `snapshot create` (the CLI call) with 10,000 and with 100,000 small files in the
#      tree, median and max of 5 (next to it the CLI's floor: `snapshot list`);
#   2. creates every 200 ms while a python writer copies 1 GiB into the mount in 1 MiB
#      os.write() calls: create latency, and the longest write() overlapping a create
#      against the longest write() of the same writer without snapshots (two alternating
#      rounds, each copy of fresh random data so nothing is deduplicated);
#   3. os.stat of 10,000 live files after a remount (cold kernel and daemon caches), with
#      0 snapshots and with 50 (5 files appended to between snapshots), median of 3;
#   4. the sweep after deleting a snapshot of 100,000 files that were all removed from the
#      live tree: from `snapshot delete` until `stats` shows `sweep_pending` false;
#   5. `snapshot diff` at 100,000 files with 1% (1,000 files) appended to, against the
#      live tree and between two snapshots, median of 3, with the line counts.
# Needs root, fuse3 and python3; does not build: set VERFSNEXT to a binary, else it uses
# target/release/verfsnext. Took 4 minutes on the 2-core VM; the work dir (kept) needs
# ~9 GiB: 4 GiB of random sources and the copies' packs.
#
#   [VERFSNEXT=BIN] bench/snapshots.sh [WORKDIR]   (default: a fresh dir under /var/tmp)
set -euo pipefail
shopt -s inherit_errexit
W=${1:-$(mktemp -d /var/tmp/verfs-snapbench.XXXXXX)}
mkdir -p "$W" && W=$(cd "$W" && pwd)  # absolute: /proc/mounts names the mount so
if [ -n "${VERFSNEXT:-}" ]; then VERFSNEXT=$(realpath -m "$VERFSNEXT"); fi
cd "$(dirname "$0")/.."
BIN=${VERFSNEXT:-$PWD/target/release/verfsnext}
[ -x "$BIN" ] || { echo "no binary at $BIN (build it, or set VERFSNEXT)" >&2; exit 1; }
MNT=$W/mnt
N1=10000 N2=100000 COPY_MIB=1024  # files in the small and the large tree, MiB per copy
mkdir -p "$MNT" "$W/src" "$W/py"
mkdir -p -m 0700 "$W/data" "$W/sdata"  # the daemon refuses a data dir others can read
DATA=""
VPID=""
WP=""
cleanup() {
  [ -n "$WP" ] && kill "$WP" 2>/dev/null || true
  fusermount3 -uz "$MNT" 2>/dev/null || true
  [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null || true
}
trap cleanup EXIT

# One daemon at a time, always on $MNT; DATA is the data dir the CLI talks to.
mount_fs() {
  DATA=$1
  "$BIN" mount --data-dir "$DATA" "$MNT" 2>>"$W/verfs.log" &
  VPID=$!
  for _ in $(seq 300); do
    grep -q " $MNT " /proc/mounts && return 0
    kill -0 "$VPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "mount of $DATA failed (see $W/verfs.log)" >&2
  return 1
}
umount_fs() {
  kill -INT "$VPID"
  for _ in $(seq 600); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$VPID" 2>/dev/null && { echo "daemon $VPID did not exit in 60 s" >&2; return 1; }
  wait "$VPID" || true
  VPID=""
}
cli() { timeout 120 "$BIN" "$@" --data-dir "$DATA" 2>/dev/null; }
# Writes in the kernel's cache reach the daemon, then a moment for its batches.
settle() { timeout 300 sync -f "$MNT"; sleep 2; }
stat_field() { cli stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
sweep_done() { cli stats --json | grep -q '"sweep_pending": *false'; }
wait_sweep() {
  for _ in $(seq 6000); do sweep_done && return 0; sleep 0.1; done
  echo "sweep still pending after 10 minutes" >&2
  return 1
}
now_us() { echo "${EPOCHREALTIME/./}"; }
# Runs the command, prints its wall time in microseconds.
t_us() { local s e; s=$(now_us); "$@" >/dev/null; e=$(now_us); echo $((e - s)); }
ms() { awk -v u="$1" 'BEGIN{printf "%.1f", u/1000}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
mean() { printf '%s\n' "$@" | awk '{t+=$1} END{printf "%.2f", t/NR}'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
# row LABEL VALUE BASELINE GOAL: BASELINE "-" for none.
row() {
  local r=-
  [ "$3" != - ] && r=$(awk -v a="$2" -v b="$3" 'BEGIN{print (b>0)?sprintf("%.2f",a/b):"-"}')
  printf '%-56s %9s %9s %6s  %s\n' "$1" "$2" "$3" "$r" "$4"
}
info() { echo "  $*"; }
# Load average and the three busiest processes over one second (top's second frame).
load() {
  echo "$(cut -d' ' -f1-3 /proc/loadavg); busiest: $(top -bn2 -d1 | awk '/^top -/{n++} n==2 && $1 ~ /^[0-9]+$/' \
    | head -3 | awk '{printf "%s (nice %s) %s%%; ", $12, $4, $9}')"
}

cat >"$W/py/mkfiles.py" <<'EOF'
# mkfiles.py ROOT A B: files ROOT/dNNN/fIIIIII for i in [A, B), spread over 100 dirs,
# 100-4096 random bytes each; prints the seconds.
import os, random, sys, time
root, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(a)
t = time.perf_counter()
for d in range(100):
    os.makedirs(f"{root}/d{d:03d}", exist_ok=True)
for i in range(a, b):
    fd = os.open(f"{root}/d{i % 100:03d}/f{i:06d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, os.urandom(rnd.randint(100, 4096)))
    os.close(fd)
print(f"{time.perf_counter() - t:.2f}")
EOF
cat >"$W/py/append.py" <<'EOF'
# append.py ROOT I...: appends a line to each file number I of mkfiles.py's tree.
import sys
for i in map(int, sys.argv[2:]):
    with open(f"{sys.argv[1]}/d{i % 100:03d}/f{i:06d}", "ab") as f:
        f.write(b"changed\n")
EOF
cat >"$W/py/statall.py" <<'EOF'
# statall.py ROOT N: os.stat of files 0..N-1 of mkfiles.py's tree (by name, no
# readdir); prints the seconds.
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
paths = [f"{root}/d{i % 100:03d}/f{i:06d}" for i in range(n)]
t = time.perf_counter()
for p in paths:
    os.stat(p)
print(f"{time.perf_counter() - t:.3f}")
EOF
cat >"$W/py/writer.py" <<'EOF'
# writer.py SRC DST LOG: copies SRC to DST in 1 MiB os.write() calls, then fsyncs; LOG
# gets "start end" (wall clock, end after the fsync) and then one "t0 t1" per write().
import os, sys, time
src, dst, log = sys.argv[1:4]
fi = os.open(src, os.O_RDONLY)
fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
recs = []
start = time.time()
while True:
    buf = memoryview(os.read(fi, 1 << 20))
    if not buf:
        break
    t0 = time.time()
    off = 0
    while off < len(buf):
        off += os.write(fo, buf[off:])
    recs.append((t0, time.time()))
os.fsync(fo)
end = time.time()
os.close(fo)
with open(log, "w") as f:
    f.write(f"{start:.6f} {end:.6f}\n")
    f.writelines(f"{a:.6f} {b:.6f}\n" for a, b in recs)
EOF
cat >"$W/py/stalls.py" <<'EOF'
# stalls.py WRITELOG [CREATES]: prints "copy_s longest_write_ms longest_write_during_a_create_ms"
# (the last 0 without CREATES, a file of "t0 t1" per create).
import sys
lines = open(sys.argv[1]).read().split("\n")
start, end = map(float, lines[0].split())
writes = [tuple(map(float, l.split())) for l in lines[1:] if l]
creates = []
if len(sys.argv) > 2:
    creates = [tuple(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
longest = max(b - a for a, b in writes)
during = [b - a for a, b in writes if any(a < c1 and b > c0 for c0, c1 in creates)]
print(f"{end - start:.2f} {longest * 1000:.1f} {max(during, default=0) * 1000:.1f}")
EOF

T0=$(now_us)
echo "machine: $(nproc) cores, $(uname -r); binary: $BIN ($("$BIN" --version))"
echo "load before: $(load)"
printf '%-56s %9s %9s %6s  %s\n' "measurement" value baseline ratio goal

# --- 1. snapshot create at 10k and 100k files ------------------------------------------
mount_fs "$W/data"
secs=$(timeout 600 python3 "$W/py/mkfiles.py" "$MNT/tree" 0 "$N1")
info "created $N1 files in $secs s"
settle
# Each create next to a `snapshot list`, the CLI's floor (process start, config, socket).
floor=(); c10=()
for i in 1 2 3 4 5; do
  floor+=("$(t_us cli snapshot list)"); c10+=("$(t_us cli snapshot create "c10k-$i")"); sleep 0.2
done
for i in 1 2 3 4 5; do cli snapshot delete "c10k-$i" >/dev/null; done
wait_sweep
secs=$(timeout 900 python3 "$W/py/mkfiles.py" "$MNT/tree" "$N1" "$N2")
info "created $((N2 - N1)) more files in $secs s"
settle
c100=()
for i in 1 2 3 4 5; do
  floor+=("$(t_us cli snapshot list)"); c100+=("$(t_us cli snapshot create "c100k-$i")"); sleep 0.2
done
for i in 1 2 3 4 5; do cli snapshot delete "c100k-$i" >/dev/null; done
wait_sweep
info "create ms, 10k files: $(for u in "${c10[@]}"; do ms "$u"; echo -n ' '; done)/ 100k files: $(for u in "${c100[@]}"; do ms "$u"; echo -n ' '; done)"
info "snapshot list ms before each (10k, then 100k): $(for u in "${floor[@]}"; do ms "$u"; echo -n ' '; done)"
row "CLI floor: snapshot list, median of 10 (ms)" "$(ms "$(median "${floor[@]}")")" - ""
row "snapshot create, 10k files, median of 5 (ms)" "$(ms "$(median "${c10[@]}")")" - "<= 50 ms"
row "snapshot create, 10k files, max of 5 (ms)" "$(ms "$(maxof "${c10[@]}")")" - "<= 50 ms"
row "snapshot create, 100k files, median of 5 (ms; base 10k)" "$(ms "$(median "${c100[@]}")")" "$(ms "$(median "${c10[@]}")")" "<= 50 ms, flat"
row "snapshot create, 100k files, max of 5 (ms; base 10k)" "$(ms "$(maxof "${c100[@]}")")" "$(ms "$(maxof "${c10[@]}")")" "<= 50 ms, flat"

# --- 2. creates every 200 ms during a 1 GiB copy ---------------------------------------
# Four GiB of fresh random data on the native disk (each copy new, so none dedups),
# read once so the writer reads it from the page cache.
for r in 1 2 3 4; do head -c $((COPY_MIB * 1024 * 1024)) /dev/urandom >"$W/src/r$r.bin"; done
cat "$W"/src/r*.bin >/dev/null
base_copy=(); base_long=(); snap_copy=(); snap_long=(); snap_during=(); during_c=()
: >"$W/creates-all.txt"
for round in 1 2; do
  timeout 600 python3 "$W/py/writer.py" "$W/src/r$((2 * round - 1)).bin" "$MNT/base$round" "$W/w-base$round.log"
  x=$(python3 "$W/py/stalls.py" "$W/w-base$round.log"); read -r c l _ <<<"$x"
  base_copy+=("$c"); base_long+=("$l")
  settle
  : >"$W/creates$round.txt"
  timeout 600 python3 "$W/py/writer.py" "$W/src/r$((2 * round)).bin" "$MNT/snap$round" "$W/w-snap$round.log" &
  WP=$!
  n=0
  while kill -0 "$WP" 2>/dev/null; do
    n=$((n + 1))
    s=$EPOCHREALTIME; cli snapshot create "cp$round-$n" >/dev/null; e=$EPOCHREALTIME
    echo "$s $e" >>"$W/creates$round.txt"
    sleep 0.2
  done
  wait "$WP"
  WP=""
  x=$(python3 "$W/py/stalls.py" "$W/w-snap$round.log" "$W/creates$round.txt"); read -r c l d <<<"$x"
  snap_copy+=("$c"); snap_long+=("$l"); snap_during+=("$d")
  cat "$W/creates$round.txt" >>"$W/creates-all.txt"
  info "round $round: copy without snapshots ${base_copy[-1]} s, longest write() ${base_long[-1]} ms;" \
    "with $n creates ${snap_copy[-1]} s, longest write() ${snap_long[-1]} ms, longest during a create ${snap_during[-1]} ms"
  settle
done
mapfile -t during_c < <(awk '{printf "%d\n", ($2 - $1) * 1e6}' "$W/creates-all.txt")
info "create ms during the copies (in order): $(for u in "${during_c[@]}"; do ms "$u"; echo -n ' '; done)"
row "create during a 1 GiB copy, median (ms; base quiet 100k)" "$(ms "$(median "${during_c[@]}")")" "$(ms "$(median "${c100[@]}")")" "<= 50 ms"
row "create during a 1 GiB copy, max (ms; base quiet 100k)" "$(ms "$(maxof "${during_c[@]}")")" "$(ms "$(maxof "${c100[@]}")")" "<= 50 ms"
row "longest write() during a create (ms; base: no snapshots)" "$(maxof "${snap_during[@]}")" "$(maxof "${base_long[@]}")" "<= 100 ms"
row "longest write() of the copy with creates (ms; base: none)" "$(maxof "${snap_long[@]}")" "$(maxof "${base_long[@]}")" ""
row "1 GiB copy + fsync with creates, mean of 2 (s; base: none)" "$(mean "${snap_copy[@]}")" "$(mean "${base_copy[@]}")" ""
timeout 600 rm -f "$MNT"/base* "$MNT"/snap*
for f in "$W"/creates[12].txt; do
  r=${f##*creates}; r=${r%.txt}
  for i in $(seq "$(wc -l <"$f")"); do cli snapshot delete "cp$r-$i" >/dev/null; done
done
wait_sweep

# --- 5. diff at 100k files, 1% changed --------------------------------------------------
cli snapshot create d0 >/dev/null
# 1% of the files (1,000) spread over all 100 dirs: file k*100 + k%100 for k < N2/100.
timeout 300 python3 "$W/py/append.py" "$MNT/tree" $(seq 0 $((N2 / 100 - 1)) | awk '{print $1 * 100 + $1 % 100}')
settle
cli snapshot create d1 >/dev/null
dl=(); dd_=()
for _ in 1 2 3; do
  dl+=("$(t_us sh -c "timeout 600 '$BIN' snapshot diff --data-dir '$DATA' d0 >'$W/diff-live.txt' 2>/dev/null")")
  dd_+=("$(t_us sh -c "timeout 600 '$BIN' snapshot diff --data-dir '$DATA' d0 d1 >'$W/diff-snap.txt' 2>/dev/null")")
done
kinds() { cut -f1 "$1" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}'; }
info "diff d0 live: $(wc -l <"$W/diff-live.txt") lines ($(kinds "$W/diff-live.txt")expected M $((N2 / 100))), ms $(for u in "${dl[@]}"; do ms "$u"; echo -n ' '; done)"
info "diff d0 d1:   $(wc -l <"$W/diff-snap.txt") lines ($(kinds "$W/diff-snap.txt")expected M $((N2 / 100))), ms $(for u in "${dd_[@]}"; do ms "$u"; echo -n ' '; done)"
row "diff 100k files, 1% changed, snapshot vs live (ms)" "$(ms "$(median "${dl[@]}")")" - "$(wc -l <"$W/diff-live.txt") lines"
row "diff 100k files, 1% changed, snapshot vs snapshot (ms)" "$(ms "$(median "${dd_[@]}")")" - "$(wc -l <"$W/diff-snap.txt") lines"
cli snapshot delete d0 >/dev/null
cli snapshot delete d1 >/dev/null
wait_sweep

# --- 4. sweep after deleting a snapshot of 100k removed files --------------------------
cli snapshot create sw >/dev/null
us=$(t_us timeout 900 rm -rf "$MNT/tree")
info "rm -rf of the $N2 files: $(ms "$us") ms"
settle
sv0=$(stat_field swept_versions)
s=$(now_us)
cli snapshot delete sw >/dev/null
wait_sweep
e=$(now_us)
info "swept versions: $(($(stat_field swept_versions) - sv0)); chunks $(stat_field chunk_count), unreferenced $(stat_field unreferenced_chunks)"
row "sweep after deleting a snapshot of 100k files (s)" "$(awk -v u=$((e - s)) 'BEGIN{printf "%.2f", u/1e6}')" - "(polled every 100 ms)"
umount_fs

# --- 3. stat of 10k live files, 0 and 50 snapshots (own data dir) -----------------------
PASSES=()
stat_passes() {  # three passes, each on a fresh mount: the seconds of each in PASSES
  PASSES=()
  umount_fs
  for _ in 1 2 3; do
    mount_fs "$W/sdata"
    PASSES+=("$(timeout 600 python3 "$W/py/statall.py" "$MNT/tree" "$N1")")
    umount_fs
  done
  mount_fs "$W/sdata"
}
mount_fs "$W/sdata"
timeout 600 python3 "$W/py/mkfiles.py" "$MNT/tree" 0 "$N1" >/dev/null
settle
stat_passes; st0=("${PASSES[@]}")
for j in $(seq 0 49); do
  timeout 60 python3 "$W/py/append.py" "$MNT/tree" $(seq $((j * 5)) $((j * 5 + 4)) | awk -v n="$N1" '{print $1 * 37 % n}')
  cli snapshot create "s$j" >/dev/null
done
settle
stat_passes; st50=("${PASSES[@]}")
info "snapshots: $(stat_field snapshot_count); stat s, 0 snapshots: ${st0[*]} / 50 snapshots: ${st50[*]}"
row "stat 10k live files after remount, 0 snapshots (s)" "$(median "${st0[@]}")" - ""
row "stat 10k live files after remount, 50 snapshots (s)" "$(median "${st50[@]}")" "$(median "${st0[@]}")" "ratio <= 1.5"
umount_fs

echo "load after: $(load)"
echo "total: $(awk -v u=$(($(now_us) - T0)) 'BEGIN{printf "%.0f", u/1e6}') s; work dir $W"
