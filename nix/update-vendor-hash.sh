#!/usr/bin/env bash
# Recomputes vendorHash in nix/package.nix from go.mod and go.sum.
#
# buildGoModule runs `go mod vendor` in a fixed-output derivation and checks
# the NAR hash of the resulting vendor directory against vendorHash. This
# script computes the same hash without nixpkgs: `go mod vendor` into a
# temporary directory (through the Go module proxy or the module cache),
# then `nix hash path` on it. When the module has no dependencies to vendor
# buildGoModule wants `vendorHash = null`, and the script writes that.
#
# Usage: nix/update-vendor-hash.sh [--check]
#   --check  change nothing; exit 1 when nix/package.nix is out of date.
#
# Idempotent: a second run finds the line already right and leaves the file
# untouched. Needs go (at least the version go.mod names) and nix.
set -euo pipefail

check=0
case "${1:-}" in
"") ;;
--check) check=1 ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="$root/nix/package.nix"

tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# A copy of the module, so that nothing in the work tree is touched and an
# in-tree vendor/ directory (which buildGoModule would refuse) plays no part.
mkdir "$tmp/src"
(cd "$root" && tar -c --exclude=./.git --exclude=./vendor --exclude='./result*' .) | tar -x -C "$tmp/src"

(cd "$tmp/src" && GOWORK=off GOFLAGS= go mod vendor -o "$tmp/vendor")

if [ -d "$tmp/vendor" ] && [ -n "$(ls -A "$tmp/vendor")" ]; then
	hash="$(nix --extra-experimental-features nix-command hash path "$tmp/vendor")"
	want="\"$hash\""
else
	want="null"
fi

line="  vendorHash = $want;"
count="$(grep -c '^[[:space:]]*vendorHash = .*;[[:space:]]*$' "$pkg" || true)"
if [ "$count" != 1 ]; then
	echo "$0: expected exactly one 'vendorHash = ...;' line in $pkg, found $count" >&2
	exit 1
fi

if grep -qxF "$line" "$pkg"; then
	echo "vendorHash is up to date: $want"
	exit 0
fi
if [ "$check" = 1 ]; then
	echo "vendorHash in $pkg is out of date; it should be $want (run $0)" >&2
	exit 1
fi

# Rewrite the one line in place (through a temporary file, keeping the mode).
awk -v line="$line" '/^[[:space:]]*vendorHash = .*;[[:space:]]*$/ { print line; next } { print }' "$pkg" >"$tmp/package.nix"
cat "$tmp/package.nix" >"$pkg"
echo "vendorHash set to $want"
