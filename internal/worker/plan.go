package worker

import (
	"errors"
	"io/fs"
	"sort"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// What to push now: the entries the worker knows, cut into batches per
// target, gathered while a burst of builds is still arriving.

// scan refreshes the cache of entries from the directory (reading only
// new files, which it adopts at now) and returns the entries whose target
// is configured.
func (w *Worker) scan(now time.Time) []*queue.Entry {
	names, err := w.q.Names()
	if err != nil {
		w.log.WithError(err).Error("listing queue")
		return nil
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		seen[n] = true
		if _, ok := w.entries[n]; ok {
			continue
		}
		e, err := w.q.Read(n)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !w.unreadable[n] {
				w.unreadable[n] = true
				w.log.WithError(err).Error("unreadable queue entry")
			}
			continue
		}
		w.adopt(n, e, now)
		w.entries[n] = e
	}
	for n := range w.arrived {
		if !seen[n] {
			delete(w.arrived, n)
		}
	}
	var live []*queue.Entry
	for n, e := range w.entries {
		if !seen[n] {
			delete(w.entries, n)
			continue
		}
		if w.cfg.Target(e.Target) == nil {
			if !w.orphans[e.Target] {
				w.orphans[e.Target] = true
				w.log.WithField("target", e.Target).Warn("entries for a target that is no longer configured stay in the queue")
			}
			continue
		}
		live = append(live, e)
	}
	return live
}

// batch is up to queue.batch entries of one target.
type batch struct {
	target  *config.Target
	entries []*queue.Entry
}

// plan picks the batches to push now. It returns none while a burst is
// still arriving, and the time of the next retry when everything waits.
func (w *Worker) plan(live []*queue.Entry, now time.Time) ([]batch, time.Time) {
	var due []*queue.Entry
	var next, newest, oldest time.Time
	for _, e := range live {
		if e.NextAttempt.After(now) {
			if next.IsZero() || e.NextAttempt.Before(next) {
				next = e.NextAttempt
			}
			continue
		}
		due = append(due, e)
		if e.Attempts == 0 {
			if a := w.arrival(e, now); a.After(newest) {
				newest = a
			}
			if a := w.arrival(e, now); oldest.IsZero() || a.Before(oldest) {
				oldest = a
			}
		}
	}
	if len(due) == 0 {
		return nil, next
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Queued.Before(due[j].Queued) })
	byTarget := map[string][]*queue.Entry{}
	full := false
	for _, e := range due {
		byTarget[e.Target] = append(byTarget[e.Target], e)
		full = full || len(byTarget[e.Target]) >= w.cfg.Queue.Batch
	}
	gathering := !newest.IsZero() && now.Sub(newest) < quiet && now.Sub(oldest) < maxGather
	if gathering && !full {
		return nil, now.Add(pollInterval)
	}
	var batches []batch
	for _, t := range w.cfg.Targets {
		var fresh []*queue.Entry
		failing := map[int][]*queue.Entry{}
		for _, e := range byTarget[t.Name] {
			if e.Attempts >= failedTwice {
				failing[e.Attempts] = append(failing[e.Attempts], e)
			} else {
				fresh = append(fresh, e)
			}
		}
		// A batch that failed twice is halved, and so is each half that
		// fails again (its entries share their attempts and back-off):
		// one bad path among 10,000 is found in some 14 rounds, while
		// the halves without it go up, instead of 10,000 single pushes.
		attempts := make([]int, 0, len(failing))
		for n := range failing {
			attempts = append(attempts, n)
		}
		sort.Ints(attempts)
		for _, n := range attempts {
			es := failing[n]
			batches = append(batches, w.chunk(t, es, (len(es)+1)/2)...)
		}
		batches = append(batches, w.chunk(t, fresh, w.cfg.Queue.Batch)...)
	}
	return batches, next
}

// chunk cuts entries into batches of at most size entries whose paths fit
// in one pusher call's argv.
func (w *Worker) chunk(t *config.Target, entries []*queue.Entry, size int) []batch {
	budget := w.argBudget
	if budget <= 0 {
		budget = pusher.ArgBudget()
	}
	var out []batch
	var cur []*queue.Entry
	bytes := 0
	for _, e := range entries {
		c := pusher.ArgCost(e.Path)
		if len(cur) > 0 && (len(cur) >= size || bytes+c > budget) {
			out = append(out, batch{t, cur})
			cur, bytes = nil, 0
		}
		cur = append(cur, e)
		bytes += c
	}
	if len(cur) > 0 {
		out = append(out, batch{t, cur})
	}
	return out
}

func (w *Worker) retryNow() {
	n := 0
	for _, e := range w.entries {
		if !e.NextAttempt.IsZero() {
			e.NextAttempt = time.Time{}
			if err := w.q.Update(e); err != nil {
				w.log.WithError(err).Error("updating queue entry")
			}
			n++
		}
	}
	w.log.WithField("entries", n).Info("retry requested: failing entries are due now")
}
