# bench/peers.sh, sourced by run.sh with PEERS=DIR: queued-build-hook and
# niks3-hook, each run as its NixOS module sets it up (BENCHMARKS.md says
# how); niks3-hook's server is `benchtool fakeniks3`.
say "7. peers: queued-build-hook and niks3-hook from $PEERS"
PEERS=$(cd "$PEERS" && pwd)
for b in queued-build-hook niks3-hook; do
	[ -x "$PEERS/$b" ] || fail "PEERS=$PEERS has no executable $b"
	put "fact.peer_$b" "$(go version -m "$PEERS/$b" | awk 'NR == 1 {g = $2} $1 == "mod" {m = $2 " " $3} END {print m ", " g}')"
done
command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate is required for PEERS"
put fact.peers "$PEERS"
P=$W/peers
mkdir -p "$P" && echo bench-token >"$P/token"
peer_start() { # NAME CMD...: a daemon in the background
	"${@:2}" >"$W/logs/peer-$1.log" 2>&1 &
	echo "$!" | tee -a "$W/peer.pids" >"$P/$1.pid"
}
peer_stop() {
	local pid=$(cat "$P/$1.pid")
	kill "$pid" 2>/dev/null && for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
	kill -9 "$pid" 2>/dev/null || true
}
# tocache KEY DIR: the seconds until DIR holds BUILD_N narinfos, polled
# every 10 ms (10 minutes at most), from the end of nix-build (KEY.tocache)
# and from the last build (KEY.frombuild): the newest ctime of the outputs
# nix-build printed, set as Nix made each read-only, just before it
# registered it and ran the hook. After the last build, Nix runs the hook
# and exits: that tail is the hook's own time and the machine's load, which
# the first figure counts and the second does not.
tocache() {
	local t0=$EPOCHREALTIME t1= f built
	for _ in $(seq 1 60000); do
		f=("$2"/*.narinfo)
		[ -e "${f[0]}" ] && [ "${#f[@]}" -ge "$BUILD_N" ] && { t1=$EPOCHREALTIME && break; }
		sleep 0.01
	done
	[ -n "$t1" ] || fail "fewer than $BUILD_N narinfos in $2 after 10 minutes"
	built=$(grep '^/nix/store/' "$W/logs/build.log" | xargs stat -c %.9Z | sort -n | tail -1)
	[ -n "$built" ] || fail "$1: no outputs in build.log"
	put "$1.tocache" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
	put "$1.frombuild" "$(awk -v a="$built" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
}
wait_socket() { for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done; fail "no socket $1"; }
BASH_BIN=$(command -v bash)
# The modules' wrappers (writeShellScriptBin without exec; writeShellScript with exec).
printf '#!%s\n%s queue --socket "%s"\n' "$BASH_BIN" "$PEERS/queued-build-hook" "$P/qbh.sock" >"$P/enqueue-package"
printf '#!%s\nexec %s send --socket %s "$@"\n' "$BASH_BIN" "$PEERS/niks3-hook" "$P/niks3.sock" >"$P/niks3-post-build-hook"
# niks3-hook reads only OUT_PATHS, empty on Nix 2.8: fed from a .drv to output map.
cat >"$P/niks3-fed-hook" <<EOF
#!$BASH_BIN
if [ -z "\$OUT_PATHS" ] && [ -n "\$NIKS3_FEED_MAP" ]; then
	while read -r out drv; do [ "\$drv" = "\$DRV_PATH" ] && { OUT_PATHS=\$out; break; }; done <"\$NIKS3_FEED_MAP"
	export OUT_PATHS
fi
exec $PEERS/niks3-hook send --socket $P/niks3.sock "\$@"
EOF
# What queued-build-hook's daemon runs per build (the module's postBuildScriptContent).
cat >"$P/qbh-push.sh" <<EOF
#!/bin/sh
[ -n "\$OUT_PATHS" ] || OUT_PATHS=\$(nix-store --query --outputs "\$DRV_PATH")
exec $W/bin/cachix push benchcache \$OUT_PATHS
EOF
chmod 755 "$P/enqueue-package" "$P/niks3-post-build-hook" "$P/niks3-fed-hook" "$P/qbh-push.sh"
qbh_start() { # HOOK [ENV...]: -E passes a variable on, as a unit's Environment=
	local hook=$1 kv setenv=()
	shift
	for kv in "$@"; do setenv+=(-E "$kv"); done
	rm -f "$P/qbh.sock"
	peer_start qbh systemd-socket-activate "${setenv[@]}" -l "$P/qbh.sock" \
		"$PEERS/queued-build-hook" daemon --hook "$hook" --retry-interval 1 --retries 5 --concurrency 0
	wait_socket "$P/qbh.sock"
}
niks3_start() { # URL [PATH]
	rm -f "$P/niks3.sock" "$P"/niks3.db*
	peer_start niks3 env PATH="${2:-$PATH}" "$PEERS/niks3-hook" serve --server-url "$1" --auth-token-path "$P/token" \
		--socket "$P/niks3.sock" --db-path "$P/niks3.db" --batch-size 50 --idle-exit-timeout 0 --max-concurrent-uploads 30
	wait_socket "$P/niks3.sock"
}
fake_start() { # DIR: sets NIKS3_URL
	rm -f "$P/fake.url"
	peer_start fake "$BT" fakeniks3 -dir "$1" -port-file "$P/fake.url"
	for _ in $(seq 1 200); do [ -s "$P/fake.url" ] && break; sleep 0.05; done
	NIKS3_URL=$(cat "$P/fake.url")
}

# Latency, the daemons held off as this hook's worker is by its lock:
# queued-build-hook's runs /bin/true per message, niks3's finds no nix in
# its PATH, so each upload fails at once.
conf peerlat "$W/q-peerlat"
qbh_start /bin/true
niks3_start http://127.0.0.1:9 /nonexistent
awk '{print $1, $2}' <(paste -d' ' "$W/outs.txt" "$W/drvs.txt") >"$P/lat.map"
hold "$W/q-peerlat"
OUT_PATHS=$P0 CACHIX_FILTER_HOOK_CONFIG=$W/conf/peerlat.conf hf peers "${HF[@]}" --prepare "rm -f $W/q-peerlat/entries/$KEY0" \
	-n floor "$FLOOR" -n cachix-filter-hook "$CFH" -n queued-build-hook "$PEERS/queued-build-hook queue --socket $P/qbh.sock" \
	-n "queued-build-hook wrapper" "$P/enqueue-package" -n niks3-hook "$PEERS/niks3-hook send --socket $P/niks3.sock" \
	-n "niks3-hook wrapper" "$P/niks3-post-build-hook"
OUT_PATHS= DRV_PATH=$D0 NIKS3_FEED_MAP=$P/lat.map hf peersfed "${HF[@]}" -n floor "$FLOOR" -n "niks3-hook wrapper fed" "$P/niks3-fed-hook"
unhold
peer_stop qbh
peer_stop niks3

# The build loop, each way in turn with a fresh queue, daemon and cache;
# then the time until the cache holds every path.
PWAYS=(floor cfh qbh niks3)
for rep in $(seq 1 "$PEER_REPS"); do
	for i in 0 1 2 3; do
		case ${PWAYS[$(((i + rep) % 4))]} in
		floor) build "peer/floor/$rep" "$FLOOR" ;;
		cfh)
			conf "peerbuild-$rep" "$W/q-peerbuild-$rep"
			export CACHIX_FILTER_HOOK_CONFIG=$W/conf/peerbuild-$rep.conf CACHIX_STANDIN_ROOT=$P/standin-cfh-$rep CACHIX_STANDIN_DELAY=$DELAY
			build "peer/cfh/$rep" "$CFH"
			tocache "peer/cfh/$rep" "$P/standin-cfh-$rep/benchcache"
			"$CFH" wait --timeout 600s >/dev/null 2>&1
			idle "$W/q-peerbuild-$rep"
			unset CACHIX_FILTER_HOOK_CONFIG CACHIX_STANDIN_DELAY
			put "peer/cfh/$rep.calls" "$(wc -l <"$P/standin-cfh-$rep/invocations.jsonl")"
			;;
		qbh)
			qbh_start "$P/qbh-push.sh" CACHIX_STANDIN_ROOT="$P/standin-qbh-$rep" CACHIX_STANDIN_DELAY="$DELAY" CACHIX_AUTH_TOKEN=bench-token
			build "peer/qbh/$rep" "$P/enqueue-package"
			tocache "peer/qbh/$rep" "$P/standin-qbh-$rep/benchcache"
			"$PEERS/queued-build-hook" wait --socket "$P/qbh.sock"
			peer_stop qbh
			put "peer/qbh/$rep.calls" "$(wc -l <"$P/standin-qbh-$rep/invocations.jsonl")"
			;;
		niks3)
			salt=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
			nix-instantiate bench/drvs.nix --argstr salt "$salt" --arg n "$BUILD_N" --argstr prefix benchpkg >"$P/drvs.txt" 2>/dev/null
			xargs nix-store --query --outputs <"$P/drvs.txt" | paste -d' ' - "$P/drvs.txt" >"$P/feed.map"
			fake_start "$P/niks3-cache-$rep"
			niks3_start "$NIKS3_URL"
			NIKS3_FEED_MAP=$P/feed.map BUILD_SALT=$salt build "peer/niks3/$rep" "$P/niks3-fed-hook"
			tocache "peer/niks3/$rep" "$P/niks3-cache-$rep"
			peer_stop niks3
			peer_stop fake
			put "peer/niks3/$rep.calls" "$(grep -c 'msg="Uploading batch"' "$W/logs/peer-niks3.log" || true)"
			;;
		esac
	done
done
