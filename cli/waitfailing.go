package cli

import (
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// failingCheck tells whether every entry wait is waiting for has failed
// and only waits for its back-off: then nothing will change until the
// back-off ends, and wait without --timeout says so and exits 1 instead
// of waiting, maybe forever, for a target that keeps failing.
//
// It reads entries until the first that is not waiting; that one is
// checked first next time, so a draining queue costs one read a round.
// Only the entries that may hold a retry state are read (queue.Keys'
// stated): an entry of any other bulk file has not failed, so one waited
// for there means the wait goes on (leftInQueue).
type failingCheck struct {
	busy string // the last entry seen not waiting for a back-off
}

func (f *failingCheck) allWaiting(q *queue.Queue, names []string, pushable func(*queue.Entry) bool, now time.Time) bool {
	waiting := func(n string) (bool, bool) {
		en, err := q.Peek(n)
		if err != nil {
			// Gone (pushed) or corrupt (the worker moves it): not
			// a failure to report.
			return false, false
		}
		if !pushable(en) {
			return true, false // not waited for
		}
		return en.Attempts > 0 && en.NextAttempt.After(now), true
	}
	if f.busy != "" {
		if w, _ := waiting(f.busy); !w {
			return false
		}
	}
	counted := 0
	for _, n := range names {
		w, ok := waiting(n)
		if !w {
			f.busy = n
			return false
		}
		if ok {
			counted++
		}
	}
	return counted > 0
}
