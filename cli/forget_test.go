package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Paths queued together (push, a derivation's outputs) share a bulk file.
// Removing the first one replaces that file by one under a new name:
// forget said it forgot the others too, while they stayed queued there,
// to be pushed.
func TestForgetBulkEntries(t *testing.T) {
	q, file := mainQueue(t)
	var pairs []queue.Pair
	for _, s := range []string{
		"/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-one-1.0",
		"/nix/store/b9r346p3d25vs4g5v37f3r3f28js97kb-two-1.0",
		"/nix/store/c9r346p3d25vs4g5v37f3r3f28js97kb-three-1.0",
	} {
		p, err := storepath.Parse("/nix/store", s)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, queue.Pair{Target: "main", Path: p})
	}
	if n, err := q.Add(pairs, time.Now()); err != nil || n != len(pairs) {
		t.Fatalf("Add = %d, %v", n, err)
	}
	e, _, out := loadedEnv(t, file)
	if st := runForget(e, &forgetOptions{target: "main"}); st != 0 {
		t.Fatalf("forget --target main exited %d:\n%s", st, out)
	}
	if n := strings.Count(out.String(), "forgot queued "); n != len(pairs) {
		t.Errorf("forget said %d forgotten, want %d:\n%s", n, len(pairs), out)
	}
	left, _, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range left {
		t.Errorf("still queued after forget said so: %s -> %s", en.Path, en.Target)
	}
}

// A pair queued twice (by the hook, then by push; by two pushes) has a
// copy in each file that holds it, one of them an entry file of its own:
// forget said it forgot the pair, and removed one copy, leaving the
// other to be pushed.
func TestForgetPairQueuedTwice(t *testing.T) {
	q, file := mainQueue(t)
	mk := func(s string) storepath.Path { return mustParse(t, s) }
	a := mk("/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-one-1.0")
	b := mk("/nix/store/b9r346p3d25vs4g5v37f3r3f28js97kb-two-1.0")
	c := mk("/nix/store/c9r346p3d25vs4g5v37f3r3f28js97kb-three-1.0")
	for _, pairs := range [][]queue.Pair{
		{{Target: "main", Path: a}, {Target: "main", Path: b}},
		{{Target: "main", Path: a}, {Target: "main", Path: c}},
		{{Target: "main", Path: b}}, // an entry file
	} {
		if _, err := q.Add(pairs, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e, _, out := loadedEnv(t, file)
	if st := runForget(e, &forgetOptions{target: "main"}); st != 0 {
		t.Fatalf("forget --target main exited %d:\n%s", st, out)
	}
	if n := strings.Count(out.String(), "forgot queued "); n != 3 {
		t.Errorf("forget said %d forgotten, want 3:\n%s", n, out)
	}
	left, _, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range left {
		t.Errorf("still queued after forget said so: %s -> %s", en.Path, en.Target)
	}
}

// hookWriter queues a pair at forget's first line, as a hook would while
// forget holds the worker lock, and checks that the lock is taken then.
type hookWriter struct {
	t      *testing.T
	q      *queue.Queue
	pair   queue.Pair
	list   storepath.Path // when set, a package list recorded instead
	queued bool
	out    strings.Builder
}

func (w *hookWriter) Write(p []byte) (int, error) {
	if !w.queued {
		w.queued = true
		if running, err := w.q.WorkerRunning(); err != nil || !running {
			w.t.Errorf("the worker lock is free while forget removes entries (%v): a hook would start a worker itself", err)
		}
		if w.list != (storepath.Path{}) {
			if err := w.q.AddUnreadList(w.list, "cannot be read now", 0, time.Now()); err != nil {
				w.t.Error(err)
			}
		} else if _, err := w.q.Add([]queue.Pair{w.pair}, time.Now()); err != nil {
			w.t.Error(err)
		}
	}
	return w.out.Write(p)
}

// forget holds the worker lock while it removes entries: a hook that
// queues meanwhile finds it taken and starts no worker, counting on the
// holder. forget then starts one, as a worker leaving does; it starts
// none when nothing came.
func TestForgetStartsAWorkerForWhatCameMeanwhile(t *testing.T) {
	q, file := mainQueue(t)
	mk := func(s string) storepath.Path { return mustParse(t, s) }
	a := mk("/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-one-1.0")
	b := mk("/nix/store/b9r346p3d25vs4g5v37f3r3f28js97kb-two-1.0")
	for _, meanwhile := range []bool{false, true} {
		if _, err := q.Add([]queue.Pair{{Target: "main", Path: a}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		e, _, _ := loadedEnv(t, file)
		hook := &hookWriter{t: t, q: q, pair: queue.Pair{Target: "main", Path: b}, queued: !meanwhile}
		e.stdout = hook
		started := 0
		e.ensureWorker = func(*config.Config, *queue.Queue) error { started++; return nil }
		if st := runForget(e, &forgetOptions{target: "main"}); st != 0 {
			t.Fatalf("forget --target main exited %d:\n%s", st, hook.out.String())
		}
		if want := map[bool]int{false: 0, true: 1}[meanwhile]; started != want {
			t.Errorf("queued meanwhile %v: forget started %d workers, want %d", meanwhile, started, want)
		}
		if _, ok := q.Get(queue.Key("main", b)); ok != meanwhile {
			t.Errorf("queued meanwhile %v: the pair the hook queued is queued %v", meanwhile, ok)
		}
	}
}

// A package list the hook could not read, recorded while forget holds
// the lock, is work for a worker as an entry is: forget started none for
// it, and the list waited for the next build's hook.
func TestForgetStartsAWorkerForAListRecordedMeanwhile(t *testing.T) {
	q, file := mainQueue(t)
	a := mustParse(t, "/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-one-1.0")
	list := mustParse(t, "/nix/store/c9r346p3d25vs4g5v37f3r3f28js97kb-cachix-packages-dev")
	if _, err := q.Add([]queue.Pair{{Target: "main", Path: a}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e, _, _ := loadedEnv(t, file)
	hook := &hookWriter{t: t, q: q, list: list}
	e.stdout = hook
	started := 0
	e.ensureWorker = func(*config.Config, *queue.Queue) error { started++; return nil }
	if st := runForget(e, &forgetOptions{target: "main"}); st != 0 {
		t.Fatalf("forget --target main exited %d:\n%s", st, hook.out.String())
	}
	if started != 1 {
		t.Errorf("forget started %d workers for the list recorded meanwhile, want 1", started)
	}
	if names, _ := q.UnreadListNames(); len(names) != 1 {
		t.Errorf("lists to read again = %q; forget is to leave them to the worker", names)
	}
}

// mustParse parses a store path of /nix/store, failing the test if it
// does not parse.
func mustParse(t *testing.T, s string) storepath.Path {
	t.Helper()
	p, err := storepath.Parse("/nix/store", s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
