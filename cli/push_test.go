package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// recordPushed records path as pushed to target in the queue in dir, as
// a worker does once it has pushed it.
func (w *world) recordPushed(t *testing.T, dir, target, path string) {
	t.Helper()
	c, err := config.Load(w.conf)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := pushed.OpenWrite(dir, c.Target(target).RecordKey(), c.Queue.RememberPushed)
	if err != nil {
		t.Fatal(err)
	}
	h, err := pushed.ParseHash(filepath.Base(path)[:32])
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Add([]pushed.Hash{h}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rec.Close()
}

// heldCmd runs a command while the worker of the queue in dir is held,
// so that nothing it queues is drained.
func (w *world) heldCmd(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	release := holdWorker(t, dir)
	defer release()
	return w.cmd(t, args...)
}

// listQueued is what the queue in dir holds.
func listQueued(t *testing.T, dir string) []*queue.Entry {
	t.Helper()
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	queued, _, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	return queued
}

// listPins is the pins the queue in dir holds.
func listPins(t *testing.T, dir string) []*queue.Pin {
	t.Helper()
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pins, _, err := q.ListPins()
	if err != nil {
		t.Fatal(err)
	}
	return pins
}

// push - that cannot read all of standard input (a word longer than the
// scanner takes, a read error) says so and exits 1: the paths after the
// failure were never read, and an exit 0 would pass them for queued.
func TestPushStdinUnread(t *testing.T) {
	store := t.TempDir()
	t.Setenv("NIX_STORE_DIR", store)
	a := filepath.Join(store, "a0000000000000000000000000000000-app-1.0")
	b := filepath.Join(store, "b0000000000000000000000000000000-tool-1.0")
	for _, p := range []string{a, b} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, file := mainQueue(t)
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), configFlag: file, args: []string{"-"},
		stdin:  strings.NewReader(a + "\n" + strings.Repeat("x", 100_000) + "\n" + b + "\n"),
		stdout: &out, stderr: &errs}
	st := runPush(e, &pushOptions{dryRun: true})
	if st != 1 || !strings.Contains(errs.String(), "standard input") {
		t.Errorf("push - exited %d, said:\n%s%s", st, &out, &errs)
	}
}

// push --closure of a root on disk that Nix does not know as valid (a
// build still writing it, one that failed) says so and exits 1, with
// the rules that read facts as without: it has no closure to queue, and
// "queued 0 of 0 paths" with exit 0 passed a push of nothing for done.
func TestPushClosureInvalidRoot(t *testing.T) {
	rows := []vpath{
		{name: "app-1.0", refs: []string{"dep-1.0"}, given: true},
		{name: "dep-1.0"},
		{name: "ghost-1.0", invalid: true, given: true},
	}
	// max_nar_size: push asks Nix for the closure with its facts.
	w := newWorld(t, rows, "[nix]\nbin_dir = \"@BIN@\"\n[[target]]\nname = \"pusher\"\nstore = \"@PUSHER@\"\nallow = [\"*\"]\nmax_nar_size = \"1MiB\"\n")
	ghost, app := w.path["ghost-1.0"], w.path["app-1.0"]
	for _, args := range [][]string{
		{"push", "--closure", ghost},
		{"push", "--closure", ghost, app},
		{"push", "--closure", "--dry-run", ghost},
	} {
		dir, _ := w.queueDir(t, "push")
		st, out, errs := w.heldCmd(t, dir, args...)
		queued := listQueued(t, dir)
		if st != 1 || !strings.Contains(errs, ghost+" is not in the store") || len(queued) != 0 {
			t.Errorf("%s exited %d, queued %d entries, said:\n%s%s", strings.Join(args[:2], " "), st, len(queued), out, errs)
		}
	}
}

// push of a root on disk that Nix does not know as valid (a build still
// writing it, a path half deleted), without --closure, says so and exits
// 1, as push --closure does: queued, it was dropped by the worker as
// lost, and push exited 0 for a path that could not be pushed.
func TestPushInvalidRoot(t *testing.T) {
	rows := []vpath{
		{name: "app-1.0", given: true},
		{name: "ghost-1.0", invalid: true, given: true},
	}
	// Rules that read no fact: push asked Nix nothing of the path.
	w := newWorld(t, rows, "[nix]\nbin_dir = \"@BIN@\"\n[[target]]\nname = \"pusher\"\nstore = \"@PUSHER@\"\nallow = [\"*\"]\n")
	ghost, app := w.path["ghost-1.0"], w.path["app-1.0"]
	for i, args := range [][]string{
		{"push", ghost},
		{"push", ghost, app},
		{"push", "--dry-run", ghost},
	} {
		dir, _ := w.queueDir(t, fmt.Sprint("push", i))
		st, out, errs := w.heldCmd(t, dir, args...)
		queued := listQueued(t, dir)
		var bad []string
		for _, e := range queued {
			if e.Path != app {
				bad = append(bad, e.Path)
			}
		}
		if st != 1 || !strings.Contains(errs, ghost+" is not in the store") || len(bad) != 0 || strings.Contains(out, "push "+ghost) {
			t.Errorf("%s exited %d, queued %q, said:\n%s%s", strings.Join(args, " "), st, bad, out, errs)
		}
	}
}

// push --dry-run's line for a path recorded as pushed to every target
// that selects it is explain's, made with the path's facts: without them
// it named the pattern, for a path max_nar_size now leaves out, and
// offered --force, which would not queue it.
func TestPushDryRunPushedUsesFacts(t *testing.T) {
	rows := []vpath{{name: "big-1.0", size: 2 << 20, given: true}}
	w := newWorld(t, rows, "[nix]\nbin_dir = \"@BIN@\"\n[[target]]\nname = \"pusher\"\nstore = \"@PUSHER@\"\nallow = [\"*\"]\nmax_nar_size = \"1MiB\"\n")
	big := w.path["big-1.0"]
	dir, _ := w.queueDir(t, "dry")
	release := holdWorker(t, dir)
	defer release()
	w.recordPushed(t, dir, "pusher", big)
	_, want, _ := w.cmd(t, "explain", big)
	st, out, errs := w.cmd(t, "push", "--dry-run", big)
	if st != 0 || out != want || !strings.HasPrefix(want, "skip ") {
		t.Errorf("push --dry-run exited %d, said:\n%s%s\nexplain said:\n%s", st, out, errs, want)
	}
}

// push --pin of a root recorded as pushed, which max_nar_size now leaves
// out, pins it nowhere and says why, as README has it (deny,
// max_nar_size and closure_deny still apply to a pinned root): its
// patterns alone pinned it at once.
func TestPushPinPushedRootRulesApply(t *testing.T) {
	rows := []vpath{{name: "big-1.0", size: 2 << 20, given: true}}
	w := newWorld(t, rows, "cache = \"main\"\nallow = [\"*\"]\nmax_nar_size = \"1MiB\"\n[nix]\nbin_dir = \"@BIN@\"\n")
	big := w.path["big-1.0"]
	for i, dry := range []bool{false, true} {
		dir, _ := w.queueDir(t, fmt.Sprint("pin", i))
		release := holdWorker(t, dir)
		w.recordPushed(t, dir, "main", big)
		args := []string{"push", "--pin", "sys", big}
		if dry {
			args = append(args, "--dry-run")
		}
		st, out, errs := w.cmd(t, args...)
		release()
		pins := listPins(t, dir)
		if st != 0 || len(pins) != 0 || !strings.Contains(out, "not pinned in main: its rules leave "+big+" out (larger than max_nar_size") {
			t.Errorf("%s exited %d, queued %d pins, said:\n%s%s", strings.Join(args, " "), st, len(pins), out, errs)
		}
	}
}

// push of a path inside a store path that is not there printed the
// argument with %s, and errorf keeps line breaks: an argument holding one
// (a name under ./result that another user chose) forged a line of
// output. It is quoted, as Resolve's errors quote it.
func TestPushMissingPathQuotesArgument(t *testing.T) {
	store := t.TempDir()
	t.Setenv("NIX_STORE_DIR", store)
	_, file := mainQueue(t)
	arg := filepath.Join(store, "a0000000000000000000000000000000-app-1.0", "x\ncachix-filter-hook: queued 1 of 1 paths")
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), configFlag: file, args: []string{arg}, stdout: &out, stderr: &errs}
	st := runPush(e, &pushOptions{dryRun: true})
	if st != 1 || strings.Count(errs.String(), "\n") != 1 || !strings.Contains(errs.String(), "is not in the store") {
		t.Errorf("push exited %d, said:\n%q", st, errs.String())
	}
}

// push --pin of a root recorded as pushed that Nix no longer knows as
// valid (a path half deleted, or rebuilt and still being written) says
// so and exits 1, as push of such a root does: a root recorded as pushed
// everywhere was not asked about, nothing of it being queued, but its
// pin is, and push exited 0 for a pin cachix cannot make.
func TestPushPinPushedInvalidRoot(t *testing.T) {
	rows := []vpath{{name: "ghost-1.0", invalid: true, given: true}}
	w := newWorld(t, rows, "cache = \"main\"\nallow = [\"*\"]\n[nix]\nbin_dir = \"@BIN@\"\n")
	ghost := w.path["ghost-1.0"]
	dir, _ := w.queueDir(t, "pin")
	release := holdWorker(t, dir)
	w.recordPushed(t, dir, "main", ghost)
	st, out, errs := w.cmd(t, "push", "--pin", "sys", ghost)
	release()
	pins := listPins(t, dir)
	if st != 1 || len(pins) != 0 || !strings.Contains(errs, ghost+" is not in the store") {
		t.Errorf("push --pin exited %d, queued %d pins, said:\n%s%s", st, len(pins), out, errs)
	}
}

// push --pin of a root whose pin's file is there but cannot be read (not
// a pin: the worker never makes it) said "will pin" and exited 0 for a
// pin never made. It says which file and exits 1, the root still queued.
func TestPushPinOverUnreadablePinFile(t *testing.T) {
	rows := []vpath{{name: "sys-1.0", given: true}}
	w := newWorld(t, rows, "cache = \"main\"\nallow = [\"*\"]\n[nix]\nbin_dir = \"@BIN@\"\n")
	root := w.path["sys-1.0"]
	dir, _ := w.queueDir(t, "pin")
	release := holdWorker(t, dir)
	defer release()
	sp, err := storepath.Parse(storepath.StoreDir(), root)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "pins", queue.PinKey("main", sp, "sys"))
	if err := os.MkdirAll(filepath.Dir(bad), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, out, errs := w.cmd(t, "push", "--pin", "sys", root)
	if st != 1 || strings.Contains(out, "will pin") || !strings.Contains(errs, bad) {
		t.Errorf("push --pin exited %d, said:\n%s%s\nwant exit 1 naming %s", st, out, errs, bad)
	}
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Get(queue.Key("main", sp)); !ok {
		t.Errorf("the root is not queued")
	}
}
