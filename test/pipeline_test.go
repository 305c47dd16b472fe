package test

// End-to-end tests of the post-build-hook pipeline (issue 4): real
// nix-build runs with the hook as post-build-hook, the durable queue, the
// detached worker, and both pushers (nix copy to a file:// store, and the
// cachix stand-in). Helpers here are prefixed with pl.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// plExpectCache checks, for each path, that the binary cache at dir holds it
// exactly when want says so.
func plExpectCache(t *testing.T, label, dir string, paths []string, want func(name string) bool) {
	t.Helper()
	got := CachePaths(t, dir)
	for _, p := range paths {
		if w := want(nixtest.Name(p)); got[p] != w {
			t.Errorf("%s: %s in cache = %v, want %v", label, nixtest.Name(p), got[p], w)
		}
	}
}

// plSetVar sets (or with an empty value, removes) a variable in e.Vars.
func plSetVar(e *Env, name, value string) {
	var out []string
	for _, kv := range e.Vars {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	if value != "" {
		out = append(out, name+"="+value)
	}
	e.Vars = out
}

// plGate makes every push and pin of the stand-in wait until the returned
// function is called, at the latest when the test ends (before the Env's
// cleanup, which waits for the worker).
func plGate(t *testing.T, e *Env) func() {
	t.Helper()
	gate := filepath.Join(e.Dir, "standin-gate")
	plSetVar(e, "CACHIX_STANDIN_GATE", gate)
	open := func() {
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(open)
	return open
}

// plLockQueue takes the queue's worker lock as a worker would, so that
// hooks queue but start no worker; the returned function releases it.
func plLockQueue(t *testing.T, queue string) func() {
	t.Helper()
	if err := os.MkdirAll(queue, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(queue, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		t.Fatalf("taking the worker lock of %s: %v", queue, err)
	}
	var once sync.Once
	release := func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

// plStatus is the part of `status --json` the tests read.
type plStatus struct {
	Queue         string `json:"queue"`
	WorkerRunning bool   `json:"worker_running"`
	Targets       []struct {
		Name     string `json:"name"`
		Pending  int    `json:"pending"`
		Failing  int    `json:"failing"`
		Pushed   int    `json:"pushed"`
		Failures []struct {
			Path      string `json:"path"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
		} `json:"failing_entries"`
	} `json:"targets"`
}

// plStatusJSON runs `status --json` and returns the raw output and its
// parsed form.
func plStatusJSON(t *testing.T, e *Env) (string, plStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, "status", "--json")
	if code != 0 {
		t.Fatalf("status --json exited %d: %s", code, errOut)
	}
	var st plStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return out + errOut, st
}

// plStatusText runs `status` and returns stdout and stderr together.
func plStatusText(t *testing.T, e *Env) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, "status")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	return out + errOut
}

// plStandinPIDs finds running cachix stand-in processes of this test: the
// stand-in binary in their command line and the test's
// CACHIX_STANDIN_ROOT in their environment.
func plStandinPIDs(e *Env) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	want := []byte("CACHIX_STANDIN_ROOT=" + e.Standin)
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if string(argv0) != standinBin {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if bytes.Equal(kv, want) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// plKill SIGKILLs a process.
func plKill(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing %d: %v", pid, err)
	}
}

// plStopWorkers kills the queue's workers and waits until none is left.
func plStopWorkers(t *testing.T, e *Env) {
	t.Helper()
	eventually.True(t, eventually.Left(t), "the workers to die", func() bool {
		killWorkers(e.Queue)
		return len(workerPIDs(e.Queue)) == 0
	})
}

// plEntry is a queue entry file.
type plEntry struct {
	Target   string `json:"target"`
	Path     string `json:"path"`
	Attempts int    `json:"attempts"`
	Reason   string `json:"reason"`
}

// plReadEntries reads every entry of a queue subdirectory (entries,
// dropped), each pair once. For entries, the bulk files beside it (see
// queue.Add: many pairs queued at once are the lines of one file in
// bulk/) count too: a pair queued twice is one entry, the copy that
// failed most often first.
func plReadEntries(t *testing.T, dir string) []plEntry {
	t.Helper()
	byKey := map[string]plEntry{}
	var order []string
	keep := func(en plEntry) {
		k := plKey(en.Target, en.Path)
		old, seen := byKey[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || en.Attempts > old.Attempts {
			byKey[k] = en
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		data := plMustRead(t, f)
		// Before bulk files, a bulk add's entries were linked to one
		// file of lines: the entry is the line whose pair has the
		// file's name.
		found := false
		for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
			var en plEntry
			if err := json.Unmarshal([]byte(line), &en); err != nil {
				t.Fatalf("%s: %v\n%s", f, err, data)
			}
			if plKey(en.Target, en.Path) == filepath.Base(f) {
				keep(en)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("%s: no line is its entry:\n%s", f, data)
		}
	}
	if filepath.Base(dir) == "entries" {
		bulk, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "bulk", "*"))
		for _, f := range bulk {
			for _, line := range strings.Split(strings.TrimSpace(plMustRead(t, f)), "\n") {
				var en plEntry
				if err := json.Unmarshal([]byte(line), &en); err != nil {
					t.Fatalf("%s: %v\n%s", f, err, line)
				}
				keep(en)
			}
		}
	}
	out := make([]plEntry, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out
}

// plKey is queue.Key: the path's hash and a digest of the target name.
func plKey(target, path string) string {
	sum := sha256.Sum256([]byte(target))
	return strings.SplitN(filepath.Base(path), "-", 2)[0] + "." + hex.EncodeToString(sum[:6])
}

// plPushedPaths counts, per path, how often it was in a successful stand-in
// invocation, and reports any invocation naming a path twice.
func plPushedPaths(t *testing.T, e *Env) map[string]int {
	t.Helper()
	count := map[string]int{}
	for i, inv := range e.Invocations() {
		seen := map[string]bool{}
		for _, p := range inv.Paths {
			if seen[p] {
				t.Errorf("invocation %d names %s twice: %v", i, p, inv.Argv)
			}
			seen[p] = true
			if inv.Exit == 0 {
				count[p]++
			}
		}
	}
	return count
}

// 1. Exactly the selected outputs of multi-output derivations land, in
// each of three targets (two nix copy stores, one cachix cache).
func TestPipelineMultiOutputSeveralTargets(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/files"
name = "files"
allow = ["app-*"]
deny = ["*-doc"]

[[target]]
cache = "mixed"
allow = ["app-*", "lib-*"]
deny = ["*-dev"]

[[target]]
store = "file://@DIR@/bins"
name = "bins"
allow = ["*-bin", "*-dev"]
deny = ["lib-*"]

[cachix]
bin = "@CACHIX@"
`)
	s := nixtest.Salt()
	paths, log := e.Build(nixtest.List(
		nixtest.Drv(s, "app-1.0", []string{"out", "doc", "dev"}),
		nixtest.Drv(s, "lib-2.0", []string{"out", "dev"}),
		nixtest.Drv(s, "other-1.0", []string{"out", "bin"}),
	))
	if len(paths) != 7 {
		t.Fatalf("built %d outputs, want 7: %v", len(paths), paths)
	}
	for _, want := range []string{"cachix-filter-hook: queued 3 of 3 paths for ", "cachix-filter-hook: queued 1 of 2 paths for mixed (skipped lib-2.0-dev: ", "cachix-filter-hook: queued 1 of 2 paths for bins (skipped other-1.0: "} {
		if !strings.Contains(log, want) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}
	e.Wait(eventually.Left(t))

	in := func(names ...string) func(string) bool {
		return func(n string) bool {
			for _, m := range names {
				if n == m {
					return true
				}
			}
			return false
		}
	}
	plExpectCache(t, "files", filepath.Join(e.Dir, "files"), paths, in("app-1.0", "app-1.0-dev"))
	plExpectCache(t, "mixed", filepath.Join(e.Standin, "mixed"), paths, in("app-1.0", "app-1.0-doc", "lib-2.0"))
	plExpectCache(t, "bins", filepath.Join(e.Dir, "bins"), paths, in("app-1.0-dev", "other-1.0-bin"))

	// The stand-in was only ever asked for the cache and paths of its
	// target.
	pushed := plPushedPaths(t, e)
	for _, inv := range e.Invocations() {
		if inv.Cache != "mixed" {
			t.Errorf("stand-in called for cache %q: %v", inv.Cache, inv.Argv)
		}
	}
	for p := range pushed {
		if !in("app-1.0", "app-1.0-doc", "lib-2.0")(nixtest.Name(p)) {
			t.Errorf("cachix was asked to push %s", p)
		}
	}
	if e.QueueEntries() != 0 {
		t.Errorf("%d entries left in the queue", e.QueueEntries())
	}
}

// 2. Pushes do not slow the builds: five sequential builds with the hook
// return while the stand-in holds every push at its gate, so the hook
// waited for no push; the gate then opens and everything lands. How long
// the builds took with the hook and with /bin/true as the hook is logged.
func TestPipelineBuildsNotSlowedByPushes(t *testing.T) {
	e := NewEnv(t, `
cache = "slow"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`)
	const n = 5
	five := func(s string) string {
		var drvs []string
		for i := 0; i < n; i++ {
			drvs = append(drvs, nixtest.Drv(s, fmt.Sprintf("pkg%d-1.0", i), nil))
		}
		return nixtest.List(drvs...)
	}
	// Warm up (Nix's evaluation cache, page cache) so the baseline is not
	// the slowest run by accident.
	e.BuildWith("/bin/true", five(nixtest.Salt()), "--max-jobs", "1")
	_, _, base := e.BuildWith("/bin/true", five(nixtest.Salt()), "--max-jobs", "1")

	// A hook that waited for a push, or for the worker, would never
	// return while the gate is shut: it opens by itself at half go test's
	// bound, leaving time to say so, and the pushes that then land do.
	gate := filepath.Join(e.Dir, "standin-gate")
	open := func() {
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	plSetVar(e, "CACHIX_STANDIN_GATE", gate)
	watchdog := time.AfterFunc(eventually.Left(t)/2, open)
	// Before the Env's cleanup, which waits for the worker.
	t.Cleanup(open)
	paths, log, took := e.BuildWith(hookBin, five(nixtest.Salt()), "--max-jobs", "1")
	watchdog.Stop()
	entriesAtReturn := e.QueueEntries()
	landedAtReturn := len(CachePaths(t, filepath.Join(e.Standin, "slow")))
	t.Logf("%d builds: %s with /bin/true as hook, %s with the hook and its pushes held; at return %d entries queued, %d paths in the cache",
		n, base.Round(time.Millisecond), took.Round(time.Millisecond), entriesAtReturn, landedAtReturn)

	if got := strings.Count(log, "cachix-filter-hook: queued 1 of 1 paths for slow"); got != n {
		t.Errorf("hook ran %d times, want %d:\n%s", got, n, log)
	}
	// No push can end before the gate opens.
	if entriesAtReturn == 0 || landedAtReturn != 0 {
		t.Errorf("nix-build returned only once the gate had opened (at half go test's bound): %d entries left, %d of %d paths in the cache: the hook waited for a push", entriesAtReturn, landedAtReturn, n)
	}

	open()
	e.Wait(eventually.Left(t))
	plExpectCache(t, "slow", filepath.Join(e.Standin, "slow"), paths, func(string) bool { return true })
}

// 3. cachix fails until it works again: every build succeeds, status
// shows the failing entries meanwhile, and everything lands. cachix fails
// for as long as the stand-in's trick file says so, not a number of times:
// on a loaded machine three quick failures could all pass between two
// looks at status.
func TestPipelineCachixFailsThenWorks(t *testing.T) {
	e := NewEnv(t, `
cache = "flaky"
allow = ["*"]

[cachix]
bin = "@CACHIX@"

[queue]
dir = "@DIR@/queue"
linger = "1s"
retry_initial = "500ms"
retry_max = "1s"
`)
	flTrick(t, e, "fail")
	s := nixtest.Salt()
	var paths []string
	for i := 0; i < 3; i++ {
		// Build fails the test if nix-build fails.
		p, log := e.Build(nixtest.List(nixtest.Drv(s, fmt.Sprintf("flaky%d-1.0", i), nil)))
		if !strings.Contains(log, "queued 1 of 1 paths for flaky") {
			t.Errorf("build %d: log lacks the hook's line:\n%s", i, log)
		}
		paths = append(paths, p...)
	}

	// While cachix fails, status says which entries fail, how often,
	// and why.
	var sawJSON, sawText bool
	eventually.True(t, eventually.Left(t), "status to show failing entries", func() bool {
		if !sawJSON {
			_, st := plStatusJSON(t, e)
			for _, tg := range st.Targets {
				for _, f := range tg.Failures {
					if tg.Name == "flaky" && tg.Failing > 0 && f.Attempts >= 1 && strings.Contains(f.LastError, "simulated failure") {
						sawJSON = true
					}
				}
			}
		}
		if !sawText {
			out := plStatusText(t, e)
			sawText = strings.Contains(out, "failing /nix/store/") && strings.Contains(out, "attempts") && strings.Contains(out, "simulated failure")
		}
		return sawJSON && sawText
	})

	flTrick(t, e, "")
	e.Wait(eventually.Left(t))
	plExpectCache(t, "flaky", filepath.Join(e.Standin, "flaky"), paths, func(string) bool { return true })
	failed := 0
	for _, inv := range e.Invocations() {
		if inv.Exit != 0 {
			failed++
		}
	}
	if failed == 0 {
		t.Errorf("no failed cachix call")
	}
	if !strings.Contains(e.Log(), "push failed") {
		t.Errorf("worker log does not mention the failed pushes:\n%s", e.Log())
	}
}

// 4a. SIGKILL of the worker in the middle of a push: the entries stay, the
// pusher dies with it, and `wait` starts a new worker that pushes
// everything.
func TestPipelineWorkerKilledMidPush(t *testing.T) {
	e := NewEnv(t, `
cache = "killed"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`)
	// Every push waits at the gate until the kill is done: a delay
	// instead was a margin that a slow look at the pushes could pass.
	open := plGate(t, e)
	s := nixtest.Salt()
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "w1-1.0", nil), nixtest.Drv(s, "w2-1.0", nil), nixtest.Drv(s, "w3-1.0", nil)))

	eventually.True(t, eventually.Left(t), "the worker to start pushing", func() bool { return len(plStandinPIDs(e)) > 0 })
	// A second worker the hooks started may still be waiting for the
	// lock; it goes too.
	workers := workerPIDs(e.Queue)
	if len(workers) == 0 {
		t.Fatal("no worker is running although a push is")
	}
	for _, pid := range workers {
		plKill(t, pid)
	}
	eventually.True(t, eventually.Left(t), "the worker to die", func() bool { return len(workerPIDs(e.Queue)) == 0 })
	// The pusher dies with it (it would otherwise wait at the gate, and
	// upload for a worker that is gone).
	eventually.True(t, eventually.Left(t), "the pusher to die with the worker", func() bool { return len(plStandinPIDs(e)) == 0 })
	if got := e.QueueEntries(); got != len(paths) {
		t.Fatalf("%d entries queued after the worker died, want %d", got, len(paths))
	}
	if got := len(CachePaths(t, filepath.Join(e.Standin, "killed"))); got != 0 {
		t.Errorf("%d paths landed although the push was killed", got)
	}

	open()
	e.Wait(eventually.Left(t))
	plExpectCache(t, "killed", filepath.Join(e.Standin, "killed"), paths, func(string) bool { return true })
	if got := strings.Count(e.Log(), "worker started"); got < 2 {
		t.Errorf("worker log shows %d worker starts, want 2 or more:\n%s", got, e.Log())
	}
}

// 4b. SIGKILL of the pusher (cachix) in the middle of a push: the worker
// counts it as a failure, retries, and everything lands.
func TestPipelinePusherKilledMidPush(t *testing.T) {
	e := NewEnv(t, `
cache = "pkilled"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`)
	// The push waits at the gate until it is killed: a delay instead
	// was a margin that a slow look at the pushes could pass.
	open := plGate(t, e)
	s := nixtest.Salt()
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "p1-1.0", nil), nixtest.Drv(s, "p2-1.0", nil)))

	var pids []int
	eventually.True(t, eventually.Left(t), "the worker to start pushing", func() bool {
		pids = plStandinPIDs(e)
		return len(pids) > 0
	})
	for _, pid := range pids {
		plKill(t, pid)
	}
	open()
	e.Wait(eventually.Left(t))
	plExpectCache(t, "pkilled", filepath.Join(e.Standin, "pkilled"), paths, func(string) bool { return true })
	log := e.Log()
	if !strings.Contains(log, "push failed") || !strings.Contains(log, "killed") {
		t.Errorf("worker log does not show the killed push:\n%s", log)
	}
}

// 5. 200 hooks at once, over 50 built paths, each path named by 32 of
// them: every selected (target, path) is queued once, nothing is lost or
// torn, and each is pushed exactly once.
func TestPipelineConcurrentHooks(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/files"
name = "files"
allow = ["sel-a-*"]

[[target]]
cache = "conc"
allow = ["sel-*"]

[cachix]
bin = "@CACHIX@"
`)
	s := nixtest.Salt()
	var drvs []string
	for i := 0; i < 20; i++ {
		drvs = append(drvs, nixtest.Drv(s, fmt.Sprintf("sel-a-%d", i), nil))
	}
	for i := 0; i < 15; i++ {
		drvs = append(drvs, nixtest.Drv(s, fmt.Sprintf("sel-b-%d", i), nil))
	}
	for i := 0; i < 15; i++ {
		drvs = append(drvs, nixtest.Drv(s, fmt.Sprintf("nope-%d", i), nil))
	}
	paths, _, _ := e.BuildWith("/bin/true", nixtest.List(drvs...), "--max-jobs", "4")
	if len(paths) != 50 {
		t.Fatalf("built %d paths, want 50", len(paths))
	}
	want := map[string]bool{} // "target path"
	for _, p := range paths {
		if strings.HasPrefix(nixtest.Name(p), "sel-a-") {
			want["files "+p] = true
		}
		if strings.HasPrefix(nixtest.Name(p), "sel-") {
			want["conc "+p] = true
		}
	}

	// Hold the worker lock so that the entries stay for us to count.
	unlock := plLockQueue(t, e.Queue)
	const hooks, per = 200, 8
	type result struct {
		code int
		out  string
		err  error
	}
	results := make([]result, hooks)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < hooks; i++ {
		var out []string
		for j := 0; j < per; j++ {
			out = append(out, paths[(i*per+j)%len(paths)])
		}
		cmd := exec.Command(hookBin)
		cmd.Env = e.environ("OUT_PATHS=" + strings.Join(out, " "))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			b, err := cmd.CombinedOutput()
			results[i] = result{code: cmd.ProcessState.ExitCode(), out: string(b)}
			if _, ok := err.(*exec.ExitError); !ok {
				results[i].err = err
			}
		}(i)
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent hooks took %s", hooks, time.Since(began).Round(time.Millisecond))
	for i, r := range results {
		if r.err != nil || r.code != 0 || !strings.Contains(r.out, "cachix-filter-hook: queued ") || strings.Contains(r.out, "could not") {
			t.Errorf("hook %d: exit %d, err %v, output:\n%s", i, r.code, r.err, r.out)
		}
	}

	got := map[string]int{}
	for _, en := range plReadEntries(t, filepath.Join(e.Queue, "entries")) {
		got[en.Target+" "+en.Path]++
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("%s queued %d times, want 1", k, got[k])
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s queued, but not selected", k)
		}
	}
	if n := e.QueueEntries(); n != len(want) {
		t.Errorf("%d entries, want %d", n, len(want))
	}
	if tmp, _ := filepath.Glob(filepath.Join(e.Queue, "tmp", "*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}

	unlock()
	e.Wait(eventually.Left(t))
	plExpectCache(t, "files", filepath.Join(e.Dir, "files"), paths, func(n string) bool { return strings.HasPrefix(n, "sel-a-") })
	plExpectCache(t, "conc", filepath.Join(e.Standin, "conc"), paths, func(n string) bool { return strings.HasPrefix(n, "sel-") })
	pushed := plPushedPaths(t, e)
	for _, p := range paths {
		w := 0
		if want["conc "+p] {
			w = 1
		}
		if pushed[p] != w {
			t.Errorf("cachix pushed %s %d times, want %d", nixtest.Name(p), pushed[p], w)
		}
	}
}

// 6. Bad input never fails a build: a config with a syntax error or an
// unknown key, a queue dir that cannot be created, garbage OUT_PATHS. The
// build log says what is wrong and nothing unwanted is pushed. strict =
// true turns a queue failure into a non-zero exit.
//
// Nix 2.8 fails nix-build when the post-build-hook exits non-zero, so a
// nix-build that succeeds (Env.Build fails the test otherwise) proves the
// hook exited 0.
func TestPipelineBadInput(t *testing.T) {
	t.Run("syntax error", func(t *testing.T) {
		e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"
`)
		_, log := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "cfgerr-1.0", nil)))
		if !strings.Contains(log, "cachix-filter-hook: not queueing anything, the configuration is invalid") || !strings.Contains(log, e.Conf) {
			t.Errorf("build log does not name the broken config:\n%s", log)
		}
		plExpectNothingQueued(t, e)
	})
	t.Run("unknown key", func(t *testing.T) {
		e := NewEnv(t, `
store = "file://@DIR@/cache"
alow = ["*"]
`)
		_, log := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "cfgkey-1.0", nil)))
		if !strings.Contains(log, `unknown key "alow"`) || !strings.Contains(log, "configuration is invalid") {
			t.Errorf("build log does not name the unknown key:\n%s", log)
		}
		plExpectNothingQueued(t, e)
	})
	t.Run("queue dir under a file", func(t *testing.T) {
		e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]

[queue]
dir = "@DIR@/notadir/queue"
`)
		if err := os.WriteFile(filepath.Join(e.Dir, "notadir"), []byte("a file\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.Queue = filepath.Join(e.Dir, "notadir", "queue")
		paths, log := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "qdir-1.0", nil)))
		if !strings.Contains(log, "cachix-filter-hook: could not queue 1 paths") || !strings.Contains(log, "not a directory") {
			t.Errorf("build log does not explain the queue failure:\n%s", log)
		}
		if _, err := os.Stat(filepath.Join(e.Dir, "cache")); err == nil {
			t.Errorf("something was pushed to the cache")
		}

		// strict = true: the same failure stops the hook with exit 1.
		strict := strings.Replace(plMustRead(t, e.Conf), "allow = [\"*\"]", "allow = [\"*\"]\nstrict = true", 1)
		if err := os.WriteFile(e.Conf, []byte(strict), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
		defer cancel()
		_, errOut, code := e.RunEnv(ctx, []string{"OUT_PATHS=" + paths[0]})
		if code == 0 || !strings.Contains(errOut, "could not queue") {
			t.Errorf("strict hook exited %d, want non-zero with the reason; stderr:\n%s", code, errOut)
		}
	})
	t.Run("garbage OUT_PATHS", func(t *testing.T) {
		e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
`)
		paths, _, _ := e.BuildWith("/bin/true", nixtest.List(nixtest.Drv(nixtest.Salt(), "real-1.0", nil)))
		ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
		defer cancel()

		_, errOut, code := e.RunEnv(ctx, []string{"OUT_PATHS=/etc/passwd ../x /nix/store/short"})
		if code != 0 {
			t.Errorf("hook exited %d on garbage OUT_PATHS", code)
		}
		for _, bad := range []string{"/etc/passwd", "../x", "/nix/store/short"} {
			if !strings.Contains(errOut, "cachix-filter-hook: ignoring 3 malformed paths: ") || !strings.Contains(errOut, fmt.Sprintf("%q", bad)) {
				t.Errorf("hook output does not name %s:\n%s", bad, errOut)
			}
		}
		if n := e.QueueEntries(); n != 0 {
			t.Errorf("garbage queued %d entries", n)
		}

		// Garbage next to a real path: the real path alone goes up.
		_, errOut, code = e.RunEnv(ctx, []string{"OUT_PATHS=/etc/passwd " + paths[0] + " /nix/store/short"})
		if code != 0 || !strings.Contains(errOut, "queued 1 of 3 paths") {
			t.Errorf("hook exited %d; output:\n%s", code, errOut)
		}
		e.Wait(eventually.Left(t))
		got := CachePaths(t, filepath.Join(e.Dir, "cache"))
		if len(got) != 1 || !got[paths[0]] {
			t.Errorf("cache holds %v, want just %s", got, paths[0])
		}
	})
}

func plMustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// plExpectNothingQueued checks that no entry and no cache exist.
func plExpectNothingQueued(t *testing.T, e *Env) {
	t.Helper()
	if n := e.QueueEntries(); n != 0 {
		t.Errorf("%d entries queued", n)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "cache")); err == nil {
		t.Errorf("something was pushed to the cache")
	}
}

// 7. The token from auth_token_file reaches cachix's environment, and
// never its argv, the worker log, status, or the build log.
func TestPipelineTokenStaysSecret(t *testing.T) {
	e := NewEnv(t, `
cache = "tok"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
auth_token_file = "@DIR@/token"

[log]
level = "debug"

[queue]
dir = "@DIR@/queue"
linger = "1s"
retry_initial = "500ms"
retry_max = "1s"
`)
	secret := "cfh-secret-" + nixtest.Salt()
	if err := os.WriteFile(filepath.Join(e.Dir, "token"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	wantSum := hex.EncodeToString(sum[:])
	// Failures make status show entries with their last error. They
	// last until status was seen failing (the trick file), so that no
	// window of time is watched.
	flTrick(t, e, "fail")

	s := nixtest.Salt()
	paths, log := e.Build(nixtest.List(nixtest.Drv(s, "tok1-1.0", nil), nixtest.Drv(s, "tok2-1.0", nil)))
	seen := []string{"build log\n" + log}
	sawFailing := false
	eventually.True(t, eventually.Left(t), "the entries to fail", func() bool {
		out, st := plStatusJSON(t, e)
		seen = append(seen, "status --json\n"+out, "status\n"+plStatusText(t, e))
		for _, tg := range st.Targets {
			sawFailing = sawFailing || tg.Failing > 0
		}
		return sawFailing
	})
	flTrick(t, e, "")
	e.Wait(eventually.Left(t))
	plExpectCache(t, "tok", filepath.Join(e.Standin, "tok"), paths, func(string) bool { return true })

	invs := e.Invocations()
	if len(invs) < 2 {
		t.Errorf("%d cachix calls, want at least 2 (failed, then success)", len(invs))
	}
	for _, inv := range invs {
		if inv.TokenSHA256 != wantSum {
			t.Errorf("cachix got a token with sha256 %s, want the one from auth_token_file (%s)", inv.TokenSHA256, wantSum)
		}
		if strings.Contains(strings.Join(inv.Argv, " "), secret) {
			t.Errorf("the token is in cachix's argv: %q", inv.Argv)
		}
	}
	// After the last worker's last line: one logged as it lingers or
	// exits, after wait returned, would leak unseen.
	e.WaitWorkersGone(eventually.Left(t))
	seen = append(seen, "worker log\n"+e.Log(), "status\n"+plStatusText(t, e))
	out, _ := plStatusJSON(t, e)
	seen = append(seen, "status --json\n"+out)
	// Everything the tool wrote to its queue directory.
	filepath.Walk(e.Queue, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			seen = append(seen, p+"\n"+plMustRead(t, p))
		}
		return nil
	})
	for _, text := range seen {
		if strings.Contains(text, secret) {
			t.Errorf("the token leaked into %s", text)
		}
	}
	if !strings.Contains(e.Log(), "simulated failure") {
		t.Errorf("the worker log lacks cachix's output, so the check above proves little:\n%s", e.Log())
	}
}

// 8. closure_deny: "skip" leaves out a selected path whose closure holds a
// denied one, and says which; "push" pushes it, the denied dependency
// going up in its closure.
func TestPipelineClosureDeny(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/skip"
name = "skipper"
allow = ["app-*"]
deny = ["secret-*"]
closure_deny = "skip"

[[target]]
store = "file://@DIR@/push"
name = "pusher"
allow = ["app-*"]
deny = ["secret-*"]
closure_deny = "push"
`)
	s := nixtest.Salt()
	paths, _ := e.Build(fmt.Sprintf("let dep = %s; in [ dep (%s) (%s) ]",
		nixtest.Drv(s, "secret-dep-1.0", nil), nixtest.Drv(s, "app-1.0", nil, "dep"), nixtest.Drv(s, "app-clean-1.0", nil)))
	byName := nixtest.ByName(paths)
	dep, app := byName["secret-dep-1.0"], byName["app-1.0"]
	if dep == "" || app == "" {
		t.Fatalf("unexpected outputs %v", paths)
	}
	closure, err := exec.Command("nix-store", "-qR", app).Output()
	if err != nil || !strings.Contains(string(closure), dep) {
		t.Fatalf("%s does not depend on %s (%v): %s", app, dep, err, closure)
	}
	e.WaitDropped(30*time.Second, false, app)

	plExpectCache(t, "skip", filepath.Join(e.Dir, "skip"), paths, func(n string) bool { return n == "app-clean-1.0" })
	plExpectCache(t, "push", filepath.Join(e.Dir, "push"), paths, func(string) bool { return true })

	var found bool
	for _, en := range plReadEntries(t, filepath.Join(e.Queue, "dropped")) {
		if en.Target == "pusher" {
			t.Errorf("closure_deny = push dropped %s: %s", en.Path, en.Reason)
		}
		if en.Target == "skipper" && en.Path == app {
			found = true
			if !strings.Contains(en.Reason, dep) || !strings.Contains(en.Reason, `"secret-*"`) {
				t.Errorf("drop reason does not name the denied dependency and rule: %q", en.Reason)
			}
		}
	}
	if !found {
		t.Errorf("%s is not in queue/dropped", app)
	}
	if log := e.Log(); !strings.Contains(log, "dropped") || !strings.Contains(log, dep) {
		t.Errorf("worker log does not name the denied dependency:\n%s", log)
	}
}

// 9. One path cachix always rejects does not hold back the others queued
// in the same batch; it stays failing.
func TestPipelineBadPathDoesNotBlockBatch(t *testing.T) {
	e := NewEnv(t, `
cache = "batch"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`)
	plSetVar(e, "CACHIX_STANDIN_FAIL_PATHS", "bad-*")
	s := nixtest.Salt()
	// All five are queued before any worker runs: one batch.
	unlock := plLockQueue(t, e.Queue)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "good-1", nil), nixtest.Drv(s, "good-2", nil), nixtest.Drv(s, "bad-1", nil), nixtest.Drv(s, "good-3", nil), nixtest.Drv(s, "good-4", nil)))
	bad := nixtest.ByName(paths)["bad-1"]
	if n := e.QueueEntries(); n != 5 {
		t.Fatalf("%d entries queued, want 5", n)
	}
	unlock()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if out, errOut, code := e.Run(ctx, "retry"); code != 0 {
		t.Fatalf("retry exited %d: %s%s", code, out, errOut)
	}
	t.Cleanup(func() {
		// The bad entry never drains; take it out so the cleanup's wait
		// does not sit out its timeout.
		plStopWorkers(t, e)
		os.RemoveAll(filepath.Join(e.Queue, "entries"))
		os.RemoveAll(filepath.Join(e.Queue, "bulk"))
	})

	cache := filepath.Join(e.Standin, "batch")
	eventually.True(t, eventually.Left(t), "the good paths to land", func() bool {
		got := CachePaths(t, cache)
		for _, p := range paths {
			if p != bad && !got[p] {
				return false
			}
		}
		return true
	})
	var failing bool
	eventually.True(t, eventually.Left(t), "status to show the bad path failing", func() bool {
		_, st := plStatusJSON(t, e)
		for _, tg := range st.Targets {
			if tg.Name == "batch" {
				failing = tg.Pending == 1 && tg.Failing == 1 && len(tg.Failures) == 1 &&
					tg.Failures[0].Path == bad && tg.Failures[0].Attempts >= 2 &&
					strings.Contains(tg.Failures[0].LastError, "simulated failure for "+bad)
			}
		}
		return failing
	})
	plExpectCache(t, "batch", cache, paths, func(n string) bool { return n != "bad-1" })
	// The batch is retried whole once, then split: the first two calls
	// are the five paths together.
	invs := e.Invocations()
	if len(invs) < 2 || len(invs[0].Paths) != 5 || invs[0].Exit == 0 || len(invs[1].Paths) != 5 || invs[1].Exit == 0 {
		for _, inv := range invs {
			t.Logf("cachix call: exit %d, %v", inv.Exit, inv.Paths)
		}
		t.Errorf("the first two cachix calls were not the failing batch of 5")
	}
}

// 10. A queued path that is garbage-collected before its push is dropped
// with a log line; the rest is pushed.
func TestPipelineGarbageCollectedPathDropped(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
`)
	s := nixtest.Salt()
	unlock := plLockQueue(t, e.Queue)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "gone-1.0", nil), nixtest.Drv(s, "stay-1.0", nil)))
	gone := nixtest.ByName(paths)["gone-1.0"]
	if n := e.QueueEntries(); n != 2 {
		t.Fatalf("%d entries queued, want 2", n)
	}
	if out, err := exec.Command("nix-store", "--delete", gone).CombinedOutput(); err != nil {
		t.Fatalf("nix-store --delete %s: %v\n%s", gone, err, out)
	}
	if _, err := os.Lstat(gone); err == nil {
		t.Fatalf("%s is still in the store", gone)
	}
	unlock()
	e.WaitDropped(30*time.Second, true, gone)

	plExpectCache(t, "cache", filepath.Join(e.Dir, "cache"), paths, func(n string) bool { return n == "stay-1.0" })
	dropped := plReadEntries(t, filepath.Join(e.Queue, "dropped"))
	if len(dropped) != 1 || dropped[0].Path != gone || !strings.Contains(dropped[0].Reason, "garbage-collected") {
		t.Errorf("queue/dropped holds %+v, want %s dropped as garbage-collected", dropped, gone)
	}
	if log := e.Log(); !strings.Contains(log, "garbage-collected") || !strings.Contains(log, gone) {
		t.Errorf("worker log does not say %s was garbage-collected:\n%s", gone, log)
	}
}

// 11. Corrupt entry files are moved to queue/corrupt, and the rest is
// pushed.
func TestPipelineCorruptEntryMovedAside(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
`)
	s := nixtest.Salt()
	unlock := plLockQueue(t, e.Queue)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "ok1-1.0", nil), nixtest.Drv(s, "ok2-1.0", nil)))
	entries := filepath.Join(e.Queue, "entries")
	names, _ := filepath.Glob(filepath.Join(entries, "*"))
	if len(names) != 2 {
		t.Fatalf("%d entries queued, want 2", len(names))
	}
	// Torn JSON, and a valid entry under a name that is not its own.
	const torn = `{"target":"file://`
	if err := os.WriteFile(filepath.Join(entries, "torn"), []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := plMustRead(t, names[0])
	if err := os.WriteFile(filepath.Join(entries, "00000000000000000000000000000000.000000000000"), []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	unlock()
	e.Wait(eventually.Left(t))

	plExpectCache(t, "cache", filepath.Join(e.Dir, "cache"), paths, func(string) bool { return true })
	corrupt, _ := filepath.Glob(filepath.Join(e.Queue, "corrupt", "*"))
	var got []string
	for _, c := range corrupt {
		name, _, _ := strings.Cut(filepath.Base(c), ".")
		got = append(got, name)
		if name == "torn" && plMustRead(t, c) != torn {
			t.Errorf("%s lost its content: %q", c, plMustRead(t, c))
		}
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "00000000000000000000000000000000 torn" {
		t.Errorf("queue/corrupt holds %v, want the two bad entries", corrupt)
	}
	if log := e.Log(); strings.Count(log, "corrupt queue entry") < 2 {
		t.Errorf("worker log does not report both corrupt entries:\n%s", log)
	}
}
