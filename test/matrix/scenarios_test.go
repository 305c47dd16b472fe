package matrix

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// baseConf is hook.conf without targets: the stand-in as cachix, the
// token from a root-only file, and the default queue directory (no
// queue.dir), with short back-offs.
const baseConf = `
[cachix]
bin = "` + standinPath + `"
auth_token_file = "` + tokenPath + `"

[queue]
linger = "5s"
retry_initial = "200ms"
retry_max = "1s"
`

func conf(targets string) string { return targets + baseConf }

// TestMatrixNixVersion checks that the chroot runs the Nix its suite is
// documented to run (README.md, docs/nix-checks.md), so that a suite
// moving to another Nix is noticed rather than silently tested, and that
// the setup is what users run: the daemon runs as root, the user is not
// root and builds through the daemon.
func TestMatrixNixVersion(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = []\n"))
	v := strings.TrimSpace(c.Must(true, nil, "nix", "--version").Stdout)
	t.Logf("chroot %s: %s", c.Dir, v)
	// scripts/nix-chroot.sh names each chroot after its suite.
	suite := filepath.Base(c.Dir)
	if err := checkSuiteNix(suite, v); err != nil {
		t.Fatal(err)
	}
	if id := c.Must(true, nil, "id", "-u").Stdout; strings.TrimSpace(id) == "0" {
		t.Fatal("the building user is root")
	}
}

// Selective push: allow, deny and multi-output derivations over three
// targets (a nix copy store and two stand-in caches), built by the
// non-root user with nix-build; the hook runs as root under the daemon
// and queues in the default queue directory.
func TestMatrixSelectivePush(t *testing.T) {
	c := Setup(t, conf(`
store = "file://`+filesStore+`"
name = "files"
allow = ["app-*"]
deny = ["*-doc"]

[[target]]
cache = "mixed"
allow = ["app-*", "lib-*"]
deny = ["*-dev"]

[[target]]
cache = "bins"
allow = ["*-bin", "*-dev"]
deny = ["lib-*"]
`))
	s := nixtest.Salt()
	paths, r := c.NixBuild(nixtest.List(
		nixtest.Drv(s, "app-1.0", []string{"out", "doc", "dev"}),
		nixtest.Drv(s, "lib-2.0", []string{"out", "dev"}),
		nixtest.Drv(s, "other-1.0", []string{"out", "bin"}),
	))
	if len(paths) != 7 {
		t.Fatalf("built %d outputs, want 7: %v", len(paths), paths)
	}
	// OUT_PATHS lists every output (Nix 2.16+): all three of app's.
	for _, want := range []string{"cachix-filter-hook: queued 3 of 3 paths for ", "cachix-filter-hook: queued 1 of 2 paths for mixed", "cachix-filter-hook: queued 1 of 2 paths for bins"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("build log lacks %q:\n%s", want, r.Stderr)
		}
	}
	by := nixtest.ByName(paths)
	want := map[string][]string{
		filesStore:            {"app-1.0", "app-1.0-dev"},
		StandinCache("mixed"): {"app-1.0", "app-1.0-doc", "lib-2.0"},
		StandinCache("bins"):  {"app-1.0-dev", "other-1.0-bin"},
	}
	for cache, names := range want {
		var ps []string
		for _, n := range names {
			ps = append(ps, by[n])
		}
		c.WaitLanded(60*time.Second, cache, ps)
	}
	for cache, names := range want {
		got := c.CachePaths(cache)
		for _, p := range paths {
			if got[p] != contains(names, nixtest.Name(p)) {
				t.Errorf("%s: %s in cache = %v, want %v", cache, nixtest.Name(p), got[p], !got[p])
			}
		}
	}
	if st := c.CLI(nil, "status", "--json"); !strings.Contains(st.Stdout, `"`+queueDir+`"`) {
		t.Errorf("status does not show the default queue %s:\n%s%s", queueDir, st.Stdout, st.Stderr)
	}
}

// The hook's line in the build log: nix-build shows it; `nix build`
// shows it with -L as `NAME (post)> ...`.
func TestMatrixHookLineInBuildLog(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = [\"logline-*\"]\n"))
	s := nixtest.Salt()
	_, r := c.NixBuild(nixtest.Drv(s, "logline-1.0", nil))
	if !strings.Contains(r.Stderr, "cachix-filter-hook: queued 1 of 1 paths for file://") {
		t.Errorf("nix-build's log lacks the hook's line:\n%s", r.Stderr)
	}
	paths, r := c.NixBuildL(nixtest.Drv(s, "logline-2.0", nil))
	if !strings.Contains(r.Stderr, "logline (post)> cachix-filter-hook: queued 1 of 1 paths for file://") {
		t.Errorf("nix build -L's log lacks `logline (post)> cachix-filter-hook: queued 1 of 1 paths`:\n%s", r.Stderr)
	}
	c.WaitLanded(60*time.Second, filesStore, paths)
	// Without -L, nix build keeps the hook's output to itself (what
	// README tells users); the path is queued all the same.
	r = c.Run(true, nil, "nix", "build", "--no-link", "--option", "substituters", "", "-f", c.exprFile(nixtest.Drv(s, "logline-3.0", nil)))
	if r.Code != 0 {
		t.Fatalf("nix build exited %d:\n%s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, "cachix-filter-hook:") {
		t.Logf("this Nix shows the hook's output without -L too:\n%s", r.Stderr)
	}
	eventually.True(t, 60*time.Second, "logline-3.0 to land", func() bool {
		for p := range c.CachePaths(filesStore) {
			if nixtest.Name(p) == "logline-3.0" {
				return true
			}
		}
		return false
	})
}

// A burst of 40 builds while each push takes 2 s: the builds are not held
// up by the pushes (nix-build returns with paths still queued, in about
// the time the same burst takes with /bin/true as the hook), and the 40
// paths go up in a few batched pusher calls.
func TestMatrixBurstSlowPushes(t *testing.T) {
	c := Setup(t, conf(`cache = "burst"`+"\nallow = [\"*\"]\n"), "CACHIX_STANDIN_DELAY=2s")
	const n = 40
	burst := func(s string) string {
		var drvs []string
		for i := 0; i < n; i++ {
			drvs = append(drvs, nixtest.Drv(s, fmt.Sprintf("burst%d-1.0", i), nil))
		}
		return nixtest.List(drvs...)
	}
	// The baseline: the same burst with /bin/true as the hook (root is a
	// trusted user, so the daemon takes the option from it).
	base := c.Must(false, []string{"NIX_REMOTE=daemon"}, "nix-build", c.exprFile(burst(nixtest.Salt())), "--no-out-link", "--option", "post-build-hook", "/bin/true").Took

	paths, r := c.NixBuild(burst(nixtest.Salt()))
	queuedAtReturn := c.QueueEntries()
	landedAtReturn := countIn(c.CachePaths(StandinCache("burst")), paths)
	t.Logf("%d builds: %s with /bin/true as hook, %s with the hook and 2 s pushes; at return %d entries queued, %d paths in the cache",
		n, base.Round(time.Millisecond), r.Took.Round(time.Millisecond), queuedAtReturn, landedAtReturn)
	if got := strings.Count(r.Stderr, "cachix-filter-hook: queued 1 of 1 paths for burst"); got != n {
		t.Errorf("the hook's line shows %d times, want %d:\n%s", got, n, tail(r.Stderr, 3000))
	}
	// Pushing one path per build would take 80 s; waiting for the worker
	// at the end, at least one more 2 s push.
	if r.Took > 2*base+10*time.Second {
		t.Errorf("the burst took %s with the hook, %s without: the pushes held the builds up", r.Took, base)
	}
	if queuedAtReturn == 0 || landedAtReturn == n {
		t.Errorf("nix-build returned after the pushes: %d entries left, %d of %d paths in the cache", queuedAtReturn, landedAtReturn, n)
	}
	c.WaitLanded(3*time.Minute, StandinCache("burst"), paths)
	inv := c.Invocations()
	if len(inv) > n/4 {
		t.Errorf("%d pusher calls for %d paths: not batched", len(inv), n)
	}
	t.Logf("%d pusher calls for %d paths", len(inv), n)
	checkEachPushedOnce(t, inv, paths)
}

// checkEachPushedOnce fails the test unless every path is named by
// exactly one pusher call, and that call succeeded.
func checkEachPushedOnce(t *testing.T, inv []Invocation, paths []string) {
	t.Helper()
	calls := map[string]int{}
	for _, i := range inv {
		if i.Exit != 0 {
			t.Errorf("pusher call failed: %v", i.Argv)
		}
		for _, p := range i.Paths {
			calls[p]++
		}
	}
	for _, p := range paths {
		if calls[p] != 1 {
			t.Errorf("%s was in %d pusher calls, want 1", nixtest.Name(p), calls[p])
		}
	}
}

// cachix fails three times, then works: every build succeeds, and every
// path lands.
func TestMatrixFailuresThenSuccess(t *testing.T) {
	c := Setup(t, conf(`cache = "flaky"`+"\nallow = [\"*\"]\n"), "CACHIX_STANDIN_FAIL=3")
	s := nixtest.Salt()
	var paths []string
	for i := 0; i < 3; i++ {
		p, r := c.NixBuild(nixtest.Drv(s, fmt.Sprintf("flaky%d-1.0", i), nil))
		if !strings.Contains(r.Stderr, "queued 1 of 1 paths for flaky") {
			t.Errorf("build %d: log lacks the hook's line:\n%s", i, r.Stderr)
		}
		paths = append(paths, p...)
	}
	c.WaitLanded(90*time.Second, StandinCache("flaky"), paths)
	failed := 0
	for _, i := range c.Invocations() {
		if i.Exit != 0 {
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("%d failed pusher calls, want 3", failed)
	}
	if !strings.Contains(c.WorkerLog(), "push failed") {
		t.Errorf("worker log does not mention the failed pushes:\n%s", c.WorkerLog())
	}
}

// SIGKILL of the worker in the middle of a push (it runs as root, started
// by the hook under the daemon): its pusher dies with it, the entries
// stay, and `wait` starts a worker that pushes everything.
func TestMatrixWorkerKilled(t *testing.T) {
	c := Setup(t, conf(`cache = "killed"`+"\nallow = [\"*\"]\n"), "CACHIX_STANDIN_DELAY=5s")
	s := nixtest.Salt()
	paths, _ := c.NixBuild(nixtest.List(nixtest.Drv(s, "w1-1.0", nil), nixtest.Drv(s, "w2-1.0", nil), nixtest.Drv(s, "w3-1.0", nil)))
	eventually.True(t, 30*time.Second, "the worker to start pushing", func() bool { return len(c.Pushers()) > 0 })
	workers := c.Workers()
	if len(workers) == 0 {
		t.Fatal("no worker runs although a push does")
	}
	for _, pid := range workers {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("killing worker %d: %v", pid, err)
		}
	}
	eventually.True(t, 10*time.Second, "the worker to die", func() bool { return len(c.Workers()) == 0 })
	eventually.True(t, 10*time.Second, "the pusher to die with the worker", func() bool { return len(c.Pushers()) == 0 })
	if got := c.QueueEntries(); got != len(paths) {
		t.Fatalf("%d entries queued after the worker died, want %d", got, len(paths))
	}
	if got := countIn(c.CachePaths(StandinCache("killed")), paths); got != 0 {
		t.Errorf("%d paths landed although the push was killed", got)
	}
	// wait's environment has no CACHIX_STANDIN_DELAY: the worker it
	// starts pushes at once.
	if r := c.CLI(nil, "wait", "--timeout", "90s"); r.Code != 0 {
		t.Fatalf("wait exited %d:\n%s%s\nworker log:\n%s", r.Code, r.Stdout, r.Stderr, c.WorkerLog())
	}
	c.WaitLanded(30*time.Second, StandinCache("killed"), paths)
	if got := strings.Count(c.WorkerLog(), "worker started"); got < 2 {
		t.Errorf("worker log shows %d worker starts, want 2 or more:\n%s", got, c.WorkerLog())
	}
}

// `push --closure` of a generation-like root (a profile link, as
// /run/current-system or a home-manager generation): the selected paths
// of its whole closure are queued, including one the hook never saw
// (builtins.toFile: added, not built), and nothing the rules deny.
func TestMatrixPushClosureGeneration(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = [\"*\"]\ndeny = [\"*-doc\", \"nixos-system-*\"]\n"))
	s := nixtest.Salt()
	etc := fmt.Sprintf(`builtins.toFile "etc-%s" "config %s"`, s, s)
	gen := `let
  app = ` + nixtest.Drv(s, "app-1.0", []string{"out", "doc"}) + `;
  etc = ` + etc + `;
in ` + nixtest.Drv(s, "nixos-system-test-"+s, nil, "app", "app.doc", "etc")
	outs, _ := c.NixBuild(gen)
	root := ""
	for _, p := range outs {
		if strings.HasPrefix(nixtest.Name(p), "nixos-system-") {
			root = p
		}
	}
	profile := "/nix/var/nix/profiles/cfh-system-" + s
	c.Must(false, nil, "nix-env", "-p", profile, "--set", root)
	closure := strings.Fields(c.Must(false, nil, "nix-store", "--query", "--requisites", profile).Stdout)
	by := nixtest.ByName(closure)
	for _, n := range []string{"app-1.0", "app-1.0-doc", "etc-" + s} {
		if by[n] == "" {
			t.Fatalf("%s is not in the closure %v", n, closure)
		}
	}
	r := c.CLI(nil, "push", "--closure", profile)
	if r.Code != 0 {
		t.Fatalf("push --closure exited %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	want := []string{by["app-1.0"], by["etc-"+s]}
	c.WaitLanded(60*time.Second, filesStore, want)
	got := c.CachePaths(filesStore)
	for _, p := range closure {
		if got[p] != contains(want, p) {
			t.Errorf("%s in cache = %v, want %v", nixtest.Name(p), got[p], !got[p])
		}
	}
}

// `--check` rebuilds: the hook runs for them too (Nix 2.30 to 2.32 pass
// OUT_PATHS empty there, NixOS/nix#14287: the hook then reads the
// outputs from DRV_PATH), exits 0, and queues the path again once the
// record of pushed paths is forgotten (the cache was emptied); otherwise
// it says the path was pushed already.
func TestMatrixCheckRebuild(t *testing.T) {
	c := Setup(t, conf(`store = "file://`+filesStore+`"`+"\nallow = [\"checked-*\"]\n"))
	s := nixtest.Salt()
	expr := nixtest.Drv(s, "checked-1.0", nil)
	paths, _ := c.NixBuild(expr)
	c.WaitLanded(60*time.Second, filesStore, paths)
	// The hook of a --check build leaves the pushed path out.
	_, r := c.NixBuild(expr, "--check")
	if !strings.Contains(r.Stderr, "cachix-filter-hook: queued 0 of 1 paths (already pushed: 1 to file://") {
		t.Errorf("the --check build's log lacks the hook's line:\n%s", r.Stderr)
	}
	// Take it out of the cache and forget it was pushed, as after
	// emptying a cache, so that only a --check build's hook can put it
	// back.
	if err := os.RemoveAll(c.Host(filesStore)); err != nil {
		t.Fatal(err)
	}
	if f := c.CLI(nil, "forget", "--pushed"); f.Code != 0 {
		t.Fatalf("forget --pushed exited %d:\n%s%s", f.Code, f.Stdout, f.Stderr)
	}
	_, r = c.NixBuild(expr, "--check")
	if !strings.Contains(r.Stderr, "cachix-filter-hook: queued 1 of 1 paths for file://") {
		t.Errorf("the --check build's log lacks the hook's line:\n%s", r.Stderr)
	}
	// Queued still, or pushed already: either way the hook ran and said so.
	_, r = c.NixBuildL(expr, "--rebuild")
	if !strings.Contains(r.Stderr, "checked (post)> cachix-filter-hook: queued 1 of 1 paths") && !strings.Contains(r.Stderr, "checked (post)> cachix-filter-hook: queued 0 of 1 paths (already pushed: 1") {
		t.Errorf("nix build --rebuild's log lacks the hook's line:\n%s", r.Stderr)
	}
	c.WaitLanded(60*time.Second, filesStore, paths)
}

// Nix 2.35 runs post-build hooks concurrently, up to max-jobs at once.
// This starts the hook as the daemon would, for a burst of 40 real builds,
// 8 at a time, each with one build's OUT_PATHS and DRV_PATH, while each
// push takes 1 s: every path lands, none is named by two pusher calls, and
// one worker does all the pushing.
func TestMatrixConcurrentHooks(t *testing.T) {
	c := Setup(t, conf(`cache = "conc"`+"\nallow = [\"conc-*\"]\n"), "CACHIX_STANDIN_DELAY=1s")
	const n, maxJobs = 40, 8
	s := nixtest.Salt()
	var drvs []string
	for i := 0; i < n; i++ {
		drvs = append(drvs, nixtest.Drv(s, fmt.Sprintf("conc-%d", i), nil))
	}
	file := c.exprFile(nixtest.List(drvs...))
	// Built without our hook (root may set it; an empty one is none).
	c.Must(false, []string{"NIX_REMOTE=daemon"}, "nix-build", file, "--no-out-link", "--option", "post-build-hook", "")
	drvPaths := strings.Fields(c.Must(true, nil, "nix-instantiate", file).Stdout)
	if len(drvPaths) != n {
		t.Fatalf("%d derivations, want %d", len(drvPaths), n)
	}
	if c.QueueEntries() != 0 {
		t.Fatal("something was queued before the hooks ran")
	}
	var paths []string
	results := make([]Result, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxJobs)
	for i, drv := range drvPaths {
		out := strings.TrimSpace(c.Must(true, nil, "nix-store", "--query", "--outputs", drv).Stdout)
		paths = append(paths, out)
		wg.Add(1)
		go func(i int, drv, out string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// The daemon's environment, as the hook gets it.
			args := append([]string{c.Dir, "env", "-i"}, daemonBaseEnv()...)
			args = append(args, "CACHIX_STANDIN_DELAY=1s", "OUT_PATHS="+out, "DRV_PATH="+drv, hookPath)
			cmd := exec.CommandContext(t.Context(), "chroot", args...)
			cmd.Dir = "/"
			results[i] = combinedResult(cmd)
		}(i, drv, out)
	}
	wg.Wait()
	for i, r := range results {
		if r.Code != 0 || !strings.Contains(r.Stdout, "cachix-filter-hook: queued 1 of 1 paths for conc") {
			t.Errorf("hook %d: exit %d:\n%s%s", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	c.WaitLanded(3*time.Minute, StandinCache("conc"), paths)
	inv := c.Invocations()
	t.Logf("%d hooks, %d at a time: %d pusher calls", n, maxJobs, len(inv))
	checkEachPushedOnce(t, inv, paths)
	if got := strings.Count(c.WorkerLog(), "worker started"); got != 1 {
		t.Errorf("%d workers started, want 1:\n%s", got, c.WorkerLog())
	}
}
