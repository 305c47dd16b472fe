package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// fencedWatch starts q's watch, stopped when the test ends, and sends
// on fences the name of each fence-* file it sees in the queue directory.
func fencedWatch(t *testing.T, q *Queue) (changed <-chan struct{}, fences <-chan string) {
	t.Helper()
	seen := make(chan string, 16)
	q.notified = func(name string) {
		if strings.HasPrefix(filepath.Base(name), "fence-") {
			seen <- filepath.Base(name)
		}
	}
	changed, stop := q.Notify()
	t.Cleanup(stop)
	if changed == nil {
		t.Fatal("no inotify watch")
	}
	return changed, seen
}

// bulk/ and pins/ come with their first file: a watch started before
// that still wakes for it, and for what comes after, while the queue
// directory's own files (worker.log) do not wake it.
func TestNotifyWatchesDirectoriesMadeLater(t *testing.T) {
	q := openQ(t)
	if _, err := os.Stat(q.path(bulkDir)); err == nil {
		t.Fatal("bulk/ exists before the first bulk file: the test does not hold")
	}
	// A fence is a file of the queue directory, which wakes nothing:
	// once the watch has seen it, it has seen and acted on everything
	// done before it (inotify keeps their order).
	changed, fences := fencedWatch(t, q)
	fence := func(name string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(q.Dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-fences:
			if got != name {
				t.Fatalf("the watch saw %s, want %s", got, name)
			}
		case <-time.After(eventually.Left(t)):
			t.Fatalf("the watch did not see %s, made in the queue directory", name)
		}
	}
	woke := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(eventually.Left(t)):
			t.Fatalf("no wake for %s", what)
		}
	}
	if err := os.WriteFile(filepath.Join(q.Dir, "worker.log"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fence("fence-1")
	select {
	case <-changed:
		t.Fatal("woken by worker.log in the queue directory")
	default:
	}
	add(t, q, manyPairs(2, "first")...)
	woke("the first bulk file, in a bulk/ made after the watch began")
	// The first Add's late wakes, taken before the second Add.
	fence("fence-2")
	select {
	case <-changed:
	default:
	}
	add(t, q, manyPairs(2, "second")...)
	woke("a second bulk file")
}

// A package list the hook records for the worker to read again wakes a
// worker (or wait) that watches the queue, as an entry does: lists/ was
// not watched, so the list waited for the worker's next look.
func TestNotifyWakesForUnreadList(t *testing.T) {
	q := openQ(t)
	changed, fences := fencedWatch(t, q)
	list := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "cachix-packages-dev")
	if err := q.AddUnreadList(list, "cannot be read now", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Once the watch has seen the fence, it has acted on the record
	// (inotify keeps their order).
	if err := os.Mkdir(filepath.Join(q.Dir, "fence-1"), 0o700); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fences:
	case <-time.After(eventually.Left(t)):
		t.Fatal("the watch did not see its fence")
	}
	select {
	case <-changed:
	default:
		t.Fatal("no wake for a package list recorded in lists/")
	}
}
