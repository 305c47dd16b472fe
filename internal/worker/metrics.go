package worker

import (
	"bytes"
	"iter"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/metrics"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// Snapshot is what the metrics say of a queue: the targets of c, with the
// counters of st, the entries and pins queued and the entries dropped per
// target. The worker builds it from what it holds, `status --prometheus`
// from the queue directory, so that both say the same. queued reports
// whether an entry (by key) is queued: a pin whose root's is waits for
// that push, and is not failing whatever its earlier calls did (as status
// and doctor say); nil: none is.
func Snapshot(c *config.Config, st *State, entries iter.Seq[EntryView], pins []*queue.Pin, queued func(key string) bool, dropped map[string]int, running bool, now time.Time) metrics.Snapshot {
	s := metrics.Snapshot{Now: now, WorkerRunning: running}
	if st.Worker != nil && st.Worker.ConfigError != "" {
		s.ConfigError = true
	}
	at := map[string]int{}
	for _, t := range c.Targets {
		at[t.Name] = len(s.Targets)
		s.Targets = append(s.Targets, metrics.Target{Name: t.Name, Dropped: dropped[t.Name], Counters: st.Targets[t.Name].Counters()})
	}
	for e := range entries {
		i, ok := at[e.Target]
		if !ok {
			s.Orphaned++
			continue
		}
		t := &s.Targets[i]
		t.Pending++
		if e.Attempts > 0 {
			t.Failing++
		}
		// An entry without a queued time has no age: the oldest is
		// among the others, whatever their order.
		if !e.Queued.IsZero() && (t.OldestQueued.IsZero() || e.Queued.Before(t.OldestQueued)) {
			t.OldestQueued = e.Queued
		}
	}
	for _, p := range pins {
		if i, ok := at[p.Target]; ok {
			s.Targets[i].PinsPending++
			if p.Attempts > 0 && !PinWaits(p, queued) {
				s.Targets[i].PinsFailing++
			}
		}
	}
	return s
}

// PinWaits reports whether p waits for its root's push, by queued (see
// Snapshot).
func PinWaits(p *queue.Pin, queued func(key string) bool) bool {
	k, err := p.EntryKey()
	return err == nil && queued != nil && queued(k)
}

// EntryView is what the metrics read of a queued entry.
type EntryView struct {
	Target   string
	Attempts int
	Queued   time.Time
}

// EntriesOf views entries for Snapshot.
func EntriesOf(entries []*queue.Entry) iter.Seq[EntryView] {
	return func(yield func(EntryView) bool) {
		for _, e := range entries {
			if !yield(EntryView{e.Target, e.Attempts, e.Queued}) {
				return
			}
		}
	}
}

// indexed views the worker's index of the queue.
func (w *Worker) indexed() iter.Seq[EntryView] {
	x := w.idx
	return func(yield func(EntryView) bool) {
		for _, s := range x.slots {
			var queued time.Time
			if s.queued != 0 {
				queued = time.Unix(0, s.queued)
			}
			if !yield(EntryView{x.nameOf(s), int(s.attempts), queued}) {
				return
			}
		}
	}
}

// metricsRefresh is how often the metrics file is rewritten when nothing
// changed, so that the age of the oldest entry stays current.
const metricsRefresh = 10 * time.Second

// droppedRecount is how often the dropped/ directory is counted again
// when this worker dropped nothing (forget --dropped changes it too).
const droppedRecount = time.Minute

// metricsFile keeps what the worker last wrote to metrics.file.
type metricsFile struct {
	last    []byte
	written time.Time
	lastErr string
	// dropped counts dropped/ per target, and corrupt the entries set
	// aside in corrupt/, as of counted; stale after a drop or an entry
	// found unreadable.
	dropped map[string]int
	corrupt int
	counted time.Time
	stale   bool
}

// writeMetrics rewrites metrics.file when what it says changed, or every
// metricsRefresh; running is false in the worker's last write.
func (w *Worker) writeMetrics(now time.Time, running bool) {
	w.state.flush(w.q.Dir)
	file := w.cfg.Metrics.File
	if file == "" {
		return
	}
	m := &w.metrics
	if m.stale || m.dropped == nil || now.Sub(m.counted) > droppedRecount {
		if d, err := w.q.DroppedByTarget(targetNamesOf(w.cfg)); err == nil {
			m.dropped, m.counted, m.stale = d, now, false
		}
		// What corrupt/ holds now, as status --prometheus counts it,
		// not what this worker found: forget --corrupt empties it.
		if names, err := w.q.CorruptNames(); err == nil {
			m.corrupt = len(names)
		}
	}
	s := Snapshot(w.cfg, w.state, w.indexed(), w.pinList(), w.queuedKey, m.dropped, running, now)
	// Unreadable pins too, which stay in pins/ (see scanPins), not
	// those unread for a reason of the moment.
	s.Corrupt = m.corrupt
	for _, corrupt := range w.badPins {
		if corrupt {
			s.Corrupt++
		}
	}
	// What changes with the clock alone (the age of the oldest entry)
	// is refreshed every metricsRefresh, not at every round.
	still := s
	still.Now = time.Time{}
	key := metrics.Render(still)
	if bytes.Equal(key, m.last) && now.Sub(m.written) < metricsRefresh && running {
		return
	}
	if err := metrics.WriteFile(file, metrics.Render(s)); err != nil {
		if err.Error() != m.lastErr {
			m.lastErr = err.Error()
			w.log.WithError(err).Error("writing the metrics file")
		}
		return
	}
	m.last, m.written, m.lastErr = key, now, ""
}

// queuedKey reports whether the entry key is queued, as the worker knows.
func (w *Worker) queuedKey(key string) bool {
	_, ok := w.idx.slots[key]
	return ok
}

func targetNamesOf(c *config.Config) []string {
	names := make([]string, len(c.Targets))
	for i, t := range c.Targets {
		names[i] = t.Name
	}
	return names
}
