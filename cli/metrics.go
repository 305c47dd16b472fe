package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/metrics"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// printMetrics prints what the worker writes to metrics.file, from the
// queue directory: the same snapshot (worker.Snapshot), so that both say
// the same. configError: this command's config does not load.
func (e *env) printMetrics(c *config.Config, q *queue.Queue, configError bool) int {
	entries, bad, err := q.List()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	pins, badPins, err := q.ListPins()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	dropped, err := q.DroppedByTarget(targetNames(c))
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	running, _ := q.WorkerRunning()
	state := worker.LoadState(q.Dir)
	if !running {
		// A config error is the running worker's; none runs.
		state.Worker = nil
	}
	queued := func(key string) bool { _, ok := q.Get(key); return ok }
	s := worker.Snapshot(c, state, worker.EntriesOf(entries), pins, queued, dropped, running, time.Now())
	// Unreadable entries, in entries/ until the worker sets them aside
	// in corrupt/, and there until forget --corrupt: as the worker counts.
	corrupt, err := q.CorruptNames()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	// And unreadable pins, which stay in pins/, as the worker counts.
	s.Corrupt = len(corrupt) + corruptOf(bad) + corruptOf(badPins)
	s.ConfigError = s.ConfigError || configError
	_, _ = e.stdout.Write(metrics.Render(s))
	return 0
}

// pinStatus is a pin waiting to be made, in status.
type pinStatus struct {
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	Keep        string    `json:"keep,omitempty"`
	Queued      time.Time `json:"queued"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Waiting: its root's entry for the target is still queued.
	Waiting bool `json:"waiting_for_push"`
	// DropError is why the worker, giving up on the pin, could not
	// remove its file; it tries again at DropNext.
	DropError string    `json:"drop_error,omitempty"`
	DropNext  time.Time `json:"drop_next_attempt,omitzero"`
}

// addPins adds the pins waiting to be made to their targets' status, and
// returns how many pin files are not pins (corruptOf).
func addPins(q *queue.Queue, byName map[string]*targetStatus, drops map[string]worker.PinDrop) (unreadable int) {
	pins, bad, err := q.ListPins()
	if err != nil {
		return 0
	}
	sort.Slice(pins, func(i, j int) bool { return pins[i].Queued.Before(pins[j].Queued) })
	for _, p := range pins {
		ts := byName[p.Target]
		if ts == nil {
			continue
		}
		ps := pinStatus{Path: p.Path, Name: p.Name, Keep: p.Keep.String(), Queued: p.Queued, Attempts: p.Attempts, NextAttempt: p.NextAttempt, LastError: p.LastError}
		// As the worker's metrics count it (one rule for both).
		ps.Waiting = worker.PinWaits(p, func(key string) bool { _, ok := q.Get(key); return ok })
		if d, ok := drops[p.Key()]; ok {
			ps.DropError, ps.DropNext = d.Error, d.NextAttempt
		}
		ts.Pins = append(ts.Pins, ps)
	}
	return corruptOf(bad)
}

func printPins(w io.Writer, t *targetStatus, retryMax time.Duration) {
	if t.Pinned > 0 {
		statusLine(w, "  %d pinned, the last at %s", t.Pinned, t.LastPin.Local().Format(time.RFC3339))
	}
	for _, p := range t.Pins {
		keep := ""
		if p.Keep != "" {
			keep = " (" + p.Keep + ")"
		}
		state := "due"
		switch {
		case p.Waiting:
			// First: a pin asked for again, its root queued again,
			// waits for that push whatever its earlier calls did. One
			// not asked for again waits out its back-off too.
			state = "waiting for its push"
			if d := nextIn(p.NextAttempt, retryMax); p.Attempts > 0 && d > 0 {
				state += fmt.Sprintf(", and its back-off, which ends in %s", d)
			}
			if p.Attempts > 0 {
				state += fmt.Sprintf(" (%d failed attempts before: %s)", p.Attempts, oneLine(p.LastError))
			}
		case p.DropError != "":
			state = fmt.Sprintf("given up on, but its file cannot be removed; tried again in %s: %s", nextIn(p.DropNext, retryMax), oneLine(p.DropError))
		case p.Attempts > 0:
			state = fmt.Sprintf("%d failed attempts, next in %s: %s", p.Attempts, nextIn(p.NextAttempt, retryMax), oneLine(p.LastError))
		}
		statusLine(w, "  pin %q%s of %s: %s", p.Name, keep, p.Path, state)
	}
}

func isPinOutcome(o string) bool { return strings.HasPrefix(o, "pin") }
