#!/usr/bin/env bash
# Measures garbage collection on a live VerFSNext mount (the benchmark rows of the GC
# issue), with a bindfs mount of the same disk as the baseline, in one run:
#   1. p50/p99 latency of 4 KiB random reads (fio randread, bs=4k, direct=1, psync,
#      $FIO_SECS s) of a $READ_MIB MiB file of random data: (a) idle, (b) while a
#      sequential writer loops into another file of the same mount, on VerFSNext and on
#      bindfs; (c) on VerFSNext while `gc run` rewrites the packs holding that very file
#      (it was written interleaved with a file of the same size, deleted just before);
#      the (c) percentiles are taken over the reads that completed while GC ran. Each
#      VerFSNext read run starts on a fresh mount (empty chunk cache) and every run after
#      `drop_caches`.
#   2. `dd bs=1M conv=fsync` of $WRITE_MIB MiB of pre-generated random data, alone and
#      started 0.2 s after a `gc run` that rewrites packs to reclaim ~$GC_MIB MiB, in
#      $WRITE_ROUNDS rounds (alternating which goes first); MiB/s, medians and ratios, and
#      how much of the dd the GC overlapped.
#   3. GC seconds per GiB reclaimed (`gc run --wait --json`): whole packs dead (the
#      writer's data of 1b, removal only) and packs half dead (two files written
#      interleaved, one deleted: rewrites), on an otherwise idle mount; plus the runs of
#      1c (under reads) and 2 (under dd).
#   4. (THRESHOLDS non-empty) the rewrite threshold: for each
#      gc_pack_rewrite_min_reclaim_percent, a fresh data dir with three groups of files
#      written concurrently (7, 3 and 2 files of $THR_FILE_MIB MiB), one file of each
#      group deleted (packs ~14%, ~33% and ~50% dead), one GC: what it wrote, freed, took
#      and the pack bytes left.
# Data is random (fio with refill_buffers and randrepeat=0, so nothing dedups). GC runs
# only when asked (gc_idle_min_ms = 0). Needs root, fuse3, bindfs, fio and python3;
# does not build: set VERFS_BIN to a binary, else target/release/verfsnext. The work dir
# (default a fresh one under /var/tmp, on disk) keeps logs and JSON; its data is removed
# at the end unless KEEP=1. Peak disk use at the defaults: ~20 GiB.
#
#   [VERFS_BIN=BIN] [READ_MIB=1024] [FIO_SECS=20] [GC_MIB=1024] [WRITE_MIB=1024]
#   [WRITE_ROUNDS=3] [WRITER_MIB=1024] [THRESHOLDS="10 20 40"] [THR_FILE_MIB=128] [KEEP=0]
#   bench/gc.sh [WORKDIR]
# Quick check of the script itself (~2 minutes): READ_MIB=128 FIO_SECS=4 GC_MIB=128
# WRITE_MIB=128 WRITER_MIB=64 THR_FILE_MIB=16 bench/gc.sh
set -euo pipefail
shopt -s inherit_errexit
W=${1:-$(mktemp -d /var/tmp/verfs-gcbench.XXXXXX)}
mkdir -p "$W" && W=$(cd "$W" && pwd)  # absolute: mountpoint and /proc/mounts need it
if [ -n "${VERFS_BIN:-}" ]; then VERFS_BIN=$(realpath -m "$VERFS_BIN"); fi
cd "$(dirname "$0")/.."
BIN=${VERFS_BIN:-$PWD/target/release/verfsnext}
[ -x "$BIN" ] || { echo "no binary at $BIN (build it, or set VERFS_BIN)" >&2; exit 1; }
READ_MIB=${READ_MIB:-1024}      # the file read by fio; must exceed chunk_cache_mb (64)
FIO_SECS=${FIO_SECS:-20}        # each read run
GC_MIB=${GC_MIB:-1024}          # each file of the interleaved pairs of rows 2 and 3
WRITE_MIB=${WRITE_MIB:-1024}    # each dd of row 2
WRITER_MIB=${WRITER_MIB:-1024}  # one pass of the looping writer of 1b
WRITE_ROUNDS=${WRITE_ROUNDS:-3} # rounds of row 2
THRESHOLDS=${THRESHOLDS-10 20 40}
THR_FILE_MIB=${THR_FILE_MIB:-128}
KEEP=${KEEP:-0}
MNT=$W/vmnt BSRC=$W/bsrc BMNT=$W/bmnt OUT=$W/out
mkdir -p "$MNT" "$BSRC" "$BMNT" "$W/src" "$OUT" "$W/py"
mkdir -p -m 0700 "$W/data"  # the daemon refuses a data dir others can read
case $(stat -f -c %T "$W") in tmpfs | ramfs) echo "warning: $W is on $(stat -f -c %T "$W"), not a disk" >&2 ;; esac
CONF=$W/config.toml
printf 'gc_idle_min_ms = 0\n' >"$CONF"  # GC only when asked, never in the middle of a row
DATA=""
VPID=""
LOADPID=""
WRITERPID=""
cleanup() {
  [ -n "$WRITERPID" ] && touch "$W/stop-writer" && kill "$WRITERPID" 2>/dev/null || true
  [ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null || true
  timeout 30 fusermount3 -uz "$MNT" 2>/dev/null || true
  timeout 30 fusermount3 -uz "$BMNT" 2>/dev/null || true
  [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null || true
}
trap cleanup EXIT

# One daemon at a time, always on $MNT; DATA/CONF are what the CLI talks to.
mount_fs() {
  DATA=$1
  CONF=${2:-$CONF}
  "$BIN" mount --config "$CONF" --data-dir "$DATA" "$MNT" 2>>"$W/verfs.log" &
  VPID=$!
  for _ in $(seq 300); do
    mountpoint -q "$MNT" && return 0
    kill -0 "$VPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "mount of $DATA failed (see $W/verfs.log)" >&2
  return 1
}
umount_fs() {
  kill -INT "$VPID"
  for _ in $(seq 1200); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$VPID" 2>/dev/null && { echo "daemon $VPID did not exit in 120 s" >&2; return 1; }
  wait "$VPID" || true
  VPID=""
}
remount() { umount_fs; mount_fs "$DATA"; }
cli() { timeout 900 "$BIN" "$@" --config "$CONF" --data-dir "$DATA" 2>>"$W/verfs.log"; }
settle() { timeout 300 sync -f "$MNT"; sleep 2; }
drop() { timeout 300 sync; echo 3 >/proc/sys/vm/drop_caches; }
# stat_field NAME[.NAME]: a field of `stats --json`.
stat_field() {
  cli stats --json | timeout 60 python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1"
}
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN{print (b>0)?sprintf(f,a/b):"-"}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
mib() { awk -v b="$1" 'BEGIN{printf "%.0f", b/1048576}'; }
# row LABEL VALUE BASELINE GOAL: BASELINE "-" for none.
row() {
  local r=-
  [ "$3" != - ] && r=$(div "$2" "$3")
  printf '%-58s %9s %9s %6s  %s\n' "$1" "$2" "$3" "$r" "$4"
}
info() { echo "  $*"; }
# Load average and the three busiest processes over one second (top's second frame).
load() {
  echo "$(cut -d' ' -f1-3 /proc/loadavg); busiest: $(top -bn2 -d1 | awk '/^top -/{n++} n==2 && $1 ~ /^[0-9]+$/' \
    | head -3 | awk '{printf "%s (nice %s) %s%%; ", $12, $4, $9}')"
}

cat >"$W/py/latstats.py" <<'EOF'
# latstats.py CLAT_LOG [FROM TO]: "count p50_us p99_us max_ms" of fio's per-I/O completion
# latency log (log_unix_epoch: "ms, ns, ..."), only I/Os completed in [FROM, TO] (epoch s).
import sys
lo, hi = (float(sys.argv[2]) * 1000, float(sys.argv[3]) * 1000) if len(sys.argv) > 3 else (0, 1e18)
v = sorted(int(l.split(",")[1]) for l in open(sys.argv[1]) if l.strip() and lo <= int(l.split(",")[0]) <= hi)
if not v:
    print("0 - - -")
    sys.exit()
pct = lambda p: v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))] / 1000
print(f"{len(v)} {pct(50):.0f} {pct(99):.0f} {v[-1] / 1e6:.1f}")
EOF
cat >"$W/py/gcfields.py" <<'EOF'
# gcfields.py JSON: the `gc run --wait --json` report as "chunks deleted rewritten
# reclaimed_bytes written_bytes millis".
import json, sys
r = json.load(open(sys.argv[1]))
print(r["chunks_freed"], r["packs_deleted"], r["packs_rewritten"], r["bytes_reclaimed"], r["bytes_written"], r["millis"])
EOF

# fio_read FILE TAG [SECS]: 4 KiB random reads of FILE, per-I/O latency log $OUT/TAG_clat.1.log.
fio_read() {
  local secs=${3:-$FIO_SECS}
  now >"$OUT/$2.start"
  timeout -s INT $((secs + 300)) fio --name=randread --filename="$1" --rw=randread --bs=4k --direct=1 \
    --ioengine=psync --time_based --runtime="$secs" --randrepeat=0 --write_lat_log="$OUT/$2" \
    --log_avg_msec=0 --log_unix_epoch=1 --output-format=json >"$OUT/$2.json" 2>>"$OUT/fio.err" || true
  rm -f "$OUT/$2"_lat.1.log "$OUT/$2"_slat.1.log
}
lat() { timeout 300 python3 "$W/py/latstats.py" "$OUT/$1_clat.1.log" "${@:2}"; }
# fio_write SIZE_MIB FILE...: writes the files concurrently (one fio job each) with fresh
# random data, 1 MiB blocks, fsync at the end; their chunks share packs.
fio_write() {
  local size=$1 args=() f
  shift
  for f in "$@"; do args+=(--name="w$(basename "$f")" --filename="$f"); done
  timeout 1800 fio --rw=write --bs=1M --size="${size}M" --ioengine=psync --refill_buffers --randrepeat=0 \
    --end_fsync=1 "${args[@]}" >>"$OUT/fio-write.log" 2>&1
}
# The looping sequential writer of 1b: passes of WRITER_MIB into DIR/writer.bin until
# $W/stop-writer exists; the pass count in $W/writer-passes.
writer_start() {
  rm -f "$W/stop-writer"
  echo 0 >"$W/writer-passes"
  (
    n=0
    while [ ! -e "$W/stop-writer" ]; do
      fio_write "$WRITER_MIB" "$1/writer.bin"
      n=$((n + 1)); echo "$n" >"$W/writer-passes"
    done
  ) &
  WRITERPID=$!
  WRITER_T0=$(now)
}
writer_stop() {  # sets WRITER to "MiB/s passes seconds" of the writer
  touch "$W/stop-writer"
  wait "$WRITERPID"
  WRITERPID=""
  local secs n
  secs=$(since "$WRITER_T0")
  n=$(cat "$W/writer-passes")
  WRITER="$(div $((n * WRITER_MIB)) "$secs" %.0f) $n $secs"
}
# gc_run TAG: `gc run --wait --json` into $OUT/gc-TAG.json, with its wall start/end
# (epoch s) in $OUT/gc-TAG.t; prints the report fields.
gc_run() {
  local s e
  s=$(now)
  cli gc run --wait --json >"$OUT/gc-$1.json"
  e=$(now)
  echo "$s $e" >"$OUT/gc-$1.t"
  timeout 60 python3 "$W/py/gcfields.py" "$OUT/gc-$1.json"
}
gc_info() {  # gc_info TAG: one line of what the run did
  local c d r rec wr ms
  read -r c d r rec wr ms < <(timeout 60 python3 "$W/py/gcfields.py" "$OUT/gc-$1.json")
  info "gc $1: $c chunks freed, $d packs deleted, $r rewritten, $(mib "$rec") MiB reclaimed," \
    "$(mib "$wr") MiB written, $ms ms: $(spg "$1") s/GiB reclaimed$(awk -v m="$ms" -v w="$wr" \
    'BEGIN{if (w>0) printf ", rewrites at %.0f MiB/s", w/1048576/(m/1000)}')"
}
spg() {  # seconds per GiB reclaimed of run TAG
  local c d r rec wr ms
  read -r c d r rec wr ms < <(timeout 60 python3 "$W/py/gcfields.py" "$OUT/gc-$1.json")
  awk -v m="$ms" -v b="$rec" 'BEGIN{print (b>0)?sprintf("%.2f", m/1000/(b/1073741824)):"-"}'
}
# The daemon's read caches since its mount (each read run starts on a fresh mount).
caches() {
  cli stats --json | timeout 60 python3 -c '
import json, sys
a = json.load(sys.stdin)["activity"]
print("chunk cache %d hits / %d misses, pack index %d hits / %d misses" % (a["chunk_cache_hits"],
      a["chunk_cache_misses"], a.get("pack_index_hits", 0), a.get("pack_index_misses", 0)))'
}
packs() { echo "pack_bytes $(mib "$(stat_field pack_bytes)") MiB in $(stat_field pack_count) packs, stored chunks $(mib "$(stat_field stored_chunk_bytes)") MiB, unreferenced chunks $(stat_field unreferenced_chunks)"; }
# dd_write SRC DST: MiB/s of a dd bs=1M conv=fsync; its wall start/end in $OUT/dd.t
dd_write() {
  local s e
  s=$(now)
  timeout 900 dd if="$1" of="$2" bs=1M conv=fsync status=none
  e=$(now)
  echo "$s $e" >"$OUT/dd.t"
  awk -v a="$s" -v b="$e" -v m="$(($(stat -c %s "$1") / 1048576))" 'BEGIN{printf "%.0f", m/(b-a)}'
}

T0=$(now)
echo "date: $(date -u '+%F %T UTC'); machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(uname -r)"
echo "binary: $BIN ($("$BIN" --version), built $(date -u -r "$BIN" '+%F %T UTC')); work dir $W ($(df -h --output=source,fstype "$W" | tail -1 | tr -s ' '))"
echo "sizes: READ_MIB=$READ_MIB FIO_SECS=$FIO_SECS GC_MIB=$GC_MIB WRITE_MIB=$WRITE_MIB WRITE_ROUNDS=$WRITE_ROUNDS WRITER_MIB=$WRITER_MIB THRESHOLDS='$THRESHOLDS' THR_FILE_MIB=$THR_FILE_MIB"
echo "load before: $(load)"
( while :; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$W/load.txt"; sleep 15; done ) &
LOADPID=$!

# --- inputs ----------------------------------------------------------------------------
timeout 60 bindfs -o big_writes "$BSRC" "$BMNT"
mount_fs "$W/data"
s=$(now)
fio_write "$READ_MIB" "$MNT/read.bin" "$MNT/partner.bin"  # read.bin shares its packs with partner.bin
info "read.bin + partner.bin ($READ_MIB MiB each, concurrently): $(since "$s") s"
s=$(now)
fio_write "$GC_MIB" "$MNT/x1.bin" "$MNT/y1.bin"
info "x1+y1 ($GC_MIB MiB each, concurrently): $(since "$s") s"
fio_write "$READ_MIB" "$BMNT/read.bin"
settle
info "$(packs)"
info "dedup hits $(stat_field activity.dedup_hits) (0 expected: all data is fresh random)"

printf '%-58s %9s %9s %6s  %s\n' "measurement" value baseline ratio goal

# --- 1a/1b: reads idle and under a writer, VerFSNext and bindfs ------------------------
remount; drop
fio_read "$MNT/read.bin" v-idle
info "idle reads: $(caches)"
drop
fio_read "$BMNT/read.bin" b-idle
remount; drop
writer_start "$MNT"
sleep 3  # the writer's data in flight before the reads start
fio_read "$MNT/read.bin" v-writer
writer_stop
info "reads under writer: $(caches)"
read -r v_wbw v_wn v_ws <<<"$WRITER"
drop
writer_start "$BMNT"
sleep 3
fio_read "$BMNT/read.bin" b-writer
writer_stop
read -r b_wbw b_wn b_ws <<<"$WRITER"
timeout 300 rm -f "$BMNT/writer.bin"
read -r vi_n vi_50 vi_99 vi_max < <(lat v-idle)
read -r bi_n bi_50 bi_99 bi_max < <(lat b-idle)
read -r vw_n vw_50 vw_99 vw_max < <(lat v-writer)
read -r bw_n bw_50 bw_99 bw_max < <(lat b-writer)
info "reads (count, p50 us, p99 us, max ms): verfsnext idle $vi_n $vi_50 $vi_99 $vi_max; under writer $vw_n $vw_50 $vw_99 $vw_max"
info "                                       bindfs    idle $bi_n $bi_50 $bi_99 $bi_max; under writer $bw_n $bw_50 $bw_99 $bw_max"
info "writer: verfsnext $v_wbw MiB/s ($v_wn passes of $WRITER_MIB MiB in $v_ws s), bindfs $b_wbw MiB/s ($b_wn passes in $b_ws s)"

# --- 3a: GC removing whole packs: the writer's data -------------------------------------
timeout 300 rm -f "$MNT/writer.bin"
settle
info "after deleting writer.bin: $(packs)"
gc_run removal >/dev/null
gc_info removal
info "after: $(packs)"

# --- 1c: reads while GC rewrites the packs read.bin shares with partner.bin ------------
timeout 300 rm -f "$MNT/partner.bin"
settle
remount; drop
info "after deleting partner.bin: $(packs)"
now >"$OUT/v-gc.start"
timeout -s INT 3600 fio --name=randread --filename="$MNT/read.bin" --rw=randread --bs=4k --direct=1 \
  --ioengine=psync --time_based --runtime=3000 --randrepeat=0 --write_lat_log="$OUT/v-gc" \
  --log_avg_msec=0 --log_unix_epoch=1 --output-format=json >"$OUT/v-gc.json" 2>>"$OUT/fio.err" &
FP=$!
sleep 3  # reads before GC starts, as in the other runs
gc_run rewrite-reads >/dev/null
# Reads go on until at least FIO_SECS in all, to compare with the rows above as a whole run.
read -r gs ge <"$OUT/gc-rewrite-reads.t"
rest=$(awk -v a="$gs" -v b="$ge" -v f="$FIO_SECS" 'BEGIN{r=f-3-(b-a); print (r>1)?r:1}')
sleep "$rest"
kill -INT "$FP"; wait "$FP" || true
rm -f "$OUT"/v-gc_lat.1.log "$OUT"/v-gc_slat.1.log
gc_info rewrite-reads
info "reads during GC: $(caches)"
info "after: $(packs)"
read -r vg_n vg_50 vg_99 vg_max < <(lat v-gc "$gs" "$ge")
read -r va_n va_50 va_99 va_max < <(lat v-gc)
# The idle run over the same seconds after its start as GC's window in this one (the
# first seconds after drop_caches are the slowest).
read -r i0 <"$OUT/v-idle.start"
read -r g0 <"$OUT/v-gc.start"
read -r vs_n vs_50 vs_99 vs_max < <(lat v-idle "$(awk -v a="$i0" -v b="$g0" -v c="$gs" 'BEGIN{printf "%.3f", a+c-b}')" \
  "$(awk -v a="$i0" -v b="$g0" -v c="$ge" 'BEGIN{printf "%.3f", a+c-b}')")
info "reads during GC ($(awk -v a="$gs" -v b="$ge" 'BEGIN{printf "%.1f", b-a}') s): $vg_n, p50 $vg_50 us, p99 $vg_99 us, max $vg_max ms;" \
  "whole run: $va_n, p50 $va_50, p99 $va_99, max $va_max ms; idle run over the same seconds: $vs_n, p50 $vs_50, p99 $vs_99, max $vs_max ms"

row "4k randread p50, idle (us; base bindfs)" "$vi_50" "$bi_50" ""
row "4k randread p99, idle (us; base bindfs)" "$vi_99" "$bi_99" ""
row "4k randread p50, under writer (us; base own idle)" "$vw_50" "$vi_50" ""
row "4k randread p99, under writer (us; base own idle)" "$vw_99" "$vi_99" "<= 2x idle"
row "  bindfs p99 under writer (us; base bindfs idle)" "$bw_99" "$bi_99" ""
row "  verfsnext p99 under writer (us; base bindfs writer)" "$vw_99" "$bw_99" ""
row "4k randread p50, during GC rewrite (us; base own idle)" "$vg_50" "$vi_50" ""
row "4k randread p99, during GC rewrite (us; base own idle)" "$vg_99" "$vi_99" "(reads keep latency)"
row "4k randread p99, during GC (us; base idle, same seconds)" "$vg_99" "$vs_99" ""
row "4k randread max, during GC rewrite (ms; base own idle)" "$vg_max" "$vi_max" ""

# --- 3b: GC rewriting packs on an idle mount --------------------------------------------
timeout 300 rm -f "$MNT/y1.bin"
settle
gc_run rewrite >/dev/null
gc_info rewrite

# --- 2: write throughput during a GC that rewrites packs ---------------------------------
# WRITE_ROUNDS rounds, each: a fresh interleaved pair (x, y) of GC_MIB, y deleted, then a
# dd without GC and a dd started 0.2 s after `gc run` (order alternating by round), each
# of a fresh random source on the native disk (synced, in the page cache).
new_src() {
  rm -f "$W/src/w.bin"
  timeout 600 fio --name=gen --filename="$W/src/w.bin" --rw=write --bs=1M --size="${WRITE_MIB}M" \
    --ioengine=psync --refill_buffers --randrepeat=0 --end_fsync=1 >/dev/null
  timeout 600 cat "$W/src/w.bin" >/dev/null
}
wb=(); wg=(); wr=()
for r in $(seq "$WRITE_ROUNDS"); do
  fio_write "$GC_MIB" "$MNT/x2-$r.bin" "$MNT/y2-$r.bin"
  timeout 300 rm -f "$MNT/y2-$r.bin"
  settle
  order="base gc"
  [ $((r % 2)) = 0 ] && order="gc base"
  for kind in $order; do
    new_src
    if [ "$kind" = base ]; then
      wb+=("$(dd_write "$W/src/w.bin" "$MNT/wb$r.bin")")
    else
      ( gc_run "write$r" >/dev/null ) &
      GP=$!
      sleep 0.2  # the run started
      wg+=("$(dd_write "$W/src/w.bin" "$MNT/wg$r.bin")")
      read -r ds de <"$OUT/dd.t"
      wait "$GP"
      read -r gs ge <"$OUT/gc-write$r.t"
    fi
    settle
  done
  gc_info "write$r"
  overlap=$(awk -v a="$ds" -v b="$de" -v c="$gs" -v d="$ge" 'BEGIN{o=((b<d)?b:d)-((a>c)?a:c); printf "%.0f", (o>0?o:0)*100/(b-a)}')
  wr+=("$(div "${wg[-1]}" "${wb[-1]}")")
  info "round $r ($order): dd MiB/s without GC ${wb[-1]}, during GC ${wg[-1]} (ratio ${wr[-1]}); GC ran" \
    "$(awk -v a="$gs" -v b="$ge" 'BEGIN{printf "%.1f", b-a}') s, the dd $(awk -v a="$ds" -v b="$de" 'BEGIN{printf "%.1f", b-a}') s, overlapping $overlap% of the dd"
done
rm -f "$W/src/w.bin"
spgs=(); for r in $(seq "$WRITE_ROUNDS"); do spgs+=("$(spg "write$r")"); done
row "dd write MiB/s during GC, median of $WRITE_ROUNDS (base: without)" "$(median "${wg[@]}")" "$(median "${wb[@]}")" ">= 0.70"
row "  the same, median of the per-round ratios" "$(median "${wr[@]}")" - ">= 0.70"
row "GC s/GiB reclaimed: whole packs removed" "$(spg removal)" - ""
row "GC s/GiB reclaimed: packs rewritten, idle mount" "$(spg rewrite)" - ""
row "GC s/GiB reclaimed: packs rewritten, under 4k reads" "$(spg rewrite-reads)" - ""
row "GC s/GiB reclaimed: packs rewritten, under dd (median)" "$(median "${spgs[@]}")" - ""
umount_fs

# --- 4: rewrite threshold ----------------------------------------------------------------
if [ -n "$THRESHOLDS" ]; then
  printf '%-12s %8s %8s %9s %9s %8s %9s %10s\n' "threshold %" deleted rewritten "freed MiB" "wrote MiB" "GC s" "s/GiB" "packs MiB"
  for pct in $THRESHOLDS; do
    d=$W/thr$pct
    mkdir -p -m 0700 "$d"
    printf 'gc_idle_min_ms = 0\ngc_pack_rewrite_min_reclaim_percent = %s\n' "$pct" >"$W/thr$pct.toml"
    mount_fs "$d" "$W/thr$pct.toml"
    fio_write "$THR_FILE_MIB" "$MNT"/a{1..7}.bin
    fio_write "$THR_FILE_MIB" "$MNT"/b{1..3}.bin
    fio_write "$THR_FILE_MIB" "$MNT"/c{1..2}.bin
    timeout 300 rm -f "$MNT/a1.bin" "$MNT/b1.bin" "$MNT/c1.bin"
    settle
    before=$(stat_field pack_bytes)
    read -r c dl rw rec wr ms < <(gc_run "thr$pct")
    printf '%-12s %8s %8s %9s %9s %8s %9s %10s\n' "$pct" "$dl" "$rw" "$(mib "$rec")" "$(mib "$wr")" \
      "$(awk -v m="$ms" 'BEGIN{printf "%.1f", m/1000}')" "$(spg "thr$pct")" "$(mib "$before") -> $(mib "$(stat_field pack_bytes)")"
    umount_fs
    CONF=$W/config.toml
    [ "$KEEP" = 1 ] || rm -rf "$d"
  done
  info "(live data after the deletes: $((9 * THR_FILE_MIB)) MiB; 3 of 12 files of $THR_FILE_MIB MiB deleted)"
fi

kill "$LOADPID" 2>/dev/null || true; LOADPID=""
echo "load after: $(load)"
echo "load every 15 s: $(awk '{printf "%s %s; ", $1, $2}' "$W/load.txt")"
timeout 30 fusermount3 -u "$BMNT" || true
if [ "$KEEP" != 1 ]; then timeout 600 rm -rf "$W/data" "$W/src" "$BSRC"; fi
echo "total: $(since "$T0") s; work dir $W"
