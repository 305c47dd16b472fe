package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Targets of issue 12 ("Scale to NixOS-size closures").
const (
	targetFirstPushS  = 0.5 // push --closure of 10,000 paths, record empty
	targetDrainRatio  = 1.2 // queue + drain against one nix copy
	targetSecondPushS = 0.3 // push --closure again, all pushed
	targetSecondCalls = 0
	targetBigHookS    = 10.0 // 100,000 paths in one hook run
	targetRecordRatio = 1.10 // hook latency, record of 100,000 against none
)

// scale holds the figures of section 6, computed once for the targets
// table and the section.
type scale struct {
	closureN                      int
	first, qrFloor, drain, copies []Result
	second                        []Result
	drainRatio                    float64
	calls                         []Result
	maxCalls                      float64
	secondCalls, secondQueued     float64
	big, outmax                   []Result
	bigQueued, outmaxQueued       []Result
	bigN, outmaxN                 int
	rss0, rssN                    Result
	rssOK                         bool
	rssLeft, rssDropped           Result
	rec0, recN, recFloor          Result
	recEntries                    Result
	recRatio                      float64
}

func (s *scale) firstMed() float64 {
	return medianOf(s.first, func(r Result) float64 { return r.Seconds })
}
func (s *scale) secondMed() float64 {
	return medianOf(s.second, func(r Result) float64 { return r.Seconds })
}
func (s *scale) bigMax() float64 {
	m := 0.0
	for _, r := range s.big {
		m = max(m, r.Seconds)
	}
	return m
}

// bigOK: every 100,000-path run exited 0 and queued every path.
func (s *scale) bigOK() bool {
	for _, r := range s.big {
		if r.Exit != 0 {
			return false
		}
	}
	for _, q := range s.bigQueued {
		if int(q.Value) != s.bigN {
			return false
		}
	}
	return len(s.big) > 0
}

func loadScale(rs *results, need func(kind, name string) Result) *scale {
	s := &scale{}
	sec := func(r Result) float64 { return r.Seconds }
	some := func(name string) []Result {
		r := rs.named("scale", name)
		if len(r) == 0 {
			panic(missing{"scale", name})
		}
		return r
	}
	s.closureN = int(need("count", "closure paths").Value)
	s.first = some("push --closure, record empty")
	s.qrFloor = some("nix-store --query --requisites (floor)")
	s.drain = some("push --closure, then wait")
	s.copies = some("nix copy (floor)")
	s.second = some("push --closure, all pushed")
	s.drainRatio = medianOf(s.drain, sec) / medianOf(s.copies, sec)
	s.calls = rs.named("count", "scale pusher calls")
	for _, c := range s.calls {
		s.maxCalls = max(s.maxCalls, c.Value)
	}
	s.secondCalls = need("count", "scale pusher calls, second push").Value
	s.secondQueued = need("count", "scale entries queued, second push").Value
	for _, r := range rs.each("scale") {
		switch {
		case strings.HasPrefix(r.Name, "hook, ") && strings.HasSuffix(r.Name, " in OUT_PATHS"):
			s.outmax = append(s.outmax, r)
			s.outmaxN = r.Items
		case strings.HasPrefix(r.Name, "hook, ") && strings.HasSuffix(r.Name, " paths"):
			s.big = append(s.big, r)
			s.bigN = r.Items
		}
	}
	if len(s.big) == 0 || len(s.outmax) == 0 {
		panic(missing{"scale", "hook, N paths"})
	}
	s.bigQueued = rs.named("count", fmt.Sprintf("hook, %d paths: queued", s.bigN))
	s.outmaxQueued = rs.named("count", fmt.Sprintf("hook, %d paths in OUT_PATHS: queued", s.outmaxN))
	s.rss0, s.rssOK = rs.get("scale", "worker --once, empty queue")
	if s.rssOK {
		for _, r := range rs.each("scale") {
			if strings.HasPrefix(r.Name, "worker --once, ") && strings.HasSuffix(r.Name, " queued") {
				s.rssN = r
			}
		}
		s.rssLeft = need("count", s.rssN.Name+": left")
		s.rssDropped = need("count", s.rssN.Name+": dropped")
	}
	s.recEntries = need("count", "record entries")
	s.recFloor = need("latency", "floor (record series)")
	s.rec0 = need("latency", "record=0")
	s.recN = need("latency", fmt.Sprintf("record=%d", s.recEntries.Items))
	s.recRatio = s.recN.MedianMS / s.rec0.MedianMS
	return s
}

func (s *scale) targets(p func(string, ...any)) {
	n := thousands(float64(s.closureN))
	p("\n## Targets of issue 12 (scale to NixOS-size closures)\n\n| Target | Measured | Wanted | |\n|---|---|---|---|\n")
	p("| `push --closure` of %s selected paths, record empty (median of %d runs) | %s | < %s | %s |\n",
		n, len(s.first), secs(s.firstMed()), secs(targetFirstPushS), verdict(s.firstMed() < targetFirstPushS))
	p("| Queue and drain %s paths into a `file://` store until `wait` returns, against one `nix copy` of them (medians of %d rounds) | %s (%s / %s) | ≤ %.1fx | %s |\n",
		n, len(s.drain), ratio(s.drainRatio), secs(medianOf(s.drain, func(r Result) float64 { return r.Seconds })), secs(medianOf(s.copies, func(r Result) float64 { return r.Seconds })),
		targetDrainRatio, verdict(s.drainRatio <= targetDrainRatio))
	p("| Pusher calls for those %s paths (largest of %d rounds) | %.0f | as few as argv allows | |\n", n, len(s.calls), s.maxCalls)
	secondOK := s.secondMed() < targetSecondPushS
	callsOK := s.secondCalls <= targetSecondCalls
	p("| `push --closure` of the same root again, all pushed (median of %d runs) | %s | < %s | %s |\n",
		len(s.second), secs(s.secondMed()), secs(targetSecondPushS), verdict(secondOK))
	p("| Pusher calls for those %d runs (entries queued by them: %s) | %.0f | %d | %s |\n",
		len(s.second), thousands(s.secondQueued), s.secondCalls, targetSecondCalls, verdict(callsOK))
	p("| %s paths in one hook run (slowest of %d runs; every run exit 0 and all queued) | %s, %s | < %s, exit 0 | %s |\n",
		thousands(float64(s.bigN)), len(s.big), secs(s.bigMax()), exitsQueued(s.big, s.bigQueued, s.bigN), secs(targetBigHookS),
		verdict(s.bigMax() < targetBigHookS && s.bigOK()))
	if s.rssOK {
		p("| Worker peak RSS with %s entries queued (`worker --once`) | %s (empty queue: %s) | (no target) | |\n",
			thousands(float64(s.rssN.Items)), kb(s.rssN.RSSMax), kb(s.rss0.RSSMax))
	}
	p("| Hook latency with a record of %s pushed paths against none (medians of %d runs) | %s (%s / %s) | ≤ %.1fx | %s |\n",
		thousands(s.recEntries.Value), s.recN.Runs, ratio(s.recRatio), ms(s.recN.MedianMS), ms(s.rec0.MedianMS), targetRecordRatio, verdict(s.recRatio <= targetRecordRatio))
}

// exitsQueued says, for each run, its exit status and how many paths it queued.
func exitsQueued(runs, queued []Result, n int) string {
	var parts []string
	for i, r := range runs {
		q := "?"
		if i < len(queued) {
			q = thousands(queued[i].Value)
		}
		parts = append(parts, fmt.Sprintf("exit %d, %s of %s queued", r.Exit, q, thousands(float64(n))))
	}
	return strings.Join(uniq(parts), "; ")
}

func uniq(xs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func (s *scale) section(rs *results, p func(string, ...any)) {
	fct := rs.facts
	sec := func(r Result) float64 { return r.Seconds }
	each := func(r []Result) string { return list(r, func(x Result) string { return secs(x.Seconds) }) }
	n := thousands(float64(s.closureN))
	p("\n## 6. Scale to NixOS-size closures (issue 12)\n\n")
	p("The root is a `builtins.toFile` file whose text names %s other such files (`bench/closure.nix`): its runtime closure is %s paths, made at evaluation time, nothing built, the same paths every run. ", thousands(float64(s.closureN-1)), n)
	p("The config has one `file://` target selecting them and every other key at its default (`queue.batch`, `queue.remember_pushed`, `closure_deny`, `unsubstitutable`); the product runs Nix through `nix.bin_dir`, a wrapper that logs every call (a few ms each), so pusher calls are counted from what really ran. The floors run Nix directly.\n\n")
	p("| What | Runs | Median | Each run | Floor (median) | Median / floor |\n|---|---|---|---|---|---|\n")
	qr := medianOf(s.qrFloor, sec)
	p("| `push --closure ROOT`, record empty (fresh queue each run; worker lock held, so nothing is pushed meanwhile) | %d | %s | %s | `nix-store --query --requisites ROOT`: %s | %s |\n",
		len(s.first), secs(s.firstMed()), each(s.first), secs(qr), ratio(s.firstMed()/qr))
	p("| `push --closure ROOT` then `wait`, fresh queue and cache: queued, pushed, and `wait` returned | %d | %s | %s | one `nix copy --to file://… ROOT` into a fresh cache: %s (%s) | %s |\n",
		len(s.drain), secs(medianOf(s.drain, sec)), each(s.drain), secs(medianOf(s.copies, sec)), each(s.copies), ratio(s.drainRatio))
	p("| `push --closure ROOT` again, all %s pushed (the last round's queue and record) | %d | %s | %s | `nix-store --query --requisites ROOT`: %s | %s |\n",
		n, len(s.second), secs(s.secondMed()), each(s.second), secs(qr), ratio(s.secondMed()/qr))
	p("\nPusher calls (`nix copy`) per queue-and-drain round: %s; by the %d second runs together: %.0f, and they queued %s entries. ",
		list(s.calls, func(r Result) string { return fmt.Sprintf("%.0f", r.Value) }), len(s.second), s.secondCalls, thousands(s.secondQueued))
	p("Every round's cache was checked to hold all %s narinfos, and its queue to be empty.\n", n)

	p("\n### %s paths in one hook run\n\n", thousands(float64(s.bigN)))
	perPath := float64(atoi(fct["outmax_bytes"])) / float64(max(1, s.outmaxN))
	p("Linux limits one environment string to 128 KiB (`MAX_ARG_STRLEN`): at %.0f bytes a path, `OUT_PATHS` holds at most about %s of these paths, and `execve` fails with E2BIG past that, so Nix could not pass more either. ",
		perPath, thousands(float64(131072-len("OUT_PATHS="))/max(1, perPath)))
	p("The hook also takes a build's outputs from `$DRV_PATH` when `OUT_PATHS` is empty, as Nix 2.8 runs it, so the run gets a derivation with %s outputs (`bench/bigdrv.nix`, never built, a %s-byte .drv; the paths do not exist). ",
		thousands(float64(s.bigN)), thousandsStr(fct["bigdrv_bytes"]))
	p("A second row puts the first %s of them in `OUT_PATHS` (%s bytes; no more fit in 128 KiB). Each run has a fresh queue and the worker lock is held, so nothing is pushed; its entries are counted after it.\n\n",
		thousands(float64(s.outmaxN)), thousandsStr(fct["outmax_bytes"]))
	p("| Hook run | Runs | Each run | Exit status, paths queued | Per path |\n|---|---|---|---|---|\n")
	p("| %s paths from `DRV_PATH` | %d | %s | %s | %.1f µs |\n", thousands(float64(s.bigN)), len(s.big), each(s.big), exitsQueued(s.big, s.bigQueued, s.bigN), 1e6*medianOf(s.big, sec)/float64(s.bigN))
	p("| %s paths in `OUT_PATHS` | %d | %s | %s | %.1f µs |\n", thousands(float64(s.outmaxN)), len(s.outmax), each(s.outmax), exitsQueued(s.outmax, s.outmaxQueued, s.outmaxN), 1e6*medianOf(s.outmax, sec)/float64(s.outmaxN))

	p("\n### Worker memory\n\n")
	if s.rssOK {
		p("`worker --once` (peak RSS by GNU time `-f %%M`) with an empty queue: %s in %s; with %s entries queued: **%s**, in %s (exit %d). ",
			kb(s.rss0.RSSMax), secs(s.rss0.Seconds), thousands(float64(s.rssN.Items)), kb(s.rssN.RSSMax), secs(s.rssN.Seconds), s.rssN.Exit)
		p("The entries are made-up paths that do not exist (`benchtool fill`, written in the queue's format), so the worker reads and plans all of them and then drops each as garbage-collected without a pusher call: %s dropped, %s left.\n",
			thousands(s.rssDropped.Value), thousands(s.rssLeft.Value))
	} else {
		p("Not measured: %s.\n", fct["rss_skipped"])
	}

	p("\n### Hook latency and the record of pushed paths\n\n")
	p("The hook looks each selected path up in its target's record (`<queue.dir>/pushed/<key>`, package pushed) before queueing it. `benchtool record` filled the record of the hook's target (the key from `config.Load` and `Target.RecordKey()`) with %s made-up paths through `pushed.OpenWrite` and `Add`; it holds %s (a full bucket forgets its oldest slot). ",
		thousands(float64(s.recEntries.Items)), thousands(s.recEntries.Value))
	p("The hooks queue the prebuilt paths of section 1, which the record does not hold; worker lock held; interleaved with the floor.\n\n")
	p("| Command | Runs | Median | p99 | Median / no record |\n|---|---|---|---|---|\n")
	p("| floor, same rounds | %d | %s | %s | |\n", s.recFloor.Runs, ms(s.recFloor.MedianMS), ms(s.recFloor.P99MS))
	p("| hook, no record | %d | %s | %s | 1.00x |\n", s.rec0.Runs, ms(s.rec0.MedianMS), ms(s.rec0.P99MS))
	p("| hook, a record of %s | %d | %s | %s | %s |\n", thousands(s.recEntries.Value), s.recN.Runs, ms(s.recN.MedianMS), ms(s.recN.P99MS), ratio(s.recRatio))
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}
