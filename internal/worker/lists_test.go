package worker

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist/pkglisttest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// fakeListRefs is what the fake nix says a package list in the fake store
// refers to: the paths its file names, but those whose name says
// "textonly" (named as text, which Nix would not find as references).
// nil for a path that is no list.
func fakeListRefs(p string) []string {
	data, err := os.ReadFile(filepath.Join(p, "manifest.nix"))
	if err != nil {
		return nil
	}
	refs := []string{}
	for _, l := range strings.Split(string(data), "\n")[1:] {
		if strings.HasPrefix(l, "/") && !strings.Contains(l, "textonly") {
			refs = append(refs, l)
		}
	}
	return refs
}

// writeList makes a package list in the fake store, naming paths.
func writeList(t *testing.T, name string, targets []string, paths ...storepath.Path) storepath.Path {
	t.Helper()
	d := mkPath(name)
	pkglisttest.Write(t, d, mkPath(name+".list"), targets, paths...)
	return d
}

func (e *env) addListed(t *testing.T, target string, list storepath.Path, paths ...storepath.Path) {
	t.Helper()
	for _, p := range paths {
		if _, err := e.q.Add([]queue.Pair{{Target: target, Path: p, Listed: list.String()}}, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// Right before pushing, the worker checks each listed entry against its
// list: a path the list depends on goes up (and the history names the
// list); one it names as text only, one it no longer names, one for
// another target, one whose list is gone, and one a deny rule matches
// are dropped with their reasons; with package_lists turned off since,
// the reason says so.
func TestRunListed(t *testing.T) {
	fakeStore(t)
	on := mkTarget(t, "on", nil, []string{"secret-*"})
	on.PackageLists = true
	off := mkTarget(t, "off", nil, nil)
	e := newEnv(t, on, off)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "cachix_filter_hook.prom")
	ps := build(t, "app-1", "textonly-1", "secret-1", "later-1", "other-1", "orphan-1")
	app, textonly, secret, later, other, orphan := ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]
	list := writeList(t, "cachix-packages-dev", nil, app, textonly, secret)
	forOff := writeList(t, "cachix-packages-off", []string{"off"}, other)
	gone := writeList(t, "cachix-packages-gone", nil, orphan)
	e.addListed(t, "on", list, app, textonly, secret, later)
	e.addListed(t, "on", forOff, other)
	e.addListed(t, "on", gone, orphan)
	e.addListed(t, "off", list, app)
	if err := os.RemoveAll(gone.String()); err != nil {
		t.Fatal(err)
	}
	f, fOff := &fakePusher{}, &fakePusher{}
	start := time.Now().Add(-time.Second)
	if err := run(t, e.worker(map[string]*fakePusher{"on": f, "off": fOff}), Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(app)) {
		t.Errorf("pusher calls = %q, want app alone\n%s", calls, e.log.String())
	}
	if calls, _ := fOff.Calls(); len(calls) != 0 {
		t.Errorf("the target without package_lists pushed %q", calls)
	}
	for _, tc := range []struct {
		target string
		p      storepath.Path
		want   string
	}{
		{"on", textonly, "named in " + list.String() + " only as text: not in its closure"},
		{"on", secret, `no longer selected: deny "secret-*"`},
		{"on", later, "its package list " + list.String() + " no longer names it"},
		{"on", other, "its package list " + forOff.String() + " names other targets"},
		{"on", orphan, "its package list " + gone.String() + " is no longer in the store"},
		{"off", app, "listed in " + list.String() + ", but package_lists is off for off"},
	} {
		d, ok := e.q.Dropped(queue.Key(tc.target, tc.p), start)
		if !ok || !strings.Contains(d.Reason, tc.want) {
			t.Errorf("%s -> %s: dropped %v, %+v; want a reason with %q", tc.p.Name, tc.target, ok, d, tc.want)
		}
	}
	// A list gone from the store is no verdict of the rules: the path
	// was to go up and could not (wait's exit 3, "lost"); one that no
	// longer names the path is.
	if d, _ := e.q.Dropped(queue.Key("on", orphan), start); !Lost(d.Reason) {
		t.Errorf("%q is not counted as lost", d.Reason)
	}
	if d, _ := e.q.Dropped(queue.Key("on", later), start); Lost(d.Reason) {
		t.Errorf("%q is counted as lost", d.Reason)
	}
	if data, err := os.ReadFile(e.cfg.Metrics.File); err != nil || !strings.Contains(string(data), `cachix_filter_hook_dropped_paths_total{target="on",reason="garbage_collected"} 1`+"\n") {
		t.Errorf("metrics (%v):\n%s", err, data)
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pushed := 0
	for _, r := range recs {
		if r.Outcome == history.Pushed {
			pushed++
			if r.Path != app.String() || r.Listed != list.String() {
				t.Errorf("history: %+v", r)
			}
		}
	}
	if pushed != 1 || !strings.Contains(e.log.String(), "listed_in="+list.String()) {
		t.Errorf("%d pushed in the history; log:\n%s", pushed, e.log.String())
	}
}

// A list that cannot be read for a moment (EMFILE here, EIO on a failing
// disk) is no verdict on it: the entries it chose wait for a retry,
// rather than being dropped for good as a list that cannot be used.
func TestListReadErrorWaits(t *testing.T) {
	fakeStore(t)
	on := mkTarget(t, "on", nil, nil)
	on.PackageLists = true
	e := newEnv(t, on)
	app := build(t, "app-1")[0]
	list := writeList(t, "cachix-packages-dev", nil, app)
	e.addListed(t, "on", list, app)
	entries, _, err := e.q.List()
	if err != nil || len(entries) != 1 {
		t.Fatalf("List = %v, %v", entries, err)
	}
	j := &job{target: on, entries: entries}

	// No descriptor left to open the list's file with.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	low := syscall.Rlimit{Cur: uint64(f.Fd()), Max: old.Max}
	f.Close()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	ls := j.lists(context.Background())
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}

	k := entries[0].Key()
	if why, ok := ls.drop[k]; ok {
		t.Errorf("dropped for good: %s", why)
	}
	if err := ls.wait[k]; err == nil || !strings.Contains(err.Error(), list.String()) {
		t.Errorf("wait = %v, want an error naming %s", err, list)
	}
	reason, _, _, err := j.decide(entries[0], closures{}, ls, nil, newNotes(logrus.NewEntry(logrus.New())))
	if reason != "" || err == nil {
		t.Errorf("decide = %q, %v; want an error: the entry waits", reason, err)
	}
}
