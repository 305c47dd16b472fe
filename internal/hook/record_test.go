package hook

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Enqueue leaves out what the record says went to the pair's target, and
// the summary says how many; force queues them anyway; a record of
// another destination does not count.
func TestEnqueueLeavesOutRecorded(t *testing.T) {
	spawned := isolate(t) // a spawned worker only records that it was started
	cfg := &config.Config{
		Targets: []*config.Target{mkTarget(t, "main", []string{"*"}, nil)},
		Queue:   config.Queue{Dir: filepath.Join(t.TempDir(), "queue"), RememberPushed: time.Hour},
	}
	paths := mkPaths("a-1", "b-1", "c-1")
	sel := Select(cfg, paths)
	if len(sel.Pairs) != 3 {
		t.Fatalf("selected %d pairs, want 3", len(sel.Pairs))
	}
	q, err := queue.Open(cfg.Queue.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := pushed.OpenWrite(q.Dir, cfg.Targets[0].RecordKey(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths[:2] {
		h, _ := pushed.ParseHash(p.Hash)
		rec.Add([]pushed.Hash{h}, time.Now())
	}
	rec.Close()
	// A worker holds the lock, so Enqueue starts none: a started one
	// would outlive the test and write into its temporary directory.
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("taking the worker lock: %v", err)
	}
	defer lock.Unlock()
	if err := Enqueue(cfg, &sel, false); err != nil {
		t.Fatal(err)
	}
	if want := "queued 1 of 3 paths for main (already pushed: 2 to main)"; sel.Summary() != want {
		t.Errorf("Summary = %q, want %q", sel.Summary(), want)
	}
	if names, _ := q.Names(); len(names) != 1 {
		t.Errorf("%d entries queued, want 1", len(names))
	}
	sel = Select(cfg, paths)
	if err := Enqueue(cfg, &sel, true); err != nil {
		t.Fatal(err)
	}
	if names, _ := q.Names(); len(names) != 3 || sel.Selected != 3 {
		t.Errorf("with force: %d entries, %d selected; want 3", len(names), sel.Selected)
	}
	// queue.remember_pushed = 0: no record is consulted.
	cfg.Queue.RememberPushed = 0
	sel = Select(cfg, paths)
	if err := Enqueue(cfg, &sel, false); err != nil || len(sel.Pushed) != 0 {
		t.Errorf("remember_pushed = 0: %v, pushed %v", err, sel.Pushed)
	}
	noSpawn(t, spawned)
}

// A record stamped years ahead (a worker once ran with its clock wrong)
// does not keep the path out: the cache may have collected it since
// (issue 18, defect 11).
func TestEnqueueFutureRecordAbsent(t *testing.T) {
	spawned := isolate(t)
	cfg := &config.Config{
		Targets: []*config.Target{mkTarget(t, "main", []string{"*"}, nil)},
		Queue:   config.Queue{Dir: filepath.Join(t.TempDir(), "queue"), RememberPushed: 720 * time.Hour},
	}
	paths := mkPaths("ahead-1", "now-1")
	q, err := queue.Open(cfg.Queue.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := pushed.OpenWrite(q.Dir, cfg.Targets[0].RecordKey(), cfg.Queue.RememberPushed)
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{time.Now().Add(4 * 365 * 24 * time.Hour), time.Now()} {
		h, _ := pushed.ParseHash(paths[i].Hash)
		if err := rec.Add([]pushed.Hash{h}, at); err != nil {
			t.Fatal(err)
		}
	}
	rec.Close()
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("taking the worker lock: %v", err)
	}
	defer lock.Unlock()
	sel := Select(cfg, paths)
	if err := Enqueue(cfg, &sel, false); err != nil {
		t.Fatal(err)
	}
	if want := "queued 1 of 2 paths for main (already pushed: 1 to main)"; sel.Summary() != want {
		t.Errorf("Summary = %q, want %q", sel.Summary(), want)
	}
	noSpawn(t, spawned)
}

// A pair the record leaves out is not queued, so the worker will not drop
// it either: the line said "queued 0 of 2 paths (already pushed: 1 to
// main; the worker will drop hello-2.12.1 -> main: closure_deny = ...)"
// for a rebuild of a path pushed before (under closure_deny = "push",
// then the default changed), a drop that wait never reports.
func TestEnqueueLeftOutIsNotDropping(t *testing.T) {
	spawned := isolate(t)
	out, doc := siblingStore(t, true)
	tg := mkTarget(t, "main", []string{"hello-*"}, []string{"*-doc"})
	tg.ClosureDeny = config.ClosureSkip
	cfg := &config.Config{Targets: []*config.Target{tg}, Queue: config.Queue{Dir: filepath.Join(t.TempDir(), "queue"), RememberPushed: time.Hour}}
	q, err := queue.Open(cfg.Queue.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := pushed.OpenWrite(q.Dir, tg.RecordKey(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := pushed.ParseHash(out.Hash)
	rec.Add([]pushed.Hash{h}, time.Now())
	rec.Close()
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("taking the worker lock: %v", err)
	}
	defer lock.Unlock()
	sel := siblingSelect(cfg, []storepath.Path{out, doc})
	if err := Enqueue(cfg, &sel, false); err != nil {
		t.Fatal(err)
	}
	if want := `queued 0 of 2 paths (already pushed: 1 to main; skipped hello-2.12.1-doc: deny "*-doc")`; sel.Summary() != want {
		t.Errorf("Summary:\n got %s\nwant %s", sel.Summary(), want)
	}
	noSpawn(t, spawned)
}

// The hosts note says why a target has nothing while the others have
// some: left out as pushed, nothing is queued for any, and the line went
// on naming the hosts of a target no push reaches.
func TestSummaryHostsNoteLeftOutAsPushed(t *testing.T) {
	main := mkTarget(t, "main", []string{"*"}, nil)
	hosts, err := filter.CompileHosts([]string{"builder-*"})
	if err != nil {
		t.Fatal(err)
	}
	main.Hosts, main.HostRules, main.Host = []string{"builder-*"}, hosts, "laptop"
	cfg := &config.Config{Targets: []*config.Target{main, mkTarget(t, "work", []string{"*"}, nil)}}
	sel := Select(cfg, mkPaths("hello-2.12.1"))
	if got, want := sel.Summary(), "queued 1 of 1 paths for work (target main is for hosts builder-*; this is laptop)"; got != want {
		t.Fatalf("before LeaveOut:\n got %s\nwant %s", got, want)
	}
	sel.LeaveOut(func(string, storepath.Path) bool { return true })
	if got, want := sel.Summary(), "queued 0 of 1 paths (already pushed: 1 to work)"; got != want {
		t.Errorf("all left out as pushed:\n got %s\nwant %s", got, want)
	}
}
