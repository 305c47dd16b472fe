package worker

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

func ent(target, name string, queued time.Time) *queue.Entry {
	return &queue.Entry{Target: target, Path: mkPath(name).String(), Queued: queued}
}

// put writes entries to the queue as they are (one file each).
func (e *env) put(t *testing.T, es ...*queue.Entry) {
	t.Helper()
	for _, x := range es {
		p := mustParse(t, x.Path)
		if _, err := e.q.Add([]queue.Pair{{Target: x.Target, Path: p, Session: x.Session}}, x.Queued); err != nil {
			t.Fatal(err)
		}
		if x.Attempts > 0 || !x.NextAttempt.IsZero() {
			got, err := e.q.Read(queue.Key(x.Target, p))
			if err != nil {
				t.Fatal(err)
			}
			got.Attempts, got.NextAttempt = x.Attempts, x.NextAttempt
			if err := e.q.Update(got); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func jobNames(js []*job) []string {
	var out []string
	for _, j := range js {
		var names []string
		for _, e := range j.entries {
			names = append(names, e.Path[strings.IndexByte(e.Path, '-')+1:])
		}
		out = append(out, j.target.Name+":"+strings.Join(names, ","))
	}
	return out
}

// The next batch of each target: due entries go at once (no waiting for
// a burst to end), oldest first, up to queue.batch; entries that failed
// twice go in halves, first; entries waiting for a back-off do not go,
// and the earliest end of a back-off is when to look again.
func TestPlan(t *testing.T) {
	fakeStore(t)
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	retried := func(e *queue.Entry, attempts int, next time.Time) *queue.Entry {
		e.Attempts, e.NextAttempt = attempts, next
		return e
	}
	for _, tc := range []struct {
		name     string
		batch    int
		live     []*queue.Entry
		want     []string
		wantNext time.Time
	}{
		{
			name:  "nothing",
			batch: 64,
		},
		{
			name:  "one batch per target up to queue.batch, oldest first",
			batch: 2,
			live: []*queue.Entry{
				ent("main", "m3", ago(7*time.Second)), ent("work", "w1", ago(10*time.Second)),
				ent("main", "m1", ago(9*time.Second)), ent("main", "m5", ago(5*time.Second)),
				ent("main", "m2", ago(8*time.Second)), ent("main", "m4", ago(6*time.Second)),
			},
			want: []string{"main:m1,m2", "work:w1"},
		},
		{
			name:  "what was just queued goes at once",
			batch: 64,
			live:  []*queue.Entry{ent("main", "a", ago(2*time.Second)), ent("main", "b", ago(time.Millisecond))},
			want:  []string{"main:a,b"},
		},
		{
			name:  "entries that failed twice go first, in halves (alone when few)",
			batch: 64,
			live: []*queue.Entry{
				ent("main", "a", ago(5*time.Second)),
				retried(ent("main", "bad", ago(4*time.Second)), 2, ago(time.Second)),
				retried(ent("main", "bad2", ago(3*time.Second)), 2, ago(time.Second)),
				retried(ent("main", "bad3", ago(2*time.Second)), 2, ago(time.Second)),
				retried(ent("main", "worse", ago(2*time.Second)), 7, time.Time{}),
				retried(ent("main", "once", ago(time.Second)), 1, ago(time.Millisecond)),
			},
			want: []string{"main:bad,bad2"},
		},
		{
			name:  "waiting entries are not due; next is the earliest",
			batch: 64,
			live: []*queue.Entry{
				retried(ent("main", "a", ago(time.Minute)), 1, now.Add(time.Minute)),
				retried(ent("work", "b", ago(time.Minute)), 3, now.Add(3*time.Second)),
				retried(ent("main", "c", ago(time.Minute)), 1, now.Add(time.Hour)),
			},
			wantNext: now.Add(3 * time.Second),
		},
		{
			name:  "due entries go while others wait",
			batch: 64,
			live: []*queue.Entry{
				retried(ent("main", "a", ago(time.Minute)), 1, now.Add(time.Minute)),
				ent("main", "b", ago(time.Minute)),
				retried(ent("main", "c", ago(59*time.Second)), 1, now),
			},
			want:     []string{"main:b,c"},
			wantNext: now.Add(time.Minute),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil), mkTarget(t, "work", []string{"*"}, nil))
			e.cfg.Queue.Batch = tc.batch
			e.put(t, tc.live...)
			w := e.worker(nil)
			w.scan(now)
			r := w.plan(now)
			if got := jobNames(r.jobs); !slices.Equal(got, tc.want) {
				t.Errorf("batches = %q, want %q", got, tc.want)
			}
			if d := r.next.Sub(tc.wantNext); d > time.Millisecond || d < -time.Millisecond || r.next.IsZero() != tc.wantNext.IsZero() {
				t.Errorf("next = %v, want %v", r.next, tc.wantNext)
			}
		})
	}
}

// A backlog goes up in as few calls as queue.batch and the argv budget
// allow, oldest first.
func TestPlanArgBudget(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.Batch = 10000
	now := time.Now()
	var live []*queue.Entry
	for i := 0; i < 100; i++ {
		live = append(live, ent("main", fmt.Sprintf("p%03d", i), now.Add(-time.Hour+time.Duration(i)*time.Second)))
	}
	e.put(t, live...)
	cost := 0
	for _, x := range live[:10] {
		cost += len(x.Path) + 1 + 8
	}
	w := e.worker(nil)
	w.argBudget = cost
	w.scan(now)
	r := w.plan(now)
	if len(r.jobs) != 1 || len(r.jobs[0].entries) != 10 || r.jobs[0].entries[0].Path != live[0].Path {
		t.Fatalf("batches %q, want one of the 10 oldest paths", jobNames(r.jobs))
	}
	w = e.worker(nil)
	w.argBudget = 1 << 20
	w.scan(now)
	if r := w.plan(now); len(r.jobs) != 1 || len(r.jobs[0].entries) != 100 {
		t.Fatalf("batches %q within the budget, want 1 of 100", jobNames(r.jobs))
	}
}

// While a push runs, what arrives waits for it to end, unless the Nix
// process that queued it has ended: then it goes at once, beside the
// running push (one such push at a time). What arrived before the
// running push started, and what failed before, waits its turn.
func TestPlanBesideRunningPush(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	now := time.Now()
	e.put(t, ent("main", "first", now.Add(-time.Second)))
	w := e.worker(nil)
	w.scan(now)
	r := w.plan(now)
	if got := jobNames(r.jobs); !slices.Equal(got, []string{"main:first"}) {
		t.Fatalf("first batch = %q", got)
	}

	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	live := &queue.Entry{Target: "main", Path: mkPath("from-live-nix").String(), Queued: now, Session: os.Getpid()}
	gone := &queue.Entry{Target: "main", Path: mkPath("from-ended-nix").String(), Queued: now, Session: ended.Process.Pid}
	cli := &queue.Entry{Target: "main", Path: mkPath("from-push").String(), Queued: now}
	e.put(t, live, gone, cli)
	w.idx.stamp = [2]int64{} // scan again at once
	w.scan(now)
	r = w.plan(now)
	if got := jobNames(r.jobs); !slices.Equal(got, []string{"main:from-ended-nix,from-push"}) && !slices.Equal(got, []string{"main:from-push,from-ended-nix"}) {
		t.Fatalf("beside the running push = %q, want the entries whose Nix process ended", got)
	}
	if !r.jobs[0].tail || !slices.Equal(r.watch, []int32{int32(os.Getpid())}) {
		t.Errorf("tail %v, watch %v; want a tail job, watching this process", r.jobs[0].tail, r.watch)
	}
	// Two pushes run: nothing more starts.
	e.put(t, &queue.Entry{Target: "main", Path: mkPath("later").String(), Queued: now})
	w.idx.stamp = [2]int64{}
	w.scan(now)
	if r := w.plan(now); len(r.jobs) != 0 {
		t.Fatalf("a third push started: %q", jobNames(r.jobs))
	}
}

func mustParse(t *testing.T, s string) storepath.Path {
	t.Helper()
	p, err := storepath.Parse(storepath.StoreDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A pair queued twice is pushed once, whether the copies are in one bulk
// file or in two, and nothing of it is left in the queue.
func TestScanDuplicates(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	ps := build(t, "a-1", "b-1", "c-1")
	line := func(p storepath.Path) string {
		return fmt.Sprintf(`{"target":"main","path":%q,"queued":"2026-01-01T00:00:00Z"}`+"\n", p)
	}
	// One file with a twice, and b; another with b again; c alone,
	// and in a file too.
	os.MkdirAll(filepath.Join(e.q.Dir, "bulk"), 0o700)
	os.WriteFile(filepath.Join(e.q.Dir, "bulk", "bulk.1"), []byte(line(ps[0])+line(ps[0])+line(ps[1])), 0o600)
	os.WriteFile(filepath.Join(e.q.Dir, "bulk", "bulk.2"), []byte(line(ps[1])+line(ps[2])), 0o600)
	e.add(t, "main", ps[2])
	f := &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	calls, _ := f.Calls()
	for _, c := range calls {
		for _, p := range c {
			got[p]++
		}
	}
	for _, p := range ps {
		if got[p.String()] != 1 {
			t.Errorf("%s pushed %d times, want 1 (calls %q)", p.Name, got[p.String()], calls)
		}
	}
	if n, _ := e.q.Names(); len(n) != 0 {
		t.Errorf("left in the queue: %q", n)
	}
	if left, _ := filepath.Glob(filepath.Join(e.q.Dir, "bulk", "*")); len(left) != 0 {
		t.Errorf("bulk files left: %q", left)
	}
}

// presentRoots: the roots of the batch in the store, so that the entries
// within them are not looked up one by one; a root not in the batch, or
// gone, leaves its entries to their own lookup.
func TestPresentRoots(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live-root")
	if err := os.WriteFile(live, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone-root")
	other := filepath.Join(dir, "other-root") // exists, but no entry of the batch
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	es := []*queue.Entry{
		{Path: live}, {Path: gone},
		{Path: dir + "/a", Within: live}, {Path: dir + "/b", Within: gone}, {Path: dir + "/c", Within: other},
	}
	got := presentRoots(es)
	want := map[string]bool{live: true, gone: false}
	if !maps.Equal(got, want) {
		t.Errorf("presentRoots = %v, want %v", got, want)
	}
}

// While a push runs, the Nix process whose builds it carries is watched
// even when nothing else is queued yet: that process may queue its last
// build's path before it ends, and its end must wake the worker to push
// that beside at once (before, the worker saw it at its next look, up to
// pollInterval later, with nothing left to watch).
func TestPlanWatchesTheRunningPushsNix(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	now := time.Now()
	e.put(t, &queue.Entry{Target: "main", Path: mkPath("built").String(), Queued: now.Add(-time.Second), Session: os.Getpid()})
	w := e.worker(nil)
	w.scan(now)
	if r := w.plan(now); len(r.jobs) != 1 {
		t.Fatalf("first batch = %q", jobNames(r.jobs))
	}
	r := w.plan(now)
	if len(r.jobs) != 0 || !slices.Equal(r.watch, []int32{int32(os.Getpid())}) {
		t.Errorf("with the push running and nothing queued: jobs %q, watch %v; want none, and this process watched", jobNames(r.jobs), r.watch)
	}
}

// The batch plan starts comes from the bulk file the round's scan just
// read, not from a second read of it; a file of more than a batch is not
// kept (the worker's memory does not grow with the backlog), and is read
// again.
func TestPlanTakesTheScansBulkFile(t *testing.T) {
	fakeStore(t)
	for _, tc := range []struct {
		n, batch int
		kept     bool
	}{{4, 5, true}, {8, 5, false}} {
		e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
		e.cfg.Queue.Batch = tc.batch
		var pairs []queue.Pair
		for i := range tc.n {
			pairs = append(pairs, queue.Pair{Target: "main", Path: mkPath(fmt.Sprintf("p%d", i))})
		}
		if _, err := e.q.Add(pairs, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		names, err := e.q.BulkNames()
		if err != nil || len(names) != 1 {
			t.Fatalf("bulk files %v, %v; want one", names, err)
		}
		w := e.worker(nil)
		now := time.Now()
		w.scan(now)
		// Gone between the scan and the plan: only what the scan kept
		// can make a batch.
		if err := os.Remove(filepath.Join(e.q.Dir, "bulk", names[0])); err != nil {
			t.Fatal(err)
		}
		r := w.plan(now)
		got := 0
		for _, j := range r.jobs {
			got += len(j.entries)
		}
		if want := map[bool]int{true: tc.n, false: 0}[tc.kept]; got != want {
			t.Errorf("%d paths in a file, batch %d: %d entries in the batches, want %d", tc.n, tc.batch, got, want)
		}
		if w.idx.fresh != nil {
			t.Errorf("the scan's entries are still held after the plan")
		}
	}
}

// Entries that failed twice, from many batches (a backlog while the cache
// was down), go in halves of at most queue.batch, oldest first: never a
// call larger than queue.batch, nor a group that grows with the backlog.
func TestPlanFailingGroupBoundedByBatch(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.Batch = 4
	now := time.Now()
	var live []*queue.Entry
	for i := 0; i < 40; i++ {
		x := ent("main", fmt.Sprintf("f%03d", i), now.Add(-time.Hour+time.Duration(i)*time.Second))
		x.Attempts, x.NextAttempt = 2, now.Add(-time.Second)
		live = append(live, x)
	}
	e.put(t, live...)
	w := e.worker(nil)
	w.scan(now)
	r := w.plan(now)
	if got := jobNames(r.jobs); !slices.Equal(got, []string{"main:f000,f001"}) {
		t.Errorf("batches = %q, want half of the queue.batch (4) oldest", got)
	}
}

// A bulk file that cannot be read when a batch is made of it (here a
// FIFO in its place for that moment; an I/O error alike) still holds its
// entries: the worker must not forget them, or, once the file's other
// entries were pushed, remove the file whole with them unpushed.
func TestPlanUnreadableBulkFileKeepsItsEntries(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.Batch = 1
	e.cfg.Queue.RetryInitial = time.Millisecond
	e.cfg.Queue.RetryMax = 2 * time.Millisecond
	now := time.Now()
	ps, file, saved := twoInABulkFile(t, e, now)
	fake := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": fake})
	w.scan(now)
	fifoInPlace(t, file, saved)
	if r := w.plan(now); len(r.jobs) != 0 {
		t.Fatalf("batches %q from an unreadable file", jobNames(r.jobs))
	}
	if err := os.Rename(saved, file); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := run(t, w, Once); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls, _ := fake.Calls()
	if got := fmt.Sprint(calls); !strings.Contains(got, ps[0].String()) {
		left, _ := e.q.Names()
		t.Errorf("calls %s, queue %q: %s neither pushed nor queued", got, left, ps[0].Name)
	}
}

// A bulk file that cannot be read when the scan finds it (here a FIFO in
// its place for that moment) is read again at a later scan, not taken
// for known with none of its entries.
func TestScanUnreadableBulkFileReadAgain(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	now := time.Now()
	ps, file, saved := twoInABulkFile(t, e, now)
	fifoInPlace(t, file, saved)
	fake := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": fake})
	w.scan(now)
	if err := os.Rename(saved, file); err != nil {
		t.Fatal(err)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	calls, _ := fake.Calls()
	if got := fmt.Sprint(calls); !strings.Contains(got, ps[0].String()) || !strings.Contains(got, ps[1].String()) {
		left, _ := e.q.Names()
		t.Errorf("calls %s, queue %q: want both paths pushed", got, left)
	}
}

// twoInABulkFile queues a-1 and b-1 for main in one bulk file, and
// returns them, the file, and where fifoInPlace keeps it meanwhile.
func twoInABulkFile(t *testing.T, e *env, now time.Time) (ps []storepath.Path, file, saved string) {
	t.Helper()
	ps = build(t, "a-1", "b-1")
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: ps[0]}, {Target: "main", Path: ps[1]}}, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	names, err := e.q.BulkNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("bulk files %q, %v", names, err)
	}
	return ps, filepath.Join(e.q.Dir, "bulk", names[0]), filepath.Join(e.q.Dir, "saved")
}

// fifoInPlace moves file to saved and puts a FIFO in its place: a bulk
// file that cannot be read (a read would block; the queue opens it
// non-blocking and refuses it) until it is renamed back.
func fifoInPlace(t *testing.T, file, saved string) {
	t.Helper()
	if err := os.Rename(file, saved); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(file, 0o600); err != nil {
		t.Fatal(err)
	}
}
