package test

// Fault injection (issue 10): a build caller's pipe, a hanging pusher with
// a grandchild holding its output, a pusher printing without end, clocks
// that step, entries that cannot be removed, worker and pusher SIGKILLed
// at random. Helpers here are prefixed with fl.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// flTrick sets the stand-in's trick file, which the pushes of a running
// worker read too; "" removes it.
func flTrick(t *testing.T, e *Env, spec string) {
	t.Helper()
	file := filepath.Join(e.Standin, "trick")
	if spec == "" {
		if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flFailedPushes counts the stand-in's failed invocations.
func flFailedPushes(e *Env) int {
	n := 0
	for _, inv := range e.Invocations() {
		if inv.Exit != 0 {
			n++
		}
	}
	return n
}

// flBuildPiped runs `(nix-build FILE ... 7>&1) | cat` through a shell, as
// a CI script capturing the output may, and returns how long it took.
// nix-build, the hook and everything the hook starts inherit fd 7: the
// write end of the pipe cat reads until EOF.
func flBuildPiped(t *testing.T, e *Env, hook, expr string) time.Duration {
	t.Helper()
	file := filepath.Join(e.Dir, "piped-"+Salt()+".nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c",
		`(nix-build "$1" --no-out-link --option substituters "" --option post-build-hook "$2" 7>&1) | cat`, "sh", file, hook)
	cmd.Env = e.environ()
	// Kill the whole pipeline on timeout, cat included.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("(nix-build ... 7>&1) | cat with hook %s did not return in 2 minutes: something holds the pipe\n%s", hook, out)
	}
	if err != nil {
		t.Fatalf("nix-build failed: %v\n%s", err, out)
	}
	return took
}

// 1. A caller's pipe on another descriptor is not held by the worker:
// `(nix-build ... 7>&1) | cat` returns while the worker still runs,
// failing every push.
func TestFaultBuildCallerPipeNotHeld(t *testing.T) {
	e := NewEnv(t, `
cache = "failing"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`)
	flTrick(t, e, "fail")
	base := flBuildPiped(t, e, "/bin/true", plList(Drv(Salt(), "base-1.0", nil)))
	took := flBuildPiped(t, e, hookBin, plList(Drv(Salt(), "piped-1.0", nil)))
	t.Logf("(nix-build ... 7>&1) | cat: %s with /bin/true as hook, %s with the hook", base.Round(time.Millisecond), took.Round(time.Millisecond))
	// The pipe closed although the worker still runs: it does not hold
	// the descriptor.
	if len(workerPIDs(e.Queue)) == 0 {
		t.Fatal("no worker runs after the build: the test cannot tell whether it would hold the pipe")
	}
	plWaitFor(t, 60*time.Second, "a push to fail", func() bool { return flFailedPushes(e) > 0 })
	if e.QueueEntries() == 0 {
		t.Error("the entry left the queue although every push fails")
	}
	// Let the cleanup's wait end quickly.
	flTrick(t, e, "")
}
