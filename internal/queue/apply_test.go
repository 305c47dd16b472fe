package queue

import (
	"os"
	"slices"
	"testing"
	"time"
)

// bulkFileOf returns the one bulk file of q and its entries.
func bulkFileOf(t *testing.T, q *Queue) (string, []*Entry) {
	t.Helper()
	names := ls(t, q.path(bulkDir))
	if len(names) != 1 {
		t.Fatalf("bulk/ = %v, want one file", names)
	}
	var es []*Entry
	if _, err := q.ReadBulk(names[0], func(e *Entry) { es = append(es, e) }); err != nil {
		t.Fatal(err)
	}
	return names[0], es
}

// An entry whose change does not take stays queued ("as it was"), even
// when the worker counts its bulk file as Whole because the change was
// meant to move it out: a full disk while writing an updated or dropped
// entry removed the file with the entry's only copy.
func TestApplyWholeKeepsFailedChange(t *testing.T) {
	for _, kind := range []string{"updated", "dropped"} {
		t.Run(kind, func(t *testing.T) {
			q := openQ(t)
			add(t, q, manyPairs(2, "w")...)
			src, es := bulkFileOf(t, q)
			done, other := es[0], es[1]
			c := Changes{Done: []*Entry{done}, Whole: map[string]bool{src: true}}
			if kind == "updated" {
				other.Attempts, other.LastError, other.NextAttempt = 1, "push failed", time.Now().Add(time.Hour)
				c.Updated = []*Entry{other}
			} else {
				other.Reason = "denied"
				c.Dropped = []*Entry{other}
			}
			// Writing anything new fails, as on a full disk: tmp/ (where
			// an updated entry's bulk file is written) and dropped/ are
			// files.
			for _, d := range []string{tmpDir, droppedDir} {
				if err := os.RemoveAll(q.path(d)); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(q.path(d), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ap := q.Apply(c)
			if ap.Failed[other.Key()] == nil {
				t.Fatalf("the %s entry's change took: %+v", kind, ap)
			}
			entries, _, err := (&Queue{Dir: q.Dir}).List()
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range entries {
				keys = append(keys, e.Key())
				if e.Key() == other.Key() && (e.Attempts != 0 || e.Reason != "") {
					t.Errorf("the %s entry is queued changed: %+v", kind, e)
				}
			}
			if !slices.Contains(keys, other.Key()) {
				t.Fatalf("the %s entry %s is lost: its change failed, yet only %v are queued", kind, other.Key(), keys)
			}
			// The rest of the file could not be rewritten either: the
			// pushed entry stays too, said to have failed to leave.
			if slices.Contains(keys, done.Key()) && ap.Failed[done.Key()] == nil {
				t.Errorf("the pushed entry is still queued, yet Apply says it left: %+v", ap)
			}
		})
	}
}
