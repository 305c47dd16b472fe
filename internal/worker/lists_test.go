package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds/fdstest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist/pkglisttest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// fakeListRefs is what the fake nix says a package list in the fake store
// refers to: the paths its file names, but those whose name says
// "textonly" (named as text, which Nix would not find as references),
// and none for a list whose own name says "astext". nil for a path that
// is no list.
func fakeListRefs(p string) []string {
	data, err := os.ReadFile(filepath.Join(p, "manifest.nix"))
	if err != nil {
		return nil
	}
	refs := []string{}
	if strings.Contains(filepath.Base(p), "astext") {
		return refs
	}
	for _, l := range strings.Split(string(data), "\n")[1:] {
		if strings.HasPrefix(l, "/") && !strings.Contains(l, "textonly") {
			refs = append(refs, l)
		}
	}
	return refs
}

// writeList makes a package list in the fake store, naming paths.
func writeList(t *testing.T, name string, targets []string, paths ...storepath.Path) storepath.Path {
	t.Helper()
	d := mkPath(name)
	pkglisttest.Write(t, d, mkPath(name+".list"), targets, paths...)
	return d
}

func (e *env) addListed(t *testing.T, target string, list storepath.Path, paths ...storepath.Path) {
	t.Helper()
	for _, p := range paths {
		if _, err := e.q.Add([]queue.Pair{{Target: target, Path: p, Listed: list.String()}}, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// listsEnv is the start of most tests here: a fake store and a target
// "on" that reads package lists; withNix gives the worker the fake nix,
// for the tests that run it through to its pushes.
func listsEnv(t *testing.T, withNix bool) (*env, *config.Target) {
	t.Helper()
	fakeStore(t)
	on := mkTarget(t, "on", nil, nil)
	on.PackageLists = true
	e := newEnv(t, on)
	if withNix {
		e.cfg.Nix.BinDir = fakeNixStore(t)
	}
	return e, on
}

// addPairs queues the pairs at once, an hour ago: more than one go in a
// bulk file.
func (e *env) addPairs(t *testing.T, pairs []queue.Pair) {
	t.Helper()
	if _, err := e.q.Add(pairs, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// bulkSlot is the slot the last scan found key in, a bulk file.
func bulkSlot(t *testing.T, w *Worker, key string) *slot {
	t.Helper()
	s := w.idx.slots[key]
	if s == nil || s.src == 0 {
		t.Fatalf("slot %+v, want one in a bulk file", s)
	}
	return s
}

// busySlot is the slot the last scan found key in, and its file's name,
// made busy as in a batch.
func busySlot(t *testing.T, w *Worker, key string) (*slot, string) {
	t.Helper()
	s := w.idx.slots[key]
	if s == nil {
		t.Fatal("the first copy is not known")
	}
	src := w.idx.srcName(s)
	s.busy = true
	return s, src
}

// stateWorker is a worker with its state on disk, pushing to target "on"
// with the fake returned.
func stateWorker(e *env) (*Worker, *fakePusher) {
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"on": f})
	w.state = LoadState(e.q.Dir)
	return w, f
}

// startOne starts the batch of target "on" that pushes key alone.
func startOne(t *testing.T, w *Worker, on *config.Target, key string, s *slot) *job {
	t.Helper()
	j := w.startJob(on, []pick{{key, s}}, false)
	if j == nil {
		t.Fatal("no job")
	}
	return j
}

// finishOne runs a batch of target "on" and records its result.
func finishOne(w *Worker, j *job) {
	w.finish(j.run(context.Background(), w.log.WithField("target", "on")))
}

// pushesOf is what the pusher was asked, and how many of its calls
// named p.
func pushesOf(f *fakePusher, p storepath.Path) ([][]string, int) {
	calls, _ := f.Calls()
	pushes := 0
	for _, c := range calls {
		if slices.Contains(c, p.String()) {
			pushes++
		}
	}
	return calls, pushes
}

// dirInPlace puts a directory where file was, moved to aside, so that it
// cannot be read (as EIO or EMFILE would); restore puts it back.
func dirInPlace(t *testing.T, file, aside string) (restore func()) {
	t.Helper()
	if err := os.Rename(file, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(aside, file); err != nil {
			t.Fatal(err)
		}
	}
}

// dualStarted is the start of the tests of a pair queued again while
// pushed: dual and other, then the extras, built for a target "on" that
// allows all; dual and other queued in a bulk file and scanned at now;
// dual's batch started.
func dualStarted(t *testing.T, extras ...string) (e *env, w *Worker, f *fakePusher, ps []storepath.Path, key string, s *slot, j *job, now time.Time) {
	t.Helper()
	fakeStore(t)
	on := mkTarget(t, "on", []string{"*"}, nil)
	e = newEnv(t, on)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	ps = build(t, append([]string{"dual-1", "other-1"}, extras...)...)
	e.addPairs(t, []queue.Pair{{Target: "on", Path: ps[0]}, {Target: "on", Path: ps[1]}})
	w, f = stateWorker(e)
	now = time.Now()
	w.scan(now)
	key = queue.Key("on", ps[0])
	s = bulkSlot(t, w, key)
	j = startOne(t, w, on, key, s)
	return e, w, f, ps, key, s, j, now
}

// holdCopyAndFinish has the scan after dualStarted's take the copy of
// dual queued since for held, then finishes the batch that pushed dual.
func holdCopyAndFinish(t *testing.T, w *Worker, s *slot, j *job, now time.Time) {
	t.Helper()
	w.scan(now.Add(time.Minute))
	if !s.held {
		t.Fatal("the copy is not held")
	}
	finishOne(w, j)
}

// Right before pushing, the worker checks each listed entry against its
// list: a path the list depends on goes up (and the history names the
// list); one it names as text only, one it no longer names, one for
// another target, one whose list is gone, and one a deny rule matches
// are dropped with their reasons; with package_lists turned off since,
// the reason says so.
func TestRunListed(t *testing.T) {
	fakeStore(t)
	on := mkTarget(t, "on", nil, []string{"secret-*"})
	on.PackageLists = true
	off := mkTarget(t, "off", nil, nil)
	e := newEnv(t, on, off)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "cachix_filter_hook.prom")
	ps := build(t, "app-1", "textonly-1", "secret-1", "later-1", "other-1", "orphan-1")
	app, textonly, secret, later, other, orphan := ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]
	list := writeList(t, "cachix-packages-dev", nil, app, textonly, secret)
	forOff := writeList(t, "cachix-packages-off", []string{"off"}, other)
	gone := writeList(t, "cachix-packages-gone", nil, orphan)
	e.addListed(t, "on", list, app, textonly, secret, later)
	e.addListed(t, "on", forOff, other)
	e.addListed(t, "on", gone, orphan)
	e.addListed(t, "off", list, app)
	if err := os.RemoveAll(gone.String()); err != nil {
		t.Fatal(err)
	}
	f, fOff := &fakePusher{}, &fakePusher{}
	start := time.Now().Add(-time.Second)
	if err := run(t, e.worker(map[string]*fakePusher{"on": f, "off": fOff}), Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(app)) {
		t.Errorf("pusher calls = %q, want app alone\n%s", calls, e.log.String())
	}
	if calls, _ := fOff.Calls(); len(calls) != 0 {
		t.Errorf("the target without package_lists pushed %q", calls)
	}
	for _, tc := range []struct {
		target string
		p      storepath.Path
		want   string
	}{
		{"on", textonly, "named in " + list.String() + " only as text: not in its closure"},
		{"on", secret, `no longer selected: deny "secret-*"`},
		{"on", later, "its package list " + list.String() + " no longer names it"},
		{"on", other, "its package list " + forOff.String() + " names other targets"},
		{"on", orphan, "its package list " + gone.String() + " is no longer in the store"},
		{"off", app, "listed in " + list.String() + ", but package_lists is off for off"},
	} {
		d, ok := e.q.Dropped(queue.Key(tc.target, tc.p), start, 0)
		if !ok || !strings.Contains(d.Reason, tc.want) {
			t.Errorf("%s -> %s: dropped %v, %+v; want a reason with %q", tc.p.Name, tc.target, ok, d, tc.want)
		}
	}
	// A list gone from the store is no verdict of the rules: the path
	// was to go up and could not (wait's exit 3, "lost"); one that no
	// longer names the path is.
	if d, _ := e.q.Dropped(queue.Key("on", orphan), start, 0); !Lost(d.Reason) {
		t.Errorf("%q is not counted as lost", d.Reason)
	}
	if d, _ := e.q.Dropped(queue.Key("on", later), start, 0); Lost(d.Reason) {
		t.Errorf("%q is counted as lost", d.Reason)
	}
	if data, err := os.ReadFile(e.cfg.Metrics.File); err != nil || !strings.Contains(string(data), `cachix_filter_hook_dropped_paths_total{target="on",reason="garbage_collected"} 1`+"\n") {
		t.Errorf("metrics (%v):\n%s", err, data)
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pushed := 0
	for _, r := range recs {
		if r.Outcome == history.Pushed {
			pushed++
			if r.Path != app.String() || r.Listed != list.String() {
				t.Errorf("history: %+v", r)
			}
		}
	}
	if pushed != 1 || !strings.Contains(e.log.String(), "listed_in="+list.String()) {
		t.Errorf("%d pushed in the history; log:\n%s", pushed, e.log.String())
	}
}

// A list that cannot be read for a moment (EMFILE here, EIO on a failing
// disk) is no verdict on it: the entries it chose wait for a retry,
// rather than being dropped for good as a list that cannot be used.
func TestListReadErrorWaits(t *testing.T) {
	e, on := listsEnv(t, false)
	app := build(t, "app-1")[0]
	list := writeList(t, "cachix-packages-dev", nil, app)
	e.addListed(t, "on", list, app)
	entries, _, err := e.q.List()
	if err != nil || len(entries) != 1 {
		t.Fatalf("List = %v, %v", entries, err)
	}
	j := &job{target: on, entries: entries}

	// No descriptor left to open the list's file with.
	var ls listings
	fdstest.WithDescriptors(t, 0, func() { ls = j.lists(context.Background()) })

	k := entries[0].Key()
	if why, ok := ls.drop[k]; ok {
		t.Errorf("dropped for good: %s", why)
	}
	if err := ls.wait[k]; err == nil || !strings.Contains(err.Error(), list.String()) {
		t.Errorf("wait = %v, want an error naming %s", err, list)
	}
	reason, _, _, _, err := j.decide(entries[0], closures{}, ls, nil, newNotes(logrus.NewEntry(logrus.New())))
	if reason != "" || err == nil {
		t.Errorf("decide = %q, %v; want an error: the entry waits", reason, err)
	}
}

// A path two lists queue, the first naming it only as text, goes up by
// the second, which depends on it, as explain says: the hook cannot ask
// Nix, so the first to reach it is the one its entry names, and the
// second copy (a bulk line, the entry file being there) brought its list
// to the entry as the worker removed it. A path none of its lists
// depends on is still dropped.
func TestRunListedTwice(t *testing.T) {
	e, _ := listsEnv(t, true)
	ps := build(t, "dual-1", "texty-1")
	dual, texty := ps[0], ps[1]
	text := writeList(t, "cachix-packages-astext", nil, dual, texty)
	real := writeList(t, "cachix-packages-real", nil, dual)
	e.addListed(t, "on", text, dual, texty)
	e.addListed(t, "on", real, dual, texty)
	f := &fakePusher{}
	start := time.Now().Add(-time.Second)
	if err := run(t, e.worker(map[string]*fakePusher{"on": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(dual)) {
		t.Errorf("pusher calls = %q, want dual alone\n%s", calls, e.log.String())
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Outcome == history.Pushed && r.Listed != real.String() {
			t.Errorf("history: %+v, want it listed in %s", r, real)
		}
	}
	want := "named in " + text.String() + " only as text"
	if d, ok := e.q.Dropped(queue.Key("on", texty), start, 0); !ok || !strings.Contains(d.Reason, want) {
		t.Errorf("%s: dropped %v, %+v; want a reason with %q", texty.Name, ok, d, want)
	}
}

// The same, both copies in bulk files, the first known to the worker
// before the second came; while the first is being pushed, the second
// stays queued (its list cannot join a copy already decided), and joins
// it after.
func TestRunListedTwiceBulk(t *testing.T) {
	e, _ := listsEnv(t, true)
	ps := build(t, "dual-1", "other-1")
	dual, other := ps[0], ps[1]
	text := writeList(t, "cachix-packages-astext", nil, dual)
	real := writeList(t, "cachix-packages-real", nil, dual, other)
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: text.String()}, {Target: "on", Path: other, Listed: real.String()}})
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"on": f})
	w.scan(time.Now())
	s, src := busySlot(t, w, queue.Key("on", dual))
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: real.String()}, {Target: "on", Path: other, Listed: real.String()}})
	w.scan(time.Now().Add(time.Minute))
	if got := w.idx.srcName(s); got != src {
		t.Errorf("the busy copy moved from %s to %s: rewritten while being pushed", src, got)
	}
	s.busy = false
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(dual, other)) && !slices.Equal(calls[0], strs(other, dual)) {
		t.Errorf("pusher calls = %q, want dual and other\n%s", calls, e.log.String())
	}
}

// A batch takes a pair's entry from the file of its slot, not from
// another file that holds a copy the scan has not merged yet (held while
// the first copy was busy): taken from there, the job decided by the
// copy's list (one naming the path only as text) and the kept line was
// left in a file that goes whole once its slot has left.
func TestStartJobTakesTheSlotsOwnLine(t *testing.T) {
	e, on := listsEnv(t, false)
	ps := build(t, "dual-1", "filler-1", "other-1")
	dual, filler, other := ps[0], ps[1], ps[2]
	text := writeList(t, "cachix-packages-astext", nil, dual)
	real := writeList(t, "cachix-packages-real", nil, dual, filler, other)
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: real.String()}, {Target: "on", Path: filler, Listed: real.String()}})
	w := e.worker(nil)
	w.scan(time.Now())
	sd, own := busySlot(t, w, queue.Key("on", dual))
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: text.String()}, {Target: "on", Path: other, Listed: real.String()}})
	w.scan(time.Now().Add(time.Minute)) // the copy is held: dual is busy
	sd.busy = false
	so := w.idx.slots[queue.Key("on", other)]
	if so == nil || so.src == sd.src {
		t.Fatalf("other's slot %+v, want one in another file than dual's", so)
	}
	// The files are read in map order: many tries.
	for range 30 {
		j := w.startJob(on, []pick{{queue.Key("on", dual), sd}, {queue.Key("on", other), so}}, false)
		if j == nil {
			t.Fatal("no job")
		}
		for _, en := range j.entries {
			if en.Path == dual.String() && (en.Source() != own || en.Listed != real.String()) {
				t.Fatalf("dual taken from %s listed by %s, want its slot's line in %s (listed by %s)", en.Source(), en.Listed, own, real)
			}
		}
		sd.busy, so.busy = false, false
		w.running = map[string][]*job{}
	}
}

// A copy held while its first copy is being pushed (its list could not
// join a copy already decided) is the same pair: once the first copy is
// pushed, the held one goes with no pusher call and no second record.
// Held in a bulk file, or in entries/ (queued one by one).
func TestRunListedHeldCopyAfterPush(t *testing.T) {
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprint("bulk=", bulk), func(t *testing.T) { testRunListedHeldCopyAfterPush(t, bulk) })
	}
}

func testRunListedHeldCopyAfterPush(t *testing.T, bulk bool) {
	e, _ := listsEnv(t, true)
	ps := build(t, "dual-1", "other-1", "third-1")
	dual, other, third := ps[0], ps[1], ps[2]
	real := writeList(t, "cachix-packages-real", nil, dual, other)
	again := writeList(t, "cachix-packages-again", nil, dual, third)
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: real.String()}, {Target: "on", Path: other, Listed: real.String()}})
	w := e.worker(nil)
	n := rounds(w)
	queued := false
	f := &fakePusher{fail: func(paths []string) error {
		if queued || !slices.Contains(paths, dual.String()) {
			return nil
		}
		queued = true
		// Queued again by another list while dual is being pushed;
		// the push ends once a scan has seen (and held) the copy.
		pairs := []queue.Pair{{Target: "on", Path: dual, Listed: again.String()}, {Target: "on", Path: third, Listed: again.String()}}
		if !bulk {
			pairs = pairs[:1]
		}
		if _, err := e.q.Add(pairs, time.Now().Add(-time.Hour)); err != nil {
			t.Error(err)
		}
		waitRound(t, n, e.log)
		return nil
	}}
	w.pushers["on"] = f
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	calls, pushes := pushesOf(f, dual)
	if !queued || pushes != 1 {
		t.Errorf("pusher calls = %q, want dual in one\n%s", calls, e.log.String())
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range recs {
		if r.Outcome == history.Pushed {
			got[r.Path]++
		}
	}
	if got[dual.String()] != 1 || got[other.String()] != 1 || bulk && got[third.String()] != 1 {
		t.Errorf("pushed records %v, want one each", got)
	}
	if es := e.entries(t); len(es) != 0 {
		t.Errorf("left queued: %v", es)
	}
}

// Another local user who builds queue.MaxListed lists naming someone's
// path only as text, before its real list, cannot have it dropped: the
// real list's copy, past what the entry keeps, stays queued until the
// entry is decided, and is then decided by its own list.
func TestRunListedPastMaxListed(t *testing.T) {
	e, _ := listsEnv(t, true)
	victim := build(t, "victim-1")[0]
	for i := range queue.MaxListed {
		e.addListed(t, "on", writeList(t, fmt.Sprintf("cachix-packages-astext-%d", i), nil, victim), victim)
	}
	w := e.worker(nil)
	start := time.Now().Add(-time.Second)
	w.scan(time.Now()) // the entry holds MaxListed lists
	real := writeList(t, "cachix-packages-real", nil, victim)
	e.addListed(t, "on", real, victim)
	f := &fakePusher{}
	w.pushers["on"] = f
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(victim)) {
		t.Errorf("pusher calls = %q, want victim\n%s", calls, e.log.String())
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pushed := 0
	for _, r := range recs {
		switch r.Outcome {
		case history.Pushed:
			pushed++
			if r.Listed != real.String() {
				t.Errorf("history: %+v, want it listed in %s", r, real)
			}
		case history.Dropped:
			// The first copy's lists did not count, but the path
			// was not dropped: its held copy pushed it.
			t.Errorf("history: %+v, but the path went up", r)
		}
	}
	if pushed != 1 {
		t.Errorf("%d pushed records, want 1", pushed)
	}
	if d, ok := e.q.Dropped(queue.Key("on", victim), start, 0); ok {
		t.Errorf("dropped/ says %q, but the path went up", d.Reason)
	}
	if !strings.Contains(e.log.String(), "more package lists name the path than its queue entry keeps") || !strings.Contains(e.log.String(), "list="+real.String()) {
		t.Errorf("the list past queue.MaxListed is not said:\n%s", e.log.String())
	}
	// Nor does the log say it was dropped, then not.
	if strings.Contains(e.log.String(), "msg=dropped ") {
		t.Errorf("the log says the path was dropped, but it went up:\n%s", e.log.String())
	}
}

// A copy held past queue.MaxListed waits for its entry to be decided,
// which changes the queue's directories. Until then a scan of unchanged
// directories has nothing to do: taken for a retry of the moment, the
// held copy made each round (every second, for as long as the entry
// backs off: up to queue.retry_max) list and read the queue again.
func TestListedPastMaxListedHeldCopyNoRescan(t *testing.T) {
	e, _ := listsEnv(t, false)
	victim := build(t, "victim-1")[0]
	for i := range queue.MaxListed {
		e.addListed(t, "on", writeList(t, fmt.Sprintf("cachix-packages-astext-%d", i), nil, victim), victim)
	}
	w := e.worker(nil)
	w.scan(time.Now()) // the entry holds MaxListed lists
	e.addListed(t, "on", writeList(t, "cachix-packages-real", nil, victim), victim)
	w.scan(time.Now()) // the real list's copy is held
	// Directories whose times can be trusted: a scan of them unchanged
	// is skipped.
	old := time.Now().Add(-time.Hour)
	for _, d := range []string{"entries", "bulk"} {
		if err := os.Chtimes(filepath.Join(e.q.Dir, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	w.scan(time.Now())
	gen := w.idx.gen
	for range 3 {
		w.scan(time.Now())
	}
	if w.idx.gen != gen {
		t.Errorf("%d full scans of an unchanged queue after the copy was held, want none", w.idx.gen-gen)
	}
	if names, _ := e.q.BulkNames(); len(names) != 1 {
		t.Errorf("bulk files %q, want the held copy's", names)
	}
}

// A copy held while its entry was busy is merged into the entry by a
// later scan, and held no more: a drop of the entry after that is
// recorded, since no copy is left to decide the pair.
func TestRunListedDropAfterHeldCopyMerged(t *testing.T) {
	e, _ := listsEnv(t, true)
	ps := build(t, "victim-1", "other-1")
	victim, other := ps[0], ps[1]
	first := writeList(t, "cachix-packages-first", nil, victim, other)
	second := writeList(t, "cachix-packages-second", nil, victim)
	// In a bulk file: two pairs at once.
	e.addPairs(t, []queue.Pair{{Target: "on", Path: victim, Listed: first.String()}, {Target: "on", Path: other, Listed: first.String()}})
	w := e.worker(nil)
	now := time.Now()
	w.scan(now)
	k := queue.Key("on", victim)
	s := bulkSlot(t, w, k)
	s.busy = true // in a batch, whose push then fails
	e.addListed(t, "on", second, victim)
	w.scan(now.Add(time.Minute))
	if !s.held {
		t.Fatal("the copy queued while the entry was busy is not held")
	}
	s.busy = false
	w.scan(now.Add(2 * time.Minute)) // merges the copy: its list joins the entry
	if es := e.entries(t); len(es) != 2 {
		t.Fatalf("queued %v, want the copy merged into its entry", es)
	}
	start := time.Now().Add(-time.Second)
	if err := os.Remove(victim.String()); err != nil {
		t.Fatal(err)
	}
	w.pushers["on"] = &fakePusher{}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if d, ok := e.q.Dropped(k, start, 0); !ok || d.Reason != ReasonGone {
		t.Errorf("dropped %v, %+v; want a record saying %q\n%s", ok, d, ReasonGone, e.log.String())
	}
	if es := e.entries(t); es[victim.String()] != nil {
		t.Errorf("left queued: %+v", es[victim.String()])
	}
}

// A held copy whose bulk file cannot be read at the scan after its pair
// was pushed (EMFILE; a directory in its place here) is still the pair
// pushed: the mark that says so stays until a scan has seen the copy,
// which then goes, rather than being adopted and pushed a second time.
func TestScanKeepsSentMarkOfAnUnreadCopy(t *testing.T) {
	e, _ := listsEnv(t, false)
	ps := build(t, "dual-1", "third-1")
	dual, third := ps[0], ps[1]
	real := writeList(t, "cachix-packages-real", nil, dual)
	again := writeList(t, "cachix-packages-again", nil, dual, third)
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: real.String()}})
	w := e.worker(nil)
	now := time.Now()
	w.scan(now)
	key := queue.Key("on", dual)
	sd, first := busySlot(t, w, key)
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: again.String()}, {Target: "on", Path: third, Listed: again.String()}})
	w.scan(now.Add(time.Minute)) // the copy is held: dual is busy
	if !sd.held {
		t.Fatal("the copy is not held")
	}
	// dual pushed, as finish records it.
	ap := e.q.Apply(queue.Changes{Done: []*queue.Entry{queue.Stub(key, first)}})
	if len(ap.Failed) > 0 {
		t.Fatal(ap.Failed)
	}
	w.idx.replaced(ap.Replaced)
	w.idx.sent = map[string]sentMark{key: {upTo: w.idx.next}}
	w.idx.remove(key)

	// The held copy's file cannot be read for one scan.
	names, err := e.q.BulkNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("bulk files %q, %v; want the held copy's", names, err)
	}
	restore := dirInPlace(t, filepath.Join(e.q.Dir, "bulk", names[0]), filepath.Join(e.q.Dir, "aside"))
	w.scan(now.Add(2 * time.Minute))
	restore()
	w.scan(now.Add(3 * time.Minute))

	if w.idx.slots[key] != nil {
		t.Errorf("the copy of the pushed pair was adopted, to be pushed again\n%s", e.log.String())
	}
	if es := e.entries(t); es[dual.String()] != nil || es[third.String()] == nil {
		t.Errorf("queued %v, want third alone", es)
	}
}

// A copy that stays because its lists could not join the entry this scan
// (the entry's file unreadable for a moment: EMFILE, EIO; a directory in
// its place here) is held as one past queue.MaxListed is: the entry's
// batch, started right after that scan with the entry's own lists, drops
// it without a record, and the copy decides the pair. Not held, the drop
// was recorded, and the copy then pushed the path.
func TestRunListedCopyStaysAfterUnreadEntryIsHeld(t *testing.T) {
	e, on := listsEnv(t, true)
	dual := build(t, "dual-1")[0]
	text := writeList(t, "cachix-packages-astext", nil, dual)
	real := writeList(t, "cachix-packages-real", nil, dual)
	e.addListed(t, "on", text, dual) // its own file in entries/
	w, f := stateWorker(e)
	w.scan(time.Now())
	key := queue.Key("on", dual)
	s := w.idx.slots[key]
	if s == nil || s.src != 0 {
		t.Fatalf("slot %+v, want one in entries/", s)
	}
	e.addListed(t, "on", real, dual) // queued again: a bulk file
	restore := dirInPlace(t, filepath.Join(e.q.Dir, "entries", key), filepath.Join(e.q.Dir, "aside"))
	w.scan(time.Now().Add(time.Minute)) // the copy's list cannot join the entry
	restore()
	if names, _ := e.q.BulkNames(); len(names) != 1 {
		t.Fatalf("bulk files %q, want the copy's", names)
	}
	start := time.Now().Add(-time.Second)
	// The round's batch, with the entry's own list, which names the
	// path as text only.
	finishOne(w, startOne(t, w, on, key, s))
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(dual)) {
		t.Fatalf("pusher calls = %q, want dual pushed by its real list\n%s", calls, e.log.String())
	}
	recs, _ := history.Read(e.q.Dir)
	for _, r := range recs {
		if r.Outcome == history.Dropped {
			t.Errorf("history: %+v, but the path went up", r)
		}
	}
	if d, ok := e.q.Dropped(key, start, 0); ok {
		t.Errorf("dropped/ says %q, but the path went up", d.Reason)
	}
}

// A "sent" mark stands for the held copy of a pair pushed: once that copy
// is gone (forget removed it), the pair queued again for real (push
// --force) is a new request, and is pushed. A bulk file that stays
// unreadable (EIO; a directory in its place here) kept every such mark
// for the worker's life, and the pair queued again was removed as the
// copy of the push before, never pushed.
func TestRunRequeueAfterForgottenHeldCopyIsPushed(t *testing.T) {
	e, w, f, ps, key, s, j, now := dualStarted(t, "stuck-1", "stuck-2")
	dual := ps[0]
	// Queued again one by one while dual is pushed: a copy, held.
	e.add(t, "on", dual)
	// Another bulk file, unreadable from now on.
	e.addPairs(t, []queue.Pair{{Target: "on", Path: ps[2]}, {Target: "on", Path: ps[3]}})
	names, err := e.q.BulkNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, ok := w.idx.ids[n]; ok {
			continue
		}
		dirInPlace(t, filepath.Join(e.q.Dir, "bulk", n), filepath.Join(e.q.Dir, "aside"))
	}
	holdCopyAndFinish(t, w, s, j, now)
	// forget removes the held copy.
	if err := e.q.Remove(queue.Stub(key, "")); err != nil {
		t.Fatal(err)
	}
	w.scan(now.Add(2 * time.Minute))
	// push --force: the pair queued again, to be pushed.
	e.add(t, "on", dual)
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	calls, pushes := pushesOf(f, dual)
	if pushes != 2 {
		t.Errorf("pusher calls = %q, want dual pushed twice: once, then queued again\n%s", calls, e.log.String())
	}
}

// The same with the entry in a bulk file and its copy queued one by one
// in entries/, that file unreadable for one scan (EMFILE: no descriptor
// left): the copy stays, and holds the slot. Not held, the entry's batch
// dropped the path by its own list with a record, and the copy then
// pushed it.
func TestRunListedEntryFileCopyUnreadIsHeld(t *testing.T) {
	e, on := listsEnv(t, true)
	ps := build(t, "dual-1", "other-1")
	dual, other := ps[0], ps[1]
	text := writeList(t, "cachix-packages-astext", nil, dual, other)
	real := writeList(t, "cachix-packages-real", nil, dual)
	// A bulk file: the entry.
	e.addPairs(t, []queue.Pair{{Target: "on", Path: dual, Listed: text.String()}, {Target: "on", Path: other, Listed: text.String()}})
	w, f := stateWorker(e)
	w.scan(time.Now())
	key := queue.Key("on", dual)
	s := bulkSlot(t, w, key)
	e.addListed(t, "on", real, dual) // queued again: its own file
	// One descriptor left: the scan lists entries/, and cannot open
	// the copy.
	fdstest.WithDescriptors(t, 1, func() { w.scan(time.Now().Add(time.Minute)) })
	// Read, it would have been merged and removed.
	if _, err := os.Lstat(filepath.Join(e.q.Dir, "entries", key)); err != nil || w.idx.slots[key] != s {
		t.Fatalf("the copy was read (%v): no descriptor was short\n%s", err, e.log.String())
	}
	start := time.Now().Add(-time.Second)
	// The round's batch, with the entry's own list, which names the
	// path as text only.
	finishOne(w, startOne(t, w, on, key, s))
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(dual)) {
		t.Fatalf("pusher calls = %q, want dual pushed by its real list\n%s", calls, e.log.String())
	}
	recs, _ := history.Read(e.q.Dir)
	for _, r := range recs {
		if r.Outcome == history.Dropped && r.Path == dual.String() {
			t.Errorf("history: %+v, but the path went up", r)
		}
	}
	if d, ok := e.q.Dropped(key, start, 0); ok {
		t.Errorf("dropped/ says %q, but the path went up", d.Reason)
	}
}

// The narrow form of the loss above, with every file readable: forget
// and push --force of the pair both between its push and the worker's
// next scan put a file in entries/ under the name of the held copy the
// push left a "sent" mark for. That file is not the copy (another
// inode: the copy is kept aside here so that its inode cannot be
// reused), and is pushed.
func TestRunForceAfterForgottenHeldCopyIsPushed(t *testing.T) {
	e, w, f, ps, key, s, j, now := dualStarted(t)
	dual := ps[0]
	// Queued again one by one while dual is pushed: a copy, held.
	e.add(t, "on", dual)
	holdCopyAndFinish(t, w, s, j, now)
	// forget removes the held copy (kept aside: its inode stays taken).
	if err := os.Rename(filepath.Join(e.q.Dir, "entries", key), filepath.Join(e.q.Dir, "aside")); err != nil {
		t.Fatal(err)
	}
	// push --force: the pair queued again, to be pushed.
	e.add(t, "on", dual)
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	calls, pushes := pushesOf(f, dual)
	if pushes != 2 {
		t.Errorf("pusher calls = %q, want dual pushed twice: once, then queued again\n%s", calls, e.log.String())
	}
}

// As above, with the copy's inode freed by forget: the file push --force
// writes next takes that inode number again (it does on ext4 and tmpfs),
// and only its size or modification time tells it from the copy. Past the
// clock's granularity, as a person's two commands are.
func TestRunForceAfterRemovedHeldCopyIsPushed(t *testing.T) {
	e, w, f, ps, key, s, j, now := dualStarted(t)
	dual := ps[0]
	e.add(t, "on", dual)
	holdCopyAndFinish(t, w, s, j, now)
	if err := os.Remove(filepath.Join(e.q.Dir, "entries", key)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	e.add(t, "on", dual)
	runWantPushedTwice(t, e, w, f, dual)
}

// As TestRunForceAfterRemovedHeldCopyIsPushed, with the new file made
// within the tick of the file system's clock that stamped the copy (a
// second on some) and at the copy's inode, with its size: what the mark
// keeps of the copy's file is the new file's. The mark took it for the
// copy and removed it unpushed; the time the entry says it was queued
// tells them apart.
func TestRunForceInTheCopysTickIsPushed(t *testing.T) {
	e, w, f, ps, key, s, j, now := dualStarted(t)
	dual := ps[0]
	e.add(t, "on", dual)
	holdCopyAndFinish(t, w, s, j, now)
	if err := os.Remove(filepath.Join(e.q.Dir, "entries", key)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // a queued time of its own
	e.add(t, "on", dual)
	// Inode, size and mtime as the copy's, which a file system may
	// give it; not left to this one's chance.
	m, ok := w.idx.sent[key]
	if !ok {
		t.Fatal("no sent mark for the copy")
	}
	m.file = w.entryFile(key)
	w.idx.sent[key] = m
	runWantPushedTwice(t, e, w, f, dual)
}

// The hook links its entry into entries/ and only then removes its
// temporary name: a worker may hold that copy, push the pair and make its
// "sent" mark in between. The removal changes the copy's link count (and
// its ctime), not the copy: the next scan still takes it for the pair
// pushed, and dual is pushed once.
func TestRunHeldCopyUnlinkedByHookAfterPushIsSent(t *testing.T) {
	e, w, f, ps, key, s, j, now := dualStarted(t)
	dual := ps[0]
	e.add(t, "on", dual)
	// The hook's temporary name, not removed yet.
	tmp := filepath.Join(e.q.Dir, "tmp", key+".hook")
	if err := os.Link(filepath.Join(e.q.Dir, "entries", key), tmp); err != nil {
		t.Fatal(err)
	}
	holdCopyAndFinish(t, w, s, j, now)
	// Past the clock's granularity, so that the removal moves the ctime.
	time.Sleep(20 * time.Millisecond)
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, pushes := pushesOf(f, dual); pushes != 1 {
		t.Errorf("pusher calls = %q, want dual pushed once: the copy is the pair pushed\n%s", calls, e.log.String())
	}
	if _, err := os.Lstat(filepath.Join(e.q.Dir, "entries", key)); err == nil {
		t.Errorf("the copy is still queued\n%s", e.log.String())
	}
}

// runWantPushedTwice runs w once and fails the test unless dual was
// pushed twice: once, then again as queued anew after.
func runWantPushedTwice(t *testing.T, e *env, w *Worker, f *fakePusher, dual storepath.Path) {
	t.Helper()
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, pushes := pushesOf(f, dual); pushes != 2 {
		t.Errorf("pusher calls = %q, want dual pushed twice: once, then queued again\n%s", calls, e.log.String())
	}
}
