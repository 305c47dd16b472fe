package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// corrupt_entries counts what corrupt/ holds, as status --prometheus
// does: a running worker counted the entries it had found unreadable,
// for as long as it ran, after forget --corrupt had removed them.
func TestMetricsCorruptEntries(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "m.prom")
	bad := filepath.Join(e.q.Dir, "entries", queue.Key("main", mkPath("bad-1")))
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := func(want string) {
		t.Helper()
		data, _ := os.ReadFile(e.cfg.Metrics.File)
		if !strings.Contains(string(data), "\ncachix_filter_hook_corrupt_entries "+want+"\n") {
			t.Errorf("want corrupt_entries %s:\n%s", want, data)
		}
	}
	w := e.worker(nil)
	w.state = LoadState(e.q.Dir)
	now := time.Now()
	w.scan(now) // sets it aside in corrupt/
	w.writeMetrics(now, true)
	corrupt("1")

	names, err := e.q.CorruptNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("corrupt/ holds %q, %v", names, err)
	}
	if err := e.q.RemoveCorrupt(names[0]); err != nil { // forget --corrupt
		t.Fatal(err)
	}
	w.writeMetrics(now.Add(droppedRecount+time.Second), true)
	corrupt("0")
}

// An entry with no queued time (a file written by hand, or by another
// program) has no age: the worker adopted it as time.Time{}.UnixNano(),
// which Go leaves undefined (here 1754), and the oldest pending age said
// 270 years; and Snapshot took the zero time for the oldest or not by the
// entries' order. Its age is left out, whatever the order.
func TestMetricsOldestIgnoresEntryWithoutQueuedTime(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.add(t, "main", mkPath("dated-1"))
	var dated time.Time
	for _, x := range e.entries(t) {
		dated = x.Queued
	}
	p := mkPath("undated-1")
	undated := filepath.Join(e.q.Dir, "entries", queue.Key("main", p))
	if err := os.MkdirAll(filepath.Dir(undated), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(undated, []byte(`{"target":"main","path":"`+p.String()+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := e.worker(nil)
	w.state = LoadState(e.q.Dir)
	now := time.Now()
	w.scan(now)
	if n := len(w.idx.slots); n != 2 {
		t.Fatalf("the worker holds %d entries, want 2", n)
	}
	s := Snapshot(w.cfg, w.state, w.indexed(), nil, nil, nil, true, now)
	if got := s.Targets[0].OldestQueued; !got.Equal(dated) {
		t.Errorf("worker: oldest queued %v, want %v (the entry without a time has no age)", got, dated)
	}
	for _, order := range [][]*queue.Entry{
		{{Target: "main", Queued: dated}, {Target: "main"}},
		{{Target: "main"}, {Target: "main", Queued: dated}},
	} {
		s := Snapshot(w.cfg, w.state, EntriesOf(order), nil, nil, nil, false, now)
		if got := s.Targets[0].OldestQueued; !got.Equal(dated) {
			t.Errorf("entries %v then %v: oldest queued %v, want %v", order[0].Queued, order[1].Queued, got, dated)
		}
	}
}

// A pin that failed before and waits for its root's push, queued again:
// pins_failing counted it, where status and doctor say it waits.
func TestMetricsPinWaitingForItsPushIsNotFailing(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "m.prom")
	root := mkPath("system-1")
	if _, err := e.q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pins, _, err := e.q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins = %+v, %v", pins, err)
	}
	pins[0].Attempts, pins[0].NextAttempt = 2, time.Now().Add(time.Minute)
	if err := e.q.UpdatePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	e.add(t, "main", root)
	w := e.worker(nil)
	w.state = LoadState(e.q.Dir)
	now := time.Now()
	w.scan(now)
	w.scanPins()
	w.writeMetrics(now, true)
	data, _ := os.ReadFile(e.cfg.Metrics.File)
	if !strings.Contains(string(data), "\ncachix_filter_hook_pins_pending{target=\"main\"} 1\n") || !strings.Contains(string(data), "\ncachix_filter_hook_pins_failing{target=\"main\"} 0\n") {
		t.Errorf("want 1 pin pending, none failing:\n%s", data)
	}
}

// An unreadable pin, left in pins/, is counted with the corrupt entries,
// as status --prometheus counts it.
func TestMetricsCountUnreadablePins(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "m.prom")
	if err := os.MkdirAll(filepath.Join(e.q.Dir, "pins"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.q.Dir, "pins", "junk"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := e.worker(nil)
	w.state = LoadState(e.q.Dir)
	w.scanPins()
	w.writeMetrics(time.Now(), true)
	data, _ := os.ReadFile(e.cfg.Metrics.File)
	if !strings.Contains(string(data), "\ncachix_filter_hook_corrupt_entries 1\n") {
		t.Errorf("want corrupt_entries 1:\n%s", data)
	}
}
