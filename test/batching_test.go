package test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// A build's path is pushed at once when nothing is being pushed (no
// timer holds it), and while that push runs, the path of a nix-build that
// has returned goes at once too, beside it: that nix-build builds
// nothing more, so gathering for the running push to end would only delay
// it (issue 22: the last build of a burst waited for a quiet timer and
// for the push before it). Each push here waits at the stand-in's gate
// until the test has seen both running.
func TestBatchingBesideRunningPush(t *testing.T) {
	t.Parallel()
	e, s, first, open := slowFirstPush(t, "beside")
	second, _ := e.Build(nixtest.Drv(s, "second-1.0", nil))
	// The first push is held at the gate: a worker that waited for it
	// to end never starts the second.
	eventually.True(t, eventually.Left(t), "a second push beside the first (held at the gate)", func() bool { return len(plStandinPIDs(e)) == 2 })
	open()
	e.Wait(eventually.Left(t))
	var calls [][]string
	for _, inv := range e.Invocations() {
		if inv.Exit != 0 {
			t.Errorf("a push failed: %+v", inv)
		}
		calls = append(calls, inv.Paths)
	}
	if len(calls) != 2 || !slices.ContainsFunc(calls, func(c []string) bool { return slices.Equal(c, first) }) ||
		!slices.ContainsFunc(calls, func(c []string) bool { return slices.Equal(c, second) }) {
		t.Errorf("pusher calls %q, want one of %q and one of %q", calls, first, second)
	}
}

// A Nix process that lives on after its last build (nix-shell execs the
// shell in its own process) has its paths pushed as soon as all it set
// out to build is valid, beside the running push: its temporary roots
// say no more builds will come from it (issue 22: the last build of a
// burst went only when nix-build exited, some 60 ms after its hook).
// Before the worker read those roots, the shell's path waited here for
// the first push to end.
func TestBatchingBesideOnceBuildsAreDone(t *testing.T) {
	t.Parallel()
	e, s, _, open := slowFirstPush(t, "done")

	dep := nixtest.Drv(s, "shell-input-1.0", nil)
	file := nixtest.WriteExpr(t, e.Dir, fmt.Sprintf(`derivation { name = "shell-%s"; system = builtins.currentSystem; builder = "/bin/sh"; input = %s; }`, s, dep))
	argv := e.onHost([]string{"nix-shell", file, "--option", "substituters", "", "--option", "post-build-hook", hookBin, "--run", "while [ ! -e '" + filepath.Join(e.Dir, "standin-gate") + "' ]; do sleep 0.1; done"})
	shell := exec.Command(argv[0], argv[1:]...)
	shell.Env = e.environ()
	var out bytes.Buffer
	shell.Stdout, shell.Stderr = &out, &out
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() { shell.Wait(); close(ended) }()
	t.Cleanup(func() { shell.Process.Kill(); <-ended })
	// The first push is held at the gate, and the shell runs until it
	// opens.
	eventually.True(t, eventually.Left(t), "a second push beside the first (held at the gate)", func() bool { return len(plStandinPIDs(e)) == 2 })
	select {
	case <-ended:
		t.Fatalf("nix-shell ended before the gate opened\n%s", out.String())
	default:
	}
	open()
	shell.Process.Kill()
	e.Wait(eventually.Left(t))
	var calls [][]string
	for _, inv := range e.Invocations() {
		calls = append(calls, inv.Paths)
	}
	want := nixtest.Outputs(t, nixtest.Derivations(t, nixtest.WriteExpr(t, e.Dir, dep))...)
	if len(calls) != 2 || !slices.ContainsFunc(calls, func(c []string) bool { return slices.Equal(c, want) }) {
		t.Errorf("pusher calls %q, want two, one of them %q", calls, want)
	}
}

// slowFirstPush makes a queue for cache whose pushes each wait at the
// stand-in's gate until open is called, builds one path (first-1.0,
// salted with s) and waits for its push to start, so that what the test
// builds next arrives while it runs.
func slowFirstPush(t *testing.T, cache string) (e *Env, s string, first []string, open func()) {
	t.Helper()
	e = NewEnv(t, fmt.Sprintf(`
cache = %q
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`, cache))
	open = plGate(t, e)
	s = nixtest.Salt()
	first, _ = e.Build(nixtest.Drv(s, "first-1.0", nil))
	eventually.True(t, eventually.Left(t), "the first push to start", func() bool { return len(plStandinPIDs(e)) == 1 })
	return e, s, first, open
}
