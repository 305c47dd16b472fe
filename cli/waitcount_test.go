package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// A wait that times out counts paths, not (target, path) pairs: one path
// queued for two targets was said to be "2 paths were not pushed in time".
func TestWaitTimeoutCountsPaths(t *testing.T) {
	q, dir := testQueue(t)
	file := filepath.Join(dir, "hook.conf")
	mainConf(t, file, q.Dir, "[[target]]\ncache = \"work\"\nallow = [\"*\"]\n")
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("AcquireWorker = %v, %v", lock, err)
	}
	t.Cleanup(func() { lock.Unlock() })
	p := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	pairs := []queue.Pair{{Target: "main", Path: p}, {Target: "work", Path: p}}
	if _, err := q.Add(pairs, time.Now()); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{pairs: pairs, since: time.Now(), timeout: 300 * time.Millisecond, quiet: true})
	if code := r.exitCode(false); code != exitNotSent || !strings.Contains(out.String(), "1 path was not pushed in time:") {
		t.Errorf("exit %d (want 3), says:\n%s\nwant it to count 1 path", code, out)
	}
}

// queueFailing queues pair and marks it failed once (HTTP 502), its retry
// an hour away; what names the entry if it is not queued.
func queueFailing(t *testing.T, q *queue.Queue, pair queue.Pair, what string) {
	t.Helper()
	if _, err := q.Add([]queue.Pair{pair}, time.Now()); err != nil {
		t.Fatal(err)
	}
	en, ok := q.Get(queue.Key(pair.Target, pair.Path))
	if !ok {
		t.Fatal(what + " is not queued")
	}
	en.Attempts, en.LastAttempt, en.LastError, en.NextAttempt = 1, time.Now(), "cachix push: HTTP 502", time.Now().Add(time.Hour)
	if err := q.Update(en); err != nil {
		t.Fatal(err)
	}
}

// failPin marks the pin key failed attempts times, the last with
// lastError, its retry an hour away.
func failPin(t *testing.T, q *queue.Queue, key string, attempts int, lastError string) {
	t.Helper()
	p, err := q.ReadPin(key)
	if err != nil {
		t.Fatal(err)
	}
	p.Attempts, p.LastAttempt, p.LastError, p.NextAttempt = attempts, time.Now(), lastError, time.Now().Add(time.Hour)
	if err := q.UpdatePin(p); err != nil {
		t.Fatal(err)
	}
}

// wait (the whole queue) that gives up because everything left waits for
// a retry says what is left: with only a failing pin, it said "every path
// left has failed" with no path queued.
func TestWaitGiveUpFailingPinsOnly(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	failPin(t, q, queue.PinKey("main", root, "sys"), 1, "cachix pin: HTTP 500")
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: time.Minute, quiet: true})
	if r.end != waitFailing || !strings.Contains(out.String(), "every pin left has failed") || strings.Contains(out.String(), "every path") {
		t.Errorf("wait ended %v, says:\n%s\nwant it to say every pin left has failed", r.end, out)
	}
}

// What push --wait lists at its timeout keeps each path's last error on
// its line, as status does: a pusher's output holds lines that read as
// the wait's own (another path's).
func TestWaitReportErrorOnItsLine(t *testing.T) {
	q, dir := testQueue(t)
	file := filepath.Join(dir, "hook.conf")
	mainConf(t, file, q.Dir, "")
	p := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	pairs := []queue.Pair{{Target: "main", Path: p}}
	if _, err := q.Add(pairs, time.Now()); err != nil {
		t.Fatal(err)
	}
	en, ok := q.Get(queue.Key("main", p))
	if !ok {
		t.Fatal("the entry is not queued")
	}
	en.Attempts, en.LastError = 1, "cachix exited with exit status 1:\n  /nix/store/x-other -> main: pushed"
	if err := q.Update(en); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	left := &leftInQueue{c: c, q: q, pairs: pairs}
	left.report(e)
	if s := out.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "x-other -> main: pushed") {
		t.Errorf("the report of one path is not one line:\n%s", s)
	}
}

// wait (the whole queue) gives up once everything left waits for a
// retry: a pin waiting for its root's push, that root's entry failing,
// waits for that back-off too. It was not counted so, and wait waited on
// for as long as the push kept failing.
func TestWaitGiveUpFailingRootOfAPin(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	queueFailing(t, q, queue.Pair{Target: "main", Path: root, Pinned: true}, "the root's entry")
	e, c, out := loadedEnv(t, file)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.ctx = ctx
	looks := 0
	// Nothing changes between looks: the third is no different from
	// the first.
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: time.Minute, poll: 20 * time.Millisecond, quiet: true, looked: func() {
		if looks++; looks == 3 {
			cancel()
		}
	}})
	// The pin has not failed: it waits for its root's push. It was said
	// to have failed too.
	if r.end != waitFailing || !strings.Contains(out.String(), "every path left has failed and waits for a retry, and every pin left waits for its root's push; not waiting") {
		t.Errorf("wait ended %v after %d looks, says:\n%s\nwant it to give up: the pin waits for a failing push", r.end, looks, out)
	}
}

// push --pin --wait --timeout 0 of a root found pushed before queues the
// pin alone; the worker still waits for an entry of that root another
// command queued (push --force). When that push keeps failing, so does
// the pin wait, for a back-off: the wait gives up and exits 3, as for a
// pin whose root is among its own paths. It waited on for as long as the
// push kept failing: the root was not among the entries it judged.
func TestPushPinWaitGivesUpOnRootQueuedByAnother(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	queueFailing(t, q, queue.Pair{Target: "main", Path: root}, "the root's entry")
	e, c, out := loadedEnv(t, file)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.ctx = ctx
	looks := 0
	// As waitPushed waits for push --pin's pin alone: no pair.
	r := e.waitQueue(c, q, waitSpec{pairs: []queue.Pair{}, pins: []string{queue.PinKey("main", root, "sys")}, since: time.Now(),
		giveUpFailing: true, poll: 20 * time.Millisecond, quiet: true, looked: func() {
			if looks++; looks == 3 {
				cancel()
			}
		}})
	if code := r.exitCode(false); code != exitNotSent || !strings.Contains(out.String(), "every pin left waits for its root's push, which has failed and waits for a retry") ||
		!strings.Contains(out.String(), `pin "sys" of `+root.String()+" -> main: still queued") {
		t.Errorf("wait ended %v (exit %d) after %d looks, says:\n%s\nwant it to give up: the pin waits for a failing push", r.end, code, looks, out)
	}
}

// wait that gives up on failing paths still says how the pins it waited
// for ended: a pin given up on while it waited (its root gone) went
// unsaid, where the same wait ending at its timeout or done names it.
func TestWaitGiveUpFailingReportsPinsGivenUp(t *testing.T) {
	q, file, root := lockedPinQueue(t)
	pins, _, err := q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins = %+v, %v", pins, err)
	}
	other := storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	queueFailing(t, q, queue.Pair{Target: "main", Path: other}, "the entry")
	// The worker gives the pin up as the wait begins: its outcome,
	// then its file goes.
	follow := history.Follow(q.Dir)
	if err := history.Append(q.Dir, history.MaxSize, []history.Record{{Time: time.Now(), Target: "main", Path: root.String(), Outcome: history.PinDropped, Reason: "its root is no longer in the store (garbage-collected)", Pin: `"sys"`}}); err != nil {
		t.Fatal(err)
	}
	if err := q.RemovePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, follow: follow, since: time.Now(), timeout: time.Minute, quiet: true})
	want := `not pinned ` + root.String() + ` in main ("sys"): its root is no longer in the store`
	if r.end != waitFailing || r.exitCode(false) != exitNotSent || !strings.Contains(out.String(), want) {
		t.Errorf("wait ended %v, exit %d, says:\n%s\nwant %q", r.end, r.exitCode(false), out, want)
	}
}
