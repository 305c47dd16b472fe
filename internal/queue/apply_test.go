package queue

import (
	"os"
	"slices"
	"strings"
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

// A failed batch's entries keep their retry state in a bulk file of
// their own (Apply), and Keys lists them among the keys that may hold
// one, so that wait and status read them: listed as plain bulk keys, a
// wait for a batch that keeps failing never saw it failing, and waited
// until its timeout.
func TestKeysStatedHoldsRetryState(t *testing.T) {
	for _, n := range []int{1, 2} {
		q := openQ(t)
		add(t, q, manyPairs(3, "u")...)
		_, es := bulkFileOf(t, q)
		upd := es[:n]
		for _, e := range upd {
			e.Attempts, e.LastError, e.NextAttempt = 1, "push failed", time.Now().Add(time.Hour)
		}
		if ap := q.Apply(Changes{Updated: upd}); len(ap.Failed) > 0 {
			t.Fatal(ap.Failed)
		}
		r := &Queue{Dir: q.Dir}
		stated, bulk, err := r.Keys()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range upd {
			if !slices.Contains(stated, e.Key()) || slices.Contains(bulk, e.Key()) {
				t.Errorf("%d updated: failed entry %s not among the stated keys (stated %v, bulk %v)", n, e.Key(), stated, bulk)
			}
			if got, err := r.Peek(e.Key()); err != nil || got.Attempts != 1 {
				t.Errorf("%d updated: Peek(%s) = %+v, %v", n, e.Key(), got, err)
			}
		}
		for _, e := range es[n:] {
			if !slices.Contains(bulk, e.Key()) {
				t.Errorf("%d updated: untouched entry %s not among the bulk keys (stated %v, bulk %v)", n, e.Key(), stated, bulk)
			}
		}
	}
}

// A reader that finds a listed bulk file gone lists bulk/ again: the
// worker had replaced the file (some of its lines pushed), and the
// replacement, made after the listing, holds an entry still queued. Left
// out of that look, push --wait stopped waiting for it for good.
func TestKeysSeeEntryThroughReplacedBulkFile(t *testing.T) {
	for _, read := range []string{"Keys", "Peek"} {
		t.Run(read, func(t *testing.T) {
			q := openQ(t)
			stay := Pair{Target: "main", Path: mkPath("stays")}
			pairs := append(manyPairs(2, "pushed"), stay)
			add(t, q, pairs...)
			src, _ := bulkFileOf(t, q)
			replaced := false
			bulkListed = func() {
				if replaced {
					return
				}
				replaced = true
				// The worker pushes one line of the file the reader
				// has just listed.
				w := &Queue{Dir: q.Dir}
				if ap := w.Apply(Changes{Done: []*Entry{Stub(Key(pairs[0].Target, pairs[0].Path), src)}}); len(ap.Failed) > 0 || ap.Replaced[src] == "" {
					t.Errorf("Apply: %+v", ap)
				}
			}
			defer func() { bulkListed = nil }()
			r := &Queue{Dir: q.Dir}
			key := Key(stay.Target, stay.Path)
			if read == "Peek" {
				if _, err := r.Peek(key); err != nil {
					t.Fatalf("Peek(%s) through a replaced bulk file: %v", key, err)
				}
			} else {
				stated, bulk, err := r.Keys()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(bulk, key) && !slices.Contains(stated, key) {
					t.Fatalf("Keys through a replaced bulk file left out %s (stated %v, bulk %v)", key, stated, bulk)
				}
			}
			if !replaced {
				t.Fatal("the reader never listed bulk/")
			}
		})
	}
}

// A retry state rewritten over an entry's file is synced before the
// rename: after a power cut, on a file system that does not flush a file
// renamed over another, the name could point to an empty file, which
// the worker takes for corrupt and never pushes. So is a pin's.
func TestUpdateSyncsBeforeRename(t *testing.T) {
	q := openQ(t)
	add(t, q, Pair{Target: "main", Path: mkPath("one")})
	e, err := q.Read(Key("main", mkPath("one")))
	if err != nil {
		t.Fatal(err)
	}
	e.Attempts, e.LastError, e.NextAttempt = 1, "push failed", time.Now().Add(time.Hour)
	if n := countSyncs(t, func() {
		if err := q.Update(e); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Update synced %d times, want 1", n)
	}
	if got, err := (&Queue{Dir: q.Dir}).Peek(e.Key()); err != nil || got.Attempts != 1 {
		t.Fatalf("after Update: %+v, %v", got, err)
	}
	if _, err := q.AddPins([]Pin{{Target: "main", Path: mkPath("one").String(), Name: "laptop"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pins, bad, err := q.ListPins()
	if err != nil || len(bad) != 0 || len(pins) != 1 {
		t.Fatalf("ListPins = %v, %v, %v", pins, bad, err)
	}
	pins[0].Attempts = 1
	if n := countSyncs(t, func() {
		if err := q.UpdatePin(pins[0]); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("UpdatePin synced %d times, want 1", n)
	}
}

// Lines that are not entries, in a bulk file of a long name (any name
// can be put in bulk/), are set aside under a name cut short: under its
// own, a stamp added, the name was too long, and the file's entries
// could then never leave it.
func TestApplySetsAsideLinesOfLongName(t *testing.T) {
	q := openQ(t)
	a, b := mkPath("a-1"), mkPath("b-1")
	add(t, q, Pair{Target: "main", Path: a}, Pair{Target: "main", Path: b})
	name, es := bulkFileOf(t, q)
	long := "bulk." + strings.Repeat("x", 240)
	data, err := os.ReadFile(q.path(bulkDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q.path(bulkDir, long), append(data, "not an entry\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(q.path(bulkDir, name)); err != nil {
		t.Fatal(err)
	}
	done := es[0]
	done.SetSource(long)
	r := q.Apply(Changes{Done: []*Entry{done}}, long)
	if len(r.Failed) > 0 || r.Aside != 1 {
		t.Fatalf("Apply = %+v, want the line set aside and %s gone", r, done.Path)
	}
	if _, es := bulkFileOf(t, q); len(es) != 1 || es[0].Key() == done.Key() {
		t.Errorf("left %+v, want the other entry alone", es)
	}
	if n := len(ls(t, q.path(corruptDir))); n != 1 {
		t.Errorf("corrupt/ holds %d files, want the line set aside", n)
	}
}
