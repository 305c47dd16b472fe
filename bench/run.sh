#!/usr/bin/env bash
# bench/run.sh [--smoke] [--out FILE] [--results FILE] (`make bench`): the
# benchmarks whose figures fill BENCHMARKS.md's tables (BENCHMARKS.md says
# what each measures and how). --smoke: tiny counts into a copy (.ci/run).
# PEERS=DIR also measures queued-build-hook and niks3-hook (bench/peers.sh).
set -euo pipefail
umask 077 # queue directories must be their user's own

MODE=full OUT= KEEP=
while [ $# -gt 0 ]; do
	case $1 in --smoke) MODE=smoke ;; --out) OUT=$2 && shift ;; --results) KEEP=$2 && shift ;;
	*) echo "usage: bash bench/run.sh [--smoke] [--out FILE] [--results FILE]" >&2; exit 2 ;; esac
	shift
done
for v in $(compgen -e); do # a CI runner's settings stay out
	case $v in CACHIX_FILTER_HOOK_* | CACHIX_STANDIN_* | CACHIX_AUTH_TOKEN | CACHIX_SIGNING_KEY | OUT_PATHS | DRV_PATH) unset "$v" ;; esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
START=$(date +%s)

if [ "$MODE" = full ]; then
	RUNS=300 WARMUP=20 PATHS_N=520 DEPTHS="0 1000 100000" CONC=500 DRAIN_N=500
	BUILD_N=100 BUILD_REPS=7 NAIVE_N=20 PEER_REPS=3
	CLOSURE_N=10000 PUSH_RUNS=7 SCALE_REPS=7 BIG_N=100000 BIG_RUNS=3 RSS_N=100000 RECORD_N=100000
	BT_DECIDE=1s BT_ADD=2000x BT_PHASE=20x BT_SCAN=10x INIT_RUNS=30 TWOQ_N=1000
	: "${OUT:=$ROOT/BENCHMARKS.md}"
else
	RUNS=5 WARMUP=1 PATHS_N=70 DEPTHS="0 100 1000" CONC=64 DRAIN_N=20
	BUILD_N=5 BUILD_REPS=1 NAIVE_N=2 PEER_REPS=1
	CLOSURE_N=500 PUSH_RUNS=2 SCALE_REPS=1 BIG_N=1000 BIG_RUNS=1 RSS_N=1000 RECORD_N=1000
	BT_DECIDE=100x BT_ADD=20x BT_PHASE=1x BT_SCAN=1x INIT_RUNS=2 TWOQ_N=50
	: "${OUT:=$(mktemp /tmp/BENCHMARKS.smoke.XXXXXX.md)}"
	cp BENCHMARKS.md "$OUT"
fi
DELAY=1s # each push through the cachix stand-in sleeps this long first

missing=
for p in nix-build:nix-bin jq:jq hyperfine:hyperfine /usr/bin/time:time; do
	command -v "${p%%:*}" >/dev/null || missing="$missing ${p#*:}"
done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
for t in go nix-build nix jq hyperfine /usr/bin/time; do command -v "$t" >/dev/null || { echo "bench: $t is required" >&2; exit 1; }; done

W=$(mktemp -d /tmp/cfh-bench.XXXXXX)
chmod 755 "$W" # the store reads what nix copy is given
mkdir -p "$W/bin" "$W/conf" "$W/logs"
R=$W/results.tsv
: >"$R"
# workers: the workers this run's hooks started, by their queue directory.
workers() { grep -lsz "^CACHIX_FILTER_HOOK_QUEUE_DIR=$W/" /proc/[0-9]*/environ | cut -d/ -f3 || true; }
cleanup() {
	local st=$?
	[ ! -s "$W/peer.pids" ] || kill $(cat "$W/peer.pids") 2>/dev/null || true
	kill -9 $(workers) 2>/dev/null || true
	rm -rf "$W"
	exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== [%4d s] %s\n' $(($(date +%s) - START)) "$*" >&2; }
put() { printf '%s\t%s\n' "$1" "$2" >>"$R"; }
now() { date +%s%N; }
secs() { echo "$1 $2" | awk '{printf "%.3f", ($2 - $1) / 1e9}'; }
tm() { # tm KEY CMD...: the wall seconds of CMD as KEY; its status
	local k=$1 t0=$(now) st=0
	shift
	"$@" || st=$?
	put "$k" "$(secs "$t0" "$(now)")"
	return $st
}
fail() { echo "bench: $*" >&2; exit 1; }
# hf SERIES HYPERFINE-ARGS...: hyperfine without a shell; each command's
# median, σ and runs go in as SERIES/NAME.* The runs (--runs N) go in two
# halves, one with the commands in reverse order, and each
# command's runs of both are taken together: hyperfine runs every run of
# one command before the next command's, so a load that came and went
# during a series fell on whichever command ran then (bench29: this
# hook's 300 runs, first after the floor, 0.13 ms behind a peer whose
# runs came later, where the run's other series had it 30% ahead).
hf() {
	local s=$1 opts=() pairs=() fwd=() rev=() runs=0 i
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		-n) pairs+=("$2" "$3") && shift 3 ;;
		--runs) runs=$2 && shift 2 ;;
		*) opts+=("$1") && shift ;;
		esac
	done
	for ((i = 0; i < ${#pairs[@]}; i += 2)); do
		fwd+=(-n "${pairs[i]}" "${pairs[i + 1]}")
		rev=(-n "${pairs[i]}" "${pairs[i + 1]}" "${rev[@]}")
	done
	# The reversed half first: the last run of the series is still the
	# last command's, as the checks after a series expect.
	local log=$W/logs/hf-$s.log ra=() b=$((runs / 2))
	[ "$runs" -eq 0 ] || ra=(--runs "$((runs - b))")
	: >"$log"
	if [ "$b" -gt 0 ]; then
		hyperfine -N --style basic --export-json "$W/hf-$s.b.json" "${opts[@]}" --runs "$b" "${rev[@]}" >>"$log" 2>&1 || { tail -30 "$log" >&2; fail "hyperfine $s (reversed)"; }
	else
		echo '{"results": []}' >"$W/hf-$s.b.json"
	fi
	hyperfine -N --style basic --export-json "$W/hf-$s.a.json" "${opts[@]}" "${ra[@]}" "${fwd[@]}" >>"$log" 2>&1 || { tail -30 "$log" >&2; fail "hyperfine $s"; }
	# Both halves' runs of each command, in the given order.
	jq -s '{results: [.[1].results as $b | .[0].results[] | . as $x | ([$b[] | select(.command == $x.command)][0] // {times: [], user: 0, system: 0}) as $y |
		($x.times + $y.times) as $t | ($t | length) as $n | ($t | sort) as $o | ($t | add / $n) as $m | {command: $x.command, times: $t,
		median: (if $n % 2 == 1 then $o[($n - 1) / 2 | floor] else ($o[$n / 2 - 1] + $o[$n / 2]) / 2 end), mean: $m,
		stddev: (if $n > 1 then ($t | map((. - $m) * (. - $m)) | add / ($n - 1) | sqrt) else 0 end),
		user: (($x.user * ($x.times | length) + $y.user * ($y.times | length)) / $n),
		system: (($x.system * ($x.times | length) + $y.system * ($y.times | length)) / $n)}]}' \
		"$W/hf-$s.a.json" "$W/hf-$s.b.json" >"$W/hf-$s.json"
	jq -r --arg s "$s" '"\($s).names\t\([.results[].command] | join("|"))", (.results[] | "\($s)/\(.command)" as $k |
		"\($k).median\t\(.median)", "\($k).sd\t\(.stddev // 0)", "\($k).runs\t\(.times | length)", "\($k).cpu\t\(.user + .system)",
		"\($k).p99\t\(.times | sort | .[length * 0.99 | floor])")' "$W/hf-$s.json" >>"$R"
}
# hold QUEUE...: hold the queues' worker locks, as a busy worker does
# (the hook only probes the lock), until unhold.
hold() {
	exec {HOLDFD}< <(exec "$BT" holdlock -queue "$(IFS=,; echo "$*")")
	HOLDPID=$!
	echo "$HOLDPID" >>"$W/peer.pids"
	read -r -t 60 -u "$HOLDFD" _ || fail "holdlock $*: no lock after 60 s"
	! "$BT" holdlock -queue "$1" -- true 2>/dev/null || fail "holdlock $*: said held, but $1/lock is free"
}
unhold() { kill "$HOLDPID"; wait "$HOLDPID" 2>/dev/null || true; exec {HOLDFD}<&-; }
# rss KEY N CMD...: the median peak RSS (KiB) of N runs (GNU time), the
# probe's entry removed before each, so that each hook run queues anew.
rss() {
	local k=$1 n=$2 i
	shift 2
	for i in $(seq 1 "$n"); do
		rm -f "$W/q-probe/entries/$KEY0"
		/usr/bin/time -f %M -o "$W/rss" "$@" >/dev/null 2>&1 || true
		tail -1 "$W/rss"
	done | sort -n | awk -v k="$k" '{a[NR] = $1} END {printf "%s\t%s\n", k, a[int((NR + 1) / 2)]}' >>"$R"
}
# gobench PKG REGEX BENCHTIME: each metric of each benchmark as
# gobench/PACKAGE/NAME.UNIT.
gobench() {
	go test -run NONE -bench "$2" -benchtime "$3" "./$1" | tee -a "$W/logs/gobench.log" |
		awk -v p="${1##*/}" '/^Benchmark/ {n = $1; sub(/-[0-9]+$/, "", n); for (i = 3; i < NF; i += 2) printf "gobench/%s/%s.%s\t%s\n", p, n, $(i + 1), $i}' >>"$R"
}
entries() { # the pairs queued in a queue directory (files and bulk lines)
	{ ls "$1/entries" 2>/dev/null; cat "$1"/bulk/* 2>/dev/null; } | grep -c . || true
}
narinfos() { find "$1" -maxdepth 1 -name '*.narinfo' 2>/dev/null | wc -l; }
idle() { # QUEUE: until no worker holds its lock (60 s at most)
	for _ in $(seq 1 1200); do "$BT" holdlock -queue "$1" -- true 2>/dev/null && return 0; sleep 0.05; done
	fail "a worker still holds $1/lock after 60 s"
}
# inittrace NAME CMD...: GODEBUG=inittrace=1 over INIT_RUNS runs: when the
# last package init ends, the time in init functions, the costliest ones.
inittrace() {
	local k=$1 i
	shift
	for i in $(seq 1 "$INIT_RUNS"); do
		rm -f "$W/q-probe/entries/$KEY0"
		GODEBUG=inittrace=1 "$@" 2>&1 >/dev/null | awk '$1 == "init" {print $2, substr($3, 2), $5}' | tee -a "$W/init-$k" >"$W/init"
		awk -v k="init/$k/$i" '{e = $2 + $3; if (e > end) end = e; c += $3} END {printf "%s.end\t%s\n%s.clock\t%s\n%s.pkgs\t%d\n", k, end / 1e3, k, c / 1e3, k, NR}' "$W/init" >>"$R"
	done
	put "init/$k.top" "$(awk -v n="$INIT_RUNS" '{t[$1] += $3 / n} END {for (p in t) printf "%.3f %s\n", t[p], p}' "$W/init-$k" | sort -rn | head -8 | awk '{printf "%s`%s` %s ms", (NR > 1 ? ", " : ""), $2, $1}')"
}

say "machine"
while IFS='=' read -r k v; do put "fact.$k" "$v"; done <<EOF
mode=$MODE
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
nproc=$(nproc)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
memory=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -sr)
fs=$(df -PT "$W" | awk 'NR == 2 {print $2 " on " $1}')
nix=$(nix --version)
go=$(go version)
hyperfine=$(hyperfine --version)
commit=$(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo ' + changes')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
EOF

say "building"
CGO_ENABLED=0 go build -trimpath -o "$W/bin/cachix-filter-hook" .
CGO_ENABLED=0 go build -trimpath -o "$W/bin/floor" ./bench/floor
CGO_ENABLED=0 go build -trimpath -o "$W/bin/cachix" ./test/cachix-standin
go build -o "$W/bin/benchtool" ./bench/benchtool
CFH=$W/bin/cachix-filter-hook FLOOR=$W/bin/floor BT=$W/bin/benchtool
echo bench-token >"$W/conf/token"
put fact.size_hook "$(stat -c %s "$CFH")"

say "prebuilding $PATHS_N store paths for the hooks to queue"
SALT=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
NIXOPTS=(--option substituters "")
nix-instantiate bench/drvs.nix --argstr salt "$SALT" --arg n "$PATHS_N" --argstr prefix benchpath >"$W/drvs.txt" 2>/dev/null
nix-build bench/drvs.nix --argstr salt "$SALT" --arg n "$PATHS_N" --argstr prefix benchpath --no-out-link "${NIXOPTS[@]}" --option post-build-hook "" >/dev/null 2>&1
xargs nix-store --query --outputs <"$W/drvs.txt" >"$W/outs.txt"
[ "$(wc -l <"$W/outs.txt")" -eq "$PATHS_N" ] || fail "expected $PATHS_N paths"
P0=$(head -1 "$W/outs.txt") D0=$(head -1 "$W/drvs.txt")
KEY0=$(basename "$P0" | cut -c1-32).$(printf benchcache | sha256sum | cut -c1-12) # queue.Key(benchcache, P0)

# conf NAME QUEUE [LINGER [MORE]]: a hook.conf shaped like hook.conf.example,
# with a second target that selects none of the benchmark's paths.
conf() {
	cat >"$W/conf/$1.conf" <<EOF
cache = "benchcache"
allow = ["benchpath-*", "benchpkg-*"]
deny  = ["*-doc", "*-man"]
[[target]]
store = "file://$W/other-cache"
name = "other"
allow = ["openc910-*"]
[cachix]
bin = "$W/bin/cachix"
auth_token_file = "$W/conf/token"
[queue]
dir = "$2"
linger = "${3:-3s}"
${4:-}
EOF
}
export CACHIX_STANDIN_ROOT=$W/standin
# Nix as the product runs it (nix.bin_dir), through a wrapper that logs
# each call's start and end (ns) and command: pusher calls are its `nix
# ... copy` lines. The floors run Nix directly, so the wrapper forks
# nothing but Nix: one that ran date twice and a pipe to cut added 23.5
# ms to each call against 8.4 ms now (hyperfine -N, `nix-store
# --version`, 30 runs), three calls a drain round charged to push alone.
mkdir -p "$W/nixwrap"
NIXLOG=$W/logs/nix-calls.log && : >"$NIXLOG"
for t in nix nix-store; do
	printf '#!/bin/bash\nt0=${EPOCHREALTIME//[.,]/}\n%s "$@"\nst=$?\na="$*"\necho "${t0}000 ${EPOCHREALTIME//[.,]/}000 %s ${a:0:200} " >>%s\nexit $st\n' "$(command -v $t)" "$t" "$NIXLOG" >"$W/nixwrap/$t"
	chmod 755 "$W/nixwrap/$t"
done
copies() { grep -c '^[0-9]* [0-9]* nix .* copy ' "$NIXLOG" || true; }
NIXJ=(nix --extra-experimental-features nix-command)
# scale_conf NAME QUEUE CACHE [ALLOW [MORE]]: one file:// target, every
# other key at its default (or set in MORE, lines of [queue]); Nix through
# the logging wrapper, or with BARE=1 the Nix on PATH, as the floors run it.
scale_conf() {
	local nix="[nix]\nbin_dir = \"$W/nixwrap\"\n"
	[ -z "${BARE:-}" ] || nix=
	printf 'store = "file://%s"\nname = "scale"\nallow = [%s]\n%b[queue]\ndir = "%s"\n%s\n' \
		"$3" "${4:-"\"benchclos-*\", \"benchbig-*\", \"benchfill-*\""}" "$nix" "$2" "${5:-}" >"$W/conf/$1.conf"
}

say "1. hook latency: $RUNS runs each beside the floor (hyperfine)"
conf probe "$W/q-probe"
HF=(--warmup "$WARMUP" --runs "$RUNS")
conf drv "$W/q-drv"
hold "$W/q-probe" "$W/q-drv"
export OUT_PATHS=$P0 CACHIX_FILTER_HOOK_CONFIG=$W/conf/probe.conf
hf lat "${HF[@]}" --prepare "rm -f $W/q-probe/entries/$KEY0" -n floor "$FLOOR" -n version "$CFH version" -n hook "$CFH"
[ -e "$W/q-probe/entries/$KEY0" ] || fail "the hook queued nothing"
for c in "floor:$FLOOR" "version:$CFH version" "hook:$CFH"; do rss "rss/${c%%:*}" "$RUNS" ${c#*:}; done
[ -e "$W/q-probe/entries/$KEY0" ] || fail "the hook queued nothing under GNU time"
inittrace hook "$CFH"
inittrace floor "$FLOOR"
go list -deps . | sort >"$W/deps" && go list -deps ./bench/floor | sort >"$W/deps-floor"
put deps/hook "$(wc -l <"$W/deps")" && put deps/floor "$(wc -l <"$W/deps-floor")" && put deps/extra "$(comm -23 "$W/deps" "$W/deps-floor" | wc -l)"
put deps/http "$(comm -23 "$W/deps" "$W/deps-floor" | comm -12 - <(go list -deps net/http | sort) | wc -l)"
OUT_PATHS= DRV_PATH=$D0 CACHIX_FILTER_HOOK_CONFIG=$W/conf/drv.conf hf drv "${HF[@]}" --prepare "rm -f $W/q-drv/entries/$KEY0" -n floor "$FLOOR" -n hook "$CFH"
[ -e "$W/q-drv/entries/$KEY0" ] || fail "the hook run as Nix 2.8 runs it queued nothing"
unhold
conf spawn "$W/q-spawn" 0s "remember_pushed = \"0\""
CACHIX_FILTER_HOOK_CONFIG=$W/conf/spawn.conf CACHIX_STANDIN_DELAY=0s hf spawn "${HF[@]}" --prepare "sh -c 'until $BT holdlock -queue $W/q-spawn -- true 2>/dev/null; do sleep 0.01; done; rm -f $W/q-spawn/entries/$KEY0'" -n floor "$FLOOR" -n hook "$CFH"
unset OUT_PATHS CACHIX_FILTER_HOOK_CONFIG
idle "$W/q-spawn"
put spawn/pushes "$(grep -c . "$W/standin/invocations.jsonl" || true)"
[ "$(entries "$W/q-spawn")" -eq 0 ] && [ "$(narinfos "$W/standin/benchcache")" -eq 1 ] || fail "the spawned workers did not push $P0"

say "2. hook latency against queue depth ($DEPTHS) and against a record of $RECORD_N pushed paths"
QS=() NAMES=() PREP="rm -f"
for d in $DEPTHS; do
	conf "depth-$d" "$W/q-depth-$d"
	"$BT" fill -config "$W/conf/depth-$d.conf" -target benchcache -n "$d"
	QS+=("$W/q-depth-$d") NAMES+=(-n "depth=$d" "$CFH --config $W/conf/depth-$d.conf") PREP="$PREP $W/q-depth-$d/entries/$KEY0"
done
conf rec0 "$W/q-rec0"
conf recN "$W/q-recN"
put record/paths "$("$BT" fill -record -config "$W/conf/recN.conf" -target benchcache -n "$RECORD_N")"
hold "${QS[@]}" "$W/q-rec0" "$W/q-recN"
OUT_PATHS=$P0 hf depth "${HF[@]}" --prepare "$PREP $W/q-rec0/entries/$KEY0 $W/q-recN/entries/$KEY0" -n floor "$FLOOR" "${NAMES[@]}" \
	-n record=0 "$CFH --config $W/conf/rec0.conf" -n "record=$RECORD_N" "$CFH --config $W/conf/recN.conf"
unhold
for d in $DEPTHS; do # each run's entry removed before the next: the depth stayed
	[ "$(entries "$W/q-depth-$d")" -eq "$d" ] || fail "depth $d: the queue holds $(entries "$W/q-depth-$d") entries, want $d"
done
put fact.deepest "${DEPTHS##* }"

say "3. in process (testing.B): decisions, enqueueing, the phases of a closure"
gobench internal/filter 'Decide$' "$BT_DECIDE"
gobench internal/queue 'Add$' "$BT_ADD"
gobench internal/queue 'AddBulk|ApplyDone|ReadBulk' "$BT_PHASE"
gobench internal/history 'Append|Follow' "$BT_PHASE"
gobench internal/pushed 'Add$' "$BT_PHASE"
gobench internal/nixstore 'DecodePathInfo' "$BT_PHASE"
gobench internal/worker 'DrainClosure' "$BT_PHASE"
gobench internal/hook 'SiblingScan302$' "$BT_SCAN"

say "4. enqueue rate ($CONC hook processes, K at a time) and drain rate ($DRAIN_N paths)"
conf conc "$W/q-conc"
for k in 1 8 64; do
	rm -rf "$W/q-conc/entries"
	head -"$CONC" "$W/outs.txt" >"$W/conc.txt"
	CACHIX_FILTER_HOOK_CONFIG=$W/conf/conc.conf tm "conc/$k.s" "$BT" holdlock -queue "$W/q-conc" -- xargs -a "$W/conc.txt" -P "$k" -I{} env OUT_PATHS={} "$CFH" >/dev/null 2>&1
	[ "$(entries "$W/q-conc")" -eq "$CONC" ] || fail "$k at a time: $(entries "$W/q-conc") of $CONC queued"
done
scale_conf drain "$W/q-drain" "$W/drain-cache" '"benchpath-*"' 'linger = "0s"'
"$BT" holdlock -queue "$W/q-drain" -- "$CFH" --config "$W/conf/drain.conf" push $(head -"$DRAIN_N" "$W/outs.txt") >/dev/null
tm drain/s "$CFH" --config "$W/conf/drain.conf" worker --once >"$W/logs/drain.log" 2>&1
[ "$(narinfos "$W/drain-cache")" -eq "$DRAIN_N" ] && [ "$(entries "$W/q-drain")" -eq 0 ] || fail "drain: $(narinfos "$W/drain-cache") of $DRAIN_N in the cache"
put drain/calls "$(grep -c 'msg=pushed' "$W/q-drain/worker.log")"

say "5. scale: a closure of $CLOSURE_N paths, $BIG_N outputs in one hook run, $RSS_N entries in the worker"
ROOTC=$(nix-instantiate --eval --read-write-mode bench/closure.nix --arg n "$CLOSURE_N" --argstr tag v1 2>/dev/null | tr -d '"')
[ "$(nix-store --query --requisites "$ROOTC" | wc -l)" -eq "$CLOSURE_N" ] || fail "the closure is not $CLOSURE_N paths"
for k in CLOSURE_N BIG_N BUILD_N CONC DRAIN_N NAIVE_N RECORD_N; do put "n.$k" "${!k}"; done
# push's Nix runs bare here, as the floors' does: the wrapper's forks
# (date, cut) would count against push alone.
BARE=1 scale_conf first "$W/q-first" "$W/cache-first"
hold "$W/q-first"
hf closure --warmup 1 --runs "$PUSH_RUNS" --prepare "rm -rf $W/q-first/entries $W/q-first/bulk" -n floor "$FLOOR" -n requisites "nix-store --query --requisites $ROOTC" \
	-n path-info "${NIXJ[*]} path-info --recursive --json $ROOTC" -n push "$CFH --config $W/conf/first.conf push --closure $ROOTC"
unhold
[ "$(entries "$W/q-first")" -eq "$CLOSURE_N" ] || fail "push --closure queued $(entries "$W/q-first") of $CLOSURE_N"
# walkcopy is the least any tool that decides before it copies can take:
# Nix's closure query (what push --closure cannot do without), then the
# copy, which walks the closure again itself.
walkcopy() { nix-store --query --requisites "$ROOTC" >/dev/null && "${NIXJ[@]}" copy --to "file://$1" "$ROOTC" 2>/dev/null; }
WAYS3=(floor walk cfh)
for r in $(seq 1 "$SCALE_REPS"); do
	# Each side goes first, second and last in turn.
	for i in 0 1 2; do
		way=${WAYS3[$(((i + r - 1) % 3))]}
		# Every side starts alike: a cache directory never used, and no
		# dirty pages of the step before. Deleting a cache just written
		# and copying into its place took 9-14 s where a fresh one took
		# 7-8.7 s (ext4 mounted with discard), which flattered push.
		sync
		if [ "$way" = floor ]; then
			tm "copy/$r.s" "${NIXJ[@]}" copy --to "file://$W/cache-floor-$r" "$ROOTC" 2>/dev/null
			[ "$(narinfos "$W/cache-floor-$r")" -eq "$CLOSURE_N" ] || fail "nix copy wrote $(narinfos "$W/cache-floor-$r") narinfos"
			continue
		fi
		if [ "$way" = walk ]; then
			tm "walkcopy/$r.s" walkcopy "$W/cache-walk-$r"
			[ "$(narinfos "$W/cache-walk-$r")" -eq "$CLOSURE_N" ] || fail "nix copy after the query wrote $(narinfos "$W/cache-walk-$r") narinfos"
			continue
		fi
		scale_conf "scale-$r" "$W/q-scale-$r" "$W/cache-scale-$r"
		before=$(copies) n0=$(wc -l <"$NIXLOG")
		t0=$(now)
		"$CFH" --config "$W/conf/scale-$r.conf" push --closure "$ROOTC" >/dev/null
		t1=$(now)
		# The wall time any of push's Nix processes ran: a big closure
		# is walked by several at once.
		put "drainr/$r.pushnix" "$(tail -n +$((n0 + 1)) "$NIXLOG" | sort -n | awk '$1 > e {s += e - b; b = $1} $2 > e {e = $2} END {printf "%.3f", (s + e - b) / 1e9}')"
		"$CFH" --config "$W/conf/scale-$r.conf" wait --timeout 600s >/dev/null 2>&1
		put "drainr/$r.s" "$(secs "$t0" "$(now)")"
		put "drainr/$r.push" "$(secs "$t0" "$t1")"
		put "drainr/$r.calls" "$(($(copies) - before))"
		[ "$(narinfos "$W/cache-scale-$r")" -eq "$CLOSURE_N" ] && [ "$(entries "$W/q-scale-$r")" -eq 0 ] || fail "round $r: $(narinfos "$W/cache-scale-$r") in the cache"
		idle "$W/q-scale-$r"
		log=$W/q-scale-$r/worker.log
		grep 'msg=pushed' "$log" | head -1 | tr ' ' '\n' | grep -E '^(query|waited|duration|written|recorded|roots|paths)=' | sed "s/=/\t/; s/^/drainr\/$r./" >>"$R"
		put "drainr/$r.loglines" "$(grep -c . "$log")"
		put "drainr/$r.logbytes" "$(stat -c %s "$log")"
	done
done
Q=$W/q-scale-$SCALE_REPS
before=$(copies)
hf again --warmup 1 --runs "$PUSH_RUNS" -n floor "$FLOOR" -n requisites "nix-store --query --requisites $ROOTC" -n push "$CFH --config $W/conf/scale-$SCALE_REPS.conf push --closure $ROOTC"
put again/queued "$(entries "$Q")"
"$CFH" --config "$W/conf/scale-$SCALE_REPS.conf" wait --timeout 600s >/dev/null 2>&1
put again/calls "$(($(copies) - before))"

BIG=$(nix-instantiate bench/bigdrv.nix --arg n "$BIG_N" --argstr tag v1 2>/dev/null | sed 's/!.*//')
[ "$(nix-store --query --outputs "$BIG" | wc -l)" -eq "$BIG_N" ] || fail "$BIG has not $BIG_N outputs"
nix-store --query --outputs "$BIG" | awk -v max=131061 '{if (n + length($0) + 1 > max) exit; n += length($0) + 1; printf "%s ", $0}' >"$W/outmax.txt"
put big/outmax "$(wc -w <"$W/outmax.txt")"
for i in $(seq 1 "$BIG_RUNS"); do
	for k in big outmax; do
		scale_conf big "$W/q-big" "$W/cache-big"
		out=$([ $k = big ] || cat "$W/outmax.txt")
		OUT_PATHS=$out DRV_PATH=$BIG CACHIX_FILTER_HOOK_CONFIG=$W/conf/big.conf tm "$k/$i.s" "$BT" holdlock -queue "$W/q-big" -- "$CFH" >/dev/null 2>&1 || put "$k/$i.exit" $?
		put "$k/$i.queued" "$(entries "$W/q-big")"
		rm -rf "$W/q-big"
	done
done

scale_conf rss "$W/q-rss" "$W/cache-rss"
for k in empty full; do
	[ $k = empty ] || "$BT" fill -config "$W/conf/rss.conf" -target scale -n "$RSS_N"
	/usr/bin/time -f '%M %e' -o "$W/t" "$CFH" --config "$W/conf/rss.conf" worker --once >/dev/null 2>&1 || true
	read -r kb s < <(tail -1 "$W/t") && put "rss/$k.kb" "$kb" && put "rss/$k.s" "$s"
done
put rss/left "$(entries "$W/q-rss")"
put rss/dropped "$(ls "$W/q-rss/dropped" | wc -l)"
put rss/loglines "$(grep -c . "$W/q-rss/worker.log")"
scale_conf empty "$W/q-empty" "$W/cache-rss"
hf status --warmup 2 --runs 20 -n floor "$FLOOR" -n "status, dropped/ empty" "$CFH --config $W/conf/empty.conf status" -n "status, $(ls "$W/q-rss/dropped" | wc -l) dropped" "$CFH --config $W/conf/rss.conf status"

say "6. build loop: $BUILD_N salted derivations, --max-jobs 1, $BUILD_REPS rounds"
export BENCH_CACHIX=$W/bin/cachix BENCH_CACHE=benchcache
build() { # build KEY HOOK [HOLD]: time one nix-build of BUILD_N new derivations
	local salt=${BUILD_SALT:-} hold=()
	[ -n "$salt" ] || salt=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
	[ -z "${3:-}" ] || hold=("$BT" holdlock -queue "$3" --)
	tm "$1.s" "${hold[@]}" nix-build bench/drvs.nix --argstr salt "$salt" --arg n "$BUILD_N" --argstr prefix benchpkg \
		--no-out-link --max-jobs 1 "${NIXOPTS[@]}" --option post-build-hook "$2" >"$W/logs/build.log" 2>&1 || { tail "$W/logs/build.log" >&2; fail "build $1"; }
}
WAYS=(none floor cfh held)
for rep in $(seq 1 "$BUILD_REPS"); do
	for i in 0 1 2 3; do
		case ${WAYS[$(((i + rep) % 4))]} in
		none) build "loop/none/$rep" "" ;;
		floor) build "loop/floor/$rep" "$FLOOR" ;;
		held)
			conf "held-$rep" "$W/q-held-$rep"
			CACHIX_FILTER_HOOK_CONFIG=$W/conf/held-$rep.conf build "loop/held/$rep" "$CFH" "$W/q-held-$rep"
			[ "$(entries "$W/q-held-$rep")" -eq "$BUILD_N" ] || fail "held: $(entries "$W/q-held-$rep") queued"
			;;
		cfh)
			conf "build-$rep" "$W/q-build-$rep"
			export CACHIX_FILTER_HOOK_CONFIG=$W/conf/build-$rep.conf CACHIX_STANDIN_ROOT=$W/standin-$rep CACHIX_STANDIN_DELAY=$DELAY
			build "loop/cfh/$rep" "$CFH"
			tm "loop/wait/$rep.s" "$CFH" wait --timeout 600s >/dev/null 2>&1
			unset CACHIX_FILTER_HOOK_CONFIG CACHIX_STANDIN_DELAY
			put "loop/calls/$rep" "$(wc -l <"$W/standin-$rep/invocations.jsonl")"
			n=$(jq -s '[.[] | select(.exit == 0) | .paths | length] | add' "$W/standin-$rep/invocations.jsonl")
			[ "$(narinfos "$W/standin-$rep/benchcache")" -eq "$BUILD_N" ] && [ "$n" -eq "$BUILD_N" ] || fail "cfh: $n paths pushed, $(narinfos "$W/standin-$rep/benchcache") in the cache"
			idle "$W/q-build-$rep"
			put "loop/loglines/$rep" "$(grep -c . "$W/q-build-$rep/worker.log")"
			;;
		esac
	done
done
for way in naive-sync naive-bg; do
	CACHIX_STANDIN_ROOT=$W/standin-$way CACHIX_STANDIN_DELAY=$DELAY CACHIX_AUTH_TOKEN=bench-token BUILD_N=$NAIVE_N build "loop/$way/1" "$ROOT/bench/hooks/$way.sh"
	put "loop/$way/calls" "$(wc -l <"$W/standin-$way/invocations.jsonl")"
	[ "$(narinfos "$W/standin-$way/benchcache")" -eq "$NAIVE_N" ] || fail "$way: $(narinfos "$W/standin-$way/benchcache") of $NAIVE_N in the cache"
done

say "7. two queues pushing the same $TWOQ_N paths to one file:// cache, alone and at once (issue 23)"
mkdir "$W/twoq"
for i in $(seq 1 "$TWOQ_N"); do echo "twoqueues $SALT $i" >"$W/twoq/p$i"; done
mapfile -t TQ < <(cd "$W/twoq" && nix-store --add $(seq -f 'p%g' "$TWOQ_N"))
[ "${#TQ[@]}" -eq "$TWOQ_N" ] || fail "twoqueues: ${#TQ[@]} paths added, want $TWOQ_N"
for q in a:tq1 b:tq1 a2:tq2 b2:tq2; do # QUEUE:CACHE, no record of pushed paths, as on two machines
	scale_conf "${q%:*}" "$W/q-${q%:*}" "$W/${q#*:}" '"*"' $'remember_pushed = "0"\nlinger = "100ms"'
done
tqpush() { tm "twoq/$1.s" "$CFH" --config "$W/conf/$1.conf" push --wait -q --timeout 10m "${TQ[@]}" >"$W/logs/twoq-$1.log" 2>&1 || fail "push --wait $1: $(tail -3 "$W/logs/twoq-$1.log")"; }
tm twoq/floor.s "${NIXJ[@]}" copy --to "file://$W/tq-floor" "${TQ[@]}" 2>/dev/null
tm twoq/floorfull.s "${NIXJ[@]}" copy --to "file://$W/tq-floor" "${TQ[@]}" 2>/dev/null
tqpush a
tqpush b
t0=$(now)
tqpush a2 & pa=$!
tqpush b2 & pb=$!
wait "$pa" && wait "$pb" || fail "twoqueues: a push --wait at once failed"
put twoq/both.s "$(secs "$t0" "$(now)")"
for q in a b a2 b2; do put "twoq/$q.uploaded" "$(grep -o 'copying [0-9]* paths' "$W/q-$q/worker.log" | awk '{s += $2} END {print s + 0}')"; done
left=$(($(entries "$W/q-a") + $(entries "$W/q-b") + $(entries "$W/q-a2") + $(entries "$W/q-b2")))
[ "$left" -eq 0 ] && [ "$(narinfos "$W/tq1")" -eq "$TWOQ_N" ] && [ "$(narinfos "$W/tq2")" -eq "$TWOQ_N" ] || fail "twoqueues: $left entries left, $(narinfos "$W/tq2") of $TWOQ_N in the cache"
"${NIXJ[@]}" store verify --store "file://$W/tq2" --no-trust "${TQ[@]}" >"$W/logs/verify.log" 2>&1 || fail "twoqueues: nix store verify: $(tail -3 "$W/logs/verify.log")"
put twoq/n "$TWOQ_N"

if [ -n "${PEERS:-}" ]; then
	. bench/peers.sh
else
	put fact.peers ""
fi

say "report"
put workers_left "$(workers | grep -c . || true)"
put fact.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
put fact.elapsed "$(($(date +%s) - START))"
[ -z "$KEEP" ] || cp "$R" "$KEEP"
"$BT" report -results "$R" -doc "$OUT"
echo "bench: filled the tables of $OUT ($MODE mode, $(($(date +%s) - START)) s)" >&2
