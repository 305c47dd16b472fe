package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// fakeBuilds makes w read temporary roots from a directory of the test's,
// for this process (alive, as a Nix process behind entries would be), and
// ask validity of valid. It returns a func that appends roots to the file.
func fakeBuilds(t *testing.T, w *Worker, valid map[string]bool) func(roots ...string) {
	t.Helper()
	dir := t.TempDir()
	w.builds.dir = dir
	w.builds.valid = func(_ context.Context, paths []string) (map[string]bool, error) {
		if len(paths) > validChunk {
			t.Errorf("asked about %d roots at once, more than %d", len(paths), validChunk)
		}
		ok := map[string]bool{}
		for _, p := range paths {
			ok[p] = valid[p]
		}
		return ok, nil
	}
	file := filepath.Join(dir, strconv.Itoa(os.Getpid()))
	return func(roots ...string) {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(strings.Join(roots, "\x00") + "\x00"); err != nil {
			t.Fatal(err)
		}
	}
}

// A Nix process's builds are going while a root it holds is not valid,
// done when all are, and unknown when its roots cannot be read or Nix
// cannot be asked; roots are asked about a chunk at a time, each until
// it is valid.
func TestBuildState(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	valid := map[string]bool{}
	var asked int
	add := fakeBuilds(t, w, valid)
	inner := w.builds.valid
	w.builds.valid = func(ctx context.Context, paths []string) (map[string]bool, error) {
		asked += len(paths)
		return inner(ctx, paths)
	}
	pid := int32(os.Getpid())
	now := time.Now()
	if st := w.builds.state(pid, now); st != buildUnknown {
		t.Fatalf("no roots file: %v, want unknown", st)
	}
	delete(w.builds.procs, pid)
	var roots []string
	for i := range 150 {
		roots = append(roots, mkPath("out-"+strconv.Itoa(i)).String())
	}
	add(roots...)
	if st := w.builds.state(pid, now); st != buildGoing {
		t.Fatalf("nothing valid: %v, want going", st)
	}
	for _, r := range roots[:149] {
		valid[r] = true
	}
	asked = 0
	if st := w.builds.state(pid, now); st != buildGoing {
		t.Fatalf("one of 150 not valid: %v, want going", st)
	}
	if asked != 150 {
		t.Errorf("asked about %d roots, want each once: 150", asked)
	}
	valid[roots[149]] = true
	asked = 0
	if st := w.builds.state(pid, now); st != buildDone || asked != 1 {
		t.Fatalf("all valid: %v after asking about %d, want done after 1", st, asked)
	}
	// A new goal: going again.
	add(mkPath("later").String())
	if st := w.builds.state(pid, now); st != buildGoing {
		t.Fatalf("a new root: %v, want going", st)
	}
	// .drv files are not asked about; a root added twice is asked once;
	// a round asks at most maxChunks chunks, and the next goes on.
	valid[mkPath("later").String()] = true
	var many []string
	for i := range maxChunks*validChunk + 10 {
		r := mkPath("dep-" + strconv.Itoa(i)).String()
		valid[r] = true
		many = append(many, r, r)
	}
	add(append(many, mkPath("x.drv").String(), mkPath("last").String())...)
	asked = 0
	if st := w.builds.state(pid, now); st != buildGoing || asked != maxChunks*validChunk {
		t.Fatalf("first round of %d roots: %v after asking about %d, want going after %d", len(many)/2+1, st, asked, maxChunks*validChunk)
	}
	valid[mkPath("last").String()] = true
	asked = 0
	if st := w.builds.state(pid, now); st != buildDone || asked != 12 {
		t.Fatalf("second round: %v after asking about %d, want done after 12 (11 deps and last, not the .drv)", st, asked)
	}
	// The session busy with a batch's question for the round's second:
	// still going, and asked again the next round.
	busy := 0
	w.builds.valid = func(context.Context, []string) (map[string]bool, error) {
		busy++
		return nil, fmt.Errorf("%w: %w", nixstore.ErrSessionBusy, context.DeadlineExceeded)
	}
	add(mkPath("meanwhile").String())
	for i := range 2 {
		if st := w.builds.state(pid, now.Add(time.Duration(i)*time.Second)); st != buildGoing {
			t.Errorf("the session busy: %v, want going", st)
		}
	}
	if busy != 2 {
		t.Errorf("asked %d times while the session was busy, want each round: 2", busy)
	}
	// Within the round that found it busy, another process (here the
	// same) is not asked: each question would wait validTimeout.
	if st := w.builds.state(pid, now.Add(time.Second)); st != buildGoing || busy != 2 {
		t.Errorf("asked again in the round that found the session busy: %v, %d questions", st, busy)
	}
	w.builds.valid = inner
	valid[mkPath("meanwhile").String()] = true
	if st := w.builds.state(pid, now); st != buildDone {
		t.Fatalf("the session free again, all valid: %v, want done", st)
	}
	failed := 0
	w.builds.valid = func(context.Context, []string) (map[string]bool, error) { failed++; return nil, errors.New("no Nix") }
	add(mkPath("next").String())
	for range 3 {
		if st := w.builds.state(pid, now); st != buildUnknown {
			t.Errorf("Nix not answering: %v, want unknown", st)
		}
	}
	if failed != 1 {
		t.Errorf("Nix asked %d times after it failed to answer, want once: each question may take validTimeout", failed)
	}
	w.builds.forget(now.Add(2 * forgetRoots))
	if len(w.builds.procs) != 0 {
		t.Errorf("%d processes remembered after %v", len(w.builds.procs), 2*forgetRoots)
	}
}

// Beside a running push, the paths of a Nix process that is still alive
// go as soon as all it set out to build is valid (its last build's
// hook), not when it exits; after a push, the next waits for the
// target's rest while the paths' Nix process is still building, and goes
// at once when it is done, or for a path no build is behind.
func TestPlanFollowsNixBuilds(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	valid := map[string]bool{}
	add := fakeBuilds(t, w, valid)
	pid := os.Getpid()
	out := func(name string) string { return mkPath(name).String() }
	add(out("one"), out("two"), out("three"))
	now := time.Now()
	look := func(es ...*queue.Entry) round {
		t.Helper()
		e.put(t, es...)
		w.idx.stamp = [2]int64{} // scan again at once
		w.scan(now)
		return w.plan(now)
	}
	built := func(name string) *queue.Entry {
		valid[out(name)] = true
		return &queue.Entry{Target: "main", Path: out(name), Queued: now, Session: pid}
	}

	if r := look(built("one")); !slices.Equal(jobNames(r.jobs), []string{"main:one"}) {
		t.Fatalf("first batch = %q", jobNames(r.jobs))
	}
	if r := look(built("two")); len(r.jobs) != 0 {
		t.Fatalf("while three is still to build: %q started", jobNames(r.jobs))
	}
	r := look(built("three"))
	if !slices.Equal(jobNames(r.jobs), []string{"main:two,three"}) && !slices.Equal(jobNames(r.jobs), []string{"main:three,two"}) || !r.jobs[0].tail {
		t.Fatalf("with all built, the process alive: %q, want two and three beside the running push", jobNames(r.jobs))
	}

	// Both pushes end; the target rests for its shortest call.
	w.running = map[string][]*job{}
	w.pace["main"] = &pace{}
	w.pace["main"].add(2*time.Second, now)
	w.pace["main"].add(time.Second, now)
	add(out("four"), out("five"))
	if r := look(built("four")); len(r.jobs) != 0 || !r.next.Equal(now.Add(time.Second)) {
		t.Fatalf("resting, five still to build: jobs %q, next %v; want none until %v", jobNames(r.jobs), r.next.Sub(now), time.Second)
	}
	cli := &queue.Entry{Target: "main", Path: out("from-push"), Queued: now}
	if r := look(cli); !slices.Equal(jobNames(r.jobs), []string{"main:four,from-push"}) && !slices.Equal(jobNames(r.jobs), []string{"main:from-push,four"}) {
		t.Fatalf("a path no build is behind: %q, want it at once with four", jobNames(r.jobs))
	}
	w.running = map[string][]*job{}
	w.pace["main"].add(time.Second, now)
	if r := look(built("five")); !slices.Equal(jobNames(r.jobs), []string{"main:five"}) {
		t.Fatalf("resting, all built: %q, want five at once", jobNames(r.jobs))
	}
	w.running = map[string][]*job{}
	add(out("six"))
	six := built("six")
	delete(valid, out("six")) // queued, yet not valid: a root still building
	add(out("seven"))
	if r := look(six); len(r.jobs) != 0 {
		t.Fatalf("resting: %q started", jobNames(r.jobs))
	}
	if r := w.plan(now.Add(time.Second)); !slices.Equal(jobNames(r.jobs), []string{"main:six"}) {
		t.Fatalf("after the rest: %q, want six", jobNames(r.jobs))
	}
}
