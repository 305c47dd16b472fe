package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Targets of issue 6.
const (
	targetHookRatio  = 2.0
	targetBuildRatio = 1.05
	targetCalls      = 5
	targetDecisions  = 1e6
	// "Flat in queue depth" needs a number to be checked: the median at
	// the deepest queue within 10% of the median at depth 0.
	targetFlat = 1.10
)

type results struct {
	all   []Result
	facts map[string]string
	wd    string
}

func (rs *results) get(kind, name string) (Result, bool) {
	for _, r := range rs.all {
		if r.Kind == kind && r.Name == name {
			return r, true
		}
	}
	return Result{}, false
}

func (rs *results) each(kind string) []Result {
	var out []Result
	for _, r := range rs.all {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func (rs *results) named(kind, name string) []Result {
	var out []Result
	for _, r := range rs.each(kind) {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("results", "", "results.jsonl")
	out := fs.String("out", "", "BENCHMARKS.md")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	rs := &results{facts: map[string]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", *in, err)
		}
		rs.all = append(rs.all, r)
		if r.Kind == "fact" {
			rs.facts[r.Name] = r.Text
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	rs.wd = rs.facts["workdir"]
	text, err := render(rs)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(text), 0o644)
}

// missing is the error for a result the run should have produced.
type missing struct{ kind, name string }

func (m missing) Error() string { return fmt.Sprintf("no %s result %q", m.kind, m.name) }

func ms(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f ms", x)
	case x >= 10:
		return fmt.Sprintf("%.1f ms", x)
	default:
		return fmt.Sprintf("%.2f ms", x)
	}
}

func secs(x float64) string { return fmt.Sprintf("%.2f s", x) }

func ratio(x float64) string { return fmt.Sprintf("%.2fx", x) }

// thousands formats n with comma separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func kb(x int64) string { return fmt.Sprintf("%.1f MiB", float64(x)/1024) }

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func medianOf(rs []Result, f func(Result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

func list(rs []Result, f func(Result) string) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = f(r)
	}
	return strings.Join(parts, ", ")
}

func render(rs *results) (string, error) {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	need := func(kind, name string) Result {
		r, ok := rs.get(kind, name)
		if !ok {
			panic(missing{kind, name})
		}
		return r
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				if m, ok := r.(missing); ok {
					err = m
					return
				}
				panic(r)
			}
		}()
		renderBody(rs, p, need)
	}()
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

func renderBody(rs *results, p func(string, ...any), need func(kind, name string) Result) {
	fct := rs.facts
	floor := need("latency", "floor")
	hook := need("latency", "hook")
	hookDrv := need("latency", "hook-drv")
	version := need("latency", "version")
	floorD := need("latency", "floor (Nix 2.8 series)")
	floorS := need("latency", "floor (spawn series)")
	spawn := need("latency", "hook-spawn")
	hookRatio := hook.MedianMS / floor.MedianMS

	builds := func(way string) []Result { return rs.named("build", way) }
	none, empty, cfh := builds("none"), builds("empty hook"), builds("cachix-filter-hook")
	naiveSync, naiveBg := builds("naive-sync"), builds("naive-bg")
	if len(none) == 0 || len(empty) == 0 || len(cfh) == 0 || len(naiveSync) == 0 || len(naiveBg) == 0 {
		panic(missing{"build", "one of the five ways"})
	}
	wall := func(r Result) float64 { return r.Seconds }
	emptyMed := medianOf(empty, wall)
	cfhMed := medianOf(cfh, wall)
	buildRatio := cfhMed / emptyMed
	nBuilds := cfh[0].Items

	calls := rs.named("count", "pusher calls")
	maxCalls := 0.0
	for _, c := range calls {
		maxCalls = max(maxCalls, c.Value)
	}
	waits := rs.named("wait", "wait after the build")

	decides := rs.each("decide")
	var top Result
	for _, d := range decides {
		if !strings.Contains(d.Name, "without") && d.Rules > top.Rules {
			top = d
		}
	}
	topAllow := allowCount(top.Name)

	var depths []Result
	for _, r := range rs.each("latency") {
		if strings.HasPrefix(r.Name, "depth=") {
			depths = append(depths, r)
		}
	}
	sort.Slice(depths, func(i, j int) bool { return depths[i].Depth < depths[j].Depth })
	if len(depths) < 2 {
		panic(missing{"latency", "depth=..."})
	}
	d0, dN := depths[0], depths[len(depths)-1]
	flat := dN.MedianMS / d0.MedianMS
	sc := loadScale(rs, need)

	// ---------------------------------------------------------------- header
	p("# Benchmarks\n\n")
	p("Written by `bash bench/run.sh` (`make bench`), %s mode, on %s; the run took %s s. ", fct["mode"], fct["date"], fct["elapsed"])
	p("Every figure here was measured by that run, and every median and ratio comes from it: nothing is typed in. ")
	p("`$W` stands for the run's temporary directory. Issues 6 and 12 state the targets.\n\n")

	p("## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range [][2]string{
		{"nproc", fct["nproc"]}, {"CPU", fct["cpu"]}, {"Memory", fct["memory"]}, {"Kernel", fct["kernel"]},
		{"File system", fct["filesystem"]}, {"Nix", fct["nix"]}, {"Go", fct["go"]}, {"hyperfine", fct["hyperfine"]},
		{"Peak RSS measured with", fct["rss"]}, {"Commit", fct["commit"]},
		{"Load average (1, 5, 15 min) at start / end", fct["load_start"] + " / " + fct["load_end"]},
		{"Binary sizes", fmt.Sprintf("cachix-filter-hook %s bytes, floor %s bytes", thousandsStr(fct["size_hook"]), thousandsStr(fct["size_floor"]))},
	} {
		p("| %s | %s |\n", kv[0], kv[1])
	}

	// ---------------------------------------------------------------- targets
	p("\n## Targets\n\n| Target | Measured | Wanted | |\n|---|---|---|---|\n")
	p("| Hook latency against a bare Go binary (medians, a worker running) | %s (%s / %s) | ≤ %.1fx | %s |\n",
		ratio(hookRatio), ms(hook.MedianMS), ms(floor.MedianMS), targetHookRatio, verdict(hookRatio <= targetHookRatio))
	p("| Build loop of %d builds, cachix-filter-hook against the empty hook (medians of %d runs) | %s (%s / %s) | ≤ %.2fx | %s |\n",
		nBuilds, len(cfh), ratio(buildRatio), secs(cfhMed), secs(emptyMed), targetBuildRatio, verdict(buildRatio <= targetBuildRatio))
	p("| Pusher calls for %d builds (largest of %d runs) | %.0f | ≤ %d | %s |\n", nBuilds, len(calls), maxCalls, targetCalls, verdict(maxCalls <= targetCalls))
	p("| Filter decisions per second, %s allow rules | %s | ≥ %s | %s |\n", thousands(float64(topAllow)), thousands(top.PerSecond), thousands(targetDecisions), verdict(top.PerSecond >= targetDecisions))
	p("| Hook latency flat in queue depth: median at %s pending against 0 | %s (%s / %s) | ≤ %.2fx | %s |\n",
		thousands(float64(dN.Depth)), ratio(flat), ms(dN.MedianMS), ms(d0.MedianMS), targetFlat, verdict(flat <= targetFlat))
	p("\n\"Flat\" has no number in the issue; this benchmark reads it as the median at the deepest queue within %.0f%% of the median at depth 0.\n", (targetFlat-1)*100)
	sc.targets(p)
	if fct["mode"] != "full" {
		p("\n**Smoke mode: tiny counts, the figures are not meaningful.**\n")
	}

	// ---------------------------------------------------------------- 1
	p("\n## 1. Hook latency\n\n")
	p("The real binary in hook mode: one selected store path in `OUT_PATHS` (a different prebuilt path each run), a real hook.conf with two targets, the real queue, and the worker check. ")
	p("Every run queues a new entry: the benchmark checks that the entry exists after the run and removes it, so no run takes the hook's already-queued shortcut, which skips the fsyncs, and the queue's depth stays what it was. ")
	p("Each series runs its commands in rounds, one run of each per round in a rotating order, so that the noise of a shared machine hits them alike; each series has its own floor, and a ratio is taken within its series. ")
	p("Output goes through one pipe read to its end, as Nix reads a hook. Peak RSS: %s.\n\n", fct["rss"])
	p("| Command | Runs | Median | p99 | Mean | CPU, user+sys (median) | Peak RSS (median / max) | Minor page faults (median) | Median / floor |\n|---|---|---|---|---|---|---|---|---|\n")
	row := func(label string, r Result, base Result) {
		p("| %s | %d | %s | %s | %s | %s | %s / %s | %s | %s |\n", label, r.Runs, ms(r.MedianMS), ms(r.P99MS), ms(r.MeanMS), ms(r.CPUMS), kb(r.RSSMedian), kb(r.RSSMax), thousands(float64(r.MinFlt)), ratio(r.MedianMS/base.MedianMS))
	}
	row("floor: a Go binary that does nothing (`bench/floor`)", floor, floor)
	row("`cachix-filter-hook version`: the same binary, exiting right after its flags", version, floor)
	row("**cachix-filter-hook, a worker running** (the lock is held, as during a burst: the hook only probes it)", hook, floor)
	row("floor, second series", floorS, floorS)
	row(fmt.Sprintf("cachix-filter-hook, no worker running: it spawns one (spawned in %d of %d runs; the next run waits for it to exit)", spawn.Spawned, spawn.Runs), spawn, floorS)
	row("floor, third series", floorD, floorD)
	row("cachix-filter-hook, `OUT_PATHS` empty and `DRV_PATH` set, as Nix 2.8 runs it (the hook finds the outputs from the derivation; CPU and RSS include any child it waits for)", hookDrv, floorD)

	if hf, ok := rs.get("hyperfine", "hook"); ok {
		hff := need("hyperfine", "floor")
		p("\nCross-check with hyperfine (`-N`, the same path each run, its entry removed by `--prepare`, a worker running; hyperfine runs all of one command's runs, then the other's, not interleaved): ")
		p("floor median %s, hook median %s over %d runs each: %s.\n", ms(hff.MedianMS), ms(hf.MedianMS), hf.Runs, ratio(hf.MedianMS/hff.MedianMS))
	}

	p("\n### Where the hook's time goes\n\n")
	phases := rs.each("phase")
	initAll := need("init", "hook (all package inits)")
	floorInit := need("init", "floor (all package inits)")
	initEnd := need("init", "hook (last init ends, since start)")
	floorEnd := need("init", "floor (last init ends, since start)")
	p("From outside (section 1, same rounds): the floor %s; `cachix-filter-hook version`, which links everything the hook links and exits after parsing its flags, %s (**%s over the floor: the price of what the binary links**); the hook %s (%s more than `version`: the hook's own work). ",
		ms(floor.MedianMS), ms(version.MedianMS), ms(version.MedianMS-floor.MedianMS), ms(hook.MedianMS), ms(hook.MedianMS-version.MedianMS))
	p("Minor page faults: floor %s, `version` %s, hook %s.\n\n", thousands(float64(floor.MinFlt)), thousands(float64(version.MinFlt)), thousands(float64(hook.MinFlt)))
	p("From inside: `GODEBUG=inittrace=1` (medians of %d runs; its own printing slows it) gives when the last package init ends, counted from the Go runtime's start, and the time in init functions themselves, the rest of that span being the runtime's start and page faults. ", initAll.Runs)
	p("The steps of `hook.Run` after `main` for one selected path are timed inside fresh processes (`benchtool phases`, medians of %d runs, in a binary that links the same packages).\n\n", phasesRuns(phases))
	p("| Part | cachix-filter-hook | floor |\n|---|---|---|\n")
	p("| Go runtime start to the end of package init | %s | %s |\n", ms(initEnd.MedianMS), ms(floorEnd.MedianMS))
	p("| … of which in init functions (%d packages with init work for the hook) | %s | %s |\n", initAll.Items, ms(initAll.MedianMS), ms(floorInit.MedianMS))
	var stepsTotal float64
	for _, ph := range phases {
		if strings.Contains(ph.Name, "raw") {
			continue
		}
		p("| `main`: %s | %s (p99 %s) | |\n", ph.Name, ms(ph.MedianMS), ms(ph.P99MS))
		stepsTotal += ph.MedianMS
	}
	for _, ph := range phases {
		if strings.Contains(ph.Name, "raw") {
			p("| For scale: one bare %s on this file system | %s | |\n", strings.TrimSuffix(ph.Name, " (raw)"), ms(ph.MedianMS))
		}
	}
	inits := rs.each("init")
	p("\nThe costliest init functions of the hook:\n\n| Package | init (median) |\n|---|---|\n")
	for _, in := range inits {
		if strings.HasPrefix(in.Name, "hook ") && !strings.Contains(in.Name, "(") {
			p("| %s | %s |\n", strings.TrimPrefix(in.Name, "hook "), ms(in.MedianMS))
		}
	}
	p("\nThe hook's binary links %s packages, the floor's %s. The heaviest standard packages in it, and the third-party packages that import them: %s.\n",
		fct["packages_hook"], fct["packages_floor"], orNone(fct["heavy_importers"]))
	fsyncFile, _ := rs.get("phase", "fsync file (raw)")
	fsyncDir, _ := rs.get("phase", "fsync dir (raw)")
	load, _ := rs.get("phase", "config.Load")
	add, _ := rs.get("phase", "queue.Add")
	excess := hook.MedianMS - floor.MedianMS
	budget := floor.MedianMS * (targetHookRatio - 1)
	if hookRatio > targetHookRatio {
		fsyncs := fsyncFile.MedianMS + fsyncDir.MedianMS
		p("\n**What bounds it.** The hook takes %s more than the floor; %.1fx would allow %s. ", ms(excess), targetHookRatio, ms(budget))
		linked, work := version.MedianMS-floor.MedianMS, hook.MedianMS-version.MedianMS
		p("Of that, %s is paid for what the binary links (`version` against the floor: the runtime's start over a %s-byte binary of %s packages, %s more in init functions, page faults) and %s for the hook's work, ",
			ms(linked), thousandsStr(fct["size_hook"]), fct["packages_hook"], ms(initAll.MedianMS-floorInit.MedianMS), ms(work))
		p("where `config.Load` (viper reading and validating hook.conf) takes %s and `queue.Add` %s (a bare fsync of a file and of a directory, which durability requires, cost %s together here)", ms(load.MedianMS), ms(add.MedianMS), ms(fsyncs))
		if stepsTotal < work {
			p("; the steps timed inside add up to %s of the %s, the rest (more threads and heap than `version`, their exit) is not attributed. ", ms(stepsTotal), ms(work))
		} else {
			p("; the steps timed inside add up to %s, as much as that difference (they were timed in another process and binary). ", ms(stepsTotal))
		}
		if linked > work {
			p("The larger part is the linking: even a hook that did nothing would be at %s. ", ratio(version.MedianMS/floor.MedianMS))
		} else {
			p("The larger part is the hook's work. ")
		}
		p("Of the %s packages the hook links beyond the floor's, %s are viper and its dependencies (`go list -deps`), among them %s. ", fct["packages_extra"], fct["packages_viper"], orNone(fct["heavy_importers"]))
		p("Reaching %.1fx needs a hook path that does not link viper and its dependencies (a small reader of hook.conf's TOML subset, or a separate small hook binary): a change of design, not a tuning. The fsyncs (%s) stay, and their share depends on the disk.\n", targetHookRatio, ms(fsyncs))
	}

	// ---------------------------------------------------------------- 2
	p("\n## 2. Build loop\n\n")
	p("`nix-build` of %d salted derivations (a new salt every run, so Nix really builds), `--max-jobs 1`, no substituters; each push through the cachix stand-in sleeps %s first (`CACHIX_STANDIN_DELAY`). ", nBuilds, fct["push_delay"])
	p("The cheap ways ran %d times each, in rotating order; the two naive hooks once, on %d derivations.\n\n", len(cfh), naiveSync[0].Items)
	p("| Hook | Builds | Wall time (median) | Each run | Per build | Median / empty hook |\n|---|---|---|---|---|---|\n")
	bRow := func(label string, r []Result) {
		m := medianOf(r, wall)
		p("| %s | %d | %s | %s | %s | %s |\n", label, r[0].Items, secs(m), list(r, func(x Result) string { return secs(x.Seconds) }), ms(1000*m/float64(r[0].Items)),
			ratio((m/float64(r[0].Items))/(emptyMed/float64(empty[0].Items))))
	}
	bRow("none", none)
	bRow("empty hook (`bench/floor`)", empty)
	bRow("**cachix-filter-hook** (each stand-in push sleeps "+fct["push_delay"]+")", cfh)
	held := builds("worker held off")
	if len(held) > 0 {
		bRow("diagnostic, not one of the five: cachix-filter-hook with no worker running during the builds (the benchmark holds the worker lock)", held)
	}
	bRow("naive synchronous script (`bench/hooks/naive-sync.sh`: `nix-store --query --outputs`, then the stand-in's push)", naiveSync)
	bRow("naive script that backgrounds the push with `&` without detaching (`bench/hooks/naive-bg.sh`)", naiveBg)
	if naiveSync[0].Items != nBuilds {
		p("\nThe naive hooks ran fewer builds: their ratio compares the time per build.\n")
	}
	if buildRatio > targetBuildRatio {
		perBuild := 1000 * (cfhMed - emptyMed) / float64(nBuilds)
		emptyPer := 1000 * emptyMed / float64(nBuilds)
		p("\n**What bounds it.** These derivations build in milliseconds: with the empty hook a build takes %s in all. cachix-filter-hook adds %s per build; 1.05x would allow %s. ",
			ms(emptyPer), ms(perBuild), ms(emptyPer*(targetBuildRatio-1)))
		p("The push is not waited for: each push sleeps %s, yet a build with cachix-filter-hook took %s, against %s with the naive synchronous hook. ",
			fct["push_delay"], ms(1000*cfhMed/float64(nBuilds)), ms(1000*medianOf(naiveSync, wall)/float64(naiveSync[0].Items)))
		p("What the builds pay is the hook's own latency: run as this Nix runs it (%s passes `OUT_PATHS` empty, NixOS/nix#6446, so the hook reads `DRV_PATH`), it measured %s over the floor in section 1. ",
			fct["nix"], ms(hookDrv.MedianMS-floorD.MedianMS))
		if len(held) > 0 {
			heldPer := 1000 * (medianOf(held, wall) - emptyMed) / float64(nBuilds)
			if heldPer < perBuild {
				p("With no worker running alongside (diagnostic row) the hook added %s per build; the worker pushing during the builds accounts for the other %s (its `nix copy` runs on the same %s cores). ",
					ms(heldPer), ms(perBuild-heldPer), fct["nproc"])
			} else {
				p("With no worker running alongside (diagnostic row) the loop was no faster (%s per build over the empty hook, against %s): the worker pushing during the builds costs them nothing measurable here. ",
					ms(heldPer), ms(perBuild))
			}
		}
		p("Meeting 1.05x on builds this short would need a hook barely dearer than the floor; with the same %s added, builds that take %s or more (hook included) meet it.\n",
			ms(perBuild), ms(perBuild/(targetBuildRatio-1)))
	}

	// ---------------------------------------------------------------- 3
	p("\n## 3. Batching\n\n")
	pushed := rs.named("count", "paths pushed")
	p("| | Each cachix-filter-hook run | Median |\n|---|---|---|\n")
	p("| Pusher calls for %d builds | %s | %.0f |\n", nBuilds, list(calls, func(r Result) string { return fmt.Sprintf("%.0f", r.Value) }), medianOf(calls, func(r Result) float64 { return r.Value }))
	p("| Paths pushed | %s | %.0f |\n", list(pushed, func(r Result) string { return fmt.Sprintf("%.0f", r.Value) }), medianOf(pushed, func(r Result) float64 { return r.Value }))
	p("| From the end of `nix-build` to the return of `cachix-filter-hook wait` | %s | %s |\n", list(waits, func(r Result) string { return secs(r.Seconds) }), secs(medianOf(waits, wall)))
	for _, way := range []string{"naive-sync", "naive-bg"} {
		if c, ok := rs.get("count", "pusher calls "+way); ok {
			p("| Pusher calls of %s for %d builds | %.0f | |\n", way, naiveSync[0].Items, c.Value)
		}
	}
	p("\nEvery path was checked to be in the stand-in's file:// cache after `wait`; each push call sleeps %s, then copies with `nix copy`.\n", fct["push_delay"])

	// ---------------------------------------------------------------- 4
	p("\n## 4. Throughput\n\n### Filter decisions\n\n")
	p("`filter.Compile` once, then `Rules.Decide` over %s distinct realistic store paths (nixpkgs-like names, versions and outputs, random hashes), the median of the passes. ", thousands(float64(top.Items)))
	p("A rule set of N allow rules mixes literal-prefix globs (80%%), brace alternatives (8%%), literal-suffix globs (6%%), whole-path globs such as `/nix/store/*-proj9-*` (4%%) and globs with no literal end (2%%), plus 4 allow rules that match and N/10+3 deny rules.\n\n")
	p("| Rule set | Rules (allow + deny) | Decisions/s | Paths selected |\n|---|---|---|---|\n")
	for _, d := range decides {
		p("| %s | %s | %s | %s |\n", strings.TrimPrefix(d.Name, "decide "), thousands(float64(d.Rules)), thousands(d.PerSecond), thousands(d.Value))
	}
	if gb := prefixed(rs.each("gobench"), "BenchmarkDecide/"); len(gb) > 0 {
		p("\n`BenchmarkDecide` in filter/filter_test.go (its own rule mix, with 10%% whole-path globs, over 1,024 names): %s.\n",
			list(gb, func(r Result) string {
				return fmt.Sprintf("%s %s/s", strings.TrimPrefix(r.Name, "BenchmarkDecide/"), thousands(r.PerSecond))
			}))
	}
	if top.PerSecond < targetDecisions {
		p("\n**What bounds it.** ")
		if nf, ok := rs.get("decide", top.Name+" without whole-path globs"); ok {
			r := nf.PerSecond / top.PerSecond
			p("The same %s rules without their whole-path globs give %s decisions/s (%s)", thousands(float64(topAllow)), thousands(nf.PerSecond), ratio(r))
			if r >= 1.5 {
				p(": the whole-path globs are the costly part, though they are %d of the %s", countFull(top, nf), thousands(float64(top.Rules)))
			}
			p(". ")
		}
		p("CPU profile of the %s-rule passes (`go tool pprof -top`):\n\n```\n%s\n```\n", thousands(float64(topAllow)), strings.TrimSpace(fct["decide_profile"]))
	}

	p("\n### Enqueue rate\n\n| Concurrent writers | Whole hook processes: entries/s (median hook latency) | `queue.Add` in one process (`BenchmarkAdd`): entries/s |\n|---|---|---|\n")
	conc := rs.each("concurrency")
	sort.Slice(conc, func(i, j int) bool { return conc[i].Concurrent < conc[j].Concurrent })
	for _, c := range conc {
		gb, _ := rs.get("gobench", fmt.Sprintf("BenchmarkAdd/writers=%d", c.Concurrent))
		p("| %d | %s (%s) | %s |\n", c.Concurrent, thousands(c.PerSecond), ms(c.MedianMS), thousands(gb.PerSecond))
	}
	if len(conc) > 0 {
		p("\nWhole processes: %d hooks, each queueing its own path, K at a time, a worker running (lock held); every entry checked afterwards. Each entry is fsynced and its directory fsynced, as the hook does.\n", conc[0].Items)
	}

	drain := need("drain", "worker --once")
	batches, _ := rs.get("count", "drain batches")
	p("\n### Drain rate\n\n`cachix-filter-hook worker --once` pushing %d queued paths into a `file://` store with `nix copy` (batches of up to 64: %.0f calls): %s, **%s paths/s**. Every path was checked to be in the cache.\n",
		drain.Items, batches.Value, secs(drain.Seconds), thousands(drain.PerSecond))

	// ---------------------------------------------------------------- 5
	p("\n## 5. Scaling\n\n")
	p("Hook latency with pending entries already in the queue. The entries are written the way the queue writes them (`queue.Entry` as JSON, named by `queue.Key`) for the configured target, and nothing drains them: the benchmark holds the worker lock, as a worker stuck on a slow push would, which is when a queue grows. ")
	p("Each run's own entry is removed after it, so the depth stays put; the depths run interleaved, with the floor.\n\n")
	p("| Pending entries | Runs | Median | p99 | Median / depth 0 |\n|---|---|---|---|---|\n")
	for _, d := range depths {
		p("| %s | %d | %s | %s | %s |\n", thousands(float64(d.Depth)), d.Runs, ms(d.MedianMS), ms(d.P99MS), ratio(d.MedianMS/d0.MedianMS))
	}
	if fl, ok := rs.get("latency", "floor (depth series)"); ok {
		p("| floor, same rounds | %d | %s | %s | |\n", fl.Runs, ms(fl.MedianMS), ms(fl.P99MS))
	}
	if flat > targetFlat {
		p("\n**Not flat.** The queue is designed so that the hook never lists or reads entries/ (queue/queue.go): it looks up one name, writes one file and fsyncs the directory. A growth with %s entries points at the file system's cost for a large directory, or at a change that made the hook read the queue; profile the hook at that depth.\n", thousands(float64(dN.Depth)))
	}

	scanSection(rs, p)

	// ---------------------------------------------------------------- 6
	sc.section(rs, p)

	// ---------------------------------------------------------------- 7
	peersSection(rs, p, need)

	// ---------------------------------------------------------------- other
	left, _ := rs.get("count", "workers left running")
	p("\nWorkers still running when the measurements ended: %.0f (the script kills any it finds and removes `$W`).\n", left.Value)

	p("\n## Commands\n\nAs the script ran them (`bench/run.sh`; the helpers are in `bench/benchtool`):\n\n```\n")
	for _, c := range rs.each("cmd") {
		p("%s\n", strings.ReplaceAll(c.Text, rs.wd, "$W"))
	}
	p("```\n")
}

func allowCount(name string) int {
	i := strings.Index(name, "rules=")
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(strings.Fields(name[i+len("rules="):])[0])
	return n
}

func prefixed(rs []Result, prefix string) []Result {
	var out []Result
	for _, r := range rs {
		if strings.HasPrefix(r.Name, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func phasesRuns(ps []Result) int {
	if len(ps) == 0 {
		return 0
	}
	return ps[0].Runs
}

func thousandsStr(s string) string {
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return s
	}
	return thousands(n)
}

// countFull is how many whole-path globs the variant without them dropped.
func countFull(with, without Result) int { return with.Rules - without.Rules }

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none"
	}
	return strings.ReplaceAll(s, "<-", "←")
}
