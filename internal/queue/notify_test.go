package queue

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// bulk/ and pins/ come with their first file: a watch started before
// that still wakes for it, and for what comes after, while the queue
// directory's own files (worker.log) do not wake it.
func TestNotifyWatchesDirectoriesMadeLater(t *testing.T) {
	q := openQ(t)
	if _, err := os.Stat(q.path(bulkDir)); err == nil {
		t.Fatal("bulk/ exists before the first bulk file: the test does not hold")
	}
	changed, stop := q.Notify()
	defer stop()
	if changed == nil {
		t.Fatal("no inotify watch")
	}
	woke := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(eventually.Left(t)):
			t.Fatalf("no wake for %s", what)
		}
	}
	// Written before anything else: a wake from it would be taken below
	// as the bulk file's, and the second Add checks the wake after.
	if err := os.WriteFile(filepath.Join(q.Dir, "worker.log"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case <-changed:
		t.Fatal("woken by worker.log in the queue directory")
	default:
	}
	add(t, q, manyPairs(2, "first")...)
	woke("the first bulk file, in a bulk/ made after the watch began")
	time.Sleep(50 * time.Millisecond) // the wakes of that Add's other steps
	select {
	case <-changed:
	default:
	}
	add(t, q, manyPairs(2, "second")...)
	woke("a second bulk file")
}
