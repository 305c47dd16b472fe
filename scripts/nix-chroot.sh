#!/usr/bin/env bash
# Debian chroots with a newer Nix than the host's, for make test-nix-matrix.
#
#   scripts/nix-chroot.sh build SUITE     build (or reuse) the chroot of SUITE
#   scripts/nix-chroot.sh run SUITE CMD.. run CMD on the host with the chroot's
#                                         /proc, /dev, /dev/pts mounted; after
#                                         it, end what still runs inside the
#                                         chroot and unmount (also on failure)
#   scripts/nix-chroot.sh path SUITE      print the chroot's directory
#
# SUITE is a Debian suite: trixie (Nix 2.26) or sid (Nix 2.34). Chroots live
# in $CFH_CHROOT_CACHE (default /var/cache/cachix-filter-hook/chroots), one
# directory per suite. A chroot is built in SUITE.partial and renamed when
# complete, so a half-built one is never used: the next run removes it and
# starts again. A complete one is reused, so a second run takes seconds.
# Runs as root (debootstrap, mount, chroot).
set -euo pipefail

cache=${CFH_CHROOT_CACHE:-/var/cache/cachix-filter-hook/chroots}
mirror=${CFH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Build users for the daemon: as many as builds that may run at once, with
# uids no user of the host has. Nix kills every process of a build user
# around each build (kill(-1) as that uid), so a chroot build user sharing
# a uid with one of the host's would have its builds killed by the host's.
nbuilders=${CFH_NIX_BUILD_USERS:-8}
uid_base=${CFH_NIX_BUILD_UID_BASE:-61100}
# The non-root user who builds through the daemon.
builder_user=cfhuser

die() { echo "nix-chroot: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 build|run|path SUITE [CMD...]"
cmd=$1 suite=$2
shift 2
case $suite in
*/* | .* | "") die "bad suite name: $suite" ;;
esac
dir=$cache/$suite
marker=$dir/.cfh-chroot-ready

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, mount, chroot)"

mounted=()
# mount_all DIR: /proc, /dev, /dev/pts of the host, only while in use.
mount_all() {
	local root=$1
	mount -t proc proc "$root/proc" && mounted+=("$root/proc")
	mount --bind /dev "$root/dev" && mounted+=("$root/dev")
	mount --bind /dev/pts "$root/dev/pts" && mounted+=("$root/dev/pts")
}

# stop_inside DIR: end every process whose root is DIR (the nix-daemon a
# test started and whatever it left), by pid. They are ours: only this
# script and the tests it runs start processes in these chroots.
stop_inside() {
	local root pid sig
	root=$(readlink -f "$1")
	for sig in TERM KILL; do
		local found=0
		for pid in $(ls /proc | grep -E '^[0-9]+$'); do
			[ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] || continue
			found=1
			kill -s "$sig" "$pid" 2>/dev/null || true
		done
		[ $found = 1 ] || return 0
		sleep 1
	done
}

umount_all() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
	done
	mounted=()
}

# Unmounts whatever is still mounted below DIR (left by a killed run).
umount_below() {
	local m
	for m in $(awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
}

cleanup() {
	local rc=$?
	if [ ${#mounted[@]} -gt 0 ]; then
		stop_inside "${mounted[0]%/proc}"
	fi
	umount_all
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build() {
	mkdir -p "$cache"
	exec 9>"$cache/$suite.lock"
	flock 9 # one builder per suite; a second caller waits and reuses
	if [ -e "$marker" ]; then
		users
		echo "nix-chroot: $suite ready in $dir ($(cat "$marker"))"
		return 0
	fi
	local part=$dir.partial
	umount_below "$part"
	umount_below "$dir"
	rm -rf --one-file-system "$part" "$dir"
	local t0=$SECONDS
	echo "nix-chroot: debootstrap $suite into $part"
	mkdir -p "$cache/debs"
	debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$part" "$mirror" >"$cache/$suite.debootstrap.log" 2>&1 ||
		die "debootstrap $suite failed; see $cache/$suite.debootstrap.log"
	mount_all "$part"
	echo "nix-chroot: installing nix-bin in $suite"
	# The mirror may serve a snapshot whose Release file has expired.
	chroot "$part" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::Check-Valid-Until=false update
	chroot "$part" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::Check-Valid-Until=false install -y --no-install-recommends nix-bin >/dev/null
	chroot "$part" apt-get clean
	local version
	version=$(chroot "$part" nix --version)
	umount_all
	echo "$version" >"$part/.cfh-chroot-ready"
	mv "$part" "$dir"
	echo "nix-chroot: $suite built in $((SECONDS - t0)) s: $version"
	users
}

# users: multi-user mode as users run it: build users nixbld1..N in group
# nixbld, and a normal user in nix-users (the group Debian's nix-daemon
# socket is meant for). Checked on every build call (it takes
# milliseconds), so that a chroot made by an older version of this script
# is brought up to date.
users() {
	local i uid
	for ((i = 1; i <= nbuilders; i++)); do
		uid=$((uid_base + i))
		if getent passwd "$uid" >/dev/null; then
			die "uid $uid of build user nixbld$i is taken on the host ($(getent passwd "$uid" | cut -d: -f1)); set CFH_NIX_BUILD_UID_BASE"
		fi
	done
	chroot "$dir" sh -eu -c '
		getent group nixbld >/dev/null || groupadd -g '"$uid_base"' nixbld
		getent group nix-users >/dev/null || groupadd -r nix-users
		i=1
		while [ $i -le '"$nbuilders"' ]; do
			uid=$(('"$uid_base"' + i))
			if ! id nixbld$i >/dev/null 2>&1; then
				useradd -K UID_MAX=65000 -u $uid -g nixbld -G nixbld -d /var/empty -s /usr/sbin/nologin -M nixbld$i
			elif [ "$(id -u nixbld$i)" != $uid ]; then
				usermod -u $uid nixbld$i
			fi
			i=$((i + 1))
		done
		id '"$builder_user"' >/dev/null 2>&1 || useradd -m -G nix-users -s /bin/sh '"$builder_user"'
	'
}

case $cmd in
build) build ;;
path) echo "$dir" ;;
run)
	[ $# -ge 1 ] || die "run: no command"
	[ -e "$marker" ] || die "$dir is not built; run: $0 build $suite"
	exec 9>"$cache/$suite.lock"
	flock 9 # one run per chroot at a time: they share its daemon and store
	umount_below "$dir"
	mount_all "$dir"
	set +e
	"$@"
	rc=$?
	set -e
	exit $rc
	;;
*) die "unknown command $cmd" ;;
esac
