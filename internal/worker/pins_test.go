package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pusher"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/sirupsen/logrus"
)

// calls records pushes and pins in the order they happen.
type calls struct {
	mu   sync.Mutex
	seen []string
	fail error
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, s)
}

func (c *calls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

type orderedPusher struct {
	c      *calls
	target string
}

func (p orderedPusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	p.c.add(fmt.Sprintf("push %s %s", p.target, strings.Join(paths, " ")))
	return nil
}

type fakePinner struct {
	c      *calls
	target string
}

func (p fakePinner) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	p.c.add(fmt.Sprintf("pin %s %s %s %s", p.target, name, path, keep))
	return p.c.fail
}

func (e *env) pinWorker(c *calls) *Worker {
	w := e.worker(nil)
	w.pinInfos = pinStore{}
	for _, t := range e.cfg.Targets {
		w.pushers[t.Name] = orderedPusher{c, t.Name}
	}
	w.newPinner = func(t *config.Target) (pusher.Pinner, error) {
		if t.Store != "" {
			return pusher.NewPinner(e.cfg, t)
		}
		return fakePinner{c, t.Name}, nil
	}
	return w
}

// pinStore is Nix, for the pin's closure rule, over the fake store: a
// path there is valid and refers to what refs says (none by default),
// its size that of size (1 KiB by default).
type pinStore struct {
	refs map[string][]string
	size map[string]int64
}

func (s pinStore) PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]nixstore.PathInfo, error) {
	out := map[string]nixstore.PathInfo{}
	for len(paths) > 0 {
		p := paths[0]
		paths = paths[1:]
		if _, done := out[p]; done {
			continue
		}
		_, err := os.Lstat(p)
		size := s.size[p]
		if size == 0 {
			size = 1 << 10
		}
		out[p] = nixstore.PathInfo{Path: p, Valid: err == nil, NarSize: size, References: s.refs[p]}
		if recursive {
			paths = append(paths, s.refs[p]...)
		}
	}
	return out, nil
}

// setFail makes the pin calls from now on fail with err (nil: succeed).
func (c *calls) setFail(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}

// runPins runs a pinWorker once, its calls recorded in c.
func (e *env) runPins(t *testing.T) (*calls, *Worker) {
	t.Helper()
	c := &calls{}
	w := e.pinWorker(c)
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	return c, w
}

// statePinWorker is a pinWorker with its state on disk, whose pin calls
// fail with fail (nil: succeed).
func (e *env) statePinWorker(fail error) (*calls, *Worker) {
	c := &calls{fail: fail}
	w := e.pinWorker(c)
	w.state = LoadState(e.q.Dir)
	return c, w
}

// rootInBatch scans and starts the batch of main that pushes root alone.
func rootInBatch(t *testing.T, e *env, w *Worker, root storepath.Path) (key string, j *job) {
	t.Helper()
	w.scan(time.Now())
	key = queue.Key("main", root)
	s := w.idx.slots[key]
	if s == nil {
		t.Fatal("the root's entry is not known")
	}
	j = w.startJob(e.cfg.Targets[0], []pick{{key, s}}, false)
	if j == nil {
		t.Fatal("no job")
	}
	return key, j
}

// leftUpstream finishes j as a batch that left key out: an upstream has it.
func leftUpstream(w *Worker, j *job, key string) {
	w.finish(&result{job: j, upstream: j.entries, reasons: map[string]string{key: "already in https://upstream.example"},
		kinds: map[string]string{}, undecided: map[*queue.Entry]error{}, notes: newNotes(w.log.WithField("target", "main"))})
}

func (e *env) pin(t *testing.T, target string, root storepath.Path, name string, keep queue.Keep) {
	t.Helper()
	if _, err := e.q.AddPins([]queue.Pin{{Target: target, Path: root.String(), Name: name, Keep: keep}}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// lastPinDrop is the reason of the last pin drop the history of dir
// records, "" for none.
func lastPinDrop(t *testing.T, dir string) string {
	t.Helper()
	recs, err := history.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	why := ""
	for _, r := range recs {
		if r.Outcome == history.PinDropped {
			why = r.Reason
		}
	}
	return why
}

func TestRunPinsAfterThePush(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil), mkTarget(t, "work", []string{"*"}, nil))
	root := build(t, "system-1")[0]
	e.add(t, "main", root)
	e.add(t, "work", root)
	keep := queue.Keep{Revisions: 3}
	e.pin(t, "main", root, "host-system", keep)
	e.pin(t, "work", root, "host-system", keep)
	c, _ := e.runPins(t)
	// Targets push beside each other, so one target may push and pin
	// before the other pushes: what holds is that each target pins once,
	// after its own push, and pushes once.
	got := c.list()
	if len(got) != 4 {
		t.Fatalf("calls = %q, want a push and then a pin for each target", got)
	}
	for _, target := range []string{"main", "work"} {
		push := slices.Index(got, "push "+target+" "+root.String())
		pin := slices.Index(got, "pin "+target+" host-system "+root.String()+" --keep-revisions 3")
		if push < 0 || pin < 0 || pin < push {
			t.Errorf("calls = %q, want %s's push and then its pin", got, target)
		}
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left after they were made: %q", names)
	}
	if st := LoadState(e.q.Dir).Targets["main"]; st == nil || st.Pinned != 1 {
		t.Errorf("state of main = %+v, want 1 pinned", st)
	}
	recs, _ := history.Read(e.q.Dir)
	pinned := 0
	for _, r := range recs {
		if r.Outcome == history.Pinned && r.Pin == `"host-system" --keep-revisions 3` {
			pinned++
		}
	}
	if pinned != 2 {
		t.Errorf("history has %d pinned records, want 2: %+v", pinned, recs)
	}
}

// A root pushed before (no entry queued) is pinned at once; one whose
// entry is dropped is not pinned, and the pin says why.
func TestRunPinWithoutEntryAndDroppedRoot(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	done := build(t, "done-1")[0]
	secret := build(t, "secret-1")[0]
	e.add(t, "main", secret) // queued before the deny rule; dropped now
	e.pin(t, "main", done, "done", queue.Keep{})
	e.pin(t, "main", secret, "secret", queue.Keep{Forever: true})
	c, _ := e.runPins(t)
	if got := c.list(); len(got) != 1 || got[0] != "pin main done "+done.String()+" " {
		t.Errorf("calls = %q, want only the pin of the root pushed before", got)
	}
	recs, _ := history.Read(e.q.Dir)
	var why string
	for _, r := range recs {
		if r.Outcome == history.PinDropped && r.Path == secret.String() {
			why = r.Reason
		}
	}
	if !strings.Contains(why, `its root was dropped: no longer selected: deny "secret-*"`) {
		t.Errorf("the dropped root's pin: reason %q", why)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left: %q", names)
	}
}

// push --pin writes the root's entry, then the pin's file: a running
// worker may decide the entry in between. The entry says it is pinned, so
// a root that unsubstitutable leaves out (a NixOS system) still goes to
// the cache it is to be pinned in, and its pin is then made.
func TestRunPinnedEntryDecidedBeforeItsPinFile(t *testing.T) {
	fakeStore(t)
	target := mkTarget(t, "main", []string{"*"}, nil)
	target.Unsubstitutable = config.UnsubstSkip
	e := newEnv(t, target)
	root := build(t, "nixos-system-1")[0]
	pair := queue.Pair{Target: "main", Path: root, Facts: &queue.Facts{NarSize: 1, Deriver: root.String() + ".drv", Substitutes: policy.SubstDenied}, Pinned: true}
	if _, err := e.q.Add([]queue.Pair{pair}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c, _ := e.runPins(t)
	if got := c.list(); len(got) != 1 || got[0] != "push main "+root.String() {
		t.Fatalf("calls = %q, want the root pushed though unsubstitutable", got)
	}
	// The pin's file, written after the entry was decided: made now.
	e.pin(t, "main", root, "system", queue.Keep{})
	if err := run(t, e.pinWorker(c), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if got := c.list(); len(got) != 2 || got[1] != "pin main system "+root.String()+" " {
		t.Errorf("calls = %q, want the pin made after the push", got)
	}
}

// A root queued in bulk, then queued again by push --pin before the
// worker pushed it: the worker keeps the copy it knew first and removes
// the other, which alone says pinned. The root is still read as pinned.
func TestRunPinnedCopyOfKnownBulkEntry(t *testing.T) {
	fakeStore(t)
	target := mkTarget(t, "main", []string{"*"}, nil)
	target.Unsubstitutable = config.UnsubstSkip
	e := newEnv(t, target)
	ps := build(t, "nixos-system-1", "x-1", "y-1")
	root := ps[0]
	facts := &queue.Facts{NarSize: 1, Deriver: root.String() + ".drv", Substitutes: policy.SubstDenied}
	// Every entry with its facts: no Nix is asked (the package's
	// checkPhase has none, and a batch Nix cannot decide waits).
	known := func(p storepath.Path) *queue.Facts {
		return &queue.Facts{NarSize: 1, Deriver: p.String() + ".drv", Substitutes: policy.SubstAllowed}
	}
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Facts: facts}, {Target: "main", Path: ps[1], Facts: known(ps[1])}}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	c := &calls{}
	w := e.pinWorker(c)
	w.scan(time.Now()) // the worker knows the first copy
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Facts: facts, Pinned: true}, {Target: "main", Path: ps[2], Facts: known(ps[2])}}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if got := strings.Join(c.list(), " "); !strings.Contains(got, root.String()) {
		t.Errorf("calls = %q, want the pinned root pushed though unsubstitutable", got)
	}
}

// A failing pin call is kept and backed off; a Once worker leaves it for
// the retry. On a Nix store target a pin is dropped with the reason.
func TestRunPinFailsAndStoreTarget(t *testing.T) {
	fakeStore(t)
	store := mkTarget(t, "local", []string{"*"}, nil)
	store.Cache, store.Store = "", "file:///var/cache/nix"
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil), store)
	root := build(t, "root-1")[0]
	e.pin(t, "main", root, "r", queue.Keep{Days: 7})
	e.pin(t, "local", root, "r", queue.Keep{})
	c := &calls{fail: errors.New("HTTP 500")}
	err := run(t, e.pinWorker(c), Once)
	if !errors.Is(err, ErrLeft) || !strings.HasPrefix(err.Error(), "pins ") {
		t.Fatalf("Run(Once) = %v, want ErrLeft for pins (the failing pin waits; no entry is left)", err)
	}
	pins, _, _ := e.q.ListPins()
	if len(pins) != 1 || pins[0].Target != "main" || pins[0].Attempts != 1 || pins[0].LastError != "HTTP 500" || !pins[0].NextAttempt.After(time.Now()) {
		t.Fatalf("pins = %+v, want main's, failed once, backed off", pins)
	}
	if st := LoadState(e.q.Dir).Targets["main"]; st == nil || st.PinFailures != 1 {
		t.Errorf("state = %+v, want 1 pin failure", st)
	}
	recs, _ := history.Read(e.q.Dir)
	found := false
	for _, r := range recs {
		found = found || r.Outcome == history.PinDropped && r.Target == "local" && strings.Contains(r.Reason, "is a Nix store")
	}
	if !found {
		t.Errorf("the store target's pin was not dropped with the reason: %+v", recs)
	}
	// retry makes it due; now it succeeds.
	c.fail = nil
	if err := e.q.RequestRetry(); err != nil {
		t.Fatal(err)
	}
	if err := run(t, e.pinWorker(c), Once); err != nil {
		t.Fatalf("Run(Once) after retry = %v", err)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left after the retry: %q", names)
	}
}

func TestRunWritesMetrics(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "cachix_filter_hook.prom")
	ps := build(t, "a-1", "b-1")
	e.add(t, "main", append(ps, mkPath("gone-1"))...)
	if err := run(t, e.worker(map[string]*fakePusher{"main": {}}), Once); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.cfg.Metrics.File)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`cachix_filter_hook_pending{target="main"} 0`,
		`cachix_filter_hook_pushed_paths_total{target="main"} 2`,
		`cachix_filter_hook_dropped_paths_total{target="main",reason="garbage_collected"} 1`,
		`cachix_filter_hook_dropped{target="main"} 1`,
		`cachix_filter_hook_pusher_calls_total{target="main",result="success"} 1`,
		`cachix_filter_hook_pusher_duration_seconds_count{target="main"} 1`,
		"cachix_filter_hook_worker_running 0",
	} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("metrics file lacks %q:\n%s", want, data)
		}
	}
	// The counters survive the worker: the next one starts from them.
	e.add(t, "main", build(t, "c-1")...)
	if err := run(t, e.worker(map[string]*fakePusher{"main": {}}), Once); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(e.cfg.Metrics.File)
	if !strings.Contains(string(data), `cachix_filter_hook_pushed_paths_total{target="main"} 3`+"\n") {
		t.Errorf("the counter started again with the second worker:\n%s", data)
	}
}

// A config that no longer loads shows as config_error 1 (the worker keeps
// the last good one), and the file says so at once.
func TestMetricsConfigError(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "m.prom")
	w := e.worker(nil)
	w.state = LoadState(e.q.Dir)
	w.writeMetrics(time.Now(), true)
	w.watch = &configWatch{} // as a worker that follows its file
	w.saveWorkerInfo("hook.conf: unknown key \"alow\"")
	w.writeMetrics(time.Now(), true)
	data, _ := os.ReadFile(e.cfg.Metrics.File)
	if !strings.Contains(string(data), "cachix_filter_hook_config_error 1\n") || !strings.Contains(string(data), "cachix_filter_hook_worker_running 1\n") {
		t.Errorf("metrics after a config error:\n%s", data)
	}
}

// A pin's back-off written a day ahead (the clock went back after its
// call failed) waits no longer than queue.retry_max, as an entry's does.
func TestRunFuturePinBackoffCutToRetryMax(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.RetryInitial = 50 * time.Millisecond
	e.cfg.Queue.RetryMax = 200 * time.Millisecond
	root := build(t, "root-1")[0]
	e.pin(t, "main", root, "r", queue.Keep{})
	pins, _, err := e.q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins = %+v, %v", pins, err)
	}
	pins[0].Attempts, pins[0].NextAttempt = 1, time.Now().Add(24*time.Hour)
	if err := e.q.UpdatePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	c := &calls{}
	defer runService(t, e.pinWorker(c))()
	waitFor(t, "the pin to be made", func() bool { return len(c.list()) == 1 }, e.log)
}

// A reloaded configuration with a shorter queue.retry_max cuts a failed
// pin's back-off, as it does an entry's.
func TestCapBackoffsCutsPins(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	now := time.Now()
	p := &queue.Pin{Target: "main", Path: build(t, "root-1")[0].String(), Name: "r", Attempts: 3, NextAttempt: now.Add(time.Hour)}
	w.pins[p.Key()] = p
	w.capBackoffs(now, time.Second)
	if p.NextAttempt.After(now.Add(time.Second)) {
		t.Errorf("the pin's back-off ends in %v, want at most the new retry_max (1s)", p.NextAttempt.Sub(now))
	}
}

// A pin's outcome is in the history before its file leaves pins/: wait
// is woken by the removal and reads the history then. Written after,
// `push --pin --wait` could find no pin left and no outcome, and exit 0
// saying nothing of a pin given up on. Both ways a pin leaves: made,
// and dropped.
func TestPinOutcomeRecordedBeforeItsFileGoes(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	done := build(t, "done-1")[0]
	secret := build(t, "secret-1")[0]
	e.add(t, "main", secret) // dropped by the deny rule: its pin with it
	e.pin(t, "main", done, "done", queue.Keep{})
	e.pin(t, "main", secret, "secret", queue.Keep{})
	w := e.pinWorker(&calls{})
	removed := 0
	w.onPinRemoved = func() {
		removed++
		names, _ := e.q.PinNames()
		recs, _ := history.Read(e.q.Dir)
		outcomes := 0
		for _, r := range recs {
			if r.Outcome == history.Pinned || r.Outcome == history.PinDropped {
				outcomes++
			}
		}
		// Each pin gone has its outcome recorded already.
		if gone := 2 - len(names); outcomes < gone {
			t.Errorf("%d pins gone from pins/, %d outcomes in the history: %+v", gone, outcomes, recs)
		}
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if removed != 2 {
		t.Errorf("%d pins removed, want 2", removed)
	}
}

// A pin given up on whose file cannot be removed is given up on again
// each round; its outcome goes in the history once, not once a round:
// wait would report it as many times, and the records would rotate the
// history's other outcomes away.
func TestDroppedPinRecordedOnceWhileItsFileStays(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := build(t, "gone-1")[0]
	e.pin(t, "main", root, "r", queue.Keep{})
	w := e.pinWorker(&calls{})
	w.scanPins()
	names, err := e.q.PinNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("pins = %q, %v", names, err)
	}
	// The file becomes one os.Remove cannot remove, and the root goes.
	file := filepath.Join(e.q.Dir, "pins", names[0])
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(file, "stuck"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(root.String()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.doPins(context.Background(), time.Now())
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, r := range recs {
		if r.Outcome == history.PinDropped {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("%d PinDropped records after three rounds, want 1: %+v", dropped, recs)
	}
	// Once the file can go, it goes, and no record is added.
	if err := os.RemoveAll(file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.doPins(context.Background(), time.Now())
	if _, ok := w.pins[names[0]]; ok {
		t.Error("the pin is still known after its file could be removed")
	}
}

// The same, the pinned copy written one by one (push --pin of a single
// root is an entry file of its own, not a bulk line) while the worker
// knows the bulk copy: the entry file goes as queued twice, and its
// pinned must not go with it.
func TestRunPinnedEntryFileOfKnownBulkEntry(t *testing.T) {
	fakeStore(t)
	target := mkTarget(t, "main", []string{"*"}, nil)
	target.Unsubstitutable = config.UnsubstSkip
	e := newEnv(t, target)
	ps := build(t, "nixos-system-1", "x-1")
	root := ps[0]
	facts := &queue.Facts{NarSize: 1, Deriver: root.String() + ".drv", Substitutes: policy.SubstDenied}
	known := &queue.Facts{NarSize: 1, Deriver: ps[1].String() + ".drv", Substitutes: policy.SubstAllowed}
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Facts: facts}, {Target: "main", Path: ps[1], Facts: known}}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	c := &calls{}
	w := e.pinWorker(c)
	w.scan(time.Now()) // the worker knows the bulk copy
	if n, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Facts: facts, Pinned: true}}, time.Now().Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if got := strings.Join(c.list(), " "); !strings.Contains(got, root.String()) {
		t.Errorf("calls = %q, want the pinned root pushed though unsubstitutable", got)
	}
}

// push --pin writes the root's entry, then the pin: both may land between
// a round's scan and its pins. The pin is read then, but its root's entry
// is not known yet; taken for a root pushed before, it was pinned at once,
// before its closure was in the cache.
func TestPinQueuedAfterTheScanWaitsForItsEntry(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := build(t, "system-1")[0]
	c, w := e.statePinWorker(nil)
	now := time.Now()
	w.scan(now) // the round's scan: nothing queued yet
	e.add(t, "main", root)
	e.pin(t, "main", root, "system", queue.Keep{})
	if left, _ := w.doPins(context.Background(), now); !left {
		t.Error("doPins: no pin left, want the pin waiting for its root's push")
	}
	if got := c.list(); len(got) != 0 {
		t.Fatalf("calls = %q, want none before the root's push", got)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if got := c.list(); len(got) != 2 || got[0] != "push main "+root.String() || got[1] != "pin main system "+root.String()+" " {
		t.Errorf("calls = %q, want the push, then the pin", got)
	}
}

// A pin made whose file cannot be removed is not made again each round:
// read again as a new pin, it was, a cachix pin call (a revision in
// Cachix, a record in the history) every round, and a spawned worker
// never left, the file being new to it at each exit. Its removal is tried
// again, and once the file goes, it goes.
func TestPinMadeWhoseFileStaysIsNotMadeAgain(t *testing.T) {
	e, _, names := donePinned(t)
	undo := unchangeable(t, filepath.Join(e.q.Dir, "pins", names[0]))
	c, w := e.statePinWorker(nil)
	for range 3 {
		// Left while its file stays, its removal tried again: a Once
		// worker that said nothing was left exited 0 with the pin in
		// pins/, which status still showed.
		if left := pinRound(t, w); !left {
			t.Error("doPins: no pin left, want the pin whose file stays")
		}
	}
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Errorf("Run(Once) = %v, want ErrLeft: the pin's file stays", err)
	}
	if got := c.list(); len(got) != 1 {
		t.Errorf("calls = %q, want one pin call", got)
	}
	if w.newPins() {
		t.Error("newPins: the pin made is new to the worker, which would not leave")
	}
	undo()
	pinRound(t, w)
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left once the file can go: %q", names)
	}
	if got := c.list(); len(got) != 1 {
		t.Errorf("calls = %q, want still one pin call", got)
	}
	if st := LoadState(e.q.Dir).Targets["main"]; st == nil || st.Pinned != 1 {
		t.Errorf("state of main = %+v, want 1 pinned", st)
	}
}

// A pin that could not be read for a reason of the moment (here a socket
// in its place, which open refuses) is read again at a later round, and
// made: marked unreadable for good, it waited for the next worker, which
// a worker running as a service never is.
func TestPinUnreadableForAMomentIsMadeLater(t *testing.T) {
	e, root, names := donePinned(t)
	file := filepath.Join(e.q.Dir, "pins", names[0])
	data := socketInPlace(t, file)
	c, w := e.statePinWorker(nil)
	pinRound(t, w)
	if got := c.list(); len(got) != 0 {
		t.Fatalf("calls = %q, want none while the pin cannot be read", got)
	}
	// Readable again.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	pinRound(t, w)
	if got := c.list(); len(got) != 1 || got[0] != "pin main done "+root.String()+" " {
		t.Errorf("calls = %q, want the pin made once it can be read", got)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left: %q", names)
	}
}

// A pin that cannot be read for a reason of the moment (here EIO) is a
// pin all the same: a Once worker (worker --once) that said nothing was
// left exited 0 while it stayed in pins/, to be made by nobody until the
// next worker. It is left; one that is no pin (here a socket) is not
// waited for.
func TestPinUnreadableForAMomentIsLeft(t *testing.T) {
	e, _, names := donePinned(t)
	c, w := e.statePinWorker(nil)
	w.pinReadFails = func(string) error { return syscall.EIO }
	if left := pinRound(t, w); !left {
		t.Error("doPins: no pin left, want the pin unreadable for a moment")
	}
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Errorf("Run(Once) = %v, want ErrLeft: a pin is there, unreadable for a moment", err)
	}
	w.pinReadFails = nil
	socketInPlace(t, filepath.Join(e.q.Dir, "pins", names[0]))
	if err := run(t, w, Once); err != nil {
		t.Errorf("Run(Once) with only a socket in pins/ = %v, want nil", err)
	}
	if got := c.list(); len(got) != 0 {
		t.Errorf("calls = %q, want none", got)
	}
}

// A pin asked for again as the worker drops it, which the drop could not
// link back into pins/ (queue.DropPin leaves it aside in tmp/), was
// linked back only by the next worker's CleanTmp: a worker that kept
// running forgot it, a Once worker said nothing was left, and the pin
// push --pin had said it "will pin" waited for a restart. The worker
// links it back, and it is left until it is.
func TestPinLeftAsideByADropIsLinkedBack(t *testing.T) {
	e, root, names := donePinned(t)
	e.pin(t, "main", root, "done", queue.Keep{}) // asked for again
	// What a drop that could not link it back leaves (queue's pinAside).
	aside := filepath.Join(e.q.Dir, "tmp", "pin-dropped."+names[0])
	if err := os.Rename(filepath.Join(e.q.Dir, "pins", names[0]), aside); err != nil {
		t.Fatal(err)
	}
	c, w := e.statePinWorker(nil)
	if left := pinRound(t, w); !left {
		t.Error("doPins: no pin left, want the pin asked for again left aside")
	}
	pinRound(t, w)
	if got := c.list(); len(got) != 1 || got[0] != "pin main done "+root.String()+" " {
		t.Errorf("calls = %q, want the pin linked back and made", got)
	}
	if _, err := os.Lstat(aside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pin is still aside: %v", err)
	}
}

// pinRound is a round's pins as the loop makes them: doPins, then the
// outcomes of the pin calls it started, which the loop's await takes. It
// returns doPins' left; a call that never ends fails the test.
func pinRound(t *testing.T, w *Worker) bool {
	t.Helper()
	return pinRoundAt(t, w, time.Now())
}

// pinRoundAt is pinRound with the clock at now.
func pinRoundAt(t *testing.T, w *Worker, now time.Time) bool {
	t.Helper()
	left, _ := w.doPins(context.Background(), now)
	for len(w.pinning) > 0 {
		w.pinDone(eventually.Recv(t, eventually.Left(t), "the outcome of a pin call", w.pinResults))
	}
	return left
}

// donePinned is main's queue with one pin, "done" of a built root, the
// root and the name of the pin's file.
func donePinned(t *testing.T) (*env, storepath.Path, []string) {
	t.Helper()
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := build(t, "done-1")[0]
	e.pin(t, "main", root, "done", queue.Keep{})
	names, err := e.q.PinNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("pins = %q, %v", names, err)
	}
	return e, root, names
}

// collectedPinned is main's queue with one pin, "sys" of a root not in
// the store (collected), and the root.
func collectedPinned(t *testing.T) (*env, storepath.Path) {
	t.Helper()
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := mkPath("system-1")
	e.pin(t, "main", root, "sys", queue.Keep{})
	return e, root
}

// backedOffPin is donePinned with a state worker whose calls fail (HTTP
// 401) and whose pin calls go to pinner (nil: the calls c records): the
// pin's first call made and failed, the pin backed off.
func backedOffPin(t *testing.T, pinner func(*calls) pusher.Pinner) (e *env, root storepath.Path, c *calls, w *Worker) {
	t.Helper()
	e, root, _ = donePinned(t)
	c, w = e.statePinWorker(errors.New("HTTP 401"))
	if pinner != nil {
		p := pinner(c)
		w.newPinner = func(*config.Target) (pusher.Pinner, error) { return p, nil }
	}
	pinRound(t, w)
	pins, _, _ := e.q.ListPins()
	if len(pins) != 1 || pins[0].Attempts != 1 || !pins[0].NextAttempt.After(time.Now()) {
		t.Fatalf("pins = %+v, want one failed and backed off", pins)
	}
	return e, root, c, w
}

// pinDueNow fails the test unless the queue's one pin file is due now,
// its attempts counted: asked for again (what says when), it must not
// wait out a back-off.
func pinDueNow(t *testing.T, e *env, attempts int, what string) {
	t.Helper()
	pins, _, _ := e.q.ListPins()
	if len(pins) != 1 || !pins[0].NextAttempt.IsZero() || pins[0].Attempts != attempts {
		t.Fatalf("pin file %s = %+v, want due now, %d attempts", what, pins, attempts)
	}
}

// triedAtOnce makes the pin calls succeed and checks that the next round
// calls the pin, the calls then numbering calls, and leaves no pin.
func triedAtOnce(t *testing.T, e *env, c *calls, w *Worker, calls int) {
	t.Helper()
	c.setFail(nil)
	pinRound(t, w)
	if got := c.list(); len(got) != calls {
		t.Errorf("calls = %q, want the pin asked for again tried at once", got)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left: %q", names)
	}
}

// socketInPlace puts a socket, which open refuses, in the place of file
// (a reason of the moment not to read it), and returns what file held.
func socketInPlace(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(file, syscall.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	return data
}

// A pin whose root is dropped after the clock was stepped back: the
// dropped file is older than the pin by the clock, and the root's drop
// was missed, the pin made. The worker knew the pin when it dropped the
// root: the drop is the pin's.
func TestPinDroppedWithItsRootAfterAClockStep(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	secret := build(t, "secret-1")[0]
	e.add(t, "main", secret) // dropped by the deny rule
	e.pin(t, "main", secret, "secret", queue.Keep{})
	pins, _, err := e.q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins = %+v, %v", pins, err)
	}
	// Queued an hour ahead of the clock: the clock went back an hour
	// after push --pin.
	pins[0].Queued = time.Now().Add(time.Hour)
	if err := e.q.UpdatePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	c, _ := e.runPins(t)
	if got := c.list(); len(got) != 0 {
		t.Errorf("calls = %q, want none: the root was dropped", got)
	}
	why := lastPinDrop(t, e.q.Dir)
	if !strings.Contains(why, `its root was dropped: no longer selected: deny "secret-*"`) {
		t.Errorf("the pin's drop: reason %q", why)
	}
}

// hangingPinner is a cachix whose pin hangs until released (or the worker
// stops).
type hangingPinner struct {
	started chan struct{}
	release chan struct{}
}

func (p hangingPinner) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	close(p.started)
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A pin call that hangs (up to queue.push_timeout, an hour by default)
// ran on the worker's loop: every push of every target waited for it.
// The push of a path queued beside it goes while it hangs.
func TestPinThatHangsHoldsNoPush(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	ps := build(t, "done-1", "next-1")
	e.pin(t, "main", ps[0], "done", queue.Keep{}) // pushed before: pinned at once
	e.add(t, "main", ps[1])
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": f})
	hp := hangingPinner{started: make(chan struct{}), release: make(chan struct{})}
	w.newPinner = func(*config.Target) (pusher.Pinner, error) { return hp, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, Once) }()
	eventually.Recv(t, eventually.Left(t), "the pin call to start", hp.started, e.log.String)
	waitFor(t, "the push beside the hanging pin", func() bool { calls, _ := f.Calls(); return len(calls) == 1 }, e.log)
	close(hp.release)
	if err := eventually.Recv(t, eventually.Left(t), "Run(Once) to return once the pin call ended", done, e.log.String); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left once the pin call ended: %q", names)
	}
}

// push --pin of a root while a batch decides it: its copy, which says
// pinned, is held. The batch did not know of the pin and left the root
// out because an upstream has it; the held copy is then still to be
// decided (a pinned root goes to its cache whatever upstream says), not
// removed as a copy of a pair that went up: the pin was made of a root
// the cache did not have.
func TestHeldPinnedCopyOfRootLeftUpstreamIsPushed(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	ps := build(t, "nixos-system-1", "x-1")
	root := ps[0]
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root}, {Target: "main", Path: ps[1]}}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, w := e.statePinWorker(nil)
	key, j := rootInBatch(t, e, w, root)
	// push --pin meanwhile: the root one by one, then its pin.
	if n, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Pinned: true}}, time.Now()); err != nil || n != 1 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	e.pin(t, "main", root, "system", queue.Keep{})
	w.scan(time.Now().Add(time.Minute)) // the copy is held: the root is busy
	// The batch leaves the root out: an upstream has it.
	leftUpstream(w, j, key)
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	got := c.list()
	push := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "push main ") && strings.Contains(s, root.String()) })
	pin := slices.Index(got, "pin main system "+root.String()+" ")
	if push < 0 || pin < push {
		t.Errorf("calls = %q, want the pinned root pushed, then pinned", got)
	}
}

// deadlinePinner is a cachix whose pin hangs until its context ends, as
// a real one would be killed then. A context with no deadline nearer than
// within fails the call at once, so that a worker that bounds it only by
// the test's own context does not hang the test.
type deadlinePinner struct{ within time.Duration }

func (p deadlinePinner) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > p.within {
		return errors.New("no bound of its own")
	}
	<-ctx.Done()
	return ctx.Err()
}

// A pin is one small API call: bounded only by queue.push_timeout (an
// hour by default, for uploading gigabytes), a cachix hung on it held its
// target's other pins for that long. The call gets a bound of its own
// (here made short), and one that passes it fails and is backed off,
// saying it timed out.
func TestPinCallHasItsOwnTimeout(t *testing.T) {
	e, _, _ := donePinned(t)
	e.cfg.Queue.PushTimeout = time.Hour
	w := e.worker(nil)
	if w.pinTimeout <= 0 || w.pinTimeout > e.cfg.Queue.PushTimeout/10 {
		t.Errorf("pin calls are bounded by %s, want well under push_timeout (%s)", w.pinTimeout, e.cfg.Queue.PushTimeout)
	}
	w.pinTimeout = 10 * time.Millisecond
	w.newPinner = func(*config.Target) (pusher.Pinner, error) { return deadlinePinner{within: time.Minute}, nil }
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want ErrLeft: the pin that timed out waits for a retry", err)
	}
	pins, _, _ := e.q.ListPins()
	if len(pins) != 1 || pins[0].Attempts != 1 || !strings.Contains(pins[0].LastError, "cachix pin timed out after 10ms") {
		for _, p := range pins {
			t.Logf("pin %s: attempts %d, last error %q", p.Key(), p.Attempts, p.LastError)
		}
		t.Fatalf("%d pins, want the pin kept, failed once as timed out", len(pins))
	}
}

// push --pin of a root while a batch decides it: its copy, which says
// pinned, is held. The batch, which did not know of the pin, drops the
// root (here: unsubstitutable); the held copy is then decided as pinned
// and pushed. The pin was dropped with the first copy's drop, though its
// root was then in the cache: it is made.
func TestPinOfRootDroppedWhileACopyIsHeldIsMade(t *testing.T) {
	b := newBusyRoot(t, "nixos-system-1", "x-1")
	// push --pin meanwhile: the root one by one, then its pin.
	if n, err := b.e.q.Add([]queue.Pair{{Target: "main", Path: b.root, Pinned: true}}, time.Now()); err != nil || n != 1 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	b.e.pin(t, "main", b.root, "system", queue.Keep{})
	b.w.scan(b.now.Add(time.Minute)) // the copy is held: the root is busy
	b.w.scanPins()
	b.dropThenWantPushedAndPinned(t)
}

// busyRoot is a worker whose batch decides root (another path queued
// beside it), for the tests of a pin asked for meanwhile.
type busyRoot struct {
	e    *env
	w    *Worker
	c    *calls
	j    *job
	key  string
	root storepath.Path
	ps   []storepath.Path
	now  time.Time
}

func newBusyRoot(t *testing.T, names ...string) *busyRoot {
	t.Helper()
	fakeStore(t)
	b := &busyRoot{e: newEnv(t, mkTarget(t, "main", []string{"*"}, nil)), c: &calls{}, now: time.Now()}
	b.ps = build(t, names...)
	b.root = b.ps[0]
	if _, err := b.e.q.Add([]queue.Pair{{Target: "main", Path: b.root}, {Target: "main", Path: b.ps[1]}}, b.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.w = b.e.pinWorker(b.c)
	b.w.state = LoadState(b.e.q.Dir)
	b.w.scan(b.now)
	b.key = queue.Key("main", b.root)
	s := b.w.idx.slots[b.key]
	if s == nil {
		t.Fatal("the root's entry is not known")
	}
	if b.j = b.w.startJob(b.e.cfg.Targets[0], []pick{{b.key, s}}, false); b.j == nil {
		t.Fatal("no job")
	}
	return b
}

// dropThenWantPushedAndPinned has the batch drop the root, which it did
// not know was pinned (unsubstitutable), runs the worker, and wants the
// root pushed, then pinned.
func (b *busyRoot) dropThenWantPushedAndPinned(t *testing.T) {
	t.Helper()
	for _, en := range b.j.entries {
		en.Reason = "not substitutable (unsubstitutable = \"skip\")"
	}
	b.w.finish(&result{job: b.j, dropped: b.j.entries, reasons: map[string]string{},
		kinds: map[string]string{b.key: "unsubstitutable"}, undecided: map[*queue.Entry]error{}, notes: newNotes(b.w.log.WithField("target", "main"))})
	if err := run(t, b.w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, b.e.log.String())
	}
	got := b.c.list()
	push := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "push main ") && strings.Contains(s, b.root.String()) })
	pin := slices.Index(got, "pin main system "+b.root.String()+" ")
	if push < 0 || pin < push {
		t.Errorf("calls = %q, want the pinned root pushed, then pinned", got)
	}
}

// As TestPinOfRootDroppedWhileACopyIsHeldIsMade, the pinned copy queued in bulk (push --pin of several roots,
// or --closure): removed as a copy of a pair being pushed, its pinned
// reached only the slot, not the batch already deciding the root, which
// dropped it; the pin went with it and was never made. The copy is held
// as a copy written one by one is.
//
// And with a second scan while the batch still runs (a full scan
// every 30 s, or any path queued meanwhile): the first scan had given the
// busy slot the copy's pinned, so the second took the copy for one the
// batch knew, and removed it. The batch then dropped the root without a
// record (a copy was held), and the pin was made of a root never pushed.
func TestPinnedBulkCopyOfBusyRootIsHeld(t *testing.T) {
	for _, scans := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d scans", scans), func(t *testing.T) {
			b := newBusyRoot(t, "nixos-system-1", "x-1", "y-1")
			// push --pin of two roots meanwhile: a bulk file, then the pin.
			if n, err := b.e.q.Add([]queue.Pair{{Target: "main", Path: b.root, Pinned: true}, {Target: "main", Path: b.ps[2], Pinned: true}}, time.Now()); err != nil || n != 2 {
				t.Fatalf("Add = %d, %v", n, err)
			}
			b.e.pin(t, "main", b.root, "system", queue.Keep{})
			for i := 1; i <= scans; i++ {
				b.w.scan(b.now.Add(time.Duration(i) * time.Minute)) // the batch still runs
			}
			b.w.scanPins()
			b.dropThenWantPushedAndPinned(t)
		})
	}
}

// A pin read only after its root was dropped (push --pin writes the
// root's entry, then the pin: the worker may drop the root in between),
// the clock stepped back between push --pin's start and the drop: the
// dropped file is older than the pin by the clock, and the drop was taken
// for an earlier one, the pin made. The worker that dropped the root
// knows by its own order; one that did not (the worker that dropped it
// has gone) by the dropped entry, which says it was queued to be pinned.
func TestPinReadAfterItsRootsDropAfterAClockStep(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("another worker %v", fresh), func(t *testing.T) {
			fakeStore(t)
			e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
			secret := build(t, "secret-1")[0]
			if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: secret, Pinned: true}}, time.Now()); err != nil {
				t.Fatal(err)
			}
			c, w := e.runPins(t) // the root is dropped: denied
			if _, ok := e.q.Dropped(queue.Key("main", secret), time.Time{}, 0); !ok {
				t.Fatal("the root was not dropped")
			}
			// The pin, queued by the clock an hour after the drop: the
			// clock went back an hour after push --pin started.
			if _, err := e.q.AddPins([]queue.Pin{{Target: "main", Path: secret.String(), Name: "secret"}}, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if fresh {
				w = e.pinWorker(c)
			}
			w.state = LoadState(e.q.Dir)
			pinRound(t, w)
			if got := c.list(); len(got) != 0 {
				t.Errorf("calls = %q, want none: the root was dropped", got)
			}
			why := lastPinDrop(t, e.q.Dir)
			if !strings.Contains(why, `its root was dropped: no longer selected: deny "secret-*"`) {
				t.Errorf("the pin's drop: reason %q", why)
			}
		})
	}
}

// push --pin of a single root whose entry file is queued already (the
// hook queued it): Add took the pair for queued and wrote nothing, so its
// pinned was lost. A batch deciding the root meanwhile left it upstream,
// not knowing of the pin, and the pin was then made of a root the cache
// did not have. The pinned copy is queued, held while the root is busy,
// and decided as pinned.
func TestPinnedCopyOfQueuedEntryFileIsKept(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := build(t, "nixos-system-1")[0]
	if n, err := e.q.Add([]queue.Pair{{Target: "main", Path: root}}, time.Now().Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	c, w := e.statePinWorker(nil)
	key, j := rootInBatch(t, e, w, root)
	// push --pin meanwhile: the root one by one, then its pin.
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Pinned: true}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.pin(t, "main", root, "system", queue.Keep{})
	w.scan(time.Now().Add(time.Minute))
	leftUpstream(w, j, key)
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
	}
	got := c.list()
	push := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "push main ") && strings.Contains(s, root.String()) })
	pin := slices.Index(got, "pin main system "+root.String()+" ")
	if push < 0 || pin < push {
		t.Errorf("calls = %q, want the pinned root pushed, then pinned", got)
	}
}

// stopPinner is a cachix whose pin succeeds as the worker is told to stop.
type stopPinner struct{ stop context.CancelFunc }

func (p stopPinner) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	p.stop()
	return nil
}

// A pin call that succeeded as the worker was stopping was taken for one
// cut short: its file stayed, and the next worker made the pin again. It
// was made: it is recorded, and its file goes.
func TestPinMadeAsTheWorkerStopsIsNotMadeAgain(t *testing.T) {
	e, _, _ := donePinned(t)
	w := e.pinWorker(&calls{})
	w.state = LoadState(e.q.Dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.newPinner = func(*config.Target) (pusher.Pinner, error) { return stopPinner{cancel}, nil }
	w.doPins(ctx, time.Now())
	w.drain()
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left after the pin was made: %q", names)
	}
	if st := LoadState(e.q.Dir).Targets["main"]; st == nil || st.Pinned != 1 {
		t.Errorf("state of main = %+v, want 1 pinned", st)
	}
}

// A root dropped while pinned, then pushed once the rules let it (by the
// hook, unpinned), and pinned later by push --pin, which finds it pushed
// before and queues the pin alone: the earlier drop is not this pin's,
// whether the worker that dropped the root reads the pin or a new one
// finds the dropped entry (kept for queue.dropped_max_age).
func TestPinOfRootPushedAfterAnEarlierDropIsMade(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("another worker %v", fresh), func(t *testing.T) {
			fakeStore(t)
			e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"app-*"}))
			e.cfg.Queue.RememberPushed = 720 * time.Hour
			app := build(t, "app-1")[0]
			if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: app, Pinned: true}}, time.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			c, w := e.runPins(t) // dropped: denied
			if d, ok := e.q.Dropped(queue.Key("main", app), time.Time{}, 0); !ok || !d.Pinned {
				t.Fatalf("dropped %v, %+v; want the pinned root dropped", ok, d)
			}
			// The deny rule goes; the hook queues the root again and
			// the worker pushes it.
			*e.cfg.Targets[0] = *mkTarget(t, "main", []string{"*"}, nil)
			e.add(t, "main", app)
			if err := run(t, w, Once); err != nil {
				t.Fatalf("Run(Once) = %v\n%s", err, e.log.String())
			}
			if got := c.list(); len(got) != 1 || got[0] != "push main "+app.String() {
				t.Fatalf("calls = %q, want the root pushed", got)
			}
			// push --pin: pushed before, so only the pin is queued.
			e.pin(t, "main", app, "app", queue.Keep{})
			if fresh {
				w = e.pinWorker(c)
			}
			w.state = LoadState(e.q.Dir)
			pinRound(t, w)
			if got := c.list(); len(got) != 2 || got[1] != "pin main app "+app.String()+" " {
				t.Errorf("calls = %q, want the root pinned: it is in the cache\n%s", got, e.log.String())
			}
		})
	}
}

// A worker keeps how it decided each pinned root only while a pin names
// it: one that pins every build (a CI runner's push --pin) kept one
// outcome per root for its life. A pin of a root read after its outcome
// was forgotten goes by dropped/ (see TestPinReadAfterItsRootsDropAfterAClockStep).
func TestRootOutcomesForgottenOnceNoPinNamesThem(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	roots := build(t, "system-1", "system-2", "system-3")
	for _, r := range roots {
		if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: r, Pinned: true}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		e.pin(t, "main", r, "system", queue.Keep{})
	}
	c, w := e.runPins(t)
	if names, _ := e.q.PinNames(); len(names) != 0 || len(c.list()) != 4 {
		t.Fatalf("pins left: %q; calls %q, want the roots pushed and each pinned", names, c.list())
	}
	if len(w.rootOutcomes) != 0 {
		t.Errorf("the worker still keeps %d outcomes of roots no pin names: %v", len(w.rootOutcomes), w.rootOutcomes)
	}
}

// A root dropped by an earlier push --pin, then pushed (push --force, or
// the rules changed), then pinned again: push --pin finds it pushed and
// queues only the pin. The dropped entry of the first, which says pinned,
// was taken for the new pin's drop, and the pin dropped with its old
// reason though the root is in the cache.
func TestPinOfRootPushedAfterAnEarlierPinnedDrop(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := build(t, "system-1")[0]
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Pinned: true}}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	es, _, err := e.q.List()
	if err != nil || len(es) != 1 {
		t.Fatalf("List = %v, %v", es, err)
	}
	if err := e.q.Drop(es[0], "no longer selected: deny \"system-*\""); err != nil {
		t.Fatal(err)
	}
	e.add(t, "main", root) // push --force, the deny rule gone
	c, _ := e.runPins(t)
	e.pin(t, "main", root, "system", queue.Keep{}) // found pushed: no entry
	if err := run(t, e.pinWorker(c), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if got := c.list(); len(got) != 2 || got[1] != "pin main system "+root.String()+" " {
		recs, _ := history.Read(e.q.Dir)
		t.Errorf("calls = %q, want the root pushed, then pinned; history %+v", got, recs)
	}
}

// A batch that knew a pin of its root and failed wrote the root's entry
// back saying pinned: the entry stayed decided as pinned (unsubstitutable
// and upstream ignored) after the pin was gone, and a root the rules
// leave out without it went up. Only a drop says so now, for the
// dropped/ entry a later pin is told by.
func TestFailedBatchDoesNotKeepAPinItKnew(t *testing.T) {
	fakeStore(t)
	target := mkTarget(t, "main", []string{"*"}, nil)
	target.Unsubstitutable = config.UnsubstSkip
	e := newEnv(t, target)
	root := build(t, "nixos-system-1")[0]
	facts := &queue.Facts{NarSize: 1, Deriver: root.String() + ".drv", Substitutes: policy.SubstDenied}
	if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Facts: facts}}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.pin(t, "main", root, "system", queue.Keep{})
	w := e.pinWorker(&calls{})
	w.pushers["main"] = &fakePusher{fail: func([]string) error { return errors.New("HTTP 502") }}
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want the failed root left", err)
	}
	// The pin goes (removed by hand); the root is due again.
	pins, _, err := e.q.ListPins()
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins = %+v, %v", pins, err)
	}
	if err := e.q.RemovePin(pins[0]); err != nil {
		t.Fatal(err)
	}
	if err := e.q.RequestRetry(); err != nil {
		t.Fatal(err)
	}
	c, _ := e.runPins(t)
	if got := c.list(); len(got) != 0 {
		t.Errorf("calls = %q, want the unsubstitutable root left out: no pin asks for it any more", got)
	}
}

// push --pin queues the root's entry, then its pin. A worker that drops
// the root in between keeps the drop in dropped/, which the pin went by
// once the worker's own outcome was gone (another worker, or one that
// forgot it as no pin named the root yet); pruned (queue.dropped_max,
// queue.dropped_max_age), the drop was missed and cachix asked to pin a
// root the rules dropped. The record of pushed paths does not have it:
// the pin is dropped.
func TestPinOfDroppedRootWhoseDropWasPruned(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("another worker %v", fresh), func(t *testing.T) {
			fakeStore(t)
			e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
			e.cfg.Queue.RememberPushed = 720 * time.Hour
			secret := build(t, "secret-1")[0]
			if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: secret, Pinned: true}}, time.Now()); err != nil {
				t.Fatal(err)
			}
			c, w := e.runPins(t) // the root is dropped: denied
			// dropped/ pruned before the pin came.
			file := filepath.Join(e.q.Dir, "dropped", queue.Key("main", secret))
			old := time.Now().Add(-2 * time.Hour)
			if err := os.Chtimes(file, old, old); err != nil {
				t.Fatal(err)
			}
			if n, err := e.q.Prune(0, time.Hour, time.Now(), time.Time{}, 0); err != nil || n != 1 {
				t.Fatalf("Prune = %d, %v; want the drop pruned", n, err)
			}
			e.pin(t, "main", secret, "secret", queue.Keep{})
			if fresh {
				w = e.pinWorker(c)
			}
			w.state = LoadState(e.q.Dir)
			pinRound(t, w)
			if got := c.list(); len(got) != 0 {
				t.Errorf("calls = %q, want none: the root was dropped", got)
			}
			if names, _ := e.q.PinNames(); len(names) != 0 {
				t.Errorf("pins left: %q, want the pin dropped", names)
			}
		})
	}
}

// A pin whose call failed, asked for again (push --pin once more, the
// cause fixed): it is tried at the next round, not left to its back-off.
// AddPins left the file as it was and the worker never read again a pin
// it knew, so the pin waited out its back-off (up to queue.retry_max)
// and push --pin --wait gave up on it at once.
func TestPinAskedAgainIsTriedNow(t *testing.T) {
	e, root, c, w := backedOffPin(t, nil)
	pinRound(t, w)
	if got := c.list(); len(got) != 1 {
		t.Fatalf("calls = %q, want one while the pin backs off", got)
	}
	e.pin(t, "main", root, "done", queue.Keep{})
	pinDueNow(t, e, 1, "after it was asked for again")
	triedAtOnce(t, e, c, w, 2)
}

// askingPinner is a cachix whose pin call fails after push --pin asked
// for the pin again while it ran.
type askingPinner struct {
	c   *calls
	ask func()
}

func (p askingPinner) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	p.c.add("pin " + name)
	if p.ask != nil {
		p.ask()
	}
	return p.c.fail
}

// A pin asked for again while its call ran, after a back-off: the call
// failed, and pinDone wrote the pin as it held it (the old Queued, a new
// back-off) over the one push --pin had made due: the ask was lost, the
// pin left to its back-off.
func TestPinAskedAgainWhileItsCallRunsIsTriedNow(t *testing.T) {
	var ap *askingPinner
	e, root, c, w := backedOffPin(t, func(c *calls) pusher.Pinner {
		ap = &askingPinner{c: c}
		return ap
	})
	// Its back-off over, its call runs; push --pin asks for it meanwhile.
	ap.ask = func() { e.pin(t, "main", root, "done", queue.Keep{}) }
	pinRoundAt(t, w, time.Now().Add(48*time.Hour))
	pinDueNow(t, e, 2, "after a failed call it was asked for again during")
	ap.ask = nil
	triedAtOnce(t, e, c, w, 3)
}

// A pin asked for again while its first call ran: push --pin found it
// due (never tried) and wrote nothing, so the failed call backed it off
// and the ask was lost.
func TestPinAskedAgainDuringItsFirstCallIsTriedNow(t *testing.T) {
	e, root, names := donePinned(t)
	c, w := e.statePinWorker(errors.New("HTTP 401"))
	ap := askingPinner{c: c, ask: func() { e.pin(t, "main", root, "done", queue.Keep{}) }}
	w.newPinner = func(*config.Target) (pusher.Pinner, error) { return ap, nil }
	pinRound(t, w) // its first call: asked for again, failed
	if p := w.pins[names[0]]; p == nil || !p.NextAttempt.IsZero() {
		t.Fatalf("pin known to the worker after a failed first call it was asked for again during = %+v, want due now", p)
	}
	pinDueNow(t, e, 1, "after a failed first call it was asked for again during")
}

// A pin asked for again right after pinDone looked for an ask and before
// it wrote the pin back: its write, the pin backed off, replaced the one
// push --pin had made due, and the ask was lost.
func TestPinAskedAgainAsItsFailureIsWrittenIsTriedNow(t *testing.T) {
	e, root, c, w := backedOffPin(t, nil)
	asked := false
	w.beforePinUpdate = func() {
		if !asked {
			asked = true
			e.pin(t, "main", root, "done", queue.Keep{})
		}
	}
	pinRoundAt(t, w, time.Now().Add(48*time.Hour)) // its back-off over
	if !asked {
		t.Fatal("the pin's failure was not written")
	}
	pinDueNow(t, e, 2, "after its failure was written")
	triedAtOnce(t, e, c, w, 3)
}

// An ask made before the call, the pin known and due, is the call's own:
// its failure backs the pin off, or every ask of a pin still waiting for
// its call would cost a failing call more.
func TestPinAskedAgainBeforeItsCallBacksOff(t *testing.T) {
	e, root, _ := donePinned(t)
	_, w := e.statePinWorker(errors.New("HTTP 401"))
	w.scanPins()
	e.pin(t, "main", root, "done", queue.Keep{})
	pinRound(t, w)
	pins, _, _ := e.q.ListPins()
	if len(pins) != 1 || pins[0].NextAttempt.IsZero() || pins[0].Attempts != 1 {
		t.Fatalf("pin file after a failed call asked for before it = %+v, want backed off, 1 attempt", pins)
	}
}

// Each round looked for an ask of every pin backed off, a file read (an
// open) per pin: with many failing pins, work every round for asks that
// are rare. One listing of pinasks/ tells them now.
func TestScanPinsDoesNotReadEveryBackedOffPin(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	const n = 1000
	pins := make([]queue.Pin, n)
	for i := range pins {
		pins[i] = queue.Pin{Target: "main", Path: mkPath(fmt.Sprintf("sys-%d", i)).String(), Name: "sys"}
	}
	if _, err := e.q.AddPins(pins, time.Now()); err != nil {
		t.Fatal(err)
	}
	w := e.pinWorker(&calls{})
	w.scanPins()
	if len(w.pins) != n {
		t.Fatalf("%d pins known, want %d", len(w.pins), n)
	}
	due := testing.AllocsPerRun(3, w.scanPins)
	later := time.Now().Add(time.Hour)
	for _, p := range w.pins {
		p.NextAttempt = later
	}
	backedOff := testing.AllocsPerRun(3, w.scanPins)
	if backedOff-due >= n {
		t.Errorf("a round allocated %.0f with %d pins backed off, %.0f with them due: work per pin backed off", backedOff, n, due)
	}
}

// A pin backed off and asked for again is made due by the round's scan,
// in memory; its call then took the ask off disk without writing it into
// the pin's file, so a call cut short (the worker stopping) left the pin
// backed off on disk, the ask lost: the next worker waited out the
// back-off.
func TestPinAskedAgainSurvivesItsCallCutShort(t *testing.T) {
	e, root, _, w := backedOffPin(t, nil)
	names, err := e.q.PinNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("pins = %q, %v", names, err)
	}
	e.pin(t, "main", root, "done", queue.Keep{})
	hp := hangingPinner{started: make(chan struct{}), release: make(chan struct{})}
	w.newPinner = func(*config.Target) (pusher.Pinner, error) { return hp, nil }
	ctx, cancel := context.WithCancel(context.Background())
	w.doPins(ctx, time.Now())
	eventually.Recv(t, eventually.Left(t), "the pin call to start", hp.started, e.log.String)
	cancel() // the worker stops
	res := eventually.Recv(t, eventually.Left(t), "the cut pin call's result", w.pinResults, e.log.String)
	if !res.cut {
		t.Fatalf("the call was not cut short: %v", res.err)
	}
	w.pinDone(res)
	p, err := e.q.ReadPin(names[0])
	if err != nil {
		t.Fatal(err)
	}
	if !p.NextAttempt.IsZero() {
		t.Errorf("pin read by the next worker = %+v, want due now: it was asked for again", p)
	}
}

// A pinasks/ that cannot be listed (here a file in its place) was logged
// every round a pin was backed off: worker.log grew by a line a second
// for as long as it lasted. It is logged once, and again only when the
// error changes.
func TestUnlistablePinAsksLoggedOnce(t *testing.T) {
	e, _, _ := donePinned(t)
	if err := os.WriteFile(filepath.Join(e.q.Dir, "pinasks"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := e.pinWorker(&calls{})
	w.scanPins()
	for _, p := range w.pins {
		p.NextAttempt = time.Now().Add(time.Hour)
	}
	for range 5 {
		w.scanPins()
	}
	if n := strings.Count(e.log.String(), "listing the pins asked for again"); n != 1 {
		t.Errorf("the unlistable pinasks/ logged %d times in 5 rounds, want once:\n%s", n, e.log)
	}
}

// The same for pins/: scanPins logged its listing error every round.
func TestUnlistablePinsLoggedOnce(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	if err := os.WriteFile(filepath.Join(e.q.Dir, "pins"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := e.pinWorker(&calls{})
	for range 5 {
		w.scanPins()
	}
	if n := strings.Count(e.log.String(), `msg="listing pins"`); n != 1 {
		t.Errorf("the unlistable pins/ logged %d times in 5 rounds, want once:\n%s", n, e.log)
	}
}

// A pin of a root pushed before (no entry queued: push --pin pins it at
// once) whose rules have come to deny it since, or whose target is no
// longer for this host: cachix pin was called all the same, and the
// root's name and path left the machine for a path the rules now deny.
// The worker asks the rules again, as it does of an entry, and drops the
// pin with their reason.
func TestPinOfRootTheRulesNowDenyIsDropped(t *testing.T) {
	fakeStore(t)
	for _, tc := range []struct {
		name, reason string
		target       func(*config.Target)
	}{
		{"deny", `deny "secret-*"`, func(tg *config.Target) {}},
		{"hosts", "is for hosts", func(tg *config.Target) {
			h, err := filter.CompileHosts([]string{"builder-*"})
			if err != nil {
				t.Fatal(err)
			}
			tg.Hosts, tg.HostRules, tg.Host = []string{"builder-*"}, h, "laptop"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := mkTarget(t, "main", []string{"*"}, []string{"secret-*"})
			root := build(t, "secret-"+tc.name)[0]
			if tc.name == "hosts" {
				target = mkTarget(t, "main", []string{"*"}, nil)
			}
			tc.target(target)
			e := newEnv(t, target)
			e.pin(t, "main", root, "secret", queue.Keep{})
			c, _ := e.runPins(t)
			if got := c.list(); len(got) != 0 {
				t.Errorf("calls = %q, want none: the rules deny the root", got)
			}
			why := lastPinDrop(t, e.q.Dir)
			if !strings.Contains(why, tc.reason) {
				t.Errorf("the pin's drop: reason %q, want it to say %q", why, tc.reason)
			}
			if names, _ := e.q.PinNames(); len(names) != 0 {
				t.Errorf("pins left: %q", names)
			}
		})
	}
}

// A pin of a root pushed before (push --pin pins it at once) whose
// rules were tightened since: a lower max_nar_size than a dependency's
// size, or a deny of a dependency (closure_deny = "skip"). Push would
// leave the root out; the pin step asked only its name and hosts, and
// cachix pin was called. It asks the same decision, with the root's
// closure and sizes, and drops the pin naming the rule.
func TestPinOfRootWhoseClosureTheRulesNowLeaveOutIsDropped(t *testing.T) {
	fakeStore(t)
	for _, tc := range []struct {
		name, reason string
		target       func(*config.Target)
	}{
		{"max_nar_size", "max_nar_size", func(tg *config.Target) { tg.MaxNarSize = 1 << 20 }},
		{"closure_deny", `denied by "libsecret-*"`, func(tg *config.Target) {
			*tg = *mkTarget(t, "main", []string{"*"}, []string{"libsecret-*"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := mkTarget(t, "main", []string{"*"}, nil)
			tc.target(target)
			target.ClosureDeny = config.ClosureSkip
			e := newEnv(t, target)
			ps := build(t, "app-"+tc.name, "libsecret-"+tc.name)
			root, dep := ps[0], ps[1]
			e.pin(t, "main", root, "app", queue.Keep{})
			c := &calls{}
			w := e.pinWorker(c)
			w.pinInfos = pinStore{refs: map[string][]string{root.String(): {dep.String()}}, size: map[string]int64{dep.String(): 2 << 20}}
			if err := run(t, w, Once); err != nil {
				t.Fatalf("Run(Once) = %v", err)
			}
			if got := c.list(); len(got) != 0 {
				t.Errorf("calls = %q, want none: the rules leave the root's closure out", got)
			}
			why := lastPinDrop(t, e.q.Dir)
			if !strings.Contains(why, tc.reason) || !strings.Contains(why, dep.Name) {
				t.Errorf("the pin's drop: reason %q, want it to name %s and %q", why, dep.Name, tc.reason)
			}
			if names, _ := e.q.PinNames(); len(names) != 0 {
				t.Errorf("pins left: %q", names)
			}
		})
	}
}

// A pin asked for again as the worker gives it up (push --pin of a root
// garbage-collected, then built again: its entry queued after the round
// looked, its pin asked for again before the worker removed the old
// one): the ask found the pin's file there, push said "will pin", and
// the worker then removed the file and the ask with it. The pin was
// never made, though its root was pushed.
func TestPinAskedAgainAsItIsDroppedIsKept(t *testing.T) {
	e, root := collectedPinned(t) // not in the store yet
	c, w := e.statePinWorker(nil)
	asked := false
	w.beforePinDrop = func() {
		if asked {
			return
		}
		asked = true
		// push --pin again, the root built anew: its entry, then the
		// pin, which is queued already.
		build(t, "system-1")
		if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: root, Pinned: true}}, time.Now()); err != nil {
			t.Error(err)
		}
		if n, err := e.q.AddPins([]queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}, time.Now()); n != 0 || err != nil {
			t.Errorf("AddPins = %d, %v; want the pin asked for again", n, err)
		}
	}
	pinRound(t, w)
	if !asked {
		t.Fatal("the pin was not given up on")
	}
	if names, _ := e.q.PinNames(); len(names) != 1 {
		t.Fatalf("pins %q; want the pin asked for again kept", names)
	}
	if err := run(t, w, Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if got := c.list(); len(got) != 2 || got[0] != "push main "+root.String() || got[1] != "pin main sys "+root.String()+" " {
		t.Errorf("calls = %q, want the root pushed, then pinned", got)
	}
}

// A pin kept by dropPin (asked for again since the worker looked: it is
// decided again) is due now: a Once worker returned at once, "pins are
// left in the queue, waiting for a retry", with the pin due and no other
// worker to decide it (push --pin's EnsureRunning found this one).
func TestRunOnceDecidesAgainAPinAskedForAsItIsDropped(t *testing.T) {
	e, root := collectedPinned(t)
	// Asked for again (push --pin once more) after the worker's look.
	e.pin(t, "main", root, "sys", queue.Keep{})
	c := &calls{}
	if err := run(t, e.pinWorker(c), Once); err != nil {
		t.Fatalf("Run(Once) = %v, want the pin decided again in the same run", err)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins left: %q, want the pin dropped (its root is gone)", names)
	}
	if got := c.list(); len(got) != 0 {
		t.Errorf("calls = %q, want none", got)
	}
}

// A pin whose drop fails (here tmp/, where DropPin moves it aside, is
// not a directory; an ask unreadable for a reason of the moment, EMFILE,
// does as much) stays in pins/, to be dropped again next round: a Once
// worker has none, and said "nothing left to push", exiting 0 with the
// pin neither made nor dropped. It says pins are left.
func TestRunOncePinWhoseDropFailedIsLeft(t *testing.T) {
	e, _ := collectedPinned(t)
	tmp := filepath.Join(e.q.Dir, "tmp")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &calls{}
	if err := run(t, e.pinWorker(c), Once); !errors.Is(err, ErrLeft) {
		t.Errorf("Run(Once) with the pin's drop failing = %v, want %v", err, ErrLeft)
	}
	if names, _ := e.q.PinNames(); len(names) != 1 {
		t.Errorf("pins %q; want the pin whose drop failed kept", names)
	}
}

// A pin asked for again with another keep (push --pin NAME ROOT
// --keep-days 3 for a pin queued with --keep-revisions 5): push said
// "will pin ... (--keep-days 3)", but the ask held only its time, and
// cachix pin was called with the old keep. The last ask's keep is the
// one Cachix gets: asked before the pin's call, or during one that
// succeeded with the old keep, which is then made again.
func TestPinAskedAgainWithAnotherKeepIsMadeWithIt(t *testing.T) {
	days := queue.Keep{Days: 3}
	t.Run("backed off", func(t *testing.T) {
		fakeStore(t)
		e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
		root := build(t, "done-1")[0]
		e.pin(t, "main", root, "done", queue.Keep{Revisions: 5})
		c, w := e.statePinWorker(errors.New("HTTP 401"))
		pinRound(t, w) // failed, backed off
		c.setFail(nil)
		e.pin(t, "main", root, "done", days)
		pinRound(t, w)
		want := []string{"pin main done " + root.String() + " --keep-revisions 5", "pin main done " + root.String() + " --keep-days 3"}
		if got := c.list(); !slices.Equal(got, want) {
			t.Errorf("calls = %q, want %q", got, want)
		}
	})
	t.Run("during a call that succeeds", func(t *testing.T) {
		fakeStore(t)
		e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
		root := build(t, "done-1")[0]
		e.pin(t, "main", root, "done", queue.Keep{Revisions: 5})
		c, w := e.statePinWorker(nil)
		var keeps []string
		// push --pin asks for it again, with --keep-days 3, as its
		// first call runs.
		ap := askingPinner{c: c, ask: func() { e.pin(t, "main", root, "done", days) }}
		w.newPinner = func(*config.Target) (pusher.Pinner, error) { return keepPinner{ap, &keeps}, nil }
		pinRound(t, w)
		ap.ask = nil
		pinRound(t, w)
		if want := []string{"--keep-revisions 5", "--keep-days 3"}; !slices.Equal(keeps, want) {
			t.Errorf("keeps of the calls = %q, want %q", keeps, want)
		}
		if names, _ := e.q.PinNames(); len(names) != 0 {
			t.Errorf("pins left: %q", names)
		}
	})
}

// keepPinner records the keep of each call, then calls p.
type keepPinner struct {
	p     pusher.Pinner
	keeps *[]string
}

func (k keepPinner) Pin(ctx context.Context, name, path string, keep queue.Keep, out io.Writer) error {
	*k.keeps = append(*k.keeps, keep.String())
	return k.p.Pin(ctx, name, path, keep, out)
}

// A pin given up on whose ask (push --pin once more, after the worker's
// look) cannot be read for a reason of the moment (here a lease): the
// worker's first look took it for no ask and recorded the drop, then
// DropPin, telling the error apart, kept the pin. wait reported "not
// pinned" for a pin still queued, and maybe made later. No drop is
// recorded until the ask can be read.
func TestPinWithItsAskUnreadableIsNotRecordedDropped(t *testing.T) {
	e, root := collectedPinned(t)
	_, w := e.statePinWorker(nil)
	w.scanPins()                                // the worker's look
	e.pin(t, "main", root, "sys", queue.Keep{}) // asked for again
	names, _ := e.q.PinNames()
	if len(names) != 1 {
		t.Fatalf("pins %q", names)
	}
	release := leased(t, filepath.Join(e.q.Dir, "pinasks", names[0]))
	pinRound(t, w)
	release()
	dropped := func() int {
		recs, _ := history.Read(e.q.Dir)
		n := 0
		for _, r := range recs {
			if r.Outcome == history.PinDropped {
				n++
			}
		}
		return n
	}
	if n := dropped(); n != 0 {
		t.Errorf("%d drops recorded for a pin whose ask could not be read, want none", n)
	}
	if names, _ := e.q.PinNames(); len(names) != 1 {
		t.Fatalf("pins %q; want the pin kept", names)
	}
	for range 3 {
		pinRound(t, w)
	}
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins %q; want the pin dropped once its ask was taken", names)
	}
	if n := dropped(); n != 1 {
		t.Errorf("%d drops recorded, want one", n)
	}
}

// A pin whose drop keeps failing (here tmp/, where DropPin moves it
// aside, is not a directory) is dropped again every round, a second
// apart: each failure was logged, and worker.log grew by a line a second
// for as long as it lasted. It is logged once, and again only when the
// error changes. (Its back-off, see the next test, is cut to nothing
// here, so that each round tries it.)
func TestPinDropThatKeepsFailingLoggedOnce(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Queue.RetryInitial = time.Nanosecond
	root := mkPath("system-1") // not in the store: collected
	e.pin(t, "main", root, "sys", queue.Keep{})
	tmp := filepath.Join(e.q.Dir, "tmp")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := e.pinWorker(&calls{})
	for range 5 {
		pinRound(t, w)
	}
	if n := strings.Count(e.log.String(), "removing a pin given up on"); n != 1 {
		t.Errorf("the failing drop logged %d times in 5 rounds, want once:\n%s", n, e.log)
	}
	// Once it can go, it goes; a later failure is logged again.
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	pinRound(t, w)
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins %q; want the pin dropped once it could be", names)
	}
	if _, ok := w.pinDropFailed[queue.PinKey("main", root, "sys")]; ok {
		t.Error("the failure of a pin dropped since is still remembered")
	}
}

// An ask of the older form, its time alone (a push --pin of a version
// before asks held their keep, which pinned with the pin's keep), was
// read as asking for no keep: a pin queued with --keep-revisions 5 was
// made without it, and one asked for so during its call was made a
// second time, without it. It asks for the pin again, with its keep.
func TestPinAskedAgainByAnOlderAskKeepsItsKeep(t *testing.T) {
	for _, during := range []bool{false, true} {
		fakeStore(t)
		e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
		root := build(t, "done-1")[0]
		e.pin(t, "main", root, "done", queue.Keep{Revisions: 5})
		names, err := e.q.PinNames()
		if err != nil || len(names) != 1 {
			t.Fatalf("pins = %q, %v", names, err)
		}
		oldAsk := func() {
			dir := filepath.Join(e.q.Dir, "pinasks")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			data, _ := json.Marshal(time.Now().Add(time.Minute).UTC())
			if err := os.WriteFile(filepath.Join(dir, names[0]), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c, w := e.statePinWorker(nil)
		var keeps []string
		ap := askingPinner{c: c}
		if during {
			ap.ask = oldAsk
		} else {
			oldAsk()
		}
		w.newPinner = func(*config.Target) (pusher.Pinner, error) { return keepPinner{ap, &keeps}, nil }
		pinRound(t, w)
		ap.ask = nil
		pinRound(t, w)
		if want := []string{"--keep-revisions 5"}; !slices.Equal(keeps, want) {
			t.Errorf("asked during the call %v: keeps of the calls = %q, want %q", during, keeps, want)
		}
	}
}

// A pin given up on whose file cannot be removed (here tmp/, where its
// drop moves it aside, is not a directory) held no failed attempt and no
// queued root: wait, which counts a pin failing by those, waited for it
// forever, and its drop was tried every round. It is backed off, as a
// failed call is, and state.json says so (wait and status read it),
// until it can go.
func TestPinDropThatFailsIsBackedOffAndSaid(t *testing.T) {
	e, root := collectedPinned(t)
	key := queue.PinKey("main", root, "sys")
	tmp := filepath.Join(e.q.Dir, "tmp")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, w := e.statePinWorker(nil)
	now := time.Now()
	left, next := w.doPins(context.Background(), now)
	d, ok := LoadState(e.q.Dir).PinDrops[key]
	if !ok || d.Attempts != 1 || !d.NextAttempt.After(now) || !strings.Contains(d.Error, "not a directory") {
		t.Fatalf("state.json's failed drop = %+v, %v; want one attempt, backed off, with its error", d, ok)
	}
	if !left || !next.After(now) {
		t.Errorf("doPins = %v, %v; want the pin left, due after its back-off", left, next)
	}
	w.doPins(context.Background(), time.Now())
	if d := LoadState(e.q.Dir).PinDrops[key]; d.Attempts != 1 {
		t.Errorf("%d attempts after a second round, want 1: backed off", d.Attempts)
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	w.retryPins()
	w.doPins(context.Background(), time.Now())
	if names, _ := e.q.PinNames(); len(names) != 0 {
		t.Errorf("pins %q; want the pin dropped once it could be", names)
	}
	if d, ok := LoadState(e.q.Dir).PinDrops[key]; ok {
		t.Errorf("state.json still says the drop fails: %+v", d)
	}
}

// When tmp/ cannot be listed (here it is not a directory), the worker
// took a pin for left aside there by a failed drop, forever: a Once
// worker returned ErrLeft every time, a spawned one looked every second,
// and nothing said why. The asks name the pins that may need linking
// back: with none, nothing is left. When pinasks/ cannot be listed
// either, it is logged once, said in state.json, and looked for again
// after a back-off: left, failing, not due.
func TestPinsAsideUnlistableTmpIsBounded(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	notDir := func(name string) {
		t.Helper()
		dir := filepath.Join(e.q.Dir, name)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notDir("tmp")
	_, w := e.statePinWorker(nil)
	if left, _ := w.doPins(context.Background(), time.Now()); left {
		t.Error("doPins with tmp/ unlistable and no ask: a pin left, want none")
	}
	if err := run(t, e.pinWorker(&calls{}), Once); err != nil {
		t.Errorf("Run(Once) with tmp/ unlistable and no ask = %v, want nil", err)
	}

	notDir("pinasks")
	_, w = e.statePinWorker(nil)
	now := time.Now()
	left, next := w.doPins(context.Background(), now)
	if !left || !next.After(now) {
		t.Errorf("doPins with tmp/ and pinasks/ unlistable = %v, %v; want left, backed off", left, next)
	}
	for range 3 {
		w.doPins(context.Background(), time.Now())
	}
	if n := strings.Count(e.log.String(), "looking for pins a failed drop left aside"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, e.log)
	}
	if s := LoadState(e.q.Dir); !strings.Contains(s.PinsAsideError, "not a directory") {
		t.Errorf("state.json's pins_aside_error = %q, want why", s.PinsAsideError)
	}
	if err := run(t, e.pinWorker(&calls{}), Once); !errors.Is(err, ErrLeft) {
		t.Errorf("Run(Once) = %v, want %v: failing", err, ErrLeft)
	}
}

// DropPin's (true, err): a pin asked for again as it was dropped, linked
// back into pins/ whose sync failed. The worker kept it and said nothing
// of the failure: a disk failing its fsyncs went unlogged.
func TestPinKeptWithAFailedSyncIsLogged(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	root := mkPath("system-1")
	e.pin(t, "main", root, "sys", queue.Keep{})
	w := e.pinWorker(&calls{})
	p, err := e.q.ReadPin(queue.PinKey("main", root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	if !w.pinDropped(logrus.NewEntry(w.log), p, "its root was dropped", true, errors.New("syncing pins: input/output error")) {
		t.Error("a pin queued anew reported not kept")
	}
	if !strings.Contains(e.log.String(), "input/output error") {
		t.Errorf("the failed sync is not logged:\n%s", e.log)
	}
}

// hangingNix never answers until its caller gives up.
type hangingNix struct{}

func (hangingNix) PathInfos(ctx context.Context, recursive bool, paths ...string) (map[string]nixstore.PathInfo, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A Nix that hangs on the pin's closure rule is bounded by the pin's
// timeout: no cachix pin is made blind, the pin is backed off, and its
// error says which bound it ran into, not a bare "context deadline
// exceeded" that status and wait would show.
func TestPinClosureRuleNixHangIsBoundedAndSaid(t *testing.T) {
	fakeStore(t)
	target := mkTarget(t, "main", []string{"*"}, []string{"libsecret-*"})
	target.ClosureDeny = config.ClosureSkip
	e := newEnv(t, target)
	root := build(t, "app-hang")[0]
	e.pin(t, "main", root, "app", queue.Keep{})
	c := &calls{}
	w := e.pinWorker(c)
	w.pinTimeout = 20 * time.Millisecond
	w.pinInfos = hangingNix{}
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want ErrLeft: the pin waits for a retry", err)
	}
	if got := c.list(); len(got) != 0 {
		t.Errorf("calls = %q, want none: not pinned blind", got)
	}
	pins, _, _ := e.q.ListPins()
	if len(pins) != 1 || pins[0].Attempts != 1 || !pins[0].NextAttempt.After(time.Now()) ||
		!strings.Contains(pins[0].LastError, "timed out after 20ms") {
		for _, p := range pins {
			t.Logf("pin %s: attempts %d, next %s, last error %q", p.Key(), p.Attempts, p.NextAttempt, p.LastError)
		}
		t.Fatalf("%d pins, want the pin kept, backed off, its error saying the bound", len(pins))
	}
}
