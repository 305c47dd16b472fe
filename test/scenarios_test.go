package test

// The user's scenarios for the push command (issue 5), with real Nix:
// `push --closure` on a home-manager-like generation, closure_deny = skip
// versus push, roots given through symlinks, `push --wait`'s exit status
// when cachix keeps failing, --dry-run, paths on stdin, and bad paths.
//
// The store paths are built by a separate Env whose rules select nothing,
// so the post-build-hook queues nothing and every path that reaches a
// cache got there through `push`.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// scBuild builds the derivations of expr (a Nix list) with the hook set
// but selecting nothing, and returns their outputs by name
// ("hello-2.12.1", "hello-2.12.1-doc").
func scBuild(t *testing.T, expr string) map[string]string {
	t.Helper()
	b := NewEnv(t, "store = \"file://@DIR@/never\"\nallow = [\"scenario-builder-selects-nothing\"]\n")
	paths, log := b.Build(expr)
	if n := b.QueueEntries(); n != 0 {
		t.Fatalf("the builder's hook queued %d paths:\n%s", n, log)
	}
	// Build lists the outputs of the expression's derivations; add their
	// dependencies.
	closure, err := exec.Command("nix-store", append([]string{"--query", "--requisites"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("nix-store --query --requisites: %v", err)
	}
	return nixtest.ByName(strings.Fields(string(closure)))
}

// scRun runs cachix-filter-hook in dir (the test's directory when empty)
// with stdin, and returns stdout, stderr and the exit status.
func scRun(t *testing.T, e *Env, dir, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, hookBin, args...)
	cmd.Env = e.environ()
	if dir == "" {
		dir = e.Dir
	}
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// scSet is a set of store paths, sorted, for comparisons and messages.
func scSet(m map[string]bool) []string {
	out := []string{}
	for p, ok := range m {
		if ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func scPaths(paths ...string) []string {
	out := append([]string{}, paths...)
	sort.Strings(out)
	return out
}

// scCachixConf is a Cachix target served by the stand-in, whose cache is
// e.Standin/mycache.
const scCachixConf = `
cache = "mycache"
allow = ["hello-*"]
deny = ["*-doc"]

[cachix]
bin = "@CACHIX@"
`

// scCachixEnv is an Env with scCachixConf and the stand-in's root made.
func scCachixEnv(t *testing.T) *Env {
	t.Helper()
	e := NewEnv(t, scCachixConf)
	if err := os.MkdirAll(e.Standin, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// scNothingQueued fails unless push left no trace: no queue entry, no
// worker, no pusher invocation, no cache.
//
// Called as soon as the command returns: push queues (and starts the
// worker) before it returns, and a queued path leaves a trace at every
// moment after that: its entry until the worker pushes it, the worker
// process (which lingers after the queue is empty), and the pusher's
// invocation and the cache's narinfo. No waiting is needed to see it.
func scNothingQueued(t *testing.T, e *Env, cacheDir string) {
	t.Helper()
	if n := e.QueueEntries(); n != 0 {
		t.Errorf("%d queue entries, want none", n)
	}
	if pids := workerPIDs(e.Queue); len(pids) != 0 {
		t.Errorf("a worker was started: pids %v", pids)
	}
	if inv := e.Invocations(); len(inv) != 0 {
		t.Errorf("the pusher ran: %+v", inv)
	}
	if got := CachePaths(t, cacheDir); len(got) != 0 {
		t.Errorf("the cache holds %v, want nothing", scSet(got))
	}
}

// A home-manager generation's closure holds allowed, denied and unlisted
// packages, some only indirectly (through home-path); `push --closure`
// pushes exactly the allowed ones.
func TestScenarioPushClosureGeneration(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `let
  hello = `+nixtest.Drv(s, "hello-2.12.1", []string{"out", "doc"})+`;
  ripgrep = `+nixtest.Drv(s, "ripgrep-14.1.0", nil)+`;
  zlib = `+nixtest.Drv(s, "zlib-1.3", nil)+`;
  secret = `+nixtest.Drv(s, "secret-config", nil)+`;
  homePath = `+nixtest.Drv(s, "home-manager-path", nil, "ripgrep", "zlib")+`;
  gen = `+nixtest.Drv(s, "home-manager-generation", nil, "hello", "hello.doc", "secret", "homePath")+`;
in [ gen ]`)
	root := built["home-manager-generation"]
	if root == "" {
		t.Fatalf("no generation among %v", built)
	}
	closure, err := exec.Command("nix-store", "-qR", root).Output()
	if err != nil {
		t.Fatal(err)
	}
	byName := nixtest.ByName(strings.Fields(string(closure)))
	for _, n := range []string{"hello-2.12.1", "hello-2.12.1-doc", "ripgrep-14.1.0", "zlib-1.3", "secret-config", "home-manager-path", "home-manager-generation"} {
		if byName[n] == "" {
			t.Fatalf("%s is not in the generation's closure %v", n, byName)
		}
	}

	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["hello-*", "ripgrep-*", "secret-*"]
deny = ["*-doc", "secret-*"]
`)
	out, errOut, code := scRun(t, e, "", "", "push", "--closure", root)
	if code != 0 {
		t.Fatalf("push --closure exited %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "queued 2 of 7 paths for file://") {
		t.Errorf("push said %q, want `queued 2 of 7 paths for file://...`", out)
	}
	e.Wait(eventually.Left(t))
	got := scSet(CachePaths(t, filepath.Join(e.Dir, "cache")))
	want := scPaths(byName["hello-2.12.1"], byName["ripgrep-14.1.0"])
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cache holds\n  %s\nwant exactly\n  %s\nworker log:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), e.Log())
	}
}

// closure_deny decides what happens to a selected path whose closure holds
// a denied one: under "skip" push leaves it out before queueing and says
// why (issue 18: it queued it, the worker dropped it, and push --wait
// exited 1), "push" uploads it with the denied dependency inside its
// closure.
func TestScenarioClosureDeny(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `let
  secret = `+nixtest.Drv(s, "secret-config-1", nil)+`;
  app = `+nixtest.Drv(s, "app-1.0", nil, "secret")+`;
in [ app ]`)
	app, secret := built["app-1.0"], built["secret-config-1"]
	if app == "" || secret == "" {
		t.Fatalf("built %v", built)
	}
	conf := func(mode string) string {
		return `
store = "file://@DIR@/cache"
allow = ["app-*", "secret-*"]
deny = ["secret-*"]
closure_deny = "` + mode + `"
`
	}

	t.Run("skip", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("skip"))
		out, errOut, code := scRun(t, e, "", "", "push", "--wait", "--timeout", eventually.Left(t).String(), app)
		if code != 0 {
			t.Fatalf("push --wait exited %d, want 0 (the rules' verdict is no failure):\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
		}
		want := `cachix-filter-hook: queued 0 of 1 paths (skipped app-1.0: closure_deny = "skip": its closure contains ` + secret + `, denied by "secret-*")`
		if strings.TrimSpace(out) != want {
			t.Errorf("push says\n  %s\nwant\n  %s", strings.TrimSpace(out), want)
		}
		if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) != 0 {
			t.Errorf("cache holds %v, want nothing", scSet(got))
		}
		if dropped, _ := filepath.Glob(filepath.Join(e.Queue, "dropped", "*")); len(dropped) != 0 {
			t.Errorf("dropped/ holds %v: push queued what the rules drop", dropped)
		}
		if n := e.QueueEntries(); n != 0 {
			t.Errorf("%d entries left in the queue", n)
		}
	})

	t.Run("push", func(t *testing.T) {
		t.Parallel()
		e := NewEnv(t, conf("push"))
		out, errOut, code := scRun(t, e, "", "", "push", "--wait", "--timeout", eventually.Left(t).String(), app)
		if code != 0 {
			t.Fatalf("push --wait exited %d, want 0:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
		}
		got := scSet(CachePaths(t, filepath.Join(e.Dir, "cache")))
		if want := scPaths(app, secret); !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
	})
}

// A root given as a symlink (./result, a chain like ~/.nix-profile) or as
// a file inside a store path is pushed as the store path itself.
func TestScenarioSymlinkRoot(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `[
  (`+nixtest.Drv(s, "hello-2.12.1", nil)+`)
  (derivation { name = "hello-tools-1.0"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/bin && echo `+s+` > $out/bin/hello-tool" ]; })
]`)
	hello, tools := built["hello-2.12.1"], built["hello-tools-1.0"]
	if hello == "" || tools == "" {
		t.Fatalf("built %v", built)
	}
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["hello-*"]
`)
	// ./result -> profile-1-link -> the store path.
	if err := os.Symlink(hello, filepath.Join(e.Dir, "profile-1-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("profile-1-link", filepath.Join(e.Dir, "result")); err != nil {
		t.Fatal(err)
	}
	// result-tools -> the store path; the argument is a file inside it.
	if err := os.Symlink(tools, filepath.Join(e.Dir, "result-tools")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := scRun(t, e, e.Dir, "", "push", "--wait", "--timeout", eventually.Left(t).String(), "./result", "result-tools/bin/hello-tool")
	if code != 0 {
		t.Fatalf("push exited %d:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
	}
	got := scSet(CachePaths(t, filepath.Join(e.Dir, "cache")))
	if want := scPaths(hello, tools); !reflect.DeepEqual(got, want) {
		t.Errorf("cache holds %v, want %v", got, want)
	}
}

// `push --wait --timeout` exits 1 listing the path and cachix's last error
// while cachix keeps failing, and 0 once the push works.
func TestScenarioWaitExitStatus(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `[ (`+nixtest.Drv(s, "hello-2.12.1", nil)+`) (`+nixtest.Drv(s, "hello-2.12.2", nil)+`) ]`)
	failing, working := built["hello-2.12.1"], built["hello-2.12.2"]
	if failing == "" || working == "" {
		t.Fatalf("built %v", built)
	}

	t.Run("cachix keeps failing", func(t *testing.T) {
		t.Parallel()
		e := scCachixEnv(t)
		e.Vars = append(e.Vars, "CACHIX_STANDIN_FAIL=1000")
		start := time.Now()
		out, errOut, code := scRun(t, e, "", "", "push", "--wait", "--timeout", "5s", failing)
		took := time.Since(start)
		if code != 3 {
			t.Fatalf("push --wait exited %d, want 3 (a path not pushed):\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
		}
		// No upper bound but scRun's 2 minutes (a kill, exit -1): a
		// loaded machine may take long past the 5 s.
		if took < 5*time.Second {
			t.Errorf("push --wait --timeout 5s returned after %s, before its timeout", took)
		}
		var line string
		for _, l := range strings.Split(errOut, "\n") {
			if strings.Contains(l, failing) {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("push --wait does not list %s:\n%s", failing, errOut)
		}
		if !strings.Contains(line, "mycache") || !strings.Contains(line, "simulated failure") {
			t.Errorf("the line for %s lacks the target or cachix's last error:\n%s", failing, line)
		}
		inv := e.Invocations()
		if len(inv) == 0 {
			t.Fatal("cachix was never run")
		}
		for _, i := range inv {
			if i.Exit != 1 || !reflect.DeepEqual(i.Paths, []string{failing}) {
				t.Errorf("invocation %+v, want a failed push of %s", i, failing)
			}
		}
		if got := CachePaths(t, filepath.Join(e.Standin, "mycache")); len(got) != 0 {
			t.Errorf("cache holds %v", scSet(got))
		}
		if n := e.QueueEntries(); n != 1 {
			t.Errorf("%d queue entries after the timeout, want the failing one still queued", n)
		}

		// cachix recovers (its 1000 failures are used up): the entry
		// still queued goes up and the same command exits 0.
		if err := os.WriteFile(filepath.Join(e.Standin, ".fail-count"), []byte("1000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code = scRun(t, e, "", "", "push", "--wait", "--timeout", eventually.Left(t).String(), failing)
		if code != 0 {
			t.Fatalf("push --wait after recovery exited %d:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
		}
		if got := CachePaths(t, filepath.Join(e.Standin, "mycache")); !got[failing] {
			t.Errorf("cache holds %v, want %s", scSet(got), failing)
		}
	})

	t.Run("cachix works", func(t *testing.T) {
		t.Parallel()
		e := scCachixEnv(t)
		out, errOut, code := scRun(t, e, "", "", "push", "--wait", "--timeout", eventually.Left(t).String(), working)
		if code != 0 {
			t.Fatalf("push --wait exited %d, want 0:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
		}
		if strings.Contains(errOut, "not pushed") {
			t.Errorf("push --wait reported a failure:\n%s", errOut)
		}
		got := scSet(CachePaths(t, filepath.Join(e.Standin, "mycache")))
		if want := []string{working}; !reflect.DeepEqual(got, want) {
			t.Errorf("cache holds %v, want %v", got, want)
		}
		if n := e.QueueEntries(); n != 0 {
			t.Errorf("%d queue entries left", n)
		}
	})
}

// --dry-run prints explain's lines and pushes nothing.
func TestScenarioDryRun(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `let
  hello = `+nixtest.Drv(s, "hello-2.12.1", []string{"out", "doc"})+`;
  zlib = `+nixtest.Drv(s, "zlib-1.3", nil)+`;
  env = `+nixtest.Drv(s, "user-environment", nil, "hello", "hello.doc", "zlib")+`;
in [ env ]`)
	hello, doc, zlib, root := built["hello-2.12.1"], built["hello-2.12.1-doc"], built["zlib-1.3"], built["user-environment"]
	if hello == "" || doc == "" || zlib == "" || root == "" {
		t.Fatalf("built %v", built)
	}
	e := scCachixEnv(t)
	cache := filepath.Join(e.Standin, "mycache")

	out, errOut, code := scRun(t, e, "", "", "push", "--dry-run", hello, doc, zlib)
	if code != 0 {
		t.Fatalf("push --dry-run exited %d:\n%s%s", code, out, errOut)
	}
	explained, errOut2, code := scRun(t, e, "", "", "explain", hello, doc, zlib)
	if code != 0 {
		t.Fatalf("explain exited %d:\n%s%s", code, explained, errOut2)
	}
	if out != explained {
		t.Errorf("push --dry-run printed\n%s\nexplain printed\n%s", out, explained)
	}
	wantLines := []string{
		"push " + hello + " -> mycache (allow \"hello-*\")",
		"skip " + doc + " (deny \"*-doc\")",
		"skip " + zlib + " (",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(wantLines) {
		t.Fatalf("push --dry-run printed %d lines, want %d:\n%s", len(lines), len(wantLines), out)
	}
	for i, w := range wantLines {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	scNothingQueued(t, e, cache)

	// With --closure: one line per path of the closure, still nothing
	// queued.
	out, errOut, code = scRun(t, e, "", "", "push", "--dry-run", "--closure", root)
	if code != 0 {
		t.Fatalf("push --dry-run --closure exited %d:\n%s%s", code, out, errOut)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Errorf("push --dry-run --closure printed %d lines, want 4 (the closure):\n%s", len(lines), out)
	}
	for _, w := range []string{wantLines[0], wantLines[1], "skip " + zlib + " (", "skip " + root + " ("} {
		if !strings.Contains(out, "\n"+w) && !strings.HasPrefix(out, w) {
			t.Errorf("push --dry-run --closure lacks a line starting %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "queued") {
		t.Errorf("push --dry-run claims to queue:\n%s", out)
	}
	scNothingQueued(t, e, cache)
	if _, err := os.Stat(cache); err == nil {
		t.Errorf("%s exists", cache)
	}
}

// `push -` reads whitespace-separated paths (and symlinks) from stdin.
func TestScenarioStdin(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `[ (`+nixtest.Drv(s, "hello-2.12.1", []string{"out", "doc"})+`) (`+nixtest.Drv(s, "hello-tools-1.0", nil)+`) ]`)
	hello, doc, tools := built["hello-2.12.1"], built["hello-2.12.1-doc"], built["hello-tools-1.0"]
	if hello == "" || doc == "" || tools == "" {
		t.Fatalf("built %v", built)
	}
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["hello-*"]
deny = ["*-doc"]
`)
	if err := os.Symlink(tools, filepath.Join(e.Dir, "result")); err != nil {
		t.Fatal(err)
	}
	stdin := hello + "\n  " + doc + "\t./result\n"
	out, errOut, code := scRun(t, e, e.Dir, stdin, "push", "--wait", "--timeout", eventually.Left(t).String(), "-")
	if code != 0 {
		t.Fatalf("push - exited %d:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
	}
	if !strings.Contains(out, "queued 2 of 3 paths") {
		t.Errorf("push - said %q, want `queued 2 of 3 paths`", out)
	}
	got := scSet(CachePaths(t, filepath.Join(e.Dir, "cache")))
	if want := scPaths(hello, tools); !reflect.DeepEqual(got, want) {
		t.Errorf("cache holds %v, want %v", got, want)
	}
}

// A path outside the store, or a store path that is not built, is a clear
// error with exit status 1, and nothing is queued.
func TestScenarioBadPaths(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	// A derivation instantiated but never built: its output path is
	// known and absent.
	file := filepath.Join(t.TempDir(), "unbuilt.nix")
	if err := os.WriteFile(file, []byte(nixtest.Drv(s, "hello-2.12.1", nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	drv, err := exec.Command("nix-instantiate", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Command("nix-store", "--query", "--outputs", strings.TrimSpace(string(drv))).Output()
	if err != nil {
		t.Fatal(err)
	}
	unbuilt := strings.TrimSpace(string(outs))
	if _, err := os.Lstat(unbuilt); err == nil {
		t.Fatalf("%s exists", unbuilt)
	}

	e := scCachixEnv(t)
	outside := filepath.Join(e.Dir, "hello-2.12.1")
	if err := os.WriteFile(outside, []byte("not a store path\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(unbuilt, filepath.Join(e.Dir, "result")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		stdin string
		want  []string // in stderr
	}{
		{"outside the store", []string{"push", outside}, "", []string{outside, "outside the Nix store"}},
		{"outside, with --closure --wait", []string{"push", "--closure", "--wait", "--timeout", "5s", outside}, "", []string{outside, "outside the Nix store"}},
		{"not built", []string{"push", unbuilt}, "", []string{unbuilt, "not built"}},
		{"not built, with --closure", []string{"push", "--closure", unbuilt}, "", []string{unbuilt, "not built"}},
		{"not built, on stdin", []string{"push", "-"}, unbuilt + "\n", []string{unbuilt, "not built"}},
		{"dangling symlink", []string{"push", "./result"}, "", []string{"result", unbuilt}},
	}
	for _, c := range cases {
		out, errOut, code := scRun(t, e, e.Dir, c.stdin, c.args...)
		if code != 1 {
			t.Errorf("%s: %v exited %d, want 1:\n%s%s", c.name, c.args, code, out, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, errOut)
			}
		}
		if strings.Contains(out, "queued") {
			t.Errorf("%s: push claims to queue:\n%s", c.name, out)
		}
	}
	scNothingQueued(t, e, filepath.Join(e.Standin, "mycache"))
}
