package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds/fdstest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// A list the hook could not read (it recorded it in lists/) is read again
// by the worker: still unreadable, it waits for a back-off; readable, what
// it selects is queued and pushed with no push by hand, and the record
// goes.
func TestRunUnreadListQueued(t *testing.T) {
	fakeStore(t)
	on := mkTarget(t, "on", nil, []string{"secret-*"})
	on.PackageLists = true
	e := newEnv(t, on)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	ps := build(t, "app-1", "secret-1")
	list := writeList(t, "cachix-packages-dev", nil, ps...)
	if err := e.q.AddUnreadList(list, "package list cannot be read now: too many open files", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"on": f})
	// Read out of descriptors before the worker runs: its goroutines
	// would find none either, or close one for the read.
	starvedL, starvedErr := fdstest.Starved(t, func() (*pkglist.List, error) { return pkglist.Read(list) })
	reads := 0
	w.readList = func(p storepath.Path) (*pkglist.List, error) {
		reads++
		if reads == 1 {
			return starvedL, starvedErr
		}
		return pkglist.Read(p)
	}
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want the list left for a retry\n%s", err, e.log.String())
	}
	u, err := e.q.ReadUnreadList(list.Hash)
	if err != nil || u.Attempts != 1 || !u.NextAttempt.After(time.Now()) || !strings.Contains(u.LastError, "too many open files") {
		t.Fatalf("record after a failed read = %+v, %v", u, err)
	}
	if calls, _ := f.Calls(); len(calls) != 0 {
		t.Errorf("pushed %q before the list was read", calls)
	}
	// Due now.
	u.NextAttempt = time.Now().Add(-time.Second)
	if err := e.q.UpdateUnreadList(u); err != nil {
		t.Fatal(err)
	}
	if err := run(t, e.worker(map[string]*fakePusher{"on": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(ps[0])) {
		t.Errorf("pusher calls = %q, want app alone (secret denied)\n%s", calls, e.log.String())
	}
	if names, err := e.q.UnreadListNames(); err != nil || len(names) != 0 {
		t.Errorf("lists to read again = %q, %v; want none", names, err)
	}
}

// A list refused for good (malformed: a store path never changes) is
// dropped at once with its reason, not read again for ever; one still
// unreadable after maxListAttempts reads is dropped with its last error.
func TestRunUnreadListDropped(t *testing.T) {
	e, _ := listsEnv(t, true)
	app := build(t, "app-1")[0]
	bad := writeList(t, "cachix-packages-bad", nil, app)
	file, _ := os.Readlink(filepath.Join(bad.String(), "manifest.nix"))
	os.Chmod(file, 0o644)
	if err := os.WriteFile(file, []byte(pkglist.Magic+"\n/etc/shadow\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	stuck := writeList(t, "cachix-packages-stuck", nil, app)
	start := time.Now().Add(-time.Second)
	for _, l := range []storepath.Path{bad, stuck} {
		if err := e.q.AddUnreadList(l, "cannot be read now", 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	u, err := e.q.ReadUnreadList(stuck.Hash)
	if err != nil {
		t.Fatal(err)
	}
	u.Attempts = maxListAttempts - 1
	if err := e.q.UpdateUnreadList(u); err != nil {
		t.Fatal(err)
	}
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"on": f})
	w.readList = func(p storepath.Path) (*pkglist.List, error) {
		if p == stuck {
			return nil, fmt.Errorf("package list %s %w: input/output error", p, pkglist.ErrUnreadable)
		}
		return pkglist.Read(p)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	for l, want := range map[storepath.Path]string{bad: "is malformed", stuck: "could not be read in 12 attempts: package list " + stuck.String() + " cannot be read now: input/output error"} {
		d, ok := e.q.Dropped(queue.Key("on", l), start, 0)
		if !ok || !strings.Contains(d.Reason, want) {
			t.Errorf("%s: dropped %v, %+v; want a reason with %q", l.Name, ok, d, want)
		}
	}
	if names, err := e.q.UnreadListNames(); err != nil || len(names) != 0 {
		t.Errorf("lists to read again = %q, %v; want none", names, err)
	}
	if calls, _ := f.Calls(); len(calls) != 0 {
		t.Errorf("pushed %q", calls)
	}
}

// A list whose read keeps failing while its record cannot be rewritten
// (tmp/, where the record is written first, unusable: a full disk) was
// read again each retry_initial with its old count, never reaching
// maxListAttempts: retried for ever, never dropped. The count is kept in
// memory too, and the list is dropped once the drop can be written.
func TestUnreadListCountedWhenItsRecordCannotBeRewritten(t *testing.T) {
	e, _ := listsEnv(t, true)
	app := build(t, "app-1")[0]
	stuck := writeList(t, "cachix-packages-stuck", nil, app)
	start := time.Now().Add(-time.Second)
	if err := e.q.AddUnreadList(stuck, "cannot be read now", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	w := e.worker(map[string]*fakePusher{"on": {}})
	w.readList = func(p storepath.Path) (*pkglist.List, error) {
		return nil, fmt.Errorf("package list %s %w: input/output error", p, pkglist.ErrUnreadable)
	}
	tmp := filepath.Join(e.q.Dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for range maxListAttempts {
		_, next := w.unreadLists(now)
		if next.After(now) {
			now = next
		}
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	w.unreadLists(now.Add(24 * time.Hour))
	if d, ok := e.q.Dropped(queue.Key("on", stuck), start, 0); !ok || !strings.Contains(d.Reason, "could not be read in") {
		t.Errorf("dropped %v, %+v; want the list dropped after %d failed reads\n%s", ok, d, maxListAttempts, e.log.String())
	}
	if names, _ := e.q.UnreadListNames(); len(names) != 0 {
		t.Errorf("lists/ holds %q; want the record gone with its drop", names)
	}
}

// lists/ is looked at every round, a second apart: a listing that kept
// failing was logged at each, and worker.log grew by a line a second.
// It is logged once, and again once it changed.
func TestUnreadListsListingFailureLoggedOnce(t *testing.T) {
	e, _ := listsEnv(t, true)
	w := e.worker(map[string]*fakePusher{"on": {}})
	lists := filepath.Join(e.q.Dir, "lists")
	os.RemoveAll(lists)
	if err := os.WriteFile(lists, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		w.unreadLists(time.Now())
	}
	if n := strings.Count(e.log.String(), "listing the package lists to read again"); n != 1 {
		t.Errorf("the failing listing logged %d times in 5 rounds, want once:\n%s", n, e.log.String())
	}
}

// The line of a list read again says what it queued and skipped, by name
// (bounded, as the hook's line), not counts alone: every message says
// what will be uploaded.
func TestUnreadListLineNamesPaths(t *testing.T) {
	fakeStore(t)
	on := mkTarget(t, "on", nil, []string{"secret-*"})
	on.PackageLists = true
	e := newEnv(t, on)
	ps := build(t, "app-1", "app-2", "app-3", "app-4", "app-5", "app-6", "app-7", "secret-1")
	list := writeList(t, "cachix-packages-dev", nil, ps...)
	if err := e.q.AddUnreadList(list, "cannot be read now", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	w := e.worker(map[string]*fakePusher{"on": {}})
	w.unreadLists(time.Now())
	var line string
	for _, l := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(l, "read a package list again") {
			line = l
		}
	}
	for _, want := range []string{"app-1, app-2, app-3, app-4, app-5 and 2 more -> on", `secret-1: deny \"secret-*\"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

// A list's back-off is a wall-clock time from disk, its record's or its
// file's time (queue.UnreadList's mark on a full disk): one stamped
// before the clock went back, or a file time set ahead (touch -d, a
// restore), held the list unread for as long, though an entry's or a
// pin's is cut to queue.retry_max. It is cut too, from when first seen.
func TestUnreadListBackOffCutToRetryMax(t *testing.T) {
	e, _ := listsEnv(t, true)
	app := build(t, "app-1")[0]
	list := writeList(t, "cachix-packages-ahead", nil, app)
	if err := e.q.AddUnreadList(list, "cannot be read now", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(e.q.Dir, "lists", list.Hash), time.Time{}, time.Now().Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.cfg.Queue.RetryMax = time.Hour
	w := e.worker(map[string]*fakePusher{"on": {}})
	reads := 0
	w.readList = func(p storepath.Path) (*pkglist.List, error) {
		reads++
		return nil, fmt.Errorf("package list %s %w: input/output error", p, pkglist.ErrUnreadable)
	}
	now := time.Now()
	if left, next := w.unreadLists(now); !left || reads != 0 || next.Sub(now) > time.Hour {
		t.Errorf("first round: left %v, read %d times, next in %v; want it left, unread, for at most retry_max", left, reads, next.Sub(now))
	}
	w.unreadLists(now.Add(time.Hour + time.Second))
	if reads != 1 {
		t.Errorf("read %d times once retry_max passed, want once\n%s", reads, e.log.String())
	}
}
