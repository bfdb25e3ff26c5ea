#!/usr/bin/env bash
# Measures the vault against plain files on one VerFSNext mount, in one run, and prints
# one row per measurement with the plain baseline and the ratio vault/plain:
#   1. `dd bs=1M conv=fsync` of SIZE_MIB (default 1024) of random data into the mount
#      and into /.vault, alternating, ROUNDS rounds (default 3), fresh data each time so
#      nothing deduplicates; MiB/s, median;
#   2. cold `dd` read of each of those files (page cache dropped, daemon restarted and
#      the vault unlocked again so its caches are cold too); MiB/s, median;
#   3. the text tar: extracting a tarball of text (this repo's sources and docs repeated
#      to ~TEXT_MIB, default 256) into each, with a final `sync -f`, median seconds;
#   4. `crypt -u` wall time (Argon2id at the default 64 MiB / t=3 / p=4), median of 5.
# Goal (issue): vault ≥ 0.8× plain for write and read, unlock ≤ 1.5 s.
# Needs root, fuse3; does not build: VERFSNEXT=BIN, else target/release/verfsnext.
#
#   [VERFSNEXT=BIN] [SIZE_MIB=N] [ROUNDS=N] bench/vault.sh [WORKDIR]
set -euo pipefail
W=${1:-$(mktemp -d /var/tmp/verfs-vaultbench.XXXXXX)}
mkdir -p "$W" && W=$(cd "$W" && pwd)
if [ -n "${VERFSNEXT:-}" ]; then VERFSNEXT=$(realpath -m "$VERFSNEXT"); fi
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${VERFSNEXT:-$PWD/target/release/verfsnext}
[ -x "$BIN" ] || { echo "no binary at $BIN (build it, or set VERFSNEXT)" >&2; exit 1; }
SIZE_MIB=${SIZE_MIB:-1024} ROUNDS=${ROUNDS:-3} TEXT_MIB=${TEXT_MIB:-256}
MNT=$W/mnt DATA=$W/data KEYS=$W/keys
PASS=bench-vault-password
mkdir -p "$MNT" "$W/src" && mkdir -p -m 0700 "$DATA" "$KEYS"
VPID=""
cleanup() {
  timeout 10 fusermount3 -uz "$MNT" 2>/dev/null || true
  [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null || true
}
trap cleanup EXIT

mount_fs() {
  "$BIN" mount --data-dir "$DATA" "$MNT" 2>>"$W/verfs.log" &
  VPID=$!
  for _ in $(seq 300); do
    grep -q " $MNT " /proc/mounts && return 0
    sleep 0.1
  done
  echo "mount failed (see $W/verfs.log)" >&2
  return 1
}
umount_fs() {
  kill -INT "$VPID"
  for _ in $(seq 600); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
  VPID=""
}
crypt() { timeout 120 "$BIN" crypt "$@" --data-dir "$DATA" 2>/dev/null; }
unlock() { echo "$PASS" | crypt -u -k "$KEYS/verfsnext.vault.key" >/dev/null; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mibs() { echo "$SIZE_MIB / ($2 - $1)" | bc -l; }
row() { printf '%-34s %10.1f %10.1f %7.2fx  %s\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)" "$4"; }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# The text source: this repo's text files, concatenated into a tree of ~TEXT_MIB.
mkdir -p "$W/text"
i=0
while [ "$(du -sm "$W/text" | cut -f1)" -lt "$TEXT_MIB" ]; do
  mkdir -p "$W/text/$i"
  git -C "$REPO" ls-files -z '*.rs' '*.md' '*.toml' '*.sh' | (cd "$REPO" && xargs -0 cp --parents -t "$W/text/$i")
  i=$((i + 1))
done
tar -C "$W" -cf "$W/text.tar" text

mount_fs
echo "$PASS" | crypt -c --key-dir "$KEYS" >/dev/null
declare -A W_T R_T T_T
for r in $(seq "$ROUNDS"); do
  for where in plain vault; do
    head -c "${SIZE_MIB}M" /dev/urandom >"$W/src/in"
    dst=$MNT/$where-$r; [ "$where" = vault ] && dst=$MNT/.vault/$where-$r
    cold; s=$(now); dd if="$W/src/in" of="$dst" bs=1M conv=fsync status=none; e=$(now)
    W_T[$where]+="$(mibs "$s" "$e") "
    t=$MNT/t-$where-$r; [ "$where" = vault ] && t=$MNT/.vault/t-$r
    mkdir "$t"; cold; s=$(now); tar -C "$t" -xf "$W/text.tar"; sync -f "$t"; e=$(now)
    T_T[$where]+="$(echo "$e - $s" | bc -l) "
  done
done
umount_fs; mount_fs; unlock
for r in $(seq "$ROUNDS"); do
  for where in plain vault; do
    src=$MNT/$where-$r; [ "$where" = vault ] && src=$MNT/.vault/$where-$r
    cold; s=$(now); dd if="$src" of=/dev/null bs=1M status=none; e=$(now)
    R_T[$where]+="$(mibs "$s" "$e") "
  done
done
U=""
for _ in 1 2 3 4 5; do
  crypt -l >/dev/null; s=$(now); unlock; e=$(now); U+="$(echo "$e - $s" | bc -l) "
done
umount_fs

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
printf '%-34s %10s %10s %8s  %s\n' "measurement" "vault" "plain" "ratio" "goal"
row "write ${SIZE_MIB} MiB random (MiB/s)" "$(med "${W_T[vault]}")" "$(med "${W_T[plain]}")" "≥ 0.8x"
row "cold read ${SIZE_MIB} MiB (MiB/s)" "$(med "${R_T[vault]}")" "$(med "${R_T[plain]}")" "≥ 0.8x"
row "untar ${TEXT_MIB} MiB text (s)" "$(med "${T_T[vault]}")" "$(med "${T_T[plain]}")" "(time: lower is better)"
printf '%-34s %10.3f %21s  %s\n' "crypt -u (s)" "$(med "$U")" "" "≤ 1.5 s"
echo "rounds: $ROUNDS; all: write vault ${W_T[vault]}/ plain ${W_T[plain]}; read vault ${R_T[vault]}/ plain ${R_T[plain]}; untar vault ${T_T[vault]}/ plain ${T_T[plain]}; unlock $U"
