package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// lastErrors is how many of a target's newest failures and drops status
// shows.
const lastErrors = 3

// addOutcomes adds to the status what the worker gave up on (dropped/)
// and its newest errors (the history).
func addOutcomes(st *queueStatus, q *queue.Queue, byName map[string]*targetStatus) {
	if dropped, err := q.ListDropped(); err == nil {
		for _, d := range dropped {
			if ts := byName[d.Target]; ts != nil {
				ts.Dropped++
			}
		}
	}
	// The newest outcome of each path: one pushed since it failed is no
	// longer an error.
	recs, _ := history.Read(q.Dir)
	seen := map[string]bool{}
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		ts := byName[r.Target]
		k := pairKey(r.Target, r.Path)
		if ts == nil || seen[k] {
			continue
		}
		seen[k] = true
		if (r.Outcome == history.Dropped || r.Outcome == history.Failed) && len(ts.LastErrors) < lastErrors {
			ts.LastErrors = append(ts.LastErrors, r)
		}
	}
}

// printLastErrors prints the last errors of paths not already listed as
// failing.
func printLastErrors(w io.Writer, t *targetStatus) {
	failing := map[string]bool{}
	for _, f := range t.Failures {
		failing[f.Path] = true
	}
	for _, r := range t.LastErrors {
		if failing[r.Path] {
			continue
		}
		fmt.Fprintf(w, "  last %s %s %s: %s\n", r.Outcome, r.Time.Local().Format(time.RFC3339), r.Path, oneLine(r.Reason))
	}
}
