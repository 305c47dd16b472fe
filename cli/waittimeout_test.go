package cli

import (
	"context"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// push --wait --timeout 0 (or a negative timeout) has no timer, and
// push's wait did not give up on failing entries as wait does without a
// timeout: a target that keeps failing held it for ever. Nor did wait
// --timeout with a negative duration. Both give up as wait does, once
// every entry left has failed and waits for its back-off.
func TestWaitWithoutTimeoutGivesUpOnFailing(t *testing.T) {
	a := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "hello-1")
	pairs := []queue.Pair{{Target: "main", Path: a}}
	for _, c := range []struct {
		name string
		run  func(e *env) waitEnd
	}{
		{"push --timeout 0", func(e *env) waitEnd {
			cfg, err := e.load()
			if err != nil {
				t.Fatal(err)
			}
			return e.waitPushed(cfg, pairs, nil, time.Now().Add(-time.Second), nil, 0, true).end
		}},
		{"push --timeout -1s", func(e *env) waitEnd {
			cfg, err := e.load()
			if err != nil {
				t.Fatal(err)
			}
			return e.waitPushed(cfg, pairs, nil, time.Now().Add(-time.Second), nil, -time.Second, true).end
		}},
		{"wait --timeout -1s", func(e *env) waitEnd {
			if code := runWait(e, &waitOptions{timeout: -time.Second, quiet: true}); code != exitNotSent {
				t.Errorf("exit %d, want %d", code, exitNotSent)
			}
			return waitFailing
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, file := mainQueue(t)
			lock, err := q.AcquireWorker(context.Background(), 0)
			if err != nil || lock == nil {
				t.Fatalf("AcquireWorker = %v, %v", lock, err)
			}
			defer lock.Unlock()
			if _, err := q.Add(pairs, time.Now()); err != nil {
				t.Fatal(err)
			}
			es, _, err := q.List()
			if err != nil || len(es) != 1 {
				t.Fatalf("List = %v, %v", es, err)
			}
			es[0].Attempts, es[0].LastAttempt, es[0].LastError, es[0].NextAttempt = 1, time.Now(), "push failed", time.Now().Add(time.Hour)
			if err := q.Update(es[0]); err != nil {
				t.Fatal(err)
			}
			e, _, out := loadedEnv(t, file)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.ctx = ctx
			done := make(chan waitEnd, 1)
			go func() { done <- c.run(e) }()
			// Only a watchdog: the wait gives up at its first look at
			// the queue, or waits for ever.
			select {
			case end := <-done:
				if end != waitFailing {
					t.Errorf("wait ended %v, want it to give up on the failing entry:\n%s", end, out)
				}
			case <-time.After(eventually.Left(t)):
				cancel()
				<-done
				t.Errorf("the wait did not give up on the failing entry:\n%s", out)
			}
		})
	}
}
