package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// SIGTERM between batches: the batches not started yet are left as they
// were, not marked failed because Nix could not be asked for their
// closures with a cancelled context.
func TestShutdownLeavesLaterBatches(t *testing.T) {
	fakeStore(t)
	tg := mkTarget(t, "main", []string{"*"}, []string{"*-doc"})
	tg.ClosureDeny = config.ClosureSkip
	e := newEnv(t, tg)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	e.cfg.Queue.Batch = 1
	ps := build(t, "a-1", "b-1", "c-1")
	e.add(t, "main", ps...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakePusher{fail: func([]string) error { cancel(); return context.Canceled }}
	w := e.worker(map[string]*fakePusher{"main": f})
	if err := w.Run(ctx, Service); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher calls after SIGTERM = %q, want the first batch only", calls)
	}
	for path, x := range e.entries(t) {
		if x.Attempts != 0 || x.LastError != "" || !x.NextAttempt.IsZero() {
			t.Errorf("%s after SIGTERM: %d attempts, error %q", path, x.Attempts, x.LastError)
		}
	}
	if n := len(e.entries(t)); n != 3 {
		t.Errorf("%d entries left, want 3", n)
	}
	if st := LoadState(e.q.Dir).Targets["main"]; st != nil && st.QueueError != "" {
		t.Errorf("status would show a queue error after SIGTERM: %q", st.QueueError)
	}
}
