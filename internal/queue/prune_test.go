package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dropped/ and corrupt/ are bounded: older than the age limit goes, and
// past the count the oldest go, except what was dropped in the last
// minutes (wait and push --wait read it). Status counts dropped entries
// per target from their names.
func TestPruneAndCount(t *testing.T) {
	q := openQ(t)
	now := time.Now()
	age := func(name string, d time.Duration) {
		t.Helper()
		when := now.Add(-d)
		if err := os.Chtimes(name, when, when); err != nil {
			t.Fatal(err)
		}
	}
	// 10 dropped an hour or more apart, 3 dropped just now, of two
	// targets; 2 corrupt files, one of them ancient.
	for i := range 13 {
		target := "main"
		if i%2 == 1 {
			target = "work/eu"
		}
		e := &Entry{Target: target, Path: mkPath(fmt.Sprintf("d-%d", i)).String(), Queued: now, key: Key(target, mkPath(fmt.Sprintf("d-%d", i)))}
		if err := q.Drop(e, "gone"); err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			age(q.path(droppedDir, e.key), time.Duration(i+1)*time.Hour)
		}
	}
	for i, d := range []time.Duration{time.Hour, 1000 * time.Hour} {
		name := q.path(corruptDir, fmt.Sprintf("x.%d", i))
		if err := os.MkdirAll(q.path(corruptDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		age(name, d)
	}
	counts, err := q.DroppedByTarget([]string{"main", "work/eu", "other"})
	if err != nil || counts["main"] != 7 || counts["work/eu"] != 6 || counts["other"] != 0 {
		t.Fatalf("DroppedByTarget = %v, %v; want main 7, work/eu 6", counts, err)
	}
	// Keep 5, none older than 5 hours: the 3 fresh ones and the two
	// newest of the rest stay; one corrupt file is too old.
	n, err := q.Prune(5, 5*time.Hour, now, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if left := len(ls(t, q.path(droppedDir))); left != 5 || n != 9 {
		t.Errorf("Prune removed %d, %d left in dropped/; want 9 removed, 5 left", n, left)
	}
	if left := ls(t, q.path(corruptDir)); len(left) != 1 || left[0] != "x.0" {
		t.Errorf("corrupt/ after Prune: %q, want the newer file", left)
	}
	// Past the count, what was dropped in the last minutes stays.
	if _, err := q.Prune(1, 0, now, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if left := len(ls(t, q.path(droppedDir))); left != 3 {
		t.Errorf("%d left in dropped/ with keep 1, want the 3 dropped just now", left)
	}
}

// A clock stepped forward while the worker runs does not age what it
// dropped: the worker's start and its monotonic run time bound each
// file's age. Prune removed every file dropped a minute ago when the
// clock jumped two days ahead, with dropped_max_age 1h (and past keep,
// the pruneGrace of the last minutes went too).
func TestPruneClockStepForward(t *testing.T) {
	q := openQ(t)
	started := time.Now()
	var keys []string
	for i := range 3 {
		p := mkPath(fmt.Sprintf("d-%d", i))
		e := &Entry{Target: "main", Path: p.String(), Queued: started, key: Key("main", p)}
		if err := q.Drop(e, "gone"); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.key)
	}
	// An hour old when the worker started: old by both measures.
	before := started.Add(-2 * time.Hour)
	if err := os.Chtimes(q.path(droppedDir, keys[0]), before, before); err != nil {
		t.Fatal(err)
	}
	// The worker has run a minute by the monotonic clock; the wall
	// clock says two days.
	stepped := started.Round(0).Add(48 * time.Hour)
	n, err := q.Prune(1, time.Hour, stepped, started, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if left := ls(t, q.path(droppedDir)); n != 1 || len(left) != 2 {
		t.Errorf("Prune removed %d, left %q; want only the file older than an hour when the worker started removed", n, left)
	}
	// Without the worker's measure, the wall clock decides.
	if n, err := q.Prune(0, time.Hour, stepped, time.Time{}, 0); err != nil || n != 2 {
		t.Errorf("by the wall clock alone: removed %d, %v; want 2", n, err)
	}
}

// A file Prune cannot remove (a directory someone moved into dropped/,
// a file with the immutable attribute) does not keep the others: they
// go, and the error names the one that stayed. Prune stopped at it, and
// nothing past it in dropped/, nor anything in corrupt/, was pruned
// again.
func TestPruneGoesPastWhatItCannotRemove(t *testing.T) {
	q := openQ(t)
	now := time.Now()
	for _, d := range []string{droppedDir, corruptDir} {
		if err := os.MkdirAll(q.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	stuck := q.path(droppedDir, "stuck")
	if err := os.MkdirAll(filepath.Join(stuck, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	files := []string{stuck}
	for i, d := range []string{droppedDir, droppedDir, corruptDir} {
		name := q.path(d, fmt.Sprintf("x.%d", i))
		if err := os.WriteFile(name, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	// The directory is the newest: removed first.
	for i, name := range files {
		when := now.Add(-time.Duration(i+2) * time.Hour)
		if err := os.Chtimes(name, when, when); err != nil {
			t.Fatal(err)
		}
	}
	n, err := q.Prune(0, time.Hour, now, time.Time{}, 0)
	if err == nil || !strings.Contains(err.Error(), stuck) {
		t.Errorf("Prune error %v, want one naming %s", err, stuck)
	}
	if n != 3 {
		t.Errorf("Prune removed %d, want 3", n)
	}
	if left := ls(t, q.path(droppedDir)); len(left) != 1 || left[0] != "stuck" {
		t.Errorf("dropped/ after Prune: %q, want the directory alone", left)
	}
	if left := ls(t, q.path(corruptDir)); len(left) != 0 {
		t.Errorf("corrupt/ after Prune: %q, want it empty", left)
	}
}
