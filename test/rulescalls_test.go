package test

// How many Nix commands the rules that read facts cost (issue 13): push
// --closure of a 2,000-path closure, and the hook (none at all). Nix runs
// through wrappers in nix.bin_dir that log each call and exec the real
// program.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// ruWrapNix makes a directory whose nix and nix-store log "PROGRAM ARGS..."
// (one line a call) to the returned file, then run the real ones.
func ruWrapNix(t *testing.T) (dir, log string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(filepath.Dir(dir), "calls.log")
	for _, prog := range []string{"nix", "nix-store"} {
		real, err := exec.LookPath(prog)
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\necho %s \"$@\" >> %s\nexec %s \"$@\"\n", prog, log, real)
		if err := os.WriteFile(filepath.Join(dir, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, log
}

// ruCalls reads the wrapper's log: every call, and the count per kind
// ("nix-store --query --requisites", "nix-store --serve", "nix path-info",
// "nix copy").
func ruCalls(t *testing.T, log string) ([]string, map[string]int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(b) == 0 {
		lines = nil
	}
	kinds := map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case f[0] == "nix-store" && len(f) >= 2 && f[1] == "--serve":
			kinds["nix-store --serve"]++
		case f[0] == "nix-store" && len(f) >= 3:
			kinds["nix-store "+f[1]+" "+f[2]]++
		case f[0] == "nix" && len(f) >= 4:
			kinds["nix "+f[3]]++ // after --extra-experimental-features nix-command
		default:
			kinds[l]++
		}
	}
	return lines, kinds
}

// push --closure of a closure of 2,001 paths (2,000 builtins.toFile files
// and a derivation referring to them all, each an argument of its builder,
// since one argument is limited to 128 KiB) with max_nar_size and
// unsubstitutable = "skip": the closure, sizes and derivers come from one
// `nix-store --serve` session, not one call per path. The whole command
// makes 1 Nix call; the worker one query per round of batches and one
// nix copy per batch.
func TestRulesBatchedNixCalls(t *testing.T) {
	t.Parallel()
	const n = 2000
	s := nixtest.Salt()
	built := scBuild(t, fmt.Sprintf(`let files = builtins.genList (i: builtins.toFile "many-${toString i}-%[1]s" "%[1]s ${toString i}") %[2]d;
in [ (derivation { name = "many-root"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \"$@\" > $out" "sh" ] ++ files; }) ]`, s, n))
	root := built["many-root"]
	if len(built) != n+1 || root == "" {
		t.Fatalf("closure of %d paths, want %d", len(built), n+1)
	}
	bin, log := ruWrapNix(t)
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["many-*"]
max_nar_size = "1GiB"
unsubstitutable = "skip"
closure_deny = "push"
[nix]
bin_dir = "`+bin+`"
`)
	out, _ := ruRun(t, e, 0, "push", "--closure", "--dry-run", root)
	if got := strings.Count(out, "\npush ") + map[bool]int{true: 1}[strings.HasPrefix(out, "push ")]; got != n+1 {
		t.Errorf("push --dry-run --closure: %d push lines, want %d", got, n+1)
	}
	calls, kinds := ruCalls(t, log)
	t.Logf("push --closure --dry-run of %d paths: %d Nix calls: %v", n+1, len(calls), kinds)
	if len(calls) != 1 || kinds["nix-store --serve"] != 1 {
		t.Errorf("push --closure --dry-run made %d Nix calls, want 1 (the closure with its sizes and derivers):\n%s", len(calls), strings.Join(calls, "\n"))
	}

	os.Remove(log)
	// Batches of 500, not 64, to keep the test short: the copies are
	// what takes time.
	const batch = 500
	e.Vars = append(e.Vars, fmt.Sprintf("CACHIX_FILTER_HOOK_QUEUE_BATCH=%d", batch))
	start := time.Now()
	ruRun(t, e, 0, "push", "--closure", "--wait", "--timeout", eventually.Left(t).String(), root)
	calls, kinds = ruCalls(t, log)
	t.Logf("push --closure --wait of %d paths (push and worker, queue.batch %d) took %s: %d Nix calls: %v", n+1, batch, time.Since(start).Round(time.Millisecond), len(calls), kinds)
	if got := len(CachePaths(t, filepath.Join(e.Dir, "cache"))); got != n+1 {
		t.Errorf("cache holds %d paths, want %d", got, n+1)
	}
	batches := (n + 1 + batch - 1) / batch
	// push: 1 query of the closure; the worker: 1 query per round of
	// batches (a round may be split while paths still arrive) and a nix
	// copy per batch.
	if kinds["nix-store --query --requisites"] != 0 || kinds["nix path-info"] != 0 || kinds["nix-store --serve"] < 2 || kinds["nix-store --serve"] > 5 || kinds["nix copy"] < batches || kinds["nix copy"] > batches+4 || len(calls) > 1+4+batches+4 {
		t.Errorf("%d Nix calls, want about %d (1 by push, 1 query a round and %d nix copy by the worker):\n%v", len(calls), 2+batches, batches, kinds)
	}
}

// The hook applies unsubstitutable from the .drv it reads, and runs no
// Nix command: OUT_PATHS empty (Nix 2.8, so the hook reads the outputs
// from the .drv too), and OUT_PATHS set.
func TestRulesHookRunsNoNix(t *testing.T) {
	t.Parallel()
	bin, log := ruWrapNix(t)
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*-1.0"]
max_nar_size = "1GiB"
unsubstitutable = "skip"
upstream = ["file://@DIR@/upstream"]
[nix]
bin_dir = "`+bin+`"
`)
	release := plLockQueue(t, e.Queue) // no worker: only the hook's calls count
	s := nixtest.Salt()
	paths, buildLog := e.Build(fmt.Sprintf("[ (%s) (%s) ]", ruLocal(s, "local-1.0", false), nixtest.Drv(s, "normal-1.0", nil)))
	if !strings.Contains(buildLog, `skipped local-1.0: allowSubstitutes = false (unsubstitutable = "skip")`) || !strings.Contains(buildLog, "queued 1 of 1 paths") {
		t.Errorf("the hook's lines:\n%s", buildLog)
	}
	byName := nixtest.ByName(paths)
	drv, err := exec.Command("nix-store", "--query", "--deriver", byName["local-1.0"]).Output()
	if err != nil {
		t.Fatal(err)
	}
	// OUT_PATHS set, as newer Nix passes it.
	cmd := exec.Command(hookBin)
	cmd.Env = append(e.environ(), "OUT_PATHS="+byName["local-1.0"], "DRV_PATH="+strings.TrimSpace(string(drv)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "queued 0 of 1 paths") || !strings.Contains(string(out), "allowSubstitutes = false") {
		t.Errorf("hook with OUT_PATHS: %v\n%s", err, out)
	}
	if calls, _ := ruCalls(t, log); len(calls) != 0 {
		t.Errorf("the hook ran Nix: %q", calls)
	}
	release()
}

// The hook's entries carry what it read in the .drv (the deriver, and
// allowSubstitutes): with rules that read nothing more (no deny pattern,
// no max_nar_size), the worker decides them again with no Nix call, and
// runs Nix only to copy.
func TestRulesWorkerReusesTheHooksFacts(t *testing.T) {
	t.Parallel()
	bin, log := ruWrapNix(t)
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*-1.0"]
unsubstitutable = "skip"
[nix]
bin_dir = "`+bin+`"
`)
	s := nixtest.Salt()
	paths, buildLog := e.Build(fmt.Sprintf("[ (%s) (%s) ]", ruLocal(s, "local-1.0", false), nixtest.Drv(s, "normal-1.0", nil)))
	if !strings.Contains(buildLog, `skipped local-1.0: allowSubstitutes = false (unsubstitutable = "skip")`) {
		t.Errorf("the hook's lines:\n%s", buildLog)
	}
	ruRun(t, e, 0, "wait", "--timeout", eventually.Left(t).String())
	byName := nixtest.ByName(paths)
	cached := CachePaths(t, filepath.Join(e.Dir, "cache"))
	if len(cached) != 1 || !cached[byName["normal-1.0"]] {
		t.Errorf("cache holds %v, want normal-1.0 alone (%s)", cached, byName["normal-1.0"])
	}
	calls, kinds := ruCalls(t, log)
	if kinds["nix copy"] < 1 || kinds["nix copy"] != len(calls) {
		t.Errorf("the worker ran Nix for more than copying (its entries carry the .drv's facts): %v\n%s", kinds, strings.Join(calls, "\n"))
	}
}
