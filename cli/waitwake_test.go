package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// A wait returns as its entry leaves the queue, woken by the change, not
// at its next look: here the poll is an hour, so only the wake-up can end
// it before its timeout. Both ways an entry leaves: its own file removed,
// and a bulk file (push --closure's) removed whole.
func TestWaitWakesWhenTheQueueEmpties(t *testing.T) {
	a := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	b := storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "hello-2")
	for _, pairs := range [][]queue.Pair{{{Target: "main", Path: a}}, {{Target: "main", Path: a}, {Target: "main", Path: b}}} {
		t.Run(fmt.Sprintf("%d entries", len(pairs)), func(t *testing.T) {
			q, file := mainQueue(t)
			qdir := q.Dir
			// The worker lock held, as by a running worker: the wait
			// starts none.
			lock, err := q.AcquireWorker(context.Background(), 0)
			if err != nil || lock == nil {
				t.Fatalf("AcquireWorker = %v, %v", lock, err)
			}
			defer lock.Unlock()
			if _, err := q.Add(pairs, time.Now()); err != nil {
				t.Fatal(err)
			}
			e, c, out := loadedEnv(t, file)
			done := make(chan waitResult, 1)
			looked := make(chan struct{})
			var once sync.Once
			go func() {
				done <- e.waitQueue(c, q, waitSpec{pairs: pairs, since: time.Now().Add(-time.Second), timeout: 30 * time.Second, poll: time.Hour, quiet: true,
					looked: func() { once.Do(func() { close(looked) }) }})
			}()
			// The wait has seen the entries there: only a wake-up can
			// tell it they left.
			eventually.Recv(t, eventually.Left(t), "the wait's first look at the queue", looked, out.String)
			for _, sub := range []string{"entries", "bulk"} {
				names, _ := os.ReadDir(filepath.Join(qdir, sub))
				for _, n := range names {
					if err := os.Remove(filepath.Join(qdir, sub, n.Name())); err != nil {
						t.Fatal(err)
					}
				}
			}
			if r := <-done; r.end != waitDone {
				t.Errorf("wait ended %v, want done as the entries left (the poll is an hour):\n%s", r.end, out)
			}
		})
	}
}

// A wait gives up, as without --keep-trying, once every entry left has
// failed and waits for its back-off, when the worker wrote the failed
// batch's entries, with their retry state, to a bulk file of their own
// (queue.Apply): read by keys alone, a bulk entry looked as if it had
// never failed, and the wait went on until its timeout.
func TestWaitGivesUpOnFailedBatch(t *testing.T) {
	a := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	b := storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "hello-2")
	q, file := mainQueue(t)
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("AcquireWorker = %v, %v", lock, err)
	}
	defer lock.Unlock()
	if _, err := q.Add([]queue.Pair{{Target: "main", Path: a}, {Target: "main", Path: b}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The worker's round: the batch failed, one back-off for both.
	es, bad, err := q.List()
	if err != nil || len(es) != 2 || len(bad) != 0 {
		t.Fatalf("List = %v, %v, %v", es, bad, err)
	}
	for _, en := range es {
		en.Attempts, en.LastAttempt, en.LastError, en.NextAttempt = 1, time.Now(), "push failed", time.Now().Add(time.Hour)
	}
	if ap := q.Apply(queue.Changes{Updated: es}); len(ap.Failed) > 0 {
		t.Fatal(ap.Failed)
	}
	if names, _ := os.ReadDir(filepath.Join(q.Dir, "entries")); len(names) != 0 {
		t.Fatalf("the failed batch is in entries/ (%d files): this test wants it in a bulk file", len(names))
	}
	e, c, out := loadedEnv(t, file)
	r := e.waitQueue(c, q, waitSpec{giveUpFailing: true, timeout: 5 * time.Second, poll: 50 * time.Millisecond, quiet: true})
	if r.end != waitFailing {
		t.Errorf("wait ended %v, want it to give up on the failed batch:\n%s", r.end, out)
	}
}

// afterPush is a queue whose worker lock is held (the wait starts no
// worker), a history reader started as push starts it, before queueing
// (since is then), and rec appended after it, as a worker that ran
// before the wait began would have.
func afterPush(t *testing.T, rec history.Record) (e *env, c *config.Config, out *bytes.Buffer, since time.Time, follow *history.Follower) {
	t.Helper()
	q, file := mainQueue(t)
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("AcquireWorker = %v, %v", lock, err)
	}
	t.Cleanup(func() { lock.Unlock() })
	e, c, out = loadedEnv(t, file)
	since = time.Now()
	follow = history.Follow(q.Dir)
	if err := history.Append(q.Dir, history.MaxSize, []history.Record{rec}); err != nil {
		t.Fatal(err)
	}
	return e, c, out, since, follow
}

// What a running worker pushed between push queueing the pairs and its
// wait beginning is counted: the wait reads the history from where push
// stood before queueing. Followed from its end when the wait began, the
// summary said nothing was pushed.
func TestWaitCountsWhatWasPushedBeforeItBegan(t *testing.T) {
	a := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	pairs := []queue.Pair{{Target: "main", Path: a}}
	// Queued, pushed and removed by the worker, all before the wait.
	e, c, out, since, follow := afterPush(t, history.Record{Time: time.Now(), Target: "main", Path: a.String(), Outcome: history.Pushed})
	r := e.waitPushed(c, pairs, nil, since, follow, 30*time.Second, false)
	if r.end != waitDone {
		t.Fatalf("wait ended %v:\n%s", r.end, out)
	}
	if !strings.Contains(out.String(), "pushed 1 path to main") {
		t.Errorf("the summary does not count the path pushed before the wait began:\n%s", out)
	}
}

// A pin given up on is reported even when the clock stepped back between
// push and the worker's record of it: the wait takes the pins' outcomes
// from its history reader, started before push queued them, not by
// comparing their times with the push's.
func TestWaitReportsPinAfterClockStepBack(t *testing.T) {
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "system-1")
	// Written after the push, stamped an hour before it.
	e, c, out, since, follow := afterPush(t, history.Record{Time: time.Now().Add(-time.Hour), Target: "main", Path: root.String(), Outcome: history.PinDropped, Reason: "its root was dropped", Pin: `"host"`})
	r := e.waitPushed(c, nil, []string{queue.PinKey("main", root, "host")}, since, follow, 30*time.Second, false)
	if r.end != waitDone || r.unpinned != 1 || !strings.Contains(out.String(), "not pinned "+root.String()+" in main") {
		t.Errorf("wait = %v with %d unpinned, want the pin given up on reported:\n%s", r.end, r.unpinned, out)
	}
}

// A drop in dropped/ of a pair the history then says went upstream is an
// earlier drop, left there (only a push removes one): push --wait does not
// report it. Its time is after the push's, as a clock stepped back since
// it was made (or while the wait ran: queue.Dropped then counts drops
// made within the step before since) makes one look; reported, the wait
// said the path was left out by the rules, and --fail-on-drop exited 3.
func TestWaitIgnoresEarlierDropOfPairDecidedSince(t *testing.T) {
	a := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	pairs := []queue.Pair{{Target: "main", Path: a}}
	e, c, out, since, follow := afterPush(t, history.Record{Time: time.Now(), Target: "main", Path: a.String(), Outcome: history.Upstream})
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		t.Fatal(err)
	}
	// The drop of an earlier entry of the pair.
	if _, err := q.Add(pairs, since.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	key := queue.Key("main", a)
	en, err := q.Read(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Drop(en, `deny "hello-*"`); err != nil {
		t.Fatal(err)
	}
	stamp := since.Add(time.Hour)
	if err := os.Chtimes(filepath.Join(q.Dir, "dropped", key), stamp, stamp); err != nil {
		t.Fatal(err)
	}
	r := e.waitPushed(c, pairs, nil, since, follow, 30*time.Second, false)
	if r.end != waitDone || r.ruled != 0 || r.exitCode(true) != 0 {
		t.Errorf("wait = %v with %d left out by the rules (exit %d with --fail-on-drop), want the path done upstream:\n%s", r.end, r.ruled, r.exitCode(true), out)
	}
}
