package worker

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// The times in an entry file are wall-clock times, written by a hook or
// an earlier worker, maybe before the clock was stepped. The worker waits
// on the monotonic clock instead: when it first reads an entry it turns
// them into times on its own clock, bounded by what they can honestly be.
// An entry stamped in the future is due now; a back-off that reaches
// further than queue.retry_max (the clock went back) is cut to it.
func (w *Worker) adopt(name string, e *queue.Entry, now time.Time) {
	age := min(max(now.Sub(e.Queued), 0), maxGather)
	w.arrived[name] = now.Add(-age)
	if !e.NextAttempt.IsZero() {
		wait := min(max(e.NextAttempt.Sub(now), 0), w.cfg.Queue.RetryMax)
		e.NextAttempt = now.Add(wait)
	}
}

// arrival is when the worker counts an entry as queued, for gathering a
// burst: on the monotonic clock for an entry it read, never in the future.
func (w *Worker) arrival(e *queue.Entry, now time.Time) time.Time {
	if t, ok := w.arrived[e.Key()]; ok {
		return t
	}
	if e.Queued.After(now) {
		return now
	}
	return e.Queued
}

// queueFailed backs off an entry the worker could not drop or remove, as
// if its push had failed, so that a queue directory that refuses changes
// makes the worker retry slowly instead of in a loop. The back-off lives
// in memory (the entry stays in the cache); writing it may fail too.
func (w *Worker) queueFailed(log *logrus.Entry, e *queue.Entry, what string, err error, now time.Time) {
	e.Attempts++
	e.LastAttempt = now
	e.LastError = truncate(fmt.Sprintf("%s: %v", what, err), 1000)
	e.NextAttempt = now.Add(Backoff(e.Attempts, w.cfg.Queue.RetryInitial, w.cfg.Queue.RetryMax))
	_ = w.q.Update(e)
	log.WithError(err).WithFields(logrus.Fields{"path": e.Path, "retry_in": time.Until(e.NextAttempt).Round(time.Second).String()}).Error(what)
	w.state.queueError(w.q.Dir, e.Target, e.LastError, now)
}
