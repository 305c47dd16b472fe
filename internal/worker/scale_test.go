package worker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// One bad path in a batch of 1,000 is found by halving, in a number of
// pusher calls that grows with the logarithm of the batch, not with it,
// and every good path goes up.
func TestRunBisectsLargeFailingBatch(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	// Longer than a round takes, so that Run(Once) returns when only
	// the bad path is left, waiting.
	e.cfg.Queue.RetryInitial = 50 * time.Millisecond
	e.cfg.Queue.RetryMax = 50 * time.Millisecond
	e.cfg.Queue.Batch = 10000
	var names []string
	for i := 0; i < 1000; i++ {
		names = append(names, fmt.Sprintf("p-%d", i))
	}
	ps := build(t, names...)
	e.add(t, "main", ps...)
	bad := ps[613].String()
	f := &fakePusher{fail: func(paths []string) error {
		if slices.Contains(paths, bad) {
			return errors.New("path is not valid: " + bad)
		}
		return nil
	}}
	eventually.True(t, runsWithin, "the bad path to be left alone in the queue", func() bool {
		if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil && !errors.Is(err, ErrLeft) {
			t.Fatalf("Run(Once) = %v", err)
		}
		return len(e.entries(t)) <= 1
	})
	if _, ok := e.entries(t)[bad]; !ok {
		t.Fatal("the bad path left the queue")
	}
	calls, _ := f.Calls()
	// 2 whole, then per halving level one failing and one good half:
	// about 2 + 2*log2(1000) = 22. The bad path alone counts once: its
	// back-off is shorter than a round on a loaded machine, so it may be
	// tried again before Run(Once) returns (ci17b saw 4 such retries).
	isolating := 1
	for _, c := range calls {
		if !slices.Equal(c, []string{bad}) {
			isolating++
		}
	}
	if isolating > 24 {
		t.Errorf("%d pusher calls to isolate one bad path among 1,000, want at most 24: %d calls in all", isolating, len(calls))
	}
	pushedPaths := map[string]bool{}
	_, errs := f.Calls()
	for i, c := range calls {
		if errs[i] == nil {
			for _, p := range c {
				pushedPaths[p] = true
			}
		}
	}
	if len(pushedPaths) != 999 || pushedPaths[bad] {
		t.Errorf("%d paths pushed, want the 999 good ones", len(pushedPaths))
	}
}

// What a successful push sent is recorded for its destination, so the
// hook and push leave it out next time; a failed push records nothing,
// and queue.remember_pushed = 0 keeps no record.
func TestRunRemembersPushed(t *testing.T) {
	fakeStore(t)
	main := mkTarget(t, "main", []string{"*"}, nil)
	e := newEnv(t, main)
	e.cfg.Queue.RememberPushed = time.Hour
	good, badp := build(t, "good-1"), build(t, "bad-1")
	e.add(t, "main", good...)
	e.add(t, "main", badp...)
	f := &fakePusher{fail: func(paths []string) error {
		if slices.Contains(paths, badp[0].String()) {
			return errors.New("no")
		}
		return nil
	}}
	// The batch fails twice, then its halves go alone: good-1 is
	// pushed, bad-1 waits for a retry.
	e.cfg.Queue.RetryInitial = 20 * time.Millisecond
	e.cfg.Queue.RetryMax = 20 * time.Millisecond
	eventually.True(t, runsWithin, "good-1 to be pushed", func() bool {
		run(t, e.worker(map[string]*fakePusher{"main": f}), Once)
		return len(e.entries(t)) <= 1
	})
	rec, err := pushed.OpenRead(e.q.Dir, main.RecordKey(), time.Hour)
	if err != nil || rec == nil {
		t.Fatalf("no record after a push: %v", err)
	}
	defer rec.Close()
	if !rec.Has(hashOf(t, good[0]), time.Now()) {
		t.Error("the pushed path is not recorded")
	}
	if rec.Has(hashOf(t, badp[0]), time.Now()) {
		t.Error("a path whose push failed is recorded")
	}

	e2 := newEnv(t, main)
	e2.cfg.Queue.RememberPushed = 0
	e2.add(t, "main", build(t, "other-1")...)
	if err := run(t, e2.worker(map[string]*fakePusher{"main": {}}), Once); err != nil {
		t.Fatal(err)
	}
	if r, _ := pushed.OpenRead(e2.q.Dir, main.RecordKey(), 0); r != nil {
		t.Error("a record was kept with queue.remember_pushed = 0")
	}
	if strings.Contains(e.log.String(), "cannot record") {
		t.Errorf("log: %s", e.log.String())
	}
}

func hashOf(t *testing.T, p storepath.Path) pushed.Hash {
	t.Helper()
	h, err := pushed.ParseHash(p.Hash)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
