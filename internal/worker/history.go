package worker

import (
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// record appends the outcome of entries to the queue's history (see
// `cachix-filter-hook log`). A failure to write it is logged, not fatal:
// the queue, not the history, is what must not lose a path.
func (w *Worker) record(target string, entries []*queue.Entry, outcome, reason string, took time.Duration) {
	now := time.Now()
	recs := make([]history.Record, len(entries))
	batch := 0
	if outcome != history.Dropped {
		batch = len(entries)
	}
	for i, e := range entries {
		recs[i] = history.Record{Time: now, Target: target, Path: e.Path, Outcome: outcome, Reason: reason, Batch: batch, Duration: took}
	}
	if err := history.Append(w.q.Dir, history.MaxSize, recs); err != nil {
		w.log.WithError(err).Error("recording history")
	}
}
