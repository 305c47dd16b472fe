package main

import (
	"fmt"
	"strings"
)

// peersSection renders section 7: queued-build-hook and niks3-hook beside
// this hook, when the run had PEERS=DIR.
func peersSection(rs *results, p func(string, ...any), need func(kind, name string) Result) {
	fct := rs.facts
	p("\n## 7. Peers: queued-build-hook and niks3-hook\n\n")
	if fct["peers"] == "" {
		p("Not measured in this run: `PEERS` was not set. `make bench PEERS=DIR` (or `PEERS=DIR bash bench/run.sh`) measures them, DIR holding the binaries `queued-build-hook` (github.com/nix-community/queued-build-hook) and `niks3-hook` (github.com/Mic92/niks3, `./cmd/niks3-hook`), built from their sources outside this repository.\n")
		return
	}
	sec := func(r Result) float64 { return r.Seconds }
	floor := need("latency", "floor (peer series)")
	feedFloor := need("latency", "floor (peer feed series)")
	lat := func(name string) Result { return need("latency", name) }
	builds := func(way string) []Result {
		r := rs.named("peerbuild", way)
		if len(r) == 0 {
			panic(missing{"peerbuild", way})
		}
		return r
	}
	empty := builds("empty hook")
	emptyMed := medianOf(empty, sec)
	nBuilds := empty[0].Items

	p("Built from their own sources, outside this repository, and given to the run as `PEERS=%s`: queued-build-hook %s; niks3-hook %s (`go version -m`). ",
		fct["peers"], orUnknown(fct["peer_queued-build-hook"]), orUnknown(fct["peer_niks3-hook"]))
	p("Each runs as its NixOS module sets it up: the hook Nix runs is the module's bash wrapper (queued-build-hook's `enqueue-package`, `writeShellScriptBin` of `queued-build-hook queue --socket …`; niks3's `niks3-post-build-hook`, `writeShellScript` of `exec niks3-hook send …`), ")
	p("queued-build-hook's daemon behind a socket passed systemd-style (`systemd-socket-activate -l SOCK`, its socket unit) with the module's defaults (`--retry-interval 1 --retries 5 --concurrency 0`), niks3-hook serve with its defaults (`--batch-size 50 --max-concurrent-uploads 30`). This hook's own module sets the binary itself as the hook.\n\n")
	p("**How they were fed on %s.** Nix 2.8 passes `OUT_PATHS` empty (NixOS/nix#6446). queued-build-hook hands `DRV_PATH` and `OUT_PATHS` to the script its daemon runs; that script (the module's `postBuildScriptContent`) asks `nix-store --query --outputs \"$DRV_PATH\"` when `OUT_PATHS` is empty, in the daemon, off the build's path, then runs `cachix push benchcache $OUT_PATHS` (the stand-in). ", fct["nix"])
	p("niks3-hook send reads only `OUT_PATHS`, so in the build loop its module's wrapper is preceded by a few bash builtins that set `OUT_PATHS` from a map of each .drv to its output, written before the build (`$W/peers/niks3-fed-hook`); the latency rows pass `OUT_PATHS` as newer Nix does, and one row times the fed wrapper. ")
	p("niks3 uploads to a niks3 server (PostgreSQL and S3), which is not run here: `benchtool fakeniks3` serves the part of its API the upload uses (pending closures with presigned URLs to itself, PUT of the objects into a directory, sign, complete) and answers at once, so niks3's uploads pay no network and no per-call delay, while the cachix stand-in used by the two others sleeps %s per push. ", fct["push_delay"])
	p("Its uploads do the client's real work: `nix path-info --recursive --json`, NARs compressed with zstd, narinfos, listings.\n\n")

	p("| Hook | Latency, bare client (median) | Through its module's wrapper (median) | Build loop of %d builds (median of %d) / empty hook | Pusher calls (each round) | End of the build loop until all %d are in the cache (median) |\n|---|---|---|---|---|---|\n",
		nBuilds, len(empty), nBuilds)
	latCell := func(r Result, base Result) string {
		return fmt.Sprintf("%s (%s)", ms(r.MedianMS), ratio(r.MedianMS/base.MedianMS))
	}
	row := func(label, way string, bare string, wrapper string) {
		b := builds(way)
		m := medianOf(b, sec)
		calls := rs.named("count", "peer pusher calls "+way)
		toCache := rs.named("tocache", way)
		p("| %s | %s | %s | %s (%s / %s) | %s | %s (%s) |\n", label, bare, wrapper, ratio(m/emptyMed), secs(m), secs(emptyMed),
			list(calls, func(r Result) string { return fmt.Sprintf("%.0f", r.Value) }),
			secs(medianOf(toCache, sec)), list(toCache, func(r Result) string { return secs(r.Seconds) }))
	}
	p("| empty hook (`bench/floor`) | %s | | 1.00x (%s) | | |\n", ms(floor.MedianMS), secs(emptyMed))
	row("**cachix-filter-hook**", "cachix-filter-hook", latCell(lat("cachix-filter-hook (peer series)"), floor), "(none: the binary is the hook)")
	row("queued-build-hook", "queued-build-hook", latCell(lat("queued-build-hook queue"), floor), latCell(lat("queued-build-hook, module wrapper"), floor))
	fed := lat("niks3-hook, module wrapper fed OUT_PATHS")
	row("niks3-hook", "niks3", latCell(lat("niks3-hook send"), floor), latCell(lat("niks3-hook, module wrapper"), floor)+
		fmt.Sprintf("; fed `OUT_PATHS` as in the build loop: %s (floor %s)", ms(fed.MedianMS), ms(feedFloor.MedianMS)))
	p("\nLatency: medians of %d runs in rotating rounds, ratios to the floor of the same rounds (%s); the daemons were held off as this hook's worker is by its lock (queued-build-hook's ran `/bin/true` per message, niks3's had no `nix` in its PATH, so its uploads failed at once). ", floor.Runs, ms(floor.MedianMS))
	p("Build loop: `nix-build` of %d salted derivations, `--max-jobs 1`, the four ways in rotating order, each round with a fresh queue, daemon and cache; the daemons push while the builds run, on the same %s cores. The last column runs from the end of `nix-build` until the cache directory holds all %d narinfos (`benchtool waitfiles`).\n",
		nBuilds, fct["nproc"], nBuilds)
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" || strings.HasPrefix(s, ",") {
		return "(version unknown)"
	}
	return s
}
