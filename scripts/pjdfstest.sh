#!/usr/bin/env bash
# Runs the pjdfstest POSIX suite (crates.io `pjdfstest`) against a fresh VerFSNext mount
# and fails if any test fails. Needs root, fuse3 and the release binary.
#
#   scripts/pjdfstest.sh            (installs pjdfstest with cargo if missing)
#   scripts/pjdfstest.sh --vault    (the same suite inside an unlocked /.vault)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/verfsnext
[ -x "$BIN" ] || cargo build --release --bin verfsnext
command -v pjdfstest >/dev/null || timeout 1200 cargo install --locked pjdfstest@0.2.2
id tests >/dev/null 2>&1 || echo 'tests:x:::pjdfstest dummy user:/:/usr/sbin/nologin' | newusers

W=$(mktemp -d /var/tmp/verfs-pjdfstest.XXXXXX)
chmod 755 "$W"  # the suite switches to unprivileged users that must reach the mount
mkdir -p "$W/mnt"
mkdir -m 0700 "$W/data"  # the daemon refuses a data dir others can read
PID=""
cleanup() {
  timeout 10 fusermount3 -uz "$W/mnt" 2>/dev/null || true
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
}
trap cleanup EXIT
"$BIN" mount --data-dir "$W/data" "$W/mnt" 2>"$W/daemon.log" &
PID=$!
for _ in $(seq 200); do grep -q " $W/mnt fuse.verfsnext " /proc/mounts && break; sleep 0.1; done
grep -q " $W/mnt fuse.verfsnext " /proc/mounts || { cat "$W/daemon.log"; exit 1; }

TARGET="$W/mnt"
if [ "${1:-}" = "--vault" ]; then
  mkdir -m 0700 "$W/keys"
  echo "pjdfstest-vault-password" | timeout 60 "$BIN" crypt -c --key-dir "$W/keys" --data-dir "$W/data"
  TARGET="$W/mnt/.vault"
  chmod 755 "$TARGET"  # reachable by the suite's unprivileged users, like the root
fi
(cd "$TARGET" && timeout 1200 pjdfstest -p "$TARGET") | tee "$W/pjdfstest.log" | grep -v " ok$" || true
summary=$(grep '^Summary:' "$W/pjdfstest.log" || echo "Summary: missing")
echo "$summary"
kill -INT "$PID"
for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
PID=""
case "$summary" in
  "Summary: 0 failed,"*) ;;
  *) echo "pjdfstest failures (daemon log: $W/daemon.log)"; exit 1 ;;
esac
if grep -q "panicked" "$W/daemon.log"; then echo "daemon panicked"; exit 1; fi
