#!/usr/bin/env bash
# bench/run.sh: the benchmarks of issue 6 (`make bench`).
#
#   bash bench/run.sh            full run (about 6 minutes on 2 cores): rewrites BENCHMARKS.md
#   bash bench/run.sh --smoke    tiny counts (under a minute), writes a temp
#                                file instead; fails if any step fails (.ci/run)
#   bash bench/run.sh --out F    write the report to F
#   bash bench/run.sh --results F   also keep the raw results (JSON lines) in F
#   PEERS=DIR bash bench/run.sh  also measure the peers (section 7): DIR holds
#                                queued-build-hook and niks3-hook, built from
#                                their sources outside this repository
#                                (make bench PEERS=DIR)
#
# Needs: go, Nix (nix-build, nix-store, nix), jq; as root on Debian it
# installs what is missing. Uses when present:
# /usr/bin/time (peak RSS; else getrusage, see benchtool/exec.go) and
# hyperfine (a cross-check of the hook latency).
#
# Every figure in the report is measured by this run: benchtool (bench/benchtool)
# execs the real binaries and appends JSON lines to results.jsonl, and
# `benchtool report` renders them. All work happens in a temp dir ($W) that is
# removed at the end, with any worker the run started.
set -euo pipefail
# Queue directories must be private to the user running the worker (0700,
# see docs/design.md), so everything the benchmark makes is.
umask 077

MODE=full
OUT=
KEEP_RESULTS=
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) MODE=smoke ;;
	--full) MODE=full ;;
	--out) OUT=$2; shift ;;
	--results) KEEP_RESULTS=$2; shift ;;
	*) echo "usage: bash bench/run.sh [--smoke] [--out FILE] [--results FILE]" >&2; exit 2 ;;
	esac
	shift
done

# A CI runner's settings must not leak into the benchmark's worlds.
for v in $(compgen -e); do
	case $v in CACHIX_FILTER_HOOK_* | CACHIX_STANDIN_* | CACHIX_AUTH_TOKEN | CACHIX_SIGNING_KEY | OUT_PATHS | DRV_PATH) unset "$v" ;; esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
START_NS=$(date +%s%N)

if [ "$MODE" = full ]; then
	RUNS=300 WARMUP=20          # hook latency runs per command (at least 300)
	PATHS_N=520                 # prebuilt store paths the hooks queue
	DEPTHS="0 1000 100000"      # pending entries
	DECIDE_NAMES=100000 DECIDE_REPEAT=7
	GOBENCH_DECIDE=1s GOBENCH_ADD=2000x GOBENCH_SCAN=10x
	CONC_TOTAL=500 DRAIN_N=500
	PHASE_RUNS=100 INIT_RUNS=30
	BUILD_N=100 BUILD_REPS=7 NAIVE_N=100
	CLOSURE_N=10000 PUSH_RUNS=7 SCALE_REPS=3 SECOND_RUNS=7   # issue 12
	BIG_N=100000 BIG_RUNS=3 RSS_N=100000 RECORD_N=100000
	PEER_REPS=3   # with PEERS=DIR
	: "${OUT:=$ROOT/BENCHMARKS.md}"
else
	RUNS=5 WARMUP=1
	PATHS_N=70
	DEPTHS="0 100 1000"
	DECIDE_NAMES=10000 DECIDE_REPEAT=2
	GOBENCH_DECIDE=100x GOBENCH_ADD=20x GOBENCH_SCAN=1x
	CONC_TOTAL=64 DRAIN_N=20
	PHASE_RUNS=5 INIT_RUNS=3
	BUILD_N=5 BUILD_REPS=1 NAIVE_N=2
	CLOSURE_N=500 PUSH_RUNS=2 SCALE_REPS=1 SECOND_RUNS=2
	BIG_N=1000 BIG_RUNS=1 RSS_N=1000 RECORD_N=1000
	PEER_REPS=1
	: "${OUT:=$(mktemp /tmp/BENCHMARKS.smoke.XXXXXX.md)}"
fi
PUSH_DELAY=1s

# On a fresh Debian machine (as root), install what is missing, as make demo
# does: Nix, jq, and the optional GNU time and hyperfine.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	missing=
	command -v nix-build >/dev/null || missing="$missing nix-bin"
	command -v jq >/dev/null || missing="$missing jq"
	[ -x /usr/bin/time ] || missing="$missing time"
	command -v hyperfine >/dev/null || missing="$missing hyperfine"
	if [ -n "$missing" ]; then
		echo "bench: installing$missing" >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	fi
fi
for tool in go nix-build nix-store nix-instantiate nix jq; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
TIME_BIN=
[ -x /usr/bin/time ] && TIME_BIN=/usr/bin/time

W=$(mktemp -d /tmp/cfh-bench.XXXXXX)
# The store reads what nix copy is given, and root refuses config
# directories others can write.
chmod 755 "$W"
mkdir -p "$W/bin" "$W/conf" "$W/logs" "$W/spec"
R=$W/results.jsonl
: >"$R"

# Workers the run's hooks started carry CACHIX_FILTER_HOOK_QUEUE_DIR=$W/...
# (worker.Spawn sets it); they are found through /proc and killed by pid.
run_workers() {
	local e pid
	for e in /proc/[0-9]*/environ; do
		pid=${e#/proc/}; pid=${pid%/environ}
		[ "$pid" = "$$" ] && continue
		if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -q "^CACHIX_FILTER_HOOK_QUEUE_DIR=$W/"; then
			echo "$pid"
		fi
	done
}
cleanup() {
	local st=$? pids
	# The peers' daemons and fake server (section 7), by pid.
	if [ -s "$W/peer.pids" ]; then kill $(cat "$W/peer.pids") 2>/dev/null || true; fi
	pids=$(run_workers || true)
	if [ -n "$pids" ]; then
		echo "bench: killing leftover workers: $pids" >&2
		kill -9 $pids 2>/dev/null || true
	fi
	rm -rf "$W"
	exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== [%3d s] %s\n' $(( ($(date +%s%N) - START_NS) / 1000000000 )) "$*" >&2; }
# fact NAME TEXT / count NAME VALUE / cmd SECTION TEXT: result lines.
fact() { jq -cn --arg n "$1" --arg t "$2" '{kind:"fact",name:$n,text:$t}' >>"$R"; }
count() { jq -cn --arg n "$1" --argjson v "$2" '{kind:"count",name:$n,value:$v}' >>"$R"; }
cmd() { jq -cn --arg n "$1" --arg t "$2" '{kind:"cmd",name:$n,text:$t}' >>"$R"; }

NIXOPTS=(--option substituters "")

# ---------------------------------------------------------------- machine
say "machine"
fact mode "$MODE"
fact date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fact nproc "$(nproc)"
fact cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
fact memory "$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
fact kernel "$(uname -sr)"
fact filesystem "$(df -PT "$W" | awk 'NR==2 {print $2 " on " $1}') (queues, temp dir)"
fact nix "$(nix --version)"
fact go "$(go version)"
fact hyperfine "$(hyperfine --version 2>/dev/null || echo 'not installed: cross-check skipped')"
fact rss "$([ -n "$TIME_BIN" ] && echo "GNU time -f %M ($TIME_BIN), one extra run per timed run" || echo "getrusage ru_maxrss (includes the runner's RSS at vfork)")"
fact commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain 2>/dev/null | grep -q . && echo ' + uncommitted changes' || true)"
fact load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
fact workdir "$W"
fact push_delay "$PUSH_DELAY"

# ---------------------------------------------------------------- binaries
say "building"
BUILD="CGO_ENABLED=0 go build -trimpath"
CGO_ENABLED=0 go build -trimpath -o "$W/bin/cachix-filter-hook" .
CGO_ENABLED=0 go build -trimpath -o "$W/bin/floor" ./bench/floor
CGO_ENABLED=0 go build -trimpath -o "$W/bin/cachix" ./test/cachix-standin
CGO_ENABLED=0 go build -o "$W/bin/benchtool" ./bench/benchtool
cmd build "$BUILD -o \$W/bin/cachix-filter-hook ."
cmd build "$BUILD -o \$W/bin/floor ./bench/floor   # func main() {}"
cmd build "$BUILD -o \$W/bin/cachix ./test/cachix-standin   # the cachix stand-in"
fact size_hook "$(stat -c %s "$W/bin/cachix-filter-hook")"
fact size_floor "$(stat -c %s "$W/bin/floor")"
CFH=$W/bin/cachix-filter-hook
BT=$W/bin/benchtool
echo "bench-token" >"$W/conf/token"
chmod 600 "$W/conf/token"

# ---------------------------------------------------------------- store paths
say "prebuilding $PATHS_N store paths for the hooks to queue"
SALT=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
nix-instantiate bench/drvs.nix --argstr salt "$SALT" --arg n "$PATHS_N" --argstr prefix benchpath >"$W/drvs.txt" 2>"$W/logs/instantiate.log"
nix-build bench/drvs.nix --argstr salt "$SALT" --arg n "$PATHS_N" --argstr prefix benchpath \
	--no-out-link --max-jobs 2 "${NIXOPTS[@]}" --option post-build-hook "" >/dev/null 2>"$W/logs/prebuild.log"
xargs nix-store --query --outputs <"$W/drvs.txt" >"$W/outs.txt"
paste -d' ' "$W/outs.txt" "$W/drvs.txt" >"$W/paths.tsv"
[ "$(wc -l <"$W/paths.tsv")" -eq "$PATHS_N" ] || { echo "bench: expected $PATHS_N paths" >&2; exit 1; }
cmd prebuild "nix-build bench/drvs.nix --argstr salt <random> --arg n $PATHS_N --argstr prefix benchpath --no-out-link --option substituters \"\""

# conf NAME QUEUE [LINGER]: a hook.conf shaped like hook.conf.example, with a
# second target that selects none of the benchmark's paths.
conf() {
	cat >"$W/conf/$1.conf" <<EOF
# hook.conf for the benchmarks, shaped like hook.conf.example
cache = "benchcache"
allow = ["benchpath-*", "benchpkg-*", "hello-*"]
deny  = ["*-doc", "*-man"]
closure_deny = "push"
strict = false

[[target]]
store = "file://$W/other-cache"
name = "other"
allow = ["openc910-*"]
deny = ["*-doc"]

[cachix]
bin = "$W/bin/cachix"
auth_token_file = "$W/conf/token"
push_args = []

[queue]
dir = "$2"
batch = 64
linger = "${3:-3s}"

[log]
level = "info"
EOF
	chmod 600 "$W/conf/$1.conf"
}

# wait_no_worker QUEUE: until no worker holds the queue's lock.
wait_no_worker() {
	local i
	for i in $(seq 1 300); do
		"$BT" holdlock -queue "$1" -- true 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: a worker still holds $1/lock after 30 s" >&2
	return 1
}

# hook_cmd NAME CONF QUEUE [extra JSON fields]: one hook command of a spec.
hook_cmd() {
	printf '{"name":"%s","argv":["%s"],"env":["CACHIX_FILTER_HOOK_CONFIG=%s"],"queue":"%s","target":"benchcache","expect":"queued 1 of 1 paths for benchcache"%s}' \
		"$1" "$CFH" "$W/conf/$2.conf" "$3" "${4:+,$4}"
}
floor_cmd() { printf '{"name":"%s","argv":["%s"]}' "$1" "$W/bin/floor"; }

# ---------------------------------------------------------------- 1. hook latency
say "1. hook latency: $RUNS runs each, interleaved with the bare Go binary"
conf probe "$W/q-probe"
conf drv "$W/q-drv"
conf spawn "$W/q-spawn" 0s
cat >"$W/spec/latency.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"time_bin":"$TIME_BIN","paths":"$W/paths.tsv","commands":[
 $(floor_cmd floor),
 {"name":"version","argv":["$CFH","version"],"expect":"cachix-filter-hook"},
 $(hook_cmd hook probe "$W/q-probe" '"hold_lock":true')
]}
EOF
"$BT" exec -spec "$W/spec/latency.json" -results "$R"
# The Nix 2.8 way (OUT_PATHS empty) may run nix-store, whose weight would
# disturb the floor's runs next to it: a series of its own.
cat >"$W/spec/drv.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"time_bin":"$TIME_BIN","paths":"$W/paths.tsv","commands":[
 $(floor_cmd "floor (Nix 2.8 series)"),
 $(hook_cmd hook-drv drv "$W/q-drv" '"hold_lock":true,"drv":true')
]}
EOF
"$BT" exec -spec "$W/spec/drv.json" -results "$R"
cmd latency "\$W/bin/floor"
cmd latency "\$W/bin/cachix-filter-hook version   # links everything, does next to nothing"
cmd latency "OUT_PATHS=<path i> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/probe.conf \$W/bin/cachix-filter-hook   # worker lock held: a worker is running"
cmd latency "OUT_PATHS= DRV_PATH=<drv i> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/drv.conf \$W/bin/cachix-filter-hook   # as Nix 2.8 runs it: the outputs must come from the derivation"
cmd latency "each run queues a new entry (checked, then removed); rounds interleave the commands; peak RSS from an extra run under ${TIME_BIN:-getrusage} -f %M"

say "1b. hook latency when it has to start the worker"
cat >"$W/spec/spawn.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"time_bin":"$TIME_BIN","paths":"$W/paths.tsv","commands":[
 $(floor_cmd "floor (spawn series)"),
 $(hook_cmd hook-spawn spawn "$W/q-spawn" '"reap":true')
]}
EOF
"$BT" exec -spec "$W/spec/spawn.json" -results "$R"
wait_no_worker "$W/q-spawn"
cmd latency "OUT_PATHS=<path i> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/spawn.conf \$W/bin/cachix-filter-hook   # no worker: it spawns one (linger 0s); the entry is removed and the worker reaped before the next run"

if command -v hyperfine >/dev/null; then
	say "1c. hyperfine cross-check"
	P0=$(head -1 "$W/outs.txt")
	KEY=$(basename "$P0" | cut -c1-32).$(printf benchcache | sha256sum | cut -c1-12)
	conf hf "$W/q-hf"
	mkdir -p -m 700 "$W/q-hf" "$W/q-hf/entries" # the queue must be its user's own, 0700
	env OUT_PATHS="$P0" CACHIX_FILTER_HOOK_CONFIG="$W/conf/hf.conf" \
		"$BT" holdlock -queue "$W/q-hf" -- hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" \
		--prepare "rm -f $W/q-hf/entries/$KEY" \
		--export-json "$W/hyperfine.json" -n floor "$W/bin/floor" -n hook "$CFH" >"$W/logs/hyperfine.log" 2>&1 ||
		{ cat "$W/logs/hyperfine.log" >&2; exit 1; }
	[ -e "$W/q-hf/entries/$KEY" ] || { echo "bench: the hyperfine runs queued nothing" >&2; exit 1; }
	jq -c '.results[] | {kind:"hyperfine",name:.command,runs:(.times|length),median_ms:(.median*1000),mean_ms:(.mean*1000),min_ms:(.min*1000),max_ms:(.max*1000)}' "$W/hyperfine.json" >>"$R"
	cmd latency "OUT_PATHS=<one path> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/hf.conf benchtool holdlock -queue \$W/q-hf -- hyperfine -N --warmup $WARMUP --runs $RUNS --prepare 'rm -f <its entry>' \$W/bin/floor \$W/bin/cachix-filter-hook"
fi

say "1d. where the hook's time goes"
conf phases "$W/q-phases"
"$BT" phases -config "$W/conf/phases.conf" -path "$(head -1 "$W/outs.txt")" -runs "$PHASE_RUNS" -results "$R"
cmd evidence "benchtool phases -config \$W/conf/phases.conf -path <path> -runs $PHASE_RUNS   # hook.Run's steps timed in fresh processes"
conf init "$W/q-init"
env OUT_PATHS="$(head -1 "$W/outs.txt")" CACHIX_FILTER_HOOK_CONFIG="$W/conf/init.conf" \
	"$BT" holdlock -queue "$W/q-init" -- "$BT" inittrace -name hook -runs "$INIT_RUNS" -top 12 -results "$R" -- "$CFH"
"$BT" inittrace -name floor -runs "$INIT_RUNS" -top 3 -results "$R" -- "$W/bin/floor"
cmd evidence "GODEBUG=inittrace=1 \$W/bin/cachix-filter-hook (and \$W/bin/floor), $INIT_RUNS runs, median per package"
# Which third-party packages bring in the heaviest standard ones.
go list -f '{{.ImportPath}}: {{join .Imports " "}}' -deps . >"$W/deps.txt"
heavy=
for pkg in net/http crypto/tls crypto/x509 html/template text/template; do
	who=$(awk -v p="$pkg" '{ip=$1; sub(/:$/, "", ip); for (i = 2; i <= NF; i++) if ($i == p && ip ~ /^[a-z0-9-]+\.[a-z]/) print ip}' "$W/deps.txt" | tr '\n' ' ')
	[ -n "$who" ] && heavy="$heavy$pkg <- ${who% }; "
done
fact heavy_importers "${heavy%; }"
fact packages_hook "$(wc -l <"$W/deps.txt")"
go list -deps ./bench/floor | sort >"$W/deps-floor.txt"
fact packages_floor "$(wc -l <"$W/deps-floor.txt")"
cut -d: -f1 "$W/deps.txt" | sort | comm -23 - "$W/deps-floor.txt" >"$W/deps-extra.txt"
fact packages_extra "$(wc -l <"$W/deps-extra.txt")"
fact packages_viper "$(go list -deps github.com/spf13/viper | sort | comm -12 - "$W/deps-extra.txt" | wc -l)"
cmd evidence "go list -deps . ; go list -f '{{.ImportPath}}: {{.Imports}}' -deps .   # who imports net/http, crypto/tls, html/template"

# ---------------------------------------------------------------- 5. scaling
say "5. hook latency against queue depth ($DEPTHS pending)"
CMDS=$(floor_cmd "floor (depth series)")
for d in $DEPTHS; do
	conf "depth-$d" "$W/q-depth-$d"
	"$BT" fill -queue "$W/q-depth-$d" -target benchcache -n "$d"
	CMDS="$CMDS,
 $(hook_cmd "depth=$d" "depth-$d" "$W/q-depth-$d" "\"hold_lock\":true,\"depth\":$d")"
done
cat >"$W/spec/depth.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"paths":"$W/paths.tsv","commands":[
 $CMDS
]}
EOF
"$BT" exec -spec "$W/spec/depth.json" -results "$R"
for d in $DEPTHS; do
	n=$(find "$W/q-depth-$d/entries" -type f | wc -l)
	[ "$n" -eq "$d" ] || { echo "bench: depth $d queue holds $n entries" >&2; exit 1; }
	rm -rf "$W/q-depth-$d"
done
cmd scaling "benchtool fill -queue \$W/q-depth-D -target benchcache -n D   # D pending entries for the configured target, written as the queue writes them (queue.Entry JSON, named queue.Key)"
cmd scaling "OUT_PATHS=<path i> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/depth-D.conf \$W/bin/cachix-filter-hook   # worker lock held by the benchmark, so nothing drains; each run's entry removed after the run: the depth stays D"

# ---------------------------------------------------------------- 4. throughput
say "4a. filter decisions per second"
"$BT" decide -names "$DECIDE_NAMES" -repeat "$DECIDE_REPEAT" -no-full-path -cpuprofile "$W/decide.prof" -results "$R"
go tool pprof -top -nodecount=12 "$BT" "$W/decide.prof" 2>/dev/null | sed -n '/flat%/,$p' >"$W/decide-top.txt"
fact decide_profile "$(cat "$W/decide-top.txt")"
cmd throughput "benchtool decide -names $DECIDE_NAMES -repeat $DECIDE_REPEAT   # filter.Compile once, then Rules.Decide over every name; median pass"
go test -run NONE -bench 'Decide$' -benchtime "$GOBENCH_DECIDE" ./internal/filter | tee "$W/logs/gobench-decide.txt" >&2
"$BT" gobench -in "$W/logs/gobench-decide.txt" -metric decisions/s -results "$R"
cmd throughput "go test -run NONE -bench 'Decide\$' -benchtime $GOBENCH_DECIDE ./internal/filter   # internal/filter/filter_test.go's BenchmarkDecide (1,024 names, cycled)"

say "4b. enqueue rate"
go test -run NONE -bench 'Add$' -benchtime "$GOBENCH_ADD" ./internal/queue | tee "$W/logs/gobench-add.txt" >&2
"$BT" gobench -in "$W/logs/gobench-add.txt" -metric entries/s -results "$R"
cmd throughput "go test -run NONE -bench 'Add\$' -benchtime $GOBENCH_ADD ./internal/queue   # internal/queue/queue_bench_test.go: W goroutines calling queue.Add, each a new entry"
conf conc "$W/q-conc"
for k in 1 8 64; do
	cat >"$W/spec/conc-$k.json" <<EOF
{"mode":"concurrency","concurrency":$k,"total":$CONC_TOTAL,"paths":"$W/paths.tsv","commands":[
 $(hook_cmd "enqueue" conc "$W/q-conc" '"hold_lock":true')
]}
EOF
	"$BT" exec -spec "$W/spec/conc-$k.json" -results "$R"
done
cmd throughput "$CONC_TOTAL hook processes (OUT_PATHS=<a different path each>), K at a time for K = 1, 8, 64; worker lock held; entries/s = $CONC_TOTAL / wall time; all $CONC_TOTAL entries checked"

say "4d. the hook's sibling scan: 302 outputs, one a crafted 60 MiB file (issue 18)"
go test -run NONE -bench 'SiblingScan302$' -benchtime "$GOBENCH_SCAN" ./internal/hook | tee "$W/logs/gobench-scan.txt" >&2
"$BT" gobench -in "$W/logs/gobench-scan.txt" -metric MB/s -results "$R"
cmd throughput "go test -run NONE -bench 'SiblingScan302\$' -benchtime $GOBENCH_SCAN ./internal/hook   # internal/hook/siblings_bench_test.go: scan = the hook's reference scan of the 60 MiB output for its 301 siblings, deadline lifted; read = reading the same file once"

say "4c. drain rate into a file:// store"
cat >"$W/conf/drain.conf" <<EOF
store = "file://$W/drain-cache"
name = "drain"
allow = ["benchpath-*"]
[queue]
dir = "$W/q-drain"
linger = "0s"
EOF
chmod 600 "$W/conf/drain.conf"
"$BT" fill -queue "$W/q-drain" -target drain -n "$DRAIN_N" -paths "$W/paths.tsv" -age 1m
"$BT" time -kind drain -name "worker --once" -items "$DRAIN_N" -results "$R" -log "$W/logs/drain.log" -- "$CFH" --config "$W/conf/drain.conf" worker --once
n=$(find "$W/drain-cache" -maxdepth 1 -name '*.narinfo' | wc -l)
left=$(find "$W/q-drain/entries" -type f | wc -l)
[ "$n" -eq "$DRAIN_N" ] && [ "$left" -eq 0 ] || { echo "bench: drain: $n of $DRAIN_N in the cache, $left left" >&2; exit 1; }
count "drain batches" "$(grep -c 'msg=pushed' "$W/q-drain/worker.log" || true)"
cmd throughput "benchtool fill -queue \$W/q-drain -target drain -n $DRAIN_N -paths <prebuilt paths> -age 1m   # queue.Add, fsynced"
cmd throughput "\$W/bin/cachix-filter-hook --config \$W/conf/drain.conf worker --once   # target store = \"file://\$W/drain-cache\": nix copy, batches of 64; all $DRAIN_N narinfos checked"

# ---------------------------------------------------------------- 6. scale (issue 12)
say "6. scale: a closure of $CLOSURE_N paths, $BIG_N paths in one hook run, a record of $RECORD_N pushed paths"
# Nix as the product runs it (nix.bin_dir), through a wrapper that logs
# each call's command and first words: pusher calls are the `nix ... copy`
# lines. The wrapper adds a few ms per call; the floors run Nix directly.
NIXWRAP=$W/nixwrap
NIXLOG=$W/logs/nix-calls.log
mkdir -p "$NIXWRAP"
: >"$NIXLOG"
for t in nix nix-store nix-instantiate nix-build; do
	real=$(command -v "$t") || continue
	cat >"$NIXWRAP/$t" <<EOF
#!/bin/sh
printf '%s %s\n' "$t" "\$(printf '%s ' "\$@" | cut -c1-160)" >>"$NIXLOG"
exec "$real" "\$@"
EOF
	chmod 755 "$NIXWRAP/$t"
done
pusher_calls() { grep -c '^nix .* copy ' "$NIXLOG" || true; }
narinfos() { find "$1" -maxdepth 1 -name '*.narinfo' 2>/dev/null | wc -l; }
# entries QUEUE: the entries queued, each in its own file in entries/ or a
# line of a bulk file in bulk/ (many pairs queued at once; a pair in two
# bulk files counts twice, which these runs never do).
entries() {
	local own bulk
	own=$(find "$1/entries" -type f 2>/dev/null | wc -l)
	bulk=$(find "$1/bulk" -type f -exec cat {} + 2>/dev/null | awk 'NF { n++ } END { print n + 0 }')
	echo $((own + bulk))
}
# scale_conf NAME QUEUE CACHE [ALLOW]: one file:// target, every other key
# at its default (queue.batch, queue.remember_pushed, closure_deny,
# unsubstitutable).
scale_conf() {
	local allow=${4:-'"benchclos-*", "benchbig-*"'}
	cat >"$W/conf/$1.conf" <<EOF
store = "file://$3"
name = "scale"
allow = [$allow]

[nix]
bin_dir = "$NIXWRAP"

[queue]
dir = "$2"
EOF
	chmod 600 "$W/conf/$1.conf"
}
NIXCOPY=(nix --extra-experimental-features nix-command copy)

# The root: builtins.toFile files made at evaluation time, the same paths
# every run (the store keeps them).
ROOT_C=$(nix-instantiate --eval --read-write-mode bench/closure.nix --arg n "$CLOSURE_N" --argstr tag v1 2>"$W/logs/closure.log" | tr -d '"')
n=$(nix-store --query --requisites "$ROOT_C" | wc -l)
[ "$n" -eq "$CLOSURE_N" ] || { echo "bench: the closure of $ROOT_C holds $n paths, want $CLOSURE_N" >&2; exit 1; }
count "closure paths" "$n"
cmd scale "nix-instantiate --eval --read-write-mode bench/closure.nix --arg n $CLOSURE_N --argstr tag v1   # ROOT: a builtins.toFile file naming $((CLOSURE_N - 1)) others, its closure $CLOSURE_N paths"
cmd scale "scale.conf: store = \"file://<fresh dir>\", allow = [\"benchclos-*\", \"benchbig-*\"], nix.bin_dir = <a wrapper that logs each Nix call>, queue.dir = <fresh dir>; every other key at its default"

say "6a. push --closure of $CLOSURE_N paths, record empty ($PUSH_RUNS runs)"
floor_qr() {
	"$BT" time -kind scale -name "nix-store --query --requisites (floor)" -items "$CLOSURE_N" -log "$W/logs/qr.log" -results "$R" \
		-- nix-store --query --requisites "$ROOT_C"
}
for i in $(seq 1 "$PUSH_RUNS"); do
	q=$W/q-first-$i
	scale_conf "first-$i" "$q" "$W/cache-first-$i"
	[ $((i % 2)) = 0 ] || floor_qr
	"$BT" holdlock -queue "$q" -- "$BT" time -kind scale -name "push --closure, record empty" -items "$CLOSURE_N" -log "$W/logs/push-first-$i.log" -results "$R" \
		-- "$CFH" --config "$W/conf/first-$i.conf" push --closure "$ROOT_C"
	[ $((i % 2)) = 1 ] || floor_qr
	n=$(entries "$q")
	[ "$n" -eq "$CLOSURE_N" ] || { cat "$W/logs/push-first-$i.log" >&2; echo "bench: push --closure queued $n entries, want $CLOSURE_N" >&2; exit 1; }
	rm -rf "$q"
done
cmd scale "benchtool holdlock -queue \$W/q-first-I -- \$W/bin/cachix-filter-hook --config \$W/conf/first-I.conf push --closure ROOT   # fresh queue, empty record; worker lock held, so only the queueing is timed; all $CLOSURE_N entries checked"
cmd scale "nix-store --query --requisites ROOT   # the floor of push --closure: the one Nix call it cannot avoid; interleaved with the runs above and below"

say "6b. queue and drain $CLOSURE_N paths into a file:// store, against one nix copy ($SCALE_REPS rounds)"
for r in $(seq 1 "$SCALE_REPS"); do
	ways="floor cfh"
	[ $((r % 2)) = 1 ] || ways="cfh floor"
	for way in $ways; do
		if [ "$way" = floor ]; then
			rm -rf "$W/cache-floor"
			"$BT" time -kind scale -name "nix copy (floor)" -items "$CLOSURE_N" -log "$W/logs/copy-floor-$r.log" -results "$R" \
				-- "${NIXCOPY[@]}" --to "file://$W/cache-floor" "$ROOT_C"
			n=$(narinfos "$W/cache-floor")
			[ "$n" -eq "$CLOSURE_N" ] || { echo "bench: nix copy wrote $n narinfos, want $CLOSURE_N" >&2; exit 1; }
			rm -rf "$W/cache-floor"
			continue
		fi
		q=$W/q-scale-$r
		scale_conf "scale-$r" "$q" "$W/cache-scale-$r"
		before=$(pusher_calls)
		"$BT" time -kind scale -name "push --closure, then wait" -items "$CLOSURE_N" -log "$W/logs/drain-scale-$r.log" -results "$R" \
			-- sh -c '"$1" --config "$2" push --closure "$3" && exec "$1" --config "$2" wait --timeout 600s' sh "$CFH" "$W/conf/scale-$r.conf" "$ROOT_C"
		count "scale pusher calls" "$(($(pusher_calls) - before))"
		n=$(narinfos "$W/cache-scale-$r")
		left=$(entries "$q")
		[ "$n" -eq "$CLOSURE_N" ] && [ "$left" -eq 0 ] ||
			{ tail -20 "$W/logs/drain-scale-$r.log" >&2; echo "bench: $n of $CLOSURE_N paths in the cache, $left left queued" >&2; exit 1; }
		wait_no_worker "$q"
		if [ "$r" -lt "$SCALE_REPS" ]; then rm -rf "$q" "$W/cache-scale-$r"; fi
	done
done
cmd scale "sh -c '\$W/bin/cachix-filter-hook --config \$W/conf/scale-R.conf push --closure ROOT && \$W/bin/cachix-filter-hook --config \$W/conf/scale-R.conf wait --timeout 600s'   # fresh queue and cache; timed until wait returns; all $CLOSURE_N narinfos checked; pusher calls = the nix ... copy lines the wrapper logged"
cmd scale "nix --extra-experimental-features nix-command copy --to file://\$W/cache-floor ROOT   # the floor: one nix copy of the same $CLOSURE_N paths into a fresh cache; the rounds alternate which goes first"

say "6c. push --closure again, everything already pushed ($SECOND_RUNS runs)"
q=$W/q-scale-$SCALE_REPS
before=$(pusher_calls)
queued2=0
for i in $(seq 1 "$SECOND_RUNS"); do
	[ $((i % 2)) = 0 ] || floor_qr
	"$BT" time -kind scale -name "push --closure, all pushed" -items "$CLOSURE_N" -log "$W/logs/push-second-$i.log" -results "$R" \
		-- "$CFH" --config "$W/conf/scale-$SCALE_REPS.conf" push --closure "$ROOT_C"
	[ $((i % 2)) = 1 ] || floor_qr
	queued2=$((queued2 + $(entries "$q")))
	"$CFH" --config "$W/conf/scale-$SCALE_REPS.conf" wait --timeout 600s >"$W/logs/wait-second-$i.log" 2>&1 ||
		{ cat "$W/logs/wait-second-$i.log" >&2; exit 1; }
done
wait_no_worker "$q"
count "scale pusher calls, second push" "$(($(pusher_calls) - before))"
count "scale entries queued, second push" "$queued2"
rm -rf "$q" "$W/cache-scale-$SCALE_REPS"
cmd scale "\$W/bin/cachix-filter-hook --config \$W/conf/scale-$SCALE_REPS.conf push --closure ROOT   # the queue and record the last round above left: all $CLOSURE_N pushed; entries counted right after each run, then wait; pusher calls counted over all $SECOND_RUNS runs"

say "6d. one hook run with $BIG_N paths ($BIG_RUNS runs)"
BIG_DRV=$(nix-instantiate bench/bigdrv.nix --arg n "$BIG_N" --argstr tag v1 2>"$W/logs/bigdrv.log" | sed 's/!.*//')
nix-store --query --outputs "$BIG_DRV" >"$W/big-outs.txt"
n=$(wc -l <"$W/big-outs.txt")
[ "$n" -eq "$BIG_N" ] || { echo "bench: $BIG_DRV has $n outputs, want $BIG_N" >&2; exit 1; }
fact bigdrv_bytes "$(stat -c %s "$BIG_DRV")"
# As many of those paths as one environment string can hold: Linux
# limits it to 128 KiB (MAX_ARG_STRLEN, "OUT_PATHS=" and the NUL included).
awk -v max=$((131072 - 11)) '{ if (n + length($0) + 1 > max) exit; n += length($0) + 1; printf "%s ", $0 }' "$W/big-outs.txt" >"$W/outmax.txt"
OUTMAX_N=$(wc -w <"$W/outmax.txt")
fact outmax_bytes "$(wc -c <"$W/outmax.txt")"
for i in $(seq 1 "$BIG_RUNS"); do
	q=$W/q-big-$i
	scale_conf "big-$i" "$q" "$W/cache-big"
	"$BT" holdlock -queue "$q" -- "$BT" time -kind scale -name "hook, $BIG_N paths" -items "$BIG_N" -keep-status -log "$W/logs/big-$i.log" -results "$R" \
		-- env OUT_PATHS= DRV_PATH="$BIG_DRV" CACHIX_FILTER_HOOK_CONFIG="$W/conf/big-$i.conf" "$CFH"
	count "hook, $BIG_N paths: queued" "$(entries "$q")"
	rm -rf "$q"
	q=$W/q-outmax-$i
	scale_conf "outmax-$i" "$q" "$W/cache-big"
	"$BT" holdlock -queue "$q" -- "$BT" time -kind scale -name "hook, $OUTMAX_N paths in OUT_PATHS" -items "$OUTMAX_N" -keep-status -log "$W/logs/outmax-$i.log" -results "$R" \
		-- env OUT_PATHS="$(cat "$W/outmax.txt")" CACHIX_FILTER_HOOK_CONFIG="$W/conf/outmax-$i.conf" "$CFH"
	count "hook, $OUTMAX_N paths in OUT_PATHS: queued" "$(entries "$q")"
	rm -rf "$q"
done
cmd scale "nix-instantiate bench/bigdrv.nix --arg n $BIG_N --argstr tag v1   # a derivation with $BIG_N outputs, never built: its .drv names $BIG_N store paths that do not exist"
cmd scale "OUT_PATHS= DRV_PATH=<that .drv> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/big-I.conf benchtool holdlock -queue \$W/q-big-I -- \$W/bin/cachix-filter-hook   # as Nix 2.8 passes a build's outputs; fresh queue, worker lock held so nothing is pushed; entries counted"
cmd scale "OUT_PATHS=<the first $OUTMAX_N of those paths> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/outmax-I.conf ... \$W/bin/cachix-filter-hook   # as many as OUT_PATHS can hold: Linux limits one environment string to 128 KiB"

say "6e. worker peak RSS with $RSS_N entries queued"
q=$W/q-rss
scale_conf rss "$q" "$W/cache-rss" '"*"' # benchtool fill's names are nixpkgs-like
if [ -n "$TIME_BIN" ]; then
	"$BT" time -kind scale -name "worker --once, empty queue" -time-bin "$TIME_BIN" -log "$W/logs/rss-0.log" -results "$R" \
		-- "$CFH" --config "$W/conf/rss.conf" worker --once
	"$BT" fill -queue "$q" -target scale -n "$RSS_N"
	"$BT" time -kind scale -name "worker --once, $RSS_N queued" -items "$RSS_N" -time-bin "$TIME_BIN" -keep-status -log "$W/logs/rss.log" -results "$R" \
		-- "$CFH" --config "$W/conf/rss.conf" worker --once
	count "worker --once, $RSS_N queued: left" "$(entries "$q")"
	count "worker --once, $RSS_N queued: dropped" "$(find "$q/dropped" -type f 2>/dev/null | wc -l)"
	cmd scale "benchtool fill -queue \$W/q-rss -target scale -n $RSS_N   # made-up paths that do not exist, written in the queue's format; rss.conf allows \"*\""
	cmd scale "$TIME_BIN -f %M \$W/bin/cachix-filter-hook --config \$W/conf/rss.conf worker --once   # with the queue empty, then with $RSS_N entries"
else
	fact rss_skipped "no GNU time (/usr/bin/time): the worker's peak RSS was not measured"
fi
rm -rf "$q"

say "6f. hook latency with the record empty and with $RECORD_N paths"
conf rec0 "$W/q-rec0"
conf recN "$W/q-recN"
"$BT" record -config "$W/conf/recN.conf" -target benchcache -n "$RECORD_N" -results "$R" -name "record entries"
cat >"$W/spec/record.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"paths":"$W/paths.tsv","commands":[
 $(floor_cmd "floor (record series)"),
 $(hook_cmd "record=0" rec0 "$W/q-rec0" '"hold_lock":true'),
 $(hook_cmd "record=$RECORD_N" recN "$W/q-recN" '"hold_lock":true')
]}
EOF
"$BT" exec -spec "$W/spec/record.json" -results "$R"
rm -rf "$W/q-rec0" "$W/q-recN"
cmd scale "benchtool record -config \$W/conf/recN.conf -target benchcache -n $RECORD_N   # pushed.OpenWrite(queue.dir, Target.RecordKey(), queue.remember_pushed), then Add of $RECORD_N made-up hashes, 10,000 at a time"
cmd scale "OUT_PATHS=<path i> CACHIX_FILTER_HOOK_CONFIG=\$W/conf/rec0.conf (no record) | \$W/conf/recN.conf (a record of $RECORD_N) \$W/bin/cachix-filter-hook   # worker lock held; $RUNS runs each, interleaved with the floor"

# ---------------------------------------------------------------- 2+3. build loop
say "2. build loop: $BUILD_N salted derivations, --max-jobs 1"
export BENCH_CACHIX=$W/bin/cachix BENCH_CACHE=benchcache
build() { # build WAY REP HOOK (BUILD_SALT, BUILD_KIND: defaults a new salt, "build")
	local salt=${BUILD_SALT:-}
	[ -n "$salt" ] || salt=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
	local hold=()
	[ -z "${BT_HOLD:-}" ] || hold=("$BT" holdlock -queue "$BT_HOLD" --)
	"${hold[@]}" "$BT" time -kind "${BUILD_KIND:-build}" -name "$1" -items "$BUILD_N" -results "$R" -log "$W/logs/build-$1-$2.log" -- \
		nix-build bench/drvs.nix --argstr salt "$salt" --arg n "$BUILD_N" --argstr prefix benchpkg \
		--no-out-link --max-jobs 1 "${NIXOPTS[@]}" --option post-build-hook "$3" ||
		{ tail -20 "$W/logs/build-$1-$2.log" >&2; return 1; }
}
# held: a diagnostic fourth way, the hook with no worker pushing alongside
# the builds (the benchmark holds the worker lock), to tell the hook's own
# cost from the worker's.
WAYS=(none floor cachix-filter-hook held)
for rep in $(seq 1 "$BUILD_REPS"); do
	for i in 0 1 2 3; do
		way=${WAYS[$(((i + rep) % 4))]}
		case $way in
		none) build none "$rep" "" ;;
		floor) build "empty hook" "$rep" "$W/bin/floor" ;;
		held)
			conf "held-$rep" "$W/q-held-$rep"
			export CACHIX_FILTER_HOOK_CONFIG=$W/conf/held-$rep.conf
			BT_HOLD=$W/q-held-$rep build "worker held off" "$rep" "$CFH"
			unset CACHIX_FILTER_HOOK_CONFIG
			n=$(find "$W/q-held-$rep/entries" -type f | wc -l)
			[ "$n" -eq "$BUILD_N" ] || { echo "bench: the held-off hooks queued $n entries, want $BUILD_N" >&2; exit 1; }
			rm -rf "$W/q-held-$rep"
			;;
		cachix-filter-hook)
			conf "build-$rep" "$W/q-build-$rep"
			mkdir -p "$W/standin-cfh-$rep"
			export CACHIX_FILTER_HOOK_CONFIG=$W/conf/build-$rep.conf CACHIX_STANDIN_ROOT=$W/standin-cfh-$rep CACHIX_STANDIN_DELAY=$PUSH_DELAY
			build cachix-filter-hook "$rep" "$CFH"
			"$BT" time -kind wait -name "wait after the build" -results "$R" -log "$W/logs/wait-$rep.log" -- "$CFH" wait --timeout 600s
			unset CACHIX_FILTER_HOOK_CONFIG CACHIX_STANDIN_ROOT CACHIX_STANDIN_DELAY
			calls=$(wc -l <"$W/standin-cfh-$rep/invocations.jsonl")
			pushed=$(jq -s '[.[] | select(.exit == 0) | .paths | length] | add' "$W/standin-cfh-$rep/invocations.jsonl")
			cached=$(find "$W/standin-cfh-$rep/benchcache" -maxdepth 1 -name '*.narinfo' | wc -l)
			[ "$cached" -eq "$BUILD_N" ] && [ "$pushed" -eq "$BUILD_N" ] ||
				{ echo "bench: cachix-filter-hook pushed $pushed paths, $cached in the cache, want $BUILD_N" >&2; exit 1; }
			count "pusher calls" "$calls"
			count "paths pushed" "$pushed"
			wait_no_worker "$W/q-build-$rep"
			;;
		esac
	done
done
for way in naive-sync naive-bg; do
	mkdir -p "$W/standin-$way"
	export CACHIX_STANDIN_ROOT=$W/standin-$way CACHIX_STANDIN_DELAY=$PUSH_DELAY CACHIX_AUTH_TOKEN=bench-token
	BUILD_N=$NAIVE_N build "$way" 1 "$ROOT/bench/hooks/$way.sh"
	unset CACHIX_STANDIN_ROOT CACHIX_STANDIN_DELAY CACHIX_AUTH_TOKEN
	calls=$(wc -l <"$W/standin-$way/invocations.jsonl")
	[ "$calls" -eq "$NAIVE_N" ] || { echo "bench: $way pushed $calls times, want $NAIVE_N" >&2; exit 1; }
	count "pusher calls $way" "$calls"
done
cmd build "nix-build bench/drvs.nix --argstr salt <new random salt> --arg n $BUILD_N --argstr prefix benchpkg --no-out-link --max-jobs 1 --option substituters \"\" --option post-build-hook HOOK"
cmd build "HOOK: \"\" (none) | \$W/bin/floor (empty hook) | \$W/bin/cachix-filter-hook with CACHIX_FILTER_HOOK_CONFIG=\$W/conf/build-N.conf (fresh queue, no worker yet), CACHIX_STANDIN_DELAY=$PUSH_DELAY | bench/hooks/naive-sync.sh | bench/hooks/naive-bg.sh ($NAIVE_N derivations, CACHIX_STANDIN_DELAY=$PUSH_DELAY)"
cmd build "diagnostic: CACHIX_FILTER_HOOK_CONFIG=\$W/conf/held-N.conf benchtool holdlock -queue \$W/q-held-N -- nix-build ... --option post-build-hook \$W/bin/cachix-filter-hook   # no worker runs: the hook's cost alone"
cmd build "$BUILD_REPS rounds of none / empty hook / cachix-filter-hook / held off, the order rotating; then \$W/bin/cachix-filter-hook wait --timeout 600s at once after each cachix-filter-hook build; pusher calls = lines of \$CACHIX_STANDIN_ROOT/invocations.jsonl"

# ---------------------------------------------------------------- 7. peers
# The two Go post-build hooks beside this one, built from their own sources
# outside this repository (make bench PEERS=DIR; DIR holds the binaries
# queued-build-hook and niks3-hook). Skipped when PEERS is unset.
if [ -n "${PEERS:-}" ]; then
	say "7. peers: queued-build-hook and niks3-hook from $PEERS"
	PEERS=$(cd "$PEERS" && pwd)
	for b in queued-build-hook niks3-hook; do
		[ -x "$PEERS/$b" ] || { echo "bench: PEERS=$PEERS has no executable $b" >&2; exit 1; }
	done
	if ! command -v systemd-socket-activate >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "bench: installing systemd (systemd-socket-activate, for queued-build-hook's daemon)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
	fi
	command -v systemd-socket-activate >/dev/null || { echo "bench: systemd-socket-activate is required for PEERS" >&2; exit 1; }
	fact peers "$PEERS"
	for b in queued-build-hook niks3-hook; do
		# The module and its version (a pseudo-version names the commit
		# when built in a git checkout with -buildvcs=true).
		fact "peer_$b" "$(go version -m "$PEERS/$b" 2>/dev/null | awk 'NR == 1 {g = $2} $1 == "mod" {m = $2 " " $3} $2 == "vcs.modified=true" {d = " (modified)"} END {print m d ", " g}')"
	done
	P=$W/peers
	mkdir -p "$P"
	: >"$W/peer.pids"
	echo "bench-token" >"$P/token"
	# peer_start NAME CMD...: a daemon in the background, its pid recorded.
	peer_start() {
		local name=$1
		shift
		"$@" >"$W/logs/peer-$name.log" 2>&1 &
		echo "$!" >>"$W/peer.pids"
		echo "$!" >"$P/$name.pid"
	}
	peer_stop() {
		local pid i
		pid=$(cat "$P/$1.pid")
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	}
	wait_socket() {
		local i
		for i in $(seq 1 200); do
			[ -S "$1" ] && return 0
			sleep 0.05
		done
		echo "bench: no socket $1" >&2
		return 1
	}
	# The hooks their NixOS modules install: queued-build-hook's
	# enqueue-package (writeShellScriptBin of enqueueScriptContent, without
	# exec) and niks3's niks3-post-build-hook (writeShellScript, exec).
	BASH_BIN=$(command -v bash)
	printf '#!%s\n%s queue --socket "%s"\n' "$BASH_BIN" "$PEERS/queued-build-hook" "$P/qbh.sock" >"$P/enqueue-package"
	printf '#!%s\nexec %s send --socket %s "$@"\n' "$BASH_BIN" "$PEERS/niks3-hook" "$P/niks3.sock" >"$P/niks3-post-build-hook"
	# niks3-hook send reads only OUT_PATHS, which Nix 2.8 leaves empty
	# (NixOS/nix#6446): for the build loop, its module's wrapper is fed
	# OUT_PATHS from a map of .drv to output written before the build,
	# with bash builtins only.
	cat >"$P/niks3-fed-hook" <<EOF
#!$BASH_BIN
if [ -z "\$OUT_PATHS" ] && [ -n "\$NIKS3_FEED_MAP" ]; then
	while read -r out drv; do
		if [ "\$drv" = "\$DRV_PATH" ]; then OUT_PATHS=\$out; break; fi
	done <"\$NIKS3_FEED_MAP"
	export OUT_PATHS
fi
exec $PEERS/niks3-hook send --socket $P/niks3.sock "\$@"
EOF
	# What queued-build-hook's daemon runs for each build
	# (postBuildScriptContent): push its outputs with the cachix stand-in.
	cat >"$P/qbh-push.sh" <<EOF
#!/bin/sh
# Nix 2.8 passes OUT_PATHS empty: ask Nix here, in the daemon, off the build's path.
[ -n "\$OUT_PATHS" ] || OUT_PATHS=\$(nix-store --query --outputs "\$DRV_PATH")
exec $W/bin/cachix push benchcache \$OUT_PATHS
EOF
	chmod 755 "$P/enqueue-package" "$P/niks3-post-build-hook" "$P/niks3-fed-hook" "$P/qbh-push.sh"
	# qbh_start HOOK [ENV...]: the daemon behind a socket systemd-style
	# (the module's socket unit), with the module's defaults.
	# systemd-socket-activate passes on only the variables given with -E,
	# as systemd passes a unit's Environment=.
	qbh_start() {
		local hook=$1 kv setenv=()
		shift
		for kv in "$@"; do setenv+=(-E "$kv"); done
		rm -f "$P/qbh.sock"
		peer_start qbh systemd-socket-activate "${setenv[@]}" -l "$P/qbh.sock" \
			"$PEERS/queued-build-hook" daemon --hook "$hook" --retry-interval 1 --retries 5 --concurrency 0
		wait_socket "$P/qbh.sock"
	}
	# niks3_start URL [PATH]: niks3-hook serve with the module's defaults.
	niks3_start() {
		rm -f "$P/niks3.sock" "$P"/niks3.db*
		peer_start niks3 env PATH="${2:-$PATH}" "$PEERS/niks3-hook" serve --server-url "$1" --auth-token-path "$P/token" \
			--socket "$P/niks3.sock" --db-path "$P/niks3.db" --batch-size 50 --idle-exit-timeout 0 --max-concurrent-uploads 30
		wait_socket "$P/niks3.sock"
	}
	# fake_start DIR: the fake niks3 server storing into DIR; sets NIKS3_URL.
	fake_start() {
		rm -f "$P/fake.url"
		peer_start fake "$BT" fakeniks3 -dir "$1" -port-file "$P/fake.url" -log "$W/logs/fake-niks3-requests.log"
		local i
		for i in $(seq 1 200); do
			[ -s "$P/fake.url" ] && break
			sleep 0.05
		done
		NIKS3_URL=$(cat "$P/fake.url")
	}

	say "7a. peers' hook latency: $RUNS runs each, their daemons held off"
	# Held off, as this hook's worker is by the lock: queued-build-hook's
	# daemon runs /bin/true for each message, and niks3's finds no nix in
	# its PATH, so each upload fails at once and the paths stay queued.
	conf peerlat "$W/q-peerlat"
	qbh_start /bin/true
	niks3_start http://127.0.0.1:9 /nonexistent
	cat >"$W/spec/peers.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"time_bin":"$TIME_BIN","paths":"$W/paths.tsv","commands":[
 $(floor_cmd "floor (peer series)"),
 $(hook_cmd "cachix-filter-hook (peer series)" peerlat "$W/q-peerlat" '"hold_lock":true'),
 {"name":"queued-build-hook queue","argv":["$PEERS/queued-build-hook","queue","--socket","$P/qbh.sock"],"quiet":true},
 {"name":"queued-build-hook, module wrapper","argv":["$P/enqueue-package"],"quiet":true},
 {"name":"niks3-hook send","argv":["$PEERS/niks3-hook","send","--socket","$P/niks3.sock"],"quiet":true},
 {"name":"niks3-hook, module wrapper","argv":["$P/niks3-post-build-hook"],"quiet":true}
]}
EOF
	"$BT" exec -spec "$W/spec/peers.json" -results "$R"
	# The feed alone, as the build loop runs it (OUT_PATHS empty, DRV_PATH set).
	awk '{print $1, $2}' "$W/paths.tsv" >"$P/lat.map"
	cat >"$W/spec/peers-fed.json" <<EOF
{"runs":$RUNS,"warmup":$WARMUP,"paths":"$W/paths.tsv","commands":[
 $(floor_cmd "floor (peer feed series)"),
 {"name":"niks3-hook, module wrapper fed OUT_PATHS","argv":["env","NIKS3_FEED_MAP=$P/lat.map","$P/niks3-fed-hook"],"quiet":true,"drv":true}
]}
EOF
	"$BT" exec -spec "$W/spec/peers-fed.json" -results "$R"
	peer_stop qbh
	peer_stop niks3
	rm -rf "$W/q-peerlat"
	cmd peers "OUT_PATHS=<path i> $PEERS/queued-build-hook queue --socket \$W/peers/qbh.sock   # daemon: systemd-socket-activate -l \$W/peers/qbh.sock queued-build-hook daemon --hook /bin/true --retry-interval 1 --retries 5 --concurrency 0"
	cmd peers "OUT_PATHS=<path i> \$W/peers/enqueue-package   # #!bash, then the line above: the module's writeShellScriptBin"
	cmd peers "OUT_PATHS=<path i> $PEERS/niks3-hook send --socket \$W/peers/niks3.sock   # daemon: niks3-hook serve --socket ... --batch-size 50 --idle-exit-timeout 0, no nix in its PATH (held off)"
	cmd peers "OUT_PATHS=<path i> \$W/peers/niks3-post-build-hook   # #!bash, exec niks3-hook send --socket ... \"\$@\": the module's writeShellScript"
	cmd peers "OUT_PATHS= DRV_PATH=<drv i> NIKS3_FEED_MAP=<drv to output map> \$W/peers/niks3-fed-hook   # the module's wrapper, fed OUT_PATHS with bash builtins (Nix 2.8)"
	cmd peers "each command has no output (a client that fails says so and exits 0); $RUNS runs each in rotating rounds with the floor and this hook (worker lock held)"

	say "7b. peers' build loop: $BUILD_N builds, $PEER_REPS rounds"
	PWAYS=(floor cachix-filter-hook queued-build-hook niks3)
	for rep in $(seq 1 "$PEER_REPS"); do
		for i in 0 1 2 3; do
			way=${PWAYS[$(((i + rep) % 4))]}
			case $way in
			floor) BUILD_KIND=peerbuild build "empty hook" "$rep" "$W/bin/floor" ;;
			cachix-filter-hook)
				conf "peerbuild-$rep" "$W/q-peerbuild-$rep"
				mkdir -p "$P/standin-cfh-$rep"
				export CACHIX_FILTER_HOOK_CONFIG=$W/conf/peerbuild-$rep.conf CACHIX_STANDIN_ROOT=$P/standin-cfh-$rep CACHIX_STANDIN_DELAY=$PUSH_DELAY
				BUILD_KIND=peerbuild build cachix-filter-hook "$rep" "$CFH"
				"$BT" waitfiles -dir "$P/standin-cfh-$rep/benchcache" -n "$BUILD_N" -timeout 300s -name cachix-filter-hook -results "$R"
				"$CFH" wait --timeout 600s >"$W/logs/peer-wait-$rep.log" 2>&1 || { cat "$W/logs/peer-wait-$rep.log" >&2; exit 1; }
				unset CACHIX_FILTER_HOOK_CONFIG CACHIX_STANDIN_ROOT CACHIX_STANDIN_DELAY
				count "peer pusher calls cachix-filter-hook" "$(wc -l <"$P/standin-cfh-$rep/invocations.jsonl")"
				wait_no_worker "$W/q-peerbuild-$rep"
				rm -rf "$W/q-peerbuild-$rep"
				;;
			queued-build-hook)
				mkdir -p "$P/standin-qbh-$rep"
				qbh_start "$P/qbh-push.sh" CACHIX_STANDIN_ROOT="$P/standin-qbh-$rep" CACHIX_STANDIN_DELAY="$PUSH_DELAY" CACHIX_AUTH_TOKEN=bench-token
				BUILD_KIND=peerbuild build queued-build-hook "$rep" "$P/enqueue-package"
				"$BT" waitfiles -dir "$P/standin-qbh-$rep/benchcache" -n "$BUILD_N" -timeout 300s -name queued-build-hook -results "$R"
				"$PEERS/queued-build-hook" wait --socket "$P/qbh.sock"
				peer_stop qbh
				count "peer pusher calls queued-build-hook" "$(wc -l <"$P/standin-qbh-$rep/invocations.jsonl")"
				;;
			niks3)
				salt=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
				nix-instantiate bench/drvs.nix --argstr salt "$salt" --arg n "$BUILD_N" --argstr prefix benchpkg >"$P/drvs-$rep.txt" 2>/dev/null
				xargs nix-store --query --outputs <"$P/drvs-$rep.txt" | paste -d' ' - "$P/drvs-$rep.txt" >"$P/feed-$rep.map"
				fake_start "$P/niks3-cache-$rep"
				niks3_start "$NIKS3_URL"
				NIKS3_FEED_MAP=$P/feed-$rep.map BUILD_SALT=$salt BUILD_KIND=peerbuild build niks3 "$rep" "$P/niks3-fed-hook"
				"$BT" waitfiles -dir "$P/niks3-cache-$rep" -n "$BUILD_N" -timeout 300s -name niks3 -results "$R"
				peer_stop niks3
				peer_stop fake
				count "peer pusher calls niks3" "$(grep -c 'msg="Uploading batch"' "$W/logs/peer-niks3.log" || true)"
				;;
			esac
		done
	done
	cmd peers "nix-build bench/drvs.nix ... --arg n $BUILD_N --max-jobs 1 --option post-build-hook HOOK, $PEER_REPS rounds in rotating order; HOOK: \$W/bin/floor | \$W/bin/cachix-filter-hook (fresh queue; stand-in pushes sleep $PUSH_DELAY) | \$W/peers/enqueue-package | \$W/peers/niks3-fed-hook"
	cmd peers "queued-build-hook's daemon (fresh each round): --hook \$W/peers/qbh-push.sh, which runs \$W/bin/cachix push benchcache \$OUT_PATHS (the stand-in, sleeping $PUSH_DELAY per push) after nix-store --query --outputs \$DRV_PATH when OUT_PATHS is empty"
	cmd peers "niks3 (fresh each round): benchtool fakeniks3 -dir \$W/peers/niks3-cache-R (the niks3 server API, answering at once, objects stored as files); niks3-hook serve --server-url <it> --batch-size 50 --max-concurrent-uploads 30 --idle-exit-timeout 0"
	cmd peers "benchtool waitfiles -dir <the cache> -n $BUILD_N   # from the end of nix-build until the cache holds all $BUILD_N narinfos; pusher calls: stand-in invocations (cachix-filter-hook, queued-build-hook), \"Uploading batch\" lines of niks3-hook serve (niks3)"
else
	fact peers ""
fi

# ---------------------------------------------------------------- report
say "report"
left=$(run_workers || true)
count "workers left running" "$(echo "$left" | grep -c . || true)"
fact load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fact elapsed "$(( ($(date +%s%N) - START_NS) / 1000000000 ))"
[ -z "$KEEP_RESULTS" ] || cp "$R" "$KEEP_RESULTS"
"$BT" report -results "$R" -out "$OUT"
# Issue 23: two queues pushing the same paths to one cache, a script of its
# own whose section goes at the end of the report.
TWOQ_N=1000
[ "$MODE" = smoke ] && TWOQ_N=50
bash bench/twoqueues.sh --n "$TWOQ_N" --into "$OUT" >/dev/null
echo "bench: wrote $OUT ($MODE mode, $(( ($(date +%s%N) - START_NS) / 1000000000 )) s)" >&2
