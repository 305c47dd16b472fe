package test

// NixOS-size closures (issue 12): queueing thousands of paths at once,
// draining them in few pusher calls, never pushing a path twice, and
// losing nothing when push and the worker are SIGKILLed. Real Nix, a
// file:// store, and a nix wrapper that logs every nix copy's paths.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// scaleClosure makes n builtins.toFile paths and a root that refers to
// them all (a closure of n+1 paths) at evaluation time, without a build.
func scaleClosure(t *testing.T, n int) (root string) {
	t.Helper()
	nixtest.Require(t)
	s := nixtest.Salt()
	expr := fmt.Sprintf(`let files = builtins.genList (i: builtins.toFile "many-${toString i}-%[1]s" "%[1]s ${toString i}") %[2]d;
in builtins.toFile "many-root-%[1]s" (builtins.concatStringsSep " " files)`, s, n)
	out, err := exec.Command("nix-instantiate", "--read-write-mode", "--eval", "-E", expr).Output()
	if err != nil {
		t.Fatalf("nix-instantiate: %v", err)
	}
	root = strings.Trim(strings.TrimSpace(string(out)), `"`)
	if !strings.HasPrefix(root, "/nix/store/") {
		t.Fatalf("root %q", root)
	}
	return root
}

// scaleCopies returns the paths of each nix copy call in ruWrapNix's log.
func scaleCopies(t *testing.T, log string) [][]string {
	t.Helper()
	f, err := os.Open(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[0] != "nix" || fs[3] != "copy" {
			continue
		}
		var paths []string
		for _, a := range fs[4:] {
			if strings.HasPrefix(a, "/nix/store/") {
				paths = append(paths, a)
			}
		}
		out = append(out, paths)
	}
	return out
}

// A closure of 2,001 paths is queued at once and goes up in one pusher
// call; pushing it again queues nothing and calls no pusher (the record);
// --force queues a recorded path anyway; forget --pushed clears the
// record, after which the closure is queued again.
func TestScaleClosurePushedOnce(t *testing.T) {
	t.Parallel()
	const n = 2000
	root := scaleClosure(t, n)
	bin, log := ruWrapNix(t)
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["many-*"]
[nix]
bin_dir = "`+bin+`"
`)
	target := "file://" + e.Dir + "/cache"
	start := time.Now()
	out, _ := ruRun(t, e, 0, "push", "--closure", root)
	t.Logf("push --closure of %d paths: %s", n+1, time.Since(start).Round(time.Millisecond))
	if want := fmt.Sprintf("queued %d of %d paths for %s", n+1, n+1, target); !strings.Contains(out, want) {
		t.Fatalf("push said:\n%s\nwant %q", out, want)
	}
	e.Wait(eventually.Left(t))
	if got := len(CachePaths(t, filepath.Join(e.Dir, "cache"))); got != n+1 {
		t.Fatalf("cache holds %d paths, want %d", got, n+1)
	}
	copies := scaleCopies(t, log)
	// One call, given the root alone: its closure is the rest (issue
	// 22: Nix copies a closure given by its root far faster than path
	// by path).
	if len(copies) != 1 || len(copies[0]) != 1 || copies[0][0] != root {
		t.Errorf("nix copy calls for %d paths: %.200q, want one, of the root", n+1, copies)
	}
	// The Nix calls: push's one query of the closure with its facts,
	// which the entries carry to the worker, which asks nothing more.
	if _, kinds := ruCalls(t, log); kinds["nix-store --serve"] != 1 || kinds["nix copy"] != 1 || len(kinds) != 2 {
		t.Errorf("Nix calls %v; want push's query (nix-store --serve) and the worker's copy", kinds)
	}

	// The worker lingers, then leaves: the second push must start
	// none (it has nothing to queue), not find this one still there.
	eventually.True(t, eventually.Left(t), "the worker exits", func() bool {
		return strings.Contains(e.Log(), "nothing left to push, worker exiting")
	})
	started := strings.Count(e.Log(), "worker started")
	os.Remove(log)
	start = time.Now()
	out, _ = ruRun(t, e, 0, "push", "--closure", root)
	t.Logf("second push --closure of %d paths: %s", n+1, time.Since(start).Round(time.Millisecond))
	if want := fmt.Sprintf("queued 0 of %d paths (already pushed: %d to %s)", n+1, n+1, target); !strings.Contains(out, want) {
		t.Fatalf("second push said:\n%s\nwant %q", out, want)
	}
	if q := e.QueueEntries(); q != 0 {
		t.Errorf("the second push queued %d entries", q)
	}
	e.Wait(eventually.Left(t))
	if c := scaleCopies(t, log); len(c) != 0 {
		t.Errorf("the second push made %d nix copy calls", len(c))
	}
	if n := strings.Count(e.Log(), "worker started"); n != started {
		t.Errorf("the second push, which queued nothing, started %d workers:\n%s", n-started, e.Log())
	}
	// --dry-run says so, path by path.
	out, _ = ruRun(t, e, 0, "push", "--dry-run", root)
	if !strings.Contains(out, "already pushed to "+target) {
		t.Errorf("push --dry-run of a pushed path:\n%s", out)
	}

	// --force: queued and pushed again.
	os.Remove(log)
	out, _ = ruRun(t, e, 0, "push", "--force", "--wait", root)
	if !strings.Contains(out, "queued 1 of 1 paths for "+target) {
		t.Errorf("push --force said:\n%s", out)
	}
	if c := scaleCopies(t, log); len(c) != 1 || len(c[0]) != 1 || c[0][0] != root {
		t.Errorf("push --force: nix copy calls %q, want one of the root", c)
	}

	// The cache was emptied: forget --pushed, and all is queued again.
	if err := os.RemoveAll(filepath.Join(e.Dir, "cache")); err != nil {
		t.Fatal(err)
	}
	out, _ = ruRun(t, e, 0, "forget", "--pushed")
	if !strings.Contains(out, "forgot the record of paths pushed") {
		t.Errorf("forget --pushed said:\n%s", out)
	}
	out, _ = ruRun(t, e, 0, "push", "--closure", "--wait", "--timeout", eventually.Left(t).String(), root)
	if !strings.Contains(out, fmt.Sprintf("queued %d of %d paths", n+1, n+1)) {
		t.Errorf("push after forget --pushed said:\n%s", out)
	}
	if got := len(CachePaths(t, filepath.Join(e.Dir, "cache"))); got != n+1 {
		t.Errorf("after forget --pushed the cache holds %d paths, want %d", got, n+1)
	}
}

// The hook leaves out an output the worker pushed before (a --check
// rebuild, a build repeated after a garbage collection), saying so.
func TestScaleHookLeavesOutPushed(t *testing.T) {
	t.Parallel()
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["rec-*"]
`)
	s := nixtest.Salt()
	paths, log := e.Build(nixtest.Drv(s, "rec-1.0", nil))
	if !strings.Contains(log, "queued 1 of 1 paths") {
		t.Fatalf("first build's hook line:\n%s", log)
	}
	e.Wait(eventually.Left(t))
	// Run the hook again for the same output, as Nix does on a rebuild.
	cmd := exec.Command(hookBin)
	cmd.Env = e.environ("OUT_PATHS="+paths[0], "DRV_PATH=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	if want := "queued 0 of 1 paths (already pushed: 1 to file://" + e.Dir + "/cache)"; !strings.Contains(string(out), want) {
		t.Errorf("the hook said:\n%s\nwant %q", out, want)
	}
	if q := e.QueueEntries(); q != 0 {
		t.Errorf("%d entries queued for a pushed path", q)
	}
}

// SIGKILL at random moments, during the queueing of a 10,000-path closure
// by push --closure and during the worker's drain of it, loses nothing
// (every path ends up in the cache, no entry is unreadable) and pushes no
// path twice within one pusher call.
func TestScaleSIGKILLQueueAndDrain(t *testing.T) {
	t.Parallel()
	const n = 10000
	root := scaleClosure(t, n)
	bin, log := ruWrapNix(t)
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["many-*"]
[nix]
bin_dir = "`+bin+`"
`)
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	pushKills, workerKills := 0, 0
	// Queueing, killed after 0-400 ms (it takes about 0.4 s).
	for i := 0; i < 4; i++ {
		cmd := exec.Command(hookBin, "push", "--closure", root)
		cmd.Env = e.environ()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rnd.IntN(400)) * time.Millisecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			pushKills++
		}
		cmd.Wait()
	}
	// What the killed pushes never queued is queued now (what a killed
	// push linked in stays queued: a pair already queued counts).
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if out, errOut, code := e.Run(ctx, "push", "--closure", root); code != 0 {
		t.Fatalf("push --closure: %d\n%s%s", code, out, errOut)
	}
	// The drain, its worker killed at random moments while it reads the
	// queue, runs nix copy, records or removes entries, and restarted.
	deadline := time.Now().Add(3 * time.Minute)
	for workerKills < 5 && e.QueueEntries() > 0 && time.Now().Before(deadline) {
		if len(workerPIDs(e.Queue)) == 0 {
			cmd := exec.Command(hookBin, "worker", "--once")
			cmd.Env = e.environ("CACHIX_FILTER_HOOK_QUEUE_DIR=" + e.Queue)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go cmd.Wait()
		}
		time.Sleep(time.Duration(200+rnd.IntN(2500)) * time.Millisecond)
		if len(workerPIDs(e.Queue)) > 0 {
			killWorkers(e.Queue)
			workerKills++
		}
	}
	// And once more: what was pushed is left out by the record.
	if out, errOut, code := e.Run(ctx, "push", "--closure", root); code != 0 {
		t.Fatalf("push --closure: %d\n%s%s", code, out, errOut)
	}
	e.Wait(eventually.Left(t))
	if got := len(CachePaths(t, filepath.Join(e.Dir, "cache"))); got != n+1 {
		t.Errorf("cache holds %d paths, want %d", got, n+1)
	}
	if bad, _ := filepath.Glob(filepath.Join(e.Queue, "corrupt", "*")); len(bad) > 0 {
		t.Errorf("%d entries became unreadable: %q", len(bad), bad[:min(len(bad), 3)])
	}
	copies := scaleCopies(t, log)
	for i, c := range copies {
		seen := map[string]bool{}
		for _, p := range c {
			if seen[p] {
				t.Fatalf("nix copy call %d names %s twice", i, p)
			}
			seen[p] = true
		}
	}
	if pushKills == 0 || workerKills == 0 {
		t.Errorf("killed push %d times and the worker %d times; want both", pushKills, workerKills)
	}
	t.Logf("%d paths: push SIGKILLed %d times, worker %d times; %d nix copy calls; all %d in the cache", n+1, pushKills, workerKills, len(copies), n+1)
}
