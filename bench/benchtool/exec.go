package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// execSpec says what `benchtool exec` runs.
type execSpec struct {
	// Mode "latency" (default) runs the commands one at a time, in rounds:
	// each round runs every command once, the order rotating from round
	// to round, so that drift on a noisy machine hits them alike.
	// Mode "concurrency" runs the first command Total times, Concurrency
	// at a time, and reports entries per second.
	Mode        string `json:"mode"`
	Runs        int    `json:"runs"`
	Warmup      int    `json:"warmup"`
	Concurrency int    `json:"concurrency"`
	Total       int    `json:"total"`
	Paths       string `json:"paths"` // file: "<out path> <drv path>" per line
	// TimeBin is GNU time (/usr/bin/time). When set, every timed run is
	// followed by one more run under `time -f %M` for the peak RSS.
	// ru_maxrss from our own wait4 would not do: Go starts children with
	// CLONE_VFORK|CLONE_VM and exec records the parent's high-water RSS
	// as the child's (fs/exec.c, setmax_mm_hiwater_rss), so every child
	// would report at least this process's RSS.
	TimeBin  string    `json:"time_bin"`
	Commands []cmdSpec `json:"commands"`
}

type cmdSpec struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	// Queue and Target: the command is a hook that must queue the run's
	// path for Target in Queue. After each run the entry is checked and
	// removed, so every run queues a genuinely new entry (the hook's
	// already-queued shortcut skips the fsyncs) and the depth stays
	// what it was.
	Queue  string `json:"queue"`
	Target string `json:"target"`
	// HoldLock holds <Queue>/lock for the whole measurement, as a busy
	// worker does: the hook only probes the lock and starts nothing.
	HoldLock bool `json:"hold_lock"`
	// Reap makes this process a child subreaper and, after each run,
	// waits for every descendant the hook left behind (the worker it
	// spawned) before the next run; those are counted in Spawned.
	Reap bool `json:"reap"`
	// Drv passes the path the way Nix 2.8 does: OUT_PATHS empty and
	// DRV_PATH set, so the hook has to find the outputs itself.
	Drv bool `json:"drv"`
	// Expect must appear in the command's output (stdout+stderr, one
	// pipe, as Nix reads the hook).
	Expect string `json:"expect"`
	// Depth is recorded with the results: the queue's entries before each run.
	Depth int `json:"depth"`
	// Quiet: the command must print nothing (a peer's client, which
	// reports a failure on stderr and exits 0 anyway).
	Quiet bool `json:"quiet"`
}

type runPath struct {
	out, drv string
	parsed   storepath.Path
}

func readPaths(file string) ([]runPath, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []runPath
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		rp := runPath{out: fields[0]}
		if len(fields) > 1 {
			rp.drv = fields[1]
		}
		if rp.parsed, err = storepath.Parse(storepath.StoreDir(), rp.out); err != nil {
			return nil, err
		}
		out = append(out, rp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no paths", file)
	}
	return out, sc.Err()
}

func runExec(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	specFile := fs.String("spec", "", "JSON spec")
	results := fs.String("results", "", "append results here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*specFile)
	if err != nil {
		return err
	}
	var sp execSpec
	if err := json.Unmarshal(data, &sp); err != nil {
		return fmt.Errorf("%s: %w", *specFile, err)
	}
	if len(sp.Commands) == 0 {
		return errors.New("no commands")
	}
	paths, err := readPaths(sp.Paths)
	if err != nil {
		return err
	}
	for _, c := range sp.Commands {
		if c.Reap {
			// PR_SET_CHILD_SUBREAPER: orphans of our descendants (the
			// worker the hook detaches with setsid) become our children.
			if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0); e != 0 {
				return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %v", e)
			}
		}
		if c.HoldLock {
			unlock, err := holdLock(c.Queue)
			if err != nil {
				return err
			}
			defer unlock()
		}
	}
	var rs []Result
	if sp.Mode == "concurrency" {
		r, err := concurrency(sp, paths)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	} else {
		rs, err = latency(sp, paths)
		if err != nil {
			return err
		}
	}
	for _, r := range rs {
		fmt.Fprintf(os.Stderr, "  %-28s runs=%d median=%.3fms p99=%.3fms rss=%dKB", r.Name, r.Runs, r.MedianMS, r.P99MS, r.RSSMedian)
		if r.PerSecond > 0 {
			fmt.Fprintf(os.Stderr, " %.0f/s", r.PerSecond)
		}
		if r.Spawned > 0 {
			fmt.Fprintf(os.Stderr, " spawned=%d", r.Spawned)
		}
		fmt.Fprintln(os.Stderr)
	}
	return appendResults(*results, rs...)
}

// holdLock takes <queue>/lock exclusively, without waiting: a worker that
// still holds it would be draining the queue under the measurement.
func holdLock(dir string) (func(), error) {
	if _, err := queue.Open(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("worker lock of %s is taken (a worker is running): %w", dir, err)
	}
	return func() { f.Close() }, nil
}

type sample struct {
	wall   time.Duration
	cpu    time.Duration
	rss    int64
	minflt int64
}

// runOne execs c once with path p and returns its wall time (from before
// fork to after the exit and the end of its output) and peak RSS.
func runOne(c cmdSpec, p runPath, timeBin string) (sample, error) {
	argv := c.Argv
	var rssFile string
	if timeBin != "" {
		f, err := os.CreateTemp("", "benchtool-rss.*")
		if err != nil {
			return sample{}, err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		argv = append([]string{timeBin, "-f", "%M %R", "-o", rssFile}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	env := append(os.Environ(), c.Env...)
	if c.Drv {
		env = append(env, "OUT_PATHS=", "DRV_PATH="+p.drv)
	} else {
		env = append(env, "OUT_PATHS="+p.out)
	}
	cmd.Env = env
	// One pipe for both streams, read to EOF, as Nix reads a hook.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %v\n%s", c.Name, err, out.String())
	}
	if c.Expect != "" && !strings.Contains(out.String(), c.Expect) {
		return sample{}, fmt.Errorf("%s: output lacks %q:\n%s", c.Name, c.Expect, out.String())
	}
	if c.Quiet && out.Len() > 0 && timeBin == "" {
		return sample{}, fmt.Errorf("%s: printed something, so it failed:\n%s", c.Name, out.String())
	}
	s := sample{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if rssFile != "" {
		data, err := os.ReadFile(rssFile)
		if err != nil {
			return sample{}, err
		}
		// The last line: a command's own output may precede it.
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fields := strings.Fields(lines[len(lines)-1])
		if len(fields) != 2 {
			return sample{}, fmt.Errorf("%s: no RSS from %s: %q", c.Name, timeBin, data)
		}
		if s.rss, err = strconv.ParseInt(fields[0], 10, 64); err != nil {
			return sample{}, fmt.Errorf("%s: RSS from %s: %v", c.Name, timeBin, err)
		}
		if s.minflt, err = strconv.ParseInt(fields[1], 10, 64); err != nil {
			return sample{}, fmt.Errorf("%s: page faults from %s: %v", c.Name, timeBin, err)
		}
	} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rss = ru.Maxrss
	}
	return s, nil
}

// takeEntry checks that the run queued p and removes the entry.
func takeEntry(c cmdSpec, p runPath) error {
	if c.Queue == "" {
		return nil
	}
	file := filepath.Join(c.Queue, "entries", queue.Key(c.Target, p.parsed))
	if _, err := os.Lstat(file); err != nil {
		return fmt.Errorf("%s: the run did not queue %s: %v", c.Name, p.out, err)
	}
	return os.Remove(file)
}

// reap waits for every orphaned descendant and returns how many there were.
func reap() int {
	n := 0
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil { // ECHILD: none left
			return n
		}
		n++
	}
}

func latency(sp execSpec, paths []runPath) ([]Result, error) {
	n := len(sp.Commands)
	samples := make([][]sample, n)
	spawned := make([]int, n)
	for r := -sp.Warmup; r < sp.Runs; r++ {
		p := paths[(r+sp.Warmup)%len(paths)]
		for j := 0; j < n; j++ {
			k := (j + r + sp.Warmup) % n
			c := sp.Commands[k]
			s, err := runOne(c, p, "")
			if err != nil {
				return nil, err
			}
			if err := takeEntry(c, p); err != nil {
				return nil, err
			}
			if c.Reap {
				got := reap()
				if r >= 0 {
					spawned[k] += got
				}
			}
			if sp.TimeBin != "" {
				// The same run again under GNU time, for the peak RSS.
				rs, err := runOne(c, p, sp.TimeBin)
				if err != nil {
					return nil, err
				}
				if err := takeEntry(c, p); err != nil {
					return nil, err
				}
				if c.Reap {
					reap()
				}
				s.rss, s.minflt = rs.rss, rs.minflt
			}
			if r >= 0 {
				samples[k] = append(samples[k], s)
			}
		}
	}
	var rs []Result
	for k, c := range sp.Commands {
		r := summarize(c.Name, samples[k])
		r.Kind = "latency"
		r.Spawned = spawned[k]
		r.Depth = c.Depth
		rs = append(rs, r)
	}
	return rs, nil
}

func summarize(name string, ss []sample) Result {
	ms := make([]float64, len(ss))
	cpu := make([]float64, len(ss))
	rss := make([]int64, len(ss))
	flt := make([]int64, len(ss))
	var rssMax int64
	for i, s := range ss {
		ms[i] = float64(s.wall.Nanoseconds()) / 1e6
		cpu[i] = float64(s.cpu.Nanoseconds()) / 1e6
		rss[i] = s.rss
		flt[i] = s.minflt
		rssMax = max(rssMax, s.rss)
	}
	return Result{
		Name: name, Runs: len(ss),
		MedianMS: median(ms), P99MS: percentile(ms, 99), MeanMS: mean(ms),
		MinMS: percentile(ms, 0), MaxMS: percentile(ms, 100),
		RSSMedian: medianInt(rss), RSSMax: rssMax,
		CPUMS: median(cpu), MinFlt: medianInt(flt),
	}
}

// concurrency runs Total hooks, Concurrency at a time, each queueing its
// own path, and reports entries queued per second of wall time.
func concurrency(sp execSpec, paths []runPath) (Result, error) {
	c := sp.Commands[0]
	if sp.Total > len(paths) {
		return Result{}, fmt.Errorf("total %d needs as many distinct paths, have %d", sp.Total, len(paths))
	}
	idx := make(chan int)
	go func() {
		for i := 0; i < sp.Total; i++ {
			idx <- i
		}
		close(idx)
	}()
	var (
		mu       sync.Mutex
		samples  []sample
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < sp.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				s, err := runOne(c, paths[i], "")
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				samples = append(samples, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return Result{}, firstErr
	}
	for i := 0; i < sp.Total; i++ {
		if err := takeEntry(c, paths[i]); err != nil {
			return Result{}, err
		}
	}
	r := summarize(c.Name, samples)
	r.Kind = "concurrency"
	r.Concurrent = sp.Concurrency
	r.Items = sp.Total
	r.Seconds = wall.Seconds()
	r.PerSecond = float64(sp.Total) / wall.Seconds()
	return r, nil
}

// runHoldLock runs a command while holding a queue's worker lock.
func runHoldLock(args []string) error {
	fs := flag.NewFlagSet("holdlock", flag.ContinueOnError)
	dir := fs.String("queue", "", "queue directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command")
	}
	unlock, err := holdLock(*dir)
	if err != nil {
		return err
	}
	defer unlock()
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
