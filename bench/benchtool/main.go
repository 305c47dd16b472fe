// Command benchtool is the measuring side of `make bench` (bench/run.sh).
//
// It is a harness, not part of the product: it execs the real binaries,
// fills queues, times commands and renders BENCHMARKS.md from what it
// measured. Every figure it prints comes from a run; nothing is typed in.
//
//	benchtool exec   -spec FILE -results FILE   exec commands N times (or K at a time), wall time and peak RSS per run
//	benchtool time   -name N -results FILE [-time-bin T] [-keep-status] -- CMD...   run one command, record its wall time (and peak RSS, exit status)
//	benchtool fill   -queue DIR -target T -n N [-paths FILE]   put N pending entries in a queue
//	benchtool decide -names N -rules 10,100,1000 -results FILE   filter decisions per second
//	benchtool holdlock -queue DIR -- CMD...   run CMD while holding the queue's worker lock
//	benchtool record -config FILE -target T -n N   fill a target's record of pushed paths
//	benchtool waitfiles -dir D -n N -name NAME   time until D holds N narinfos
//	benchtool fakeniks3 -dir D -port-file F   the part of niks3's server API niks3-hook uses, storing into D
//	benchtool phases -config FILE -path P   time the hook's steps, each run a fresh process
//	benchtool inittrace -name N -- CMD...   median package init times (GODEBUG=inittrace=1)
//	benchtool gobench -in FILE -metric UNIT/s   turn go test -bench output into results
//	benchtool report -results FILE -machine FILE -out FILE   write BENCHMARKS.md
//
// Results are JSON lines appended to one file, so the shell script can add
// its own (counts, machine facts) with printf.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool exec|time|fill|decide|holdlock|record|waitfiles|fakeniks3|phases|inittrace|gobench|report [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"exec":      runExec,
		"time":      runTime,
		"fill":      runFill,
		"decide":    runDecide,
		"holdlock":  runHoldLock,
		"record":    runRecord,
		"waitfiles": runWaitFiles,
		"fakeniks3": runFakeNiks3,
		"phases":    runPhases,
		"inittrace": runInitTrace,
		"gobench":   runGobench,
		"report":    runReport,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// Result is one line of the results file. Kind says which fields matter.
type Result struct {
	Kind string `json:"kind"` // latency, concurrency, time, count, decide, gobench, fact
	Name string `json:"name"`

	// latency and concurrency: milliseconds
	Runs       int     `json:"runs,omitempty"`
	MedianMS   float64 `json:"median_ms,omitempty"`
	P99MS      float64 `json:"p99_ms,omitempty"`
	MeanMS     float64 `json:"mean_ms,omitempty"`
	MinMS      float64 `json:"min_ms,omitempty"`
	MaxMS      float64 `json:"max_ms,omitempty"`
	RSSMedian  int64   `json:"rss_median_kb,omitempty"`
	RSSMax     int64   `json:"rss_max_kb,omitempty"`
	CPUMS      float64 `json:"cpu_median_ms,omitempty"` // user+sys of the process and the children it waited for
	MinFlt     int64   `json:"minflt_median,omitempty"` // minor page faults (GNU time %R)
	Spawned    int     `json:"spawned,omitempty"`       // workers reaped after the runs
	Depth      int     `json:"depth,omitempty"`         // queue entries present before each run
	Concurrent int     `json:"concurrent,omitempty"`
	PerSecond  float64 `json:"per_second,omitempty"` // entries/s, decisions/s, paths/s
	Seconds    float64 `json:"seconds,omitempty"`    // time: wall seconds
	Value      float64 `json:"value,omitempty"`      // count
	Text       string  `json:"text,omitempty"`       // fact, or a command line
	Rules      int     `json:"rules,omitempty"`
	Items      int     `json:"items,omitempty"` // names, paths, entries processed
	Exit       int     `json:"exit,omitempty"`  // time -keep-status: the command's exit status
}

func appendResults(file string, rs ...Result) error {
	if file == "" {
		return nil
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range rs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// median and percentile use the nearest-rank method on a sorted copy.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	rank := int(float64(len(s))*p/100+0.999999999) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

func median(xs []float64) float64 { return percentile(xs, 50) }

func mean(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(max(1, len(xs)))
}

func medianInt(xs []int64) int64 {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return int64(median(f))
}
