package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// runTime runs one command with the script's stdio and records its wall
// time. A command that fails fails the benchmark.
func runTime(args []string) error {
	fs := flag.NewFlagSet("time", flag.ContinueOnError)
	name := fs.String("name", "", "result name")
	kind := fs.String("kind", "time", "result kind")
	logFile := fs.String("log", "", "the command's stdout and stderr go here (default: our stderr)")
	results := fs.String("results", "", "append the result here")
	items := fs.Int("items", 0, "items the command processes (for a per-second rate)")
	timeBin := fs.String("time-bin", "", "GNU time: record the command's peak RSS (time -f %M)")
	keepStatus := fs.Bool("keep-status", false, "record a non-zero exit status instead of failing")
	expect := fs.String("expect", "", "the command's output (in -log) must contain this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command")
	}
	if *expect != "" && *logFile == "" {
		return errors.New("-expect needs -log")
	}
	argv := fs.Args()
	var rssFile string
	if *timeBin != "" {
		f, err := os.CreateTemp("", "benchtool-rss.*")
		if err != nil {
			return err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		argv = append([]string{*timeBin, "-f", "%M", "-o", rssFile}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stderr, os.Stderr
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	exit := 0
	if err != nil {
		var ee *exec.ExitError
		if !*keepStatus || !errors.As(err, &ee) {
			return fmt.Errorf("%s: %v", strings.Join(fs.Args(), " "), err)
		}
		exit = ee.ExitCode()
	}
	r := Result{Kind: *kind, Name: *name, Seconds: wall.Seconds(), Items: *items, Exit: exit}
	if *items > 0 {
		r.PerSecond = float64(*items) / wall.Seconds()
	}
	if rssFile != "" {
		data, err := os.ReadFile(rssFile)
		if err != nil {
			return err
		}
		// The last line: GNU time writes "Command exited with non-zero
		// status N" before it.
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		kb, err := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: no peak RSS from %s: %q", *name, *timeBin, data)
		}
		r.RSSMax, r.RSSMedian = kb, kb
	}
	if *expect != "" {
		out, err := os.ReadFile(*logFile)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), *expect) {
			return fmt.Errorf("%s: output lacks %q (see %s)", *name, *expect, *logFile)
		}
	}
	fmt.Fprintf(os.Stderr, "  %-28s %.3fs", *name, wall.Seconds())
	if r.RSSMax > 0 {
		fmt.Fprintf(os.Stderr, " rss=%dKB", r.RSSMax)
	}
	if exit != 0 {
		fmt.Fprintf(os.Stderr, " exit=%d", exit)
	}
	fmt.Fprintln(os.Stderr)
	return appendResults(*results, r)
}

// runFill puts n pending entries for target into a queue.
//
// With -paths, the entries are real store paths queued through the
// queue's own API (queue.Add: fsynced, linked, as the hook does), dated
// -age ago so that a worker pushes them at once instead of waiting for a
// burst to end. Without -paths, n entries for made-up paths are written
// straight into entries/ in the queue's format (queue.Entry as JSON, named
// queue.Key): 100,000 fsyncs would take minutes and prove nothing about
// the hook, which never reads them.
func runFill(args []string) error {
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	dir := fs.String("queue", "", "queue directory")
	target := fs.String("target", "", "target name")
	n := fs.Int("n", 0, "entries")
	pathsFile := fs.String("paths", "", "real store paths to queue (first n)")
	age := fs.Duration("age", time.Minute, "how long ago the entries were queued")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q, err := queue.Open(*dir)
	if err != nil {
		return err
	}
	when := time.Now().Add(-*age)
	if *pathsFile != "" {
		paths, err := readPaths(*pathsFile)
		if err != nil {
			return err
		}
		if *n > len(paths) {
			return fmt.Errorf("%d entries wanted, %s has %d paths", *n, *pathsFile, len(paths))
		}
		pairs := make([]queue.Pair, *n)
		for i := range pairs {
			pairs[i] = queue.Pair{Target: *target, Path: paths[i].parsed}
		}
		added, err := q.Add(pairs, when)
		if err != nil {
			return err
		}
		if added != *n {
			return fmt.Errorf("queued %d of %d", added, *n)
		}
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(*n), 42))
	entries := filepath.Join(*dir, "entries")
	for i := 0; i < *n; i++ {
		p := fakePath(rng)
		e := queue.Entry{Target: *target, Path: p.String(), Queued: when.UTC()}
		data, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(entries, queue.Key(*target, p)), append(data, '\n'), 0o600); err != nil {
			return err
		}
	}
	names, err := q.Names()
	if err != nil {
		return err
	}
	if len(names) < *n {
		return fmt.Errorf("queue holds %d entries, wanted %d", len(names), *n)
	}
	return nil
}

const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

func fakeHash(rng *rand.Rand) string {
	b := make([]byte, storepath.HashLen)
	for i := range b {
		b[i] = nixBase32[rng.IntN(len(nixBase32))]
	}
	return string(b)
}

// fakePath is a realistic store path that need not exist.
func fakePath(rng *rand.Rand) storepath.Path {
	return storepath.Path{Dir: storepath.DefaultStoreDir, Hash: fakeHash(rng), Name: realisticName(rng)}
}
