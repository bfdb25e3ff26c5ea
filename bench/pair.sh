# Sourced by the bindfs-comparison benchmarks: mounts VerFSNext on $W/vmnt (data in
# $W/data, log in $W/verfs.log) and `bindfs -o big_writes` of $W/bsrc on $W/bmnt, and
# unmounts both on exit. Expects BIN and W; sets VPID (the daemon) and calls the
# caller's `extra_cleanup` first if it defines one.
VPID=""
pair_cleanup() {
  if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
  fusermount3 -uz "$W/vmnt" 2>/dev/null || true
  fusermount3 -uz "$W/bmnt" 2>/dev/null || true
  [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null || true
}
trap pair_cleanup EXIT

"$BIN" mount --data-dir "$W/data" "$W/vmnt" 2>"$W/verfs.log" &
VPID=$!
timeout 60 bindfs -o big_writes "$W/bsrc" "$W/bmnt"
for _ in $(seq 100); do grep -q " $W/vmnt " /proc/mounts && break; sleep 0.1; done
