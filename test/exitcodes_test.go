package test

// Issue 18, defect 9 and item 7: what push says is what it does, and
// wait's exit status tells a verdict of the rules from a failure.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// With the default closure_deny ("skip"), push --dry-run --closure said
// it would skip a path whose closure holds a denied one; push --closure
// then queued it, the worker dropped it, and push --wait and wait exited
// 1: a CI job failed because a deny rule did its job, and a shellHook
// queued and dropped it again on every entry. Now push applies the
// verdict it prints: the path is not queued, the line says why, and
// nothing is dropped, however often it runs.
func TestPushAppliesClosureVerdict(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, fmt.Sprintf("let secret = %s; leaky = %s; in [ (%s) ]",
		nixtest.Drv(s, "secret-token-1", nil), nixtest.Drv(s, "leaky-1.0", nil, "secret"), nixtest.Drv(s, "shell-env", nil, "leaky")))
	root, leaky, secret := built["shell-env"], built["leaky-1.0"], built["secret-token-1"]
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
deny = ["secret-*"]
`)
	dry, _ := ruRun(t, e, 0, "push", "--dry-run", "--closure", root)
	if l := ruLine(dry, leaky); !strings.HasPrefix(l, "skip "+leaky+` (closure_deny = "skip": its closure contains `+secret) {
		t.Fatalf("push --dry-run --closure:\n%s", dry)
	}
	for round := range 2 { // a shellHook, entered twice
		out, errOut := ruRun(t, e, 0, "push", "--closure", "--wait", "--timeout", eventually.Left(t).String(), root)
		for _, want := range []string{"queued 0 of 3 paths", `leaky-1.0: closure_deny = "skip": its closure contains ` + secret + `, denied by "secret-*"`, `secret-token-1: deny "secret-*"`} {
			if !strings.Contains(out, want) {
				t.Errorf("round %d: push --closure --wait says\n%s%s\nwithout %q", round, out, errOut, want)
			}
		}
		if r := ruDropped(t, e, leaky); len(r) != 0 {
			t.Errorf("round %d: %s was dropped by the worker (%v): push queued it", round, leaky, r)
		}
	}
	e.Wait(eventually.Left(t))
	if got := CachePaths(t, filepath.Join(e.Dir, "cache")); len(got) != 0 {
		t.Errorf("cache holds %v, want nothing", scSet(got))
	}
}

// wait's exit statuses: 0 when everything that was to go up went up,
// though the rules (changed after the path was queued) left one out; 3
// with --fail-on-drop for that, and 3 without it for a path lost
// (garbage-collected before its push); 2 for a usage error.
func TestWaitExitCodes(t *testing.T) {
	t.Parallel()
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["*"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if _, _, code := e.Run(ctx, "wait", "--no-such-flag"); code != 2 {
		t.Errorf("wait --no-such-flag exited %d, want 2", code)
	}

	// Queued under allow = ["*"], then the rules change: the worker
	// leaves the path out, by the rules' verdict.
	// The last wait's worker exits once idle (linger = 1s); the lock
	// is free then.
	idle := func() {
		eventually.True(t, eventually.Left(t), "the worker to exit", func() bool { return len(workerPIDs(e.Queue)) == 0 })
	}
	round := func(failOnDrop bool) {
		idle()
		s := nixtest.Salt()
		unlock := plLockQueue(t, e.Queue)
		paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "ruled-1.0", nil), nixtest.Drv(s, "kept-1.0", nil)))
		byName := nixtest.ByName(paths)
		conf, _ := os.ReadFile(e.Conf)
		if err := os.WriteFile(e.Conf, []byte(strings.Replace(string(conf), `allow = ["*"]`, `allow = ["*"]`+"\ndeny = [\"ruled-*\"]", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		unlock()
		args := []string{"wait", "--timeout", eventually.Left(t).String()}
		want := 0
		if failOnDrop {
			args, want = append(args, "--fail-on-drop"), 3
		}
		_, errOut, code := e.Run(ctx, args...)
		if code != want || !strings.Contains(errOut, "left out by the rules: 1") || !strings.Contains(errOut, byName["ruled-1.0"]+` -> `) {
			t.Errorf("%v exited %d, want %d, listing %s:\n%s\nworker log:\n%s", args, code, want, byName["ruled-1.0"], errOut, e.Log())
		}
		if !CachePaths(t, filepath.Join(e.Dir, "cache"))[byName["kept-1.0"]] {
			t.Errorf("%s was not pushed", byName["kept-1.0"])
		}
		if err := os.WriteFile(e.Conf, conf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	round(false)
	round(true)

	// Lost: garbage-collected after it was queued. Exit 3, said as such.
	idle()
	s := nixtest.Salt()
	unlock := plLockQueue(t, e.Queue)
	paths, _ := e.Build(nixtest.List(nixtest.Drv(s, "gone-1.0", nil)))
	gone := nixtest.ByName(paths)["gone-1.0"]
	if out, err := exec.Command("nix-store", "--delete", gone).CombinedOutput(); err != nil {
		t.Fatalf("nix-store --delete %s: %v\n%s", gone, err, out)
	}
	unlock()
	_, errOut, code := e.Run(ctx, "wait", "--timeout", eventually.Left(t).String())
	if code != 3 || !strings.Contains(errOut, "lost: 1 (not pushed):\n  "+gone+" -> ") || !strings.Contains(errOut, "garbage-collected") {
		t.Errorf("wait exited %d, want 3 listing %s as lost:\n%s", code, gone, errOut)
	}
}
