#!/usr/bin/env bash
# bench/twoqueues.sh: several hooks for one build (issue 23, item 5).
#
# On distributed builds the hook runs on the machine that asked for the
# build and, when its nix.conf sets one too, on the builder: two queues
# push the same paths to the same cache. This measures it with two queues
# pushing the same N store paths to one file:// cache, through the real
# binary and nix copy:
#
#   1. one nix copy of the N paths into an empty cache, and again into the
#      full cache (the floors);
#   2. queue A alone: push --wait into an empty cache;
#   3. queue B alone, the same paths, into the cache A filled: the second's
#      cost;
#   4. A and B at once into another empty cache;
#
# then checks that nothing is lost (a narinfo for every path, both queues
# empty) and nothing corrupt (nix store verify of every path in the cache,
# which rehashes each NAR).
#
#   bash bench/twoqueues.sh [--n N] [--into FILE]
#
# Prints a markdown section; with --into, replaces the section between its
# markers in FILE (appending it when absent): bench/run.sh calls it so,
# and BENCHMARKS.md keeps it. Needs go and Nix; run as root or a Nix user.
set -euo pipefail
umask 077

N=1000
INTO=
while [ $# -gt 0 ]; do
	case $1 in
	--n) N=$2; shift ;;
	--into) INTO=$2; shift ;;
	*) echo "usage: bash bench/twoqueues.sh [--n N] [--into FILE]" >&2; exit 2 ;;
	esac
	shift
done
for v in $(compgen -e); do
	case $v in CACHIX_FILTER_HOOK_* | CACHIX_AUTH_TOKEN | OUT_PATHS | DRV_PATH) unset "$v" ;; esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=$(mktemp -d /tmp/cfh-twoqueues.XXXXXX)
chmod 755 "$W" # nix copy reads what it is given
workers() {
	local e pid
	for e in /proc/[0-9]*/environ; do
		pid=${e#/proc/}; pid=${pid%/environ}
		if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -q "^CACHIX_FILTER_HOOK_QUEUE_DIR=$W/"; then
			echo "$pid"
		fi
	done
}
cleanup() {
	local p
	for p in $(workers); do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT

NIX=(nix --extra-experimental-features nix-command --option substituters "")
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$W/cfh" .)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# N small distinct paths, added in one call.
salt=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
mkdir "$W/src"
for i in $(seq "$N"); do printf 'twoqueues %s %d\n' "$salt" "$i" >"$W/src/p$i"; done
mapfile -t P < <(cd "$W/src" && nix-store --add $(seq -f 'p%g' "$N"))
[ "${#P[@]}" = "$N" ] || { echo "twoqueues: added ${#P[@]} paths, want $N" >&2; exit 1; }

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
conf() { # NAME CACHE
	cat >"$W/$1.conf" <<EOF
name = "cache"
store = "file://$W/$2"
allow = ["*"]
[queue]
dir = "$W/$1"
remember_pushed = "0"
linger = "100ms"
EOF
	chmod 600 "$W/$1.conf"
}
push() { # NAME: queue the N paths and wait until they are pushed
	"$W/cfh" --config "$W/$1.conf" push --wait -q --timeout 10m "${P[@]}" >"$W/$1.out" 2>&1
}
uploaded() { # NAME: paths its pushes copied, from nix copy's "copying N paths"
	grep -o 'copying [0-9]* paths' "$W/$1/worker.log" 2>/dev/null | awk '{s += $2} END {print s + 0}'
}
# entries NAME: the entries left in a queue, each a file in entries/ or a
# line of a bulk file in bulk/ (push queues many paths in one bulk file).
entries() {
	local own bulk
	own=$(find "$W/$1/entries" -type f 2>/dev/null | wc -l)
	bulk=$(find "$W/$1/bulk" -type f -exec cat {} + 2>/dev/null | awk 'NF { n++ } END { print n + 0 }')
	echo $((own + bulk))
}

t=$(date +%s%N); "${NIX[@]}" copy --to "file://$W/floor" "${P[@]}" 2>/dev/null; floor_empty=$(ms "$t")
t=$(date +%s%N); "${NIX[@]}" copy --to "file://$W/floor" "${P[@]}" 2>/dev/null; floor_full=$(ms "$t")

conf a cache1; conf b cache1
t=$(date +%s%N); push a; alone=$(ms "$t")
t=$(date +%s%N); push b; second=$(ms "$t")
second_uploaded=$(uploaded b)

conf a2 cache2; conf b2 cache2
t=$(date +%s%N)
(s=$(date +%s%N); push a2; echo $(( ($(date +%s%N) - s) / 1000000 )) >"$W/a2.ms") &
pa=$!
(s=$(date +%s%N); push b2; echo $(( ($(date +%s%N) - s) / 1000000 )) >"$W/b2.ms") &
pb=$!
fail=0
wait "$pa" || fail=1
wait "$pb" || fail=1
both=$(ms "$t")
[ "$fail" = 0 ] || { echo "twoqueues: a concurrent push --wait failed:" >&2; cat "$W/a2.out" "$W/b2.out" >&2; exit 1; }

# Nothing lost, nothing corrupt.
narinfos=$(find "$W/cache2" -maxdepth 1 -name '*.narinfo' | wc -l)
left=$(( $(entries a2) + $(entries b2) + $(entries a) + $(entries b) ))
verify=ok
"${NIX[@]}" store verify --store "file://$W/cache2" --no-trust "${P[@]}" >"$W/verify.log" 2>&1 || verify="FAILED ($(grep -c error "$W/verify.log") errors)"
[ "$narinfos" = "$N" ] && [ "$left" = 0 ] && [ "$verify" = ok ] || {
	echo "twoqueues: narinfos $narinfos of $N, entries left $left, verify $verify" >&2
	exit 1
}

sec() { awk -v m="$1" 'BEGIN {printf "%.2f s", m / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
section=$(cat <<EOF
<!-- twoqueues:begin -->
## Two hooks for one build: two queues, the same $N paths, one cache (issue 23)

Written by \`bash bench/twoqueues.sh --n $N\` (bench/run.sh runs it) on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, load $load_start at start. Each queue is a config of its own with \`store = "file://\$W/CACHE"\`, \`allow = ["*"]\` and \`queue.remember_pushed = "0"\` (no record of pushed paths, as on two machines); each measurement is one \`cachix-filter-hook push --wait\` of the $N paths (added with \`nix-store --add\`), from the command to the end of the wait.

| | measured |
|---|---|
| one \`nix copy\` of the $N paths into an empty \`file://\` cache (floor) | $(sec "$floor_empty") |
| the same \`nix copy\` again, the cache full (floor of the second) | $(sec "$floor_full") |
| queue A alone, empty cache | $(sec "$alone") ($(ratio "$alone" "$floor_empty") the floor) |
| queue B alone, the same paths, the cache A filled: the second's cost | $(sec "$second") ($(ratio "$second" "$alone") queue A's), $second_uploaded paths uploaded |
| A and B at once, an empty cache: both done | $(sec "$both") ($(ratio "$both" "$alone") one queue alone); A $(sec "$(cat "$W/a2.ms")"), B $(sec "$(cat "$W/b2.ms")"); paths uploaded by A $(uploaded a2), by B $(uploaded b2) |
| lost: narinfos in the cache, entries left in the queues | $narinfos of $N, $left |
| corrupt: \`nix store verify --store file://\$W/cache2 --no-trust\` of the $N paths (rehashes each NAR) | $verify |

nix copy asks the cache for each path's narinfo first and uploads only what is missing, as cachix push does: the second queue costs those queries, not an upload. Two at once may both upload a path neither found yet ("paths uploaded" above); a file:// cache writes each file under a temporary name and renames it, so the cache stays whole either way.
<!-- twoqueues:end -->
EOF
)
echo "$section"
if [ -n "$INTO" ]; then
	if grep -q '<!-- twoqueues:begin -->' "$INTO" 2>/dev/null; then
		awk -v new="$section" '
			/<!-- twoqueues:begin -->/ {print new; skip = 1; next}
			/<!-- twoqueues:end -->/ {skip = 0; next}
			!skip' "$INTO" >"$W/into" && cat "$W/into" >"$INTO"
	else
		printf '\n%s\n' "$section" >>"$INTO"
	fi
fi
