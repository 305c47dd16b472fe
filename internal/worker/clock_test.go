package worker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// restamp rewrites every entry of the queue with f applied.
func (e *env) restamp(t *testing.T, f func(x *entryTimes)) {
	t.Helper()
	names, err := e.q.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		x, err := e.q.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		et := entryTimes{Queued: x.Queued, NextAttempt: x.NextAttempt, Attempts: x.Attempts}
		f(&et)
		x.Queued, x.NextAttempt, x.Attempts = et.Queued, et.NextAttempt, et.Attempts
		if err := e.q.Update(x); err != nil {
			t.Fatal(err)
		}
	}
}

type entryTimes struct {
	Queued, NextAttempt time.Time
	Attempts            int
}

// An entry stamped a day in the future (the clock went back after the
// hook queued it) is pushed now, and a Once worker exits.
func TestRunOnceFutureStampedEntry(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	ps := build(t, "future-1", "now-1")
	e.add(t, "main", ps...)
	e.restamp(t, func(x *entryTimes) { x.Queued = time.Now().Add(24 * time.Hour) })
	f := &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 || len(calls[0]) != 2 {
		t.Errorf("pusher calls = %q, want one with both paths", calls)
	}
	if names, _ := e.q.Names(); len(names) != 0 {
		t.Errorf("entries left: %q", names)
	}
}

// runService runs a Service worker until stop is called.
func runService(t *testing.T, w *Worker) (stop func()) {
	t.Helper()
	stopIn := runIn(t, w, Service)
	return func() { stopIn() }
}

// runIn runs w in mode until stop is called, which returns what Run
// returned.
func runIn(t *testing.T, w *Worker, mode Mode) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, mode) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(eventually.Left(t)):
			t.Fatal("the worker did not stop after its context was cancelled")
		}
		return nil
	}
}

// waitFor waits for cond until go test's own bound, with the logs in the
// failure.
func waitFor(t *testing.T, what string, cond func() bool, logs ...fmt.Stringer) {
	t.Helper()
	explain := make([]func() string, len(logs))
	for i, l := range logs {
		explain[i] = l.String
	}
	eventually.True(t, eventually.Left(t), what, cond, explain...)
}

// rounds counts the rounds of w's loop (see Worker.roundStarts). Set it
// before Run.
func rounds(w *Worker) *atomic.Int64 {
	n := new(atomic.Int64)
	w.roundStarts = func() { n.Add(1) }
	return n
}

// waitRound waits until the worker has finished a round it began after
// the call: whatever was due when waitRound was called has been done.
func waitRound(t *testing.T, n *atomic.Int64, logs ...fmt.Stringer) {
	t.Helper()
	// The round under way when called may have looked at the queue
	// before the caller changed it: wait for the start of the one after
	// the next.
	target := n.Load() + 2
	waitFor(t, "a round of the worker", func() bool { return n.Load() >= target }, logs...)
}

// A back-off written a day ahead (the clock went back after a failure)
// waits no longer than queue.retry_max.
func TestRunFutureBackoffCutToRetryMax(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.RetryInitial = 50 * time.Millisecond
	e.cfg.Queue.RetryMax = 200 * time.Millisecond
	e.add(t, "main", build(t, "later-1")...)
	e.restamp(t, func(x *entryTimes) {
		x.Attempts = 1
		x.NextAttempt = time.Now().Add(24 * time.Hour)
	})
	f := &fakePusher{}
	stop := runService(t, e.worker(map[string]*fakePusher{"main": f}))
	defer stop()
	waitFor(t, "the entry to be pushed", func() bool { c, _ := f.Calls(); return len(c) == 1 })
}

// A back-off is kept on the worker's monotonic clock, which no step of
// the wall clock moves: adopted, an entry's next attempt becomes a time
// after the worker's start.
func TestAdoptUsesMonotonicClock(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.add(t, "main", build(t, "m-1")...)
	stamped := time.Now()
	e.restamp(t, func(x *entryTimes) { x.Attempts, x.NextAttempt = 1, time.Now().Add(time.Minute) })
	w := e.worker(nil)
	w.scan(time.Now())
	if len(w.idx.slots) != 1 {
		t.Fatalf("scan found %d entries", len(w.idx.slots))
	}
	for _, s := range w.idx.slots {
		left := time.Duration(s.next) - time.Since(w.started)
		// A minute from the stamp, less what has passed since: however
		// slow the machine made the restamp and the scan.
		if passed := time.Since(stamped); left < time.Minute-passed || left > time.Minute {
			t.Errorf("the back-off ends in %v on the worker's clock, %v after it was stamped a minute away", left, passed)
		}
	}
}

// unchangeable makes file impossible to remove or replace, even for root:
// the immutable attribute, or else a read-only bind mount of its
// directory. It returns the undo.
func unchangeable(t *testing.T, file string) func() {
	t.Helper()
	if out, err := exec.Command("chattr", "+i", file).CombinedOutput(); err == nil {
		undo := func() { exec.Command("chattr", "-i", file).Run() }
		t.Cleanup(undo)
		return undo
	} else {
		t.Logf("chattr +i: %v %s; trying a read-only bind mount", err, out)
	}
	dir := filepath.Dir(file)
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		skipUnlessCI(t, "cannot make %s unremovable here (no chattr +i, no bind mount: %v %s)", file, err, out)
	}
	umount := func() { exec.Command("umount", dir).Run() }
	t.Cleanup(umount)
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", dir).CombinedOutput(); err != nil {
		skipUnlessCI(t, "cannot remount %s read-only: %v %s", dir, err, out)
	}
	return umount
}

// skipUnlessCI skips the test, or fails it where CI requires every test
// to run (CI=true, or CFH_TEST_REQUIRE_NIX=1 as .ci/run sets).
func skipUnlessCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
		t.Fatalf(format+" (and CI requires this test)", args...)
	}
	t.Skipf(format, args...)
}

// A pushed entry that cannot be removed is pushed again with back-off,
// not in a loop, and status (state.json) says why; once the directory
// lets go, it is removed and the error cleared.
func TestRunUnremovableEntryBackedOff(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.RetryInitial = time.Second
	e.cfg.Queue.RetryMax = 2 * time.Second
	e.add(t, "main", build(t, "stuck-1")...)
	names, _ := e.q.Names()
	if len(names) != 1 {
		t.Fatalf("entries: %q", names)
	}
	undo := unchangeable(t, filepath.Join(e.q.Dir, "entries", names[0]))
	if err := os.Remove(filepath.Join(e.q.Dir, "entries", names[0])); err == nil {
		t.Fatal("the entry could be removed: the test cannot see the defect")
	}
	// When each push began: the back-off is at least retry_initial/2
	// from the end of one to the start of the next, however slow the
	// machine (a loop would push at once). Not a bound on the pushes
	// in the time the test took, which a slow start loosens.
	var mu sync.Mutex
	var began []time.Time
	f := &fakePusher{fail: func([]string) error {
		mu.Lock()
		defer mu.Unlock()
		began = append(began, time.Now())
		return nil
	}}
	stop := runService(t, e.worker(map[string]*fakePusher{"main": f}))
	waitFor(t, "three pushes", func() bool { c, _ := f.Calls(); return len(c) >= 3 })
	mu.Lock()
	for i := 1; i < len(began); i++ {
		if gap := began[i].Sub(began[i-1]); gap < e.cfg.Queue.RetryInitial/2 {
			t.Errorf("push %d began %s after the one before: sooner than the back-off allows (%s)", i+1, gap, e.cfg.Queue.RetryInitial/2)
		}
	}
	mu.Unlock()
	st := LoadState(e.q.Dir).Targets["main"]
	if st == nil || !strings.Contains(st.QueueError, "removing the queue entry failed") {
		t.Errorf("state.json does not show the failure: %+v", st)
	}
	undo()
	waitFor(t, "the entry to be removed", func() bool { n, _ := e.q.Names(); return len(n) == 0 })
	stop()
	if st := LoadState(e.q.Dir).Targets["main"]; st.QueueError != "" {
		t.Errorf("the queue error stays after the entry was removed: %q", st.QueueError)
	}
}

// The batch's line says how long its newest entry waited for the pusher
// call; a clock set back (an entry queued "later" than now) gives 0, not
// a negative wait.
func TestNewestWait(t *testing.T) {
	now := time.Now()
	es := []*queue.Entry{{Queued: now.Add(-3 * time.Second)}, {Queued: now.Add(-time.Second)}, {Queued: now.Add(-2 * time.Second)}}
	if got := newestWait(es, now); got != time.Second {
		t.Errorf("newestWait = %v, want 1s (the newest entry's)", got)
	}
	if got := newestWait(append(es, &queue.Entry{Queued: now.Add(time.Hour)}), now); got != 0 {
		t.Errorf("newestWait with an entry stamped an hour ahead = %v, want 0", got)
	}
	if got := newestWait(nil, now); got != 0 {
		t.Errorf("newestWait of nothing = %v, want 0", got)
	}

	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.add(t, "main", build(t, "a-1", "b-1")...) // queued an hour ago, a second apart
	if err := run(t, e.worker(map[string]*fakePusher{"main": {}}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	m := regexp.MustCompile(`msg=pushed .*waited=([0-9hms.]+)`).FindStringSubmatch(e.log.String())
	if m == nil {
		t.Fatalf("no waited= in the batch's line:\n%s", e.log)
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("waited=%s, want about an hour (the newest entry's age)", m[1])
	}
}

// After the clock went back, the queue directories' times are in the
// future: they still change with the next entry (to a time unlike
// theirs), so they are trusted, and the worker does not list the whole
// queue each round until the clock catches up.
func TestDirStampTrustsFutureTimes(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.add(t, "main", build(t, "a-1")...)
	w := e.worker(nil)
	future := time.Now().Add(time.Hour)
	for _, d := range []string{"entries", "bulk"} {
		dir := filepath.Join(e.q.Dir, d)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dir, future, future); err != nil {
			t.Fatal(err)
		}
	}
	if _, trusted := w.dirStamp(); !trusted {
		t.Error("directory times an hour ahead are not trusted: every round lists the queue")
	}
	// Times just now are not: a change in the same tick would not show.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(e.q.Dir, "entries"), now, now); err != nil {
		t.Fatal(err)
	}
	if _, trusted := w.dirStamp(); trusted {
		t.Error("a directory time of just now is trusted")
	}
}
