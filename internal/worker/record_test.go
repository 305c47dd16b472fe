package worker

import (
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// A failed batch of 10,000 paths with a 1,000-byte error wrote 12 MB of
// records in one append: past the history's 4 MiB bound three times, so
// that every earlier record was rotated away. Its records now stay within
// a quarter of the bound beyond the last, whose error is whole.
func TestRecordFailedBigBatchKeepsTheHistory(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	before := mkPath("before-1.0").String()
	w.record("main", &result{pushed: []*queue.Entry{{Target: "main", Path: before}}})
	msg := "cachix: " + strings.Repeat("upstream connection refused; ", 34)
	failed := make([]*queue.Entry, 10000)
	for i := range failed {
		failed[i] = &queue.Entry{Target: "main", Path: mkPath("failed-1.0").String(), LastError: msg}
	}
	w.record("main", &result{failed: failed})
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var kept bool
	nFailed, whole, lastWhole := 0, 0, false
	for _, r := range recs {
		switch {
		case r.Path == before && r.Outcome == history.Pushed:
			kept = true
		case r.Outcome == history.Failed:
			nFailed++
			lastWhole = r.Reason == msg
			if lastWhole {
				whole++
			}
		}
	}
	if !kept || nFailed != len(failed) {
		t.Fatalf("history after a failed batch of %d: the record before kept %v, %d failed records", len(failed), kept, nFailed)
	}
	if whole != 1 || !lastWhole {
		t.Errorf("%d failed records hold the whole error (the newest: %v), want the newest alone", whole, lastWhole)
	}
}
