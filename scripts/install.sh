#!/usr/bin/env bash
# Installs VerFSNext: the binary, the mount(8) helper, the systemd unit, man pages,
# shell completions and an example config, and says where each went.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--bin FILE] [--sbindir DIR]
#                      [--unitdir DIR] [--sysconfdir DIR]
#
#   --prefix      where bin/ and share/ go (default /usr/local)
#   --destdir     stage everything under this root (packaging, tests); default none
#   --bin         install this binary instead of building one with
#                 `cargo build --release --locked`
#   --sbindir     where mount(8) looks for helpers (default /sbin)
#   --unitdir     systemd unit directory (default /etc/systemd/system)
#   --sysconfdir  configuration directory (default /etc)
#
# Re-running it upgrades in place; an existing config.toml is never touched.
set -euo pipefail

prefix=/usr/local
destdir=
bin=
sbindir=/sbin
unitdir=/etc/systemd/system
sysconfdir=/etc

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        --bin) bin=${2:?--bin needs a file}; shift 2 ;;
        --sbindir) sbindir=${2:?--sbindir needs a directory}; shift 2 ;;
        --unitdir) unitdir=${2:?--unitdir needs a directory}; shift 2 ;;
        --sysconfdir) sysconfdir=${2:?--sysconfdir needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$bin" ]; then
    echo "building: cargo build --release --locked (in $root)"
    (cd "$root" && cargo build --release --locked --bin verfsnext)
    bin=$root/target/release/verfsnext
fi
[ -x "$bin" ] || die "$bin is not an executable"

bindir=$prefix/bin
mandir=$prefix/share/man/man1
say() { echo "installed $1"; }

install -d "$destdir$bindir"
install -m 0755 "$bin" "$destdir$bindir/verfsnext"
say "$bindir/verfsnext"

# mount -t fuse.verfsnext runs /sbin/mount.fuse.verfsnext; the binary acts as the helper
# when called by that name.
install -d "$destdir$sbindir"
ln -sfn "$bindir/verfsnext" "$destdir$sbindir/mount.fuse.verfsnext"
say "$sbindir/mount.fuse.verfsnext -> $bindir/verfsnext (mount helper)"

install -d "$destdir$unitdir"
sed "s|@BINDIR@|$bindir|g" "$root/packaging/verfsnext.service" >"$destdir$unitdir/verfsnext.service"
chmod 0644 "$destdir$unitdir/verfsnext.service"
say "$unitdir/verfsnext.service"

install -d "$destdir$mandir"
"$bin" man --dir "$destdir$mandir" >/dev/null
pages=("$destdir$mandir"/verfsnext*.1)
say "$mandir/verfsnext*.1 (${#pages[@]} pages)"

comp() { # shell, directory, file name
    install -d "$destdir$2"
    "$bin" completions "$1" >"$destdir$2/$3"
    say "$2/$3"
}
comp bash "$prefix/share/bash-completion/completions" verfsnext
comp zsh "$prefix/share/zsh/site-functions" _verfsnext
comp fish "$prefix/share/fish/vendor_completions.d" verfsnext.fish

install -d -m 0755 "$destdir$sysconfdir/verfsnext"
install -m 0644 "$root/config.toml.example" "$destdir$sysconfdir/verfsnext/config.toml.example"
say "$sysconfdir/verfsnext/config.toml.example"
if [ ! -e "$destdir$sysconfdir/verfsnext/config.toml" ]; then
    echo "next: copy $sysconfdir/verfsnext/config.toml.example to config.toml and set data_dir and mount_point"
fi
echo "next: mount -t fuse.verfsnext DATA_DIR MOUNTPOINT, an fstab line, or: systemctl daemon-reload && systemctl enable --now verfsnext"
