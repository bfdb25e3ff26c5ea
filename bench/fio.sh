#!/usr/bin/env bash
# The fio rows of issue 13, VerFSNext against `bindfs -o big_writes` of the same disk and
# the native directory, in one run, ROUNDS alternating rounds (default 3), medians:
#
#   fsync4k   fio --rw=write --bs=4k --fsync=1           IOPS (higher is better)
#   seqwrite  fio --rw=write --bs=1M --size=1G --end_fsync=1 --ioengine=psync   MiB/s
#   randread  fio --rw=randread --bs=4k --direct=1       IOPS and p99 latency (us), idle
#   randbusy  the same while a `dd conv=fsync` writer loops on the same mount (p99 us)
#
# Also prints the daemon's peak RSS (VmHWM) after each workload. Needs root, fuse3,
# bindfs, fio; builds the release binary.
#
#   bench/fio.sh [WORKDIR] [ROUNDS] [WORKLOADS...]   (default: a fresh dir under /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin verfsnext >/dev/null
BIN=$PWD/target/release/verfsnext
W=${1:-$(mktemp -d /var/tmp/verfs-fio.XXXXXX)}
ROUNDS=${2:-3}
shift 2 2>/dev/null || shift $#
WORKLOADS=${*:-fsync4k seqwrite randread randbusy}
mkdir -p "$W"/{vmnt,bsrc,bmnt,native}
mkdir -p -m 0700 "$W/data"
WPID=""
extra_cleanup() { [ -n "$WPID" ] && kill "$WPID" 2>/dev/null || true; }
. bench/pair.sh

hwm() { awk '/VmHWM/{printf "%d", $2/1024}' "/proc/$VPID/status"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
# fio's JSON, one value: $1 = jq-like path written as awk-free python expression.
fio_json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# One workload in directory $2, label $3: prints the measured value(s).
run_one() {
  local w=$1 dir=$2 out=$W/fio-$3-$1.json
  rm -f "$dir"/fio.*
  case $w in
    fsync4k)
      timeout 300 fio --name=f --directory="$dir" --filename=fio.fsync --rw=write --bs=4k \
        --size=64M --fsync=1 --time_based --runtime=10 --output-format=json >"$out"
      fio_json "$out" "round(j['jobs'][0]['write']['iops'])" ;;
    seqwrite)
      timeout 600 fio --name=f --directory="$dir" --filename=fio.seq --rw=write --bs=1M \
        --size=1G --end_fsync=1 --ioengine=psync --output-format=json >"$out"
      fio_json "$out" "round(j['jobs'][0]['write']['bw']/1024)" ;;
    randread|randbusy)
      timeout 300 fio --name=prep --directory="$dir" --filename=fio.rand --rw=write --bs=1M \
        --size=1G --end_fsync=1 --output-format=json >/dev/null
      sync; echo 3 >/proc/sys/vm/drop_caches
      if [ "$w" = randbusy ]; then
        ( while :; do dd if=/dev/urandom of="$dir/fio.busy" bs=1M count=256 conv=fsync 2>/dev/null; done ) &
        WPID=$!
      fi
      timeout 300 fio --name=f --directory="$dir" --filename=fio.rand --rw=randread --bs=4k \
        --size=1G --direct=1 --time_based --runtime=10 --output-format=json >"$out"
      if [ -n "$WPID" ]; then kill "$WPID"; wait "$WPID" 2>/dev/null || true; WPID=""; fi
      fio_json "$out" "str(round(j['jobs'][0]['read']['iops']))+'/'+str(round(j['jobs'][0]['read']['clat_ns']['percentile']['99.000000']/1000))" ;;
  esac
  rm -f "$dir"/fio.*
}

printf '%-10s %-6s %12s %12s %12s   VmHWM MiB\n' workload round verfsnext bindfs native
for w in $WORKLOADS; do
  declare -a V=() B=() N=()
  for r in $(seq "$ROUNDS"); do
    v=$(run_one "$w" "$W/vmnt" v); b=$(run_one "$w" "$W/bmnt" b); n=$(run_one "$w" "$W/native" n)
    V+=("$v"); B+=("$b"); N+=("$n")
    printf '%-10s %-6s %12s %12s %12s   %s\n' "$w" "$r" "$v" "$b" "$n" "$(hwm)"
  done
  first() { for x in "$@"; do echo -n "${x%%/*} "; done; }
  second() { for x in "$@"; do [ "$x" != "${x#*/}" ] && echo -n "${x#*/} "; done; }
  mv=$(first "${V[@]}" | median); mb=$(first "${B[@]}" | median); mn=$(first "${N[@]}" | median)
  printf '%-10s %-6s %12s %12s %12s   ratio %.2f\n' "$w" median "$mv" "$mb" "$mn" \
    "$(awk -v a="$mv" -v b="$mb" 'BEGIN{print (b>0)?a/b:0}')"
  if [ -n "$(second "${V[@]}")" ]; then
    pv=$(second "${V[@]}" | median); pb=$(second "${B[@]}" | median); pn=$(second "${N[@]}" | median)
    printf '%-10s %-6s %12s %12s %12s   p99 ratio %.2f\n' "$w" p99-us "$pv" "$pb" "$pn" \
      "$(awk -v a="$pv" -v b="$pb" 'BEGIN{print (b>0)?a/b:0}')"
  fi
done
echo "daemon peak RSS over the run (VmHWM): $(hwm) MiB"
