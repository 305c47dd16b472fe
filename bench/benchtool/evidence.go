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
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// phaseNames are the steps of hook.Run for one selected path, in order.
var phaseNames = []string{"config.Load", "parse+select", "queue.Open", "queue.Add", "worker lock probe", "fsync file (raw)", "fsync dir (raw)"}

// runPhases times the hook's steps as hook.Run performs them, each run in
// a fresh process (the hook pays its cold costs every time), and reports
// the median of each step. The raw fsync lines time one bare fsync of a
// small file and of the entries directory, on the same file system: the
// price of durability the queue cannot go below.
func runPhases(args []string) error {
	fs := flag.NewFlagSet("phases", flag.ContinueOnError)
	conf := fs.String("config", "", "hook.conf")
	path := fs.String("path", "", "a store path the config selects")
	runs := fs.Int("runs", 50, "fresh processes")
	once := fs.Bool("once", false, "one run, JSON on stdout (internal)")
	results := fs.String("results", "", "append results here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *once {
		return phasesOnce(*conf, *path)
	}
	cfg, err := config.Load(*conf)
	if err != nil {
		return err
	}
	unlock, err := holdLock(cfg.Queue.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	samples := map[string][]float64{}
	for i := 0; i < *runs; i++ {
		out, err := exec.Command(exe, "phases", "-once", "-config", *conf, "-path", *path).Output()
		if err != nil {
			return fmt.Errorf("phases run: %v", err)
		}
		var m map[string]float64
		if err := json.Unmarshal(out, &m); err != nil {
			return err
		}
		for k, v := range m {
			samples[k] = append(samples[k], v)
		}
	}
	var rs []Result
	for _, n := range phaseNames {
		r := Result{Kind: "phase", Name: n, Runs: len(samples[n]), MedianMS: median(samples[n]), P99MS: percentile(samples[n], 99)}
		fmt.Fprintf(os.Stderr, "  phase %-20s median %.3f ms\n", n, r.MedianMS)
		rs = append(rs, r)
	}
	return appendResults(*results, rs...)
}

func phasesOnce(conf, path string) error {
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	m := map[string]float64{}
	t := time.Now()
	lap := func(name string) {
		now := time.Now()
		m[name] = ms(now.Sub(t))
		t = now
	}
	cfg, err := config.Load(conf)
	if err != nil {
		return err
	}
	lap("config.Load")
	p, err := storepath.Parse(storepath.StoreDir(), path)
	if err != nil {
		return err
	}
	sel := hook.Select(cfg, []storepath.Path{p})
	if len(sel.Pairs) != 1 {
		return fmt.Errorf("the config selects %d pairs for %s, want 1", len(sel.Pairs), path)
	}
	lap("parse+select")
	q, err := queue.Open(cfg.Queue.Dir)
	if err != nil {
		return err
	}
	lap("queue.Open")
	added, err := q.Add(sel.Pairs, time.Now())
	if err != nil {
		return err
	}
	if added != 1 {
		return errors.New("the entry was already queued")
	}
	lap("queue.Add")
	if _, err := q.WorkerRunning(); err != nil {
		return err
	}
	lap("worker lock probe")
	entry := filepath.Join(cfg.Queue.Dir, "entries", queue.Key(sel.Pairs[0].Target, p))
	if err := os.Remove(entry); err != nil {
		return err
	}
	// The bare cost of durability on this file system.
	f, err := os.CreateTemp(filepath.Join(cfg.Queue.Dir, "tmp"), "fsync-probe.*")
	if err != nil {
		return err
	}
	f.Write([]byte(`{"target":"x","path":"/nix/store/x","queued":"2024-01-01T00:00:00Z"}` + "\n"))
	t = time.Now()
	f.Sync()
	lap("fsync file (raw)")
	f.Close()
	os.Remove(f.Name())
	d, err := os.Open(filepath.Join(cfg.Queue.Dir, "entries"))
	if err != nil {
		return err
	}
	t = time.Now()
	d.Sync()
	lap("fsync dir (raw)")
	d.Close()
	return json.NewEncoder(os.Stdout).Encode(m)
}

var initLine = regexp.MustCompile(`^init (\S+) @([0-9.]+) ms, ([0-9.]+) ms clock, (\d+) bytes, (\d+) allocs`)

// runInitTrace runs a command with GODEBUG=inittrace=1 and reports the
// median clock time of each package's init, and of all of them.
func runInitTrace(args []string) error {
	fs := flag.NewFlagSet("inittrace", flag.ContinueOnError)
	runs := fs.Int("runs", 20, "runs")
	name := fs.String("name", "", "prefix of the result names")
	top := fs.Int("top", 10, "packages to record")
	results := fs.String("results", "", "append results here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command")
	}
	per := map[string][]float64{}
	var totals, ends []float64
	for i := 0; i < *runs; i++ {
		cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v\n%s", err, out.String())
		}
		total, end := 0.0, 0.0
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			m := initLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			at, _ := strconv.ParseFloat(m[2], 64)
			clock, _ := strconv.ParseFloat(m[3], 64)
			per[m[1]] = append(per[m[1]], clock)
			total += clock
			end = max(end, at+clock)
		}
		totals = append(totals, total)
		ends = append(ends, end)
	}
	type pkg struct {
		name string
		ms   float64
	}
	var pkgs []pkg
	for n, xs := range per {
		pkgs = append(pkgs, pkg{n, median(xs)})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].ms > pkgs[j].ms })
	rs := []Result{
		{Kind: "init", Name: *name + " (all package inits)", MedianMS: median(totals), Runs: *runs, Items: len(pkgs)},
		{Kind: "init", Name: *name + " (last init ends, since start)", MedianMS: median(ends), Runs: *runs},
	}
	for i := 0; i < min(*top, len(pkgs)); i++ {
		rs = append(rs, Result{Kind: "init", Name: *name + " " + pkgs[i].name, MedianMS: pkgs[i].ms, Runs: *runs})
	}
	fmt.Fprintf(os.Stderr, "  %s: %d package inits, %.3f ms in all (median of %d runs)\n", *name, len(pkgs), median(totals), *runs)
	return appendResults(*results, rs...)
}
