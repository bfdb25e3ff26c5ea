#!/usr/bin/env bash
# Long crash run (issue 14): N cycles on ONE data dir, each
#   mount -> check the tree equals the last baseline -> random workload (two workers:
#   writes at offsets, appends, truncates, creates, renames, unlinks, fsync/fdatasync,
#   directory fsync, live read-backs; worker 0 also `snapshot create/delete` and
#   `gc run` through the CLI; GC also runs by itself when idle) -> `kill -9` of the
#   daemon after a random delay while the workload runs -> `fusermount3 -uz` -> remount
#   -> every fsync'd file equals its model, snapshots made durable are listed and hold
#   what they held -> clean unmount (SIGTERM, exit 0) -> `verfsnext fsck` (every 10th
#   cycle with --read-data) exits 0.
# The model and what is verified: scripts/crash-run-workload.py and docs/RELIABILITY.md.
# Not part of the default test command. Needs root (FUSE), fuse3, python3.
#
#   scripts/crash-run.sh [--cycles N] [--seed S] [--bin PATH] [--keep] [--workdir DIR]
#
#   --cycles N   cycles to run (default 100)
#   --seed S     seed of the kill delays and the workloads (default: random, printed);
#                the same seed gives the same op sequences and delays, not the same timing
#   --bin PATH   verfsnext binary (default target/release/verfsnext)
#   --keep       keep the work dir (data dir, daemon log, journals) also when the run
#                passes; a failed run (mismatch, failed fsck, daemon panic, ...) always
#                keeps it, and so does a run where fsck left the data dir unusable
#   --workdir D  parent of the work dir (default ${TMPDIR:-/tmp})
#
# Exit status: 0 every cycle passed; 1 a mismatch or failed check (details printed,
# work dir kept); 2 usage error. SIGINT/SIGTERM: the trap kills the workers and the
# daemon and unmounts (exit 130).
set -u

cycles=100
seed=""
bin=target/release/verfsnext
keep=0
parent=${TMPDIR:-/tmp}
here=$(cd "$(dirname "$0")" && pwd)
workload="$here/crash-run-workload.py"

usage() { sed -n '2,/^set -u/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cycles) cycles=${2:?}; shift 2 ;;
        --seed) seed=${2:?}; shift 2 ;;
        --bin) bin=${2:?}; shift 2 ;;
        --keep) keep=1; shift ;;
        --workdir) parent=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "crash-run: unknown argument $1" >&2; usage ;;
    esac
done
case "$cycles" in ''|*[!0-9]*) echo "crash-run: --cycles needs a number" >&2; exit 2 ;; esac
[ -z "$seed" ] && seed=$(( (RANDOM << 15) | RANDOM ))
case "$seed" in ''|*[!0-9]*) echo "crash-run: --seed needs a number" >&2; exit 2 ;; esac
if ! bin=$(realpath "$bin" 2>/dev/null) || [ ! -x "$bin" ]; then
    echo "crash-run: no executable at --bin ($bin)" >&2
    exit 2
fi
for t in fusermount3 python3 timeout; do
    command -v "$t" >/dev/null || { echo "crash-run: $t not found" >&2; exit 2; }
done
RANDOM=$seed

work=$(mktemp -d "$parent/verfs-crashrun.XXXXXX")
data="$work/data"
cfg="$work/config.toml"
log="$work/daemon.log"
state="$work/state.json"
mkdir -m 0700 "$data" "$work/home"
cat >"$cfg" <<EOF
data_dir = "$data"
pack_max_size_mb = 1
gc_idle_min_ms = 200
gc_pack_rewrite_min_reclaim_percent = 20
sync_interval_ms = 1000
batch_max_delay_ms = 300
ultracdc_min_size_bytes = 4096
ultracdc_avg_size_bytes = 16384
ultracdc_max_size_bytes = 65536
chunk_cache_mb = 8
attr_ttl_secs = 1
log_level = "info"
EOF

daemon_pid=""
mnt=""
cycle=0
worker_pids=()
keep_reason=""   # set when the work dir must be kept whatever --keep says
start_s=$(date +%s.%N)
total_ops=0 total_verified=0 kills=0 fscks=0 done_cycles=0
total_snap=0 total_snapdel=0 total_gc=0 total_sreq=0 perm_cycles=0

# The daemon and every CLI call run with HOME/XDG inside the work dir, like the tests,
# so no stray config.toml is found; the config is always passed with --config.
# (`env` execs the command, so `$!` of `"${run_env[@]}" cmd &` is the command's own pid.)
run_env=(env -u RUST_LOG HOME="$work/home" XDG_CONFIG_HOME="$work/home/xdg-config"
    XDG_DATA_HOME="$work/home/xdg-data")

mounted() { grep -q " $1 fuse.verfsnext " /proc/mounts; }

cleanup() {
    local rc=$? p m
    trap - EXIT INT TERM
    # Workers run under `timeout`, which passes SIGTERM on to python.
    for p in "${worker_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        exec 3>&2 2>/dev/null
        kill -9 "$daemon_pid"
        wait "$daemon_pid"
        exec 2>&3 3>&-
    fi
    # Every mount of this run (normally none or the current one).
    while read -r _ m _; do
        case "$m" in "$work"/*) timeout 10 fusermount3 -uz "$m" 2>/dev/null ;; esac
    done </proc/mounts
    if [ -n "$keep_reason" ] || [ "$keep" = 1 ]; then
        echo "crash-run: work dir kept: $work (data dir $data, daemon log $log)" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "crash-run: interrupted" >&2; exit 130' INT TERM

elapsed() { awk -v s="$start_s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }'; }

summary() {
    echo "crash-run: $1: cycles $done_cycles/$cycles, seed $seed, ops $total_ops," \
        "fsync'd files verified $total_verified, kills $kills, fsck runs $fscks," \
        "elapsed $(elapsed)s (snapshot creates $total_snap, deletes $total_snapdel," \
        "gc runs by CLI $total_gc, snapshots required after a kill $total_sreq," \
        "fsck runs that left group/other-accessible files $perm_cycles)"
}

# A mismatch or a failed check: print it, keep the evidence, exit 1.
fail() {
    echo "crash-run: FAIL cycle $cycle seed $seed: $*"
    echo "---- last 40 lines of the daemon log ($log) ----"
    tail -n 40 "$log"
    keep_reason=failure
    summary FAILED
    exit 1
}

start_daemon() {
    mnt="$work/mnt.$cycle.$1"
    mkdir "$mnt"
    echo "=== crash-run cycle $cycle: mount ($1) at $(date -u +%FT%T.%3NZ)" >>"$log"
    "${run_env[@]}" "$bin" mount --config "$cfg" "$mnt" </dev/null >>"$log" 2>&1 &
    daemon_pid=$!
    local i
    for i in $(seq 1 300); do
        mounted "$mnt" && return 0
        kill -0 "$daemon_pid" 2>/dev/null || fail "daemon exited before mounting ($1)"
        sleep 0.1
    done
    fail "mount not ready after 30 s ($1)"
}

# Waits up to $2 tenths of a second for pid $1 to exit; its status in $wait_rc.
wait_pid() {
    local i
    for i in $(seq 1 "$2"); do
        if ! kill -0 "$1" 2>/dev/null; then wait "$1" 2>/dev/null; wait_rc=$?; return 0; fi
        sleep 0.1
    done
    return 1
}

kill9_daemon() {
    echo "=== crash-run cycle $cycle: kill -9 at $(date -u +%FT%T.%3NZ)" >>"$log"
    # (stderr aside while it is reaped: bash would print "Killed" and the command line)
    exec 3>&2 2>/dev/null
    kill -9 "$daemon_pid"
    wait_pid "$daemon_pid" 300
    rc=$?
    exec 2>&3 3>&-
    [ "$rc" -eq 0 ] || fail "daemon still alive 30 s after SIGKILL"
    daemon_pid=""
    kills=$((kills + 1))
    timeout 10 fusermount3 -uz "$mnt" 2>/dev/null
    local i
    for i in $(seq 1 100); do mounted "$mnt" || return 0; sleep 0.1; done
    fail "mount still present after fusermount3 -uz"
}

# SIGTERM, not SIGINT: a background job of a non-interactive shell starts with SIGINT
# ignored; the daemon handles both the same way (README).
stop_daemon() {
    echo "=== crash-run cycle $cycle: SIGTERM at $(date -u +%FT%T.%3NZ)" >>"$log"
    kill -TERM "$daemon_pid"
    wait_pid "$daemon_pid" 600 || fail "daemon did not exit 60 s after SIGTERM"
    daemon_pid=""
    [ "$wait_rc" -eq 0 ] || fail "daemon exit status $wait_rc after SIGTERM"
    ! mounted "$mnt" || fail "mount still present after a clean exit"
}

check_no_panic() {
    if grep -q "panicked" "$log"; then
        fail "the daemon panicked: $(grep -m3 panicked "$log")"
    fi
}

echo "crash-run: seed $seed, $cycles cycles, binary $bin, work dir $work"
for cycle in $(seq 1 "$cycles"); do
    c_start=$(date +%s)
    start_daemon a
    out=$(timeout -k 5 300 python3 "$workload" check-baseline --mnt "$mnt" --state "$state" \
        --bin "$bin" --config "$cfg" 2>&1) || fail "after the clean restart: $out"

    # The workload: two workers until the kill (their own limit is only a backstop).
    delay_ms=$((300 + RANDOM % 9700))
    worker_pids=()
    journals=()
    for w in 0 1; do
        j="$work/w$w.c$cycle.journal"
        journals+=(--journal "$j")
        snap=()
        [ "$w" = 0 ] && snap=(--snapshots)
        "${run_env[@]}" timeout -k 5 180 python3 "$workload" work --mnt "$mnt" --root "w$w" \
            --seed $((seed * 1000 + cycle * 2 + w)) --journal "$j" "${snap[@]}" \
            --bin "$bin" --config "$cfg" --max-seconds 120 \
            >"$work/w$w.c$cycle.out" 2>&1 &
        worker_pids+=($!)
    done
    # Sleep until the kill, noticing a worker that stops while the daemon is alive.
    t_end=$(( $(date +%s%N) / 1000000 + delay_ms ))
    while [ $(( $(date +%s%N) / 1000000 )) -lt "$t_end" ]; do
        for i in 0 1; do
            if ! kill -0 "${worker_pids[$i]}" 2>/dev/null; then
                wait "${worker_pids[$i]}"
                fail "worker w$i stopped (exit $?) while the daemon was alive:" \
                    "$(cat "$work/w$i.c$cycle.out"; tail -n 3 "$work/w$i.c$cycle.journal")"
            fi
        done
        sleep 0.05
    done
    kill -0 "$daemon_pid" 2>/dev/null || fail "daemon died by itself during the workload"
    kill9_daemon
    for i in 0 1; do
        if ! wait_pid "${worker_pids[$i]}" 600; then
            kill -9 "${worker_pids[$i]}" 2>/dev/null
            fail "worker w$i still running 60 s after the kill"
        fi
        if [ "$wait_rc" = 1 ]; then
            fail "worker w$i: $(cat "$work/w$i.c$cycle.out")"
        fi
    done
    worker_pids=()

    start_daemon b
    out=$(timeout -k 5 300 python3 "$workload" check-crash --mnt "$mnt" --state "$state" \
        "${journals[@]}" --bin "$bin" --config "$cfg" --cycle "$cycle" --seed "$seed" 2>&1)
    rc=$?
    [ "$rc" -eq 0 ] || fail "after kill -9 at ${delay_ms} ms:"$'\n'"$out"
    res=$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')
    read -r ops ver sc sd gcs sreq < <(printf '%s' "$res" | python3 -c 'import json,sys
r = json.load(sys.stdin)
print(r["ops"], r["verified"], r["snap_create"], r["snap_delete"], r["gc"], r["snap_required"])')
    total_ops=$((total_ops + ops))
    total_verified=$((total_verified + ver))
    total_snap=$((total_snap + sc)) total_snapdel=$((total_snapdel + sd))
    total_gc=$((total_gc + gcs)) total_sreq=$((total_sreq + sreq))
    stop_daemon
    check_no_panic

    read_data=()
    [ $((cycle % 10)) -eq 0 ] && read_data=(--read-data)
    # A copy of the data dir as fsck found it, kept if fsck leaves it unusable.
    rm -rf "$work/pre-fsck" && cp -a "$data" "$work/pre-fsck"
    # fsck runs as a user would run it, with this shell's umask (normally 022).
    fsck_out=$(timeout -k 5 900 "$bin" fsck --config "$cfg" "${read_data[@]}" 2>&1)
    rc=$?
    fscks=$((fscks + 1))
    [ "$rc" -eq 0 ] || fail "fsck ${read_data[*]} exit $rc:"$'\n'"$fsck_out"
    # Known bug (docs/RELIABILITY.md): fsck may write a metadata file with its caller's
    # umask, which the daemon then refuses to start on. Counted, fixed the way the
    # daemon's message says, and the first case is kept as a reproducer.
    open_files=$(find "$data" -perm /077 -printf '%m %P\n')
    if [ -n "$open_files" ]; then
        perm_cycles=$((perm_cycles + 1))
        echo "crash-run: WARN cycle $cycle: after fsck, group/other-accessible in the data dir" \
            "(the daemon refuses to start): $(printf '%s' "$open_files" | tr '\n' ' ')" \
            "(umask $(umask)); running chmod -R go-rwx"
        if [ ! -d "$work/fsck-umask-repro" ]; then
            mv "$work/pre-fsck" "$work/fsck-umask-repro"
            echo "crash-run: the data dir before that fsck: $work/fsck-umask-repro"
        fi
        keep_reason=fsck-perms
        chmod -R go-rwx "$data"
    fi
    done_cycles=$cycle
    rmdir "$work"/mnt.* 2>/dev/null
    echo "cycle $cycle/$cycles: kill after ${delay_ms} ms, ops $ops, fsync'd files verified $ver," \
        "fsck${read_data[*]:+ --read-data} ok, $(( $(date +%s) - c_start ))s |" \
        "$(printf '%s\n' "$out" | head -n 1)"
done
summary PASSED
