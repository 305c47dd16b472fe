package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// copyPusher prints what nix copy prints: a line, then one per path.
type copyPusher struct{ fakePusher }

func (c *copyPusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	fmt.Fprintf(out, "copying %d paths...\n", len(paths))
	for _, p := range paths {
		fmt.Fprintf(out, "copying path '%s' to 'file:///tmp/cache'...\n", p)
	}
	return nil
}

// A batch of 2,000 paths adds a line or two to the log at info level,
// whatever the pusher prints per path (issue 22: 10,000 `copying path`
// lines, 2.1 MB, went into worker.log for one batch); at debug level the
// per-path lines are there.
func TestPushOutputSummedUp(t *testing.T) {
	for _, level := range []logrus.Level{logrus.InfoLevel, logrus.DebugLevel} {
		t.Run(level.String(), func(t *testing.T) {
			fakeStore(t)
			e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
			e.cfg.Queue.Batch = 10000
			var names []string
			for i := range 2000 {
				names = append(names, fmt.Sprintf("p-%d", i))
			}
			e.add(t, "main", build(t, names...)...)
			w := e.worker(nil)
			w.log.Level = level
			w.pushers["main"] = &copyPusher{}
			if err := run(t, w, Once); err != nil {
				t.Fatalf("Run(Once) = %v", err)
			}
			log := e.log.String()
			lines := strings.Count(log, "\n")
			pushed := ""
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "msg=pushed") {
					pushed = l
				}
			}
			if !strings.Contains(pushed, `output="copying 2000 paths..."`) || !strings.Contains(pushed, "output_lines=2001") || !strings.Contains(pushed, "paths=2000") {
				t.Errorf("the pushed line does not sum up the output: %q", pushed)
			}
			if level == logrus.InfoLevel && lines > 6 {
				t.Errorf("%d lines in the log at info level for one batch, want a few:\n%.2000s", lines, log)
			}
			if level == logrus.DebugLevel && strings.Count(log, "copying path '") != 2000 {
				t.Errorf("%d per-path lines at debug level, want 2000", strings.Count(log, "copying path '"))
			}
		})
	}
}

// The pusher is given only the paths no other path of the batch refers
// to: it uploads their closures, which hold the others (issue 22: nix
// copy of 10,000 paths one by one took 1.5x the copy of their root). Every
// entry of the batch is pushed and recorded as such.
func TestPushGivesRoots(t *testing.T) {
	fakeStore(t)
	main := mkTarget(t, "main", []string{"*"}, nil)
	main.Unsubstitutable = config.UnsubstSkip // facts are read, with the references
	e := newEnv(t, main)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	ps := build(t, "app-withdoc-1.0", "hello-2.12.1-doc", "other-1.0")
	e.add(t, "main", ps...)
	f := &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	calls, _ := f.Calls()
	if len(calls) != 1 || !slices.Equal(calls[0], strs(ps[0], ps[2])) {
		t.Fatalf("pusher calls = %q, want one with the two paths nothing refers to", calls)
	}
	if n, _ := e.q.Names(); len(n) != 0 {
		t.Errorf("entries left: %q", n)
	}
	if !strings.Contains(e.log.String(), "paths=3") || !strings.Contains(e.log.String(), "roots=2") {
		t.Errorf("the pushed line does not say 3 paths from 2 roots:\n%s", e.log)
	}
}

func TestRoots(t *testing.T) {
	es := func(names ...string) []*queue.Entry {
		var out []*queue.Entry
		for _, n := range names {
			out = append(out, &queue.Entry{Path: n})
		}
		return out
	}
	refs := map[string][]string{"a": {"a", "b", "x"}, "b": {"c"}, "d": {"d"}}
	get := func(p string) ([]string, bool) { r, ok := refs[p]; return r, ok }
	for _, tc := range []struct {
		send []string
		want []string
	}{
		{[]string{"a", "b", "c", "d", "e"}, []string{"a", "d", "e"}},
		{[]string{"c", "b"}, []string{"b"}},
		{[]string{"d"}, []string{"d"}},           // refers to itself
		{[]string{"a", "c"}, []string{"a", "c"}}, // c only through b, not sent
	} {
		if got := roots(es(tc.send...), get); !slices.Equal(got, tc.want) {
			t.Errorf("roots(%q) = %q, want %q", tc.send, got, tc.want)
		}
	}
	// Within a root push --closure queued: covered when the root goes,
	// and only by a root that is not itself within another.
	w := func(path, within string) *queue.Entry { return &queue.Entry{Path: path, Within: within} }
	for _, tc := range []struct {
		send []*queue.Entry
		want []string
	}{
		{[]*queue.Entry{w("r", ""), w("x", "r"), w("y", "r")}, []string{"r"}},
		{[]*queue.Entry{w("x", "r"), w("y", "r")}, []string{"x", "y"}},
		{[]*queue.Entry{w("p", "q"), w("q", "p")}, []string{"p", "q"}},
	} {
		if got := roots(tc.send, nil); !slices.Equal(got, tc.want) {
			t.Errorf("roots = %q, want %q", got, tc.want)
		}
	}
	if got := roots(es("a", "b"), nil); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("roots without references = %q", got)
	}
}

// What push learnt of a path from Nix as it queued it comes with the
// entry: the worker asks Nix nothing more for it (issue 22: the worker's
// path-info of 10,000 paths push had just asked about); without it, the
// worker asks.
func TestRunUsesQueuedFacts(t *testing.T) {
	fakeStore(t)
	main := mkTarget(t, "main", []string{"*"}, nil)
	main.Unsubstitutable = config.UnsubstSkip // the rules read facts
	e := newEnv(t, main)
	bin := t.TempDir()
	called := filepath.Join(t.TempDir(), "called")
	if err := os.WriteFile(filepath.Join(bin, "nix"), []byte("#!/bin/sh\necho \"$@\" >> "+called+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg.Nix.BinDir = bin
	ps := build(t, "a-1.0", "b-1.0")
	pairs := []queue.Pair{
		{Target: "main", Path: ps[0], Facts: &queue.Facts{NarSize: 100}},
		{Target: "main", Path: ps[1], Facts: &queue.Facts{NarSize: 200}, Within: ps[0].String()},
	}
	if _, err := e.q.Add(pairs, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	f := &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log)
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(ps[0])) {
		t.Errorf("pusher calls = %q, want one with the root", calls)
	}
	if b, err := os.ReadFile(called); err == nil {
		t.Errorf("the worker asked Nix: %s", b)
	}
	// Without the facts it asks (here Nix fails: the entry waits).
	e.add(t, "main", build(t, "c-1.0")...)
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want entries left", err)
	}
	if _, err := os.ReadFile(called); err != nil {
		t.Error("the worker did not ask Nix for a path queued without facts")
	}
}
