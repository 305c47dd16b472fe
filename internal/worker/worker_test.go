package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// When the test binary runs as a fake nix-store (see fakeNixStore), it
// prints a closure: the queried path, plus a "-doc" path when the queried
// path's name contains "withdoc"; it fails for names containing
// "noclosure".
const envFakeNixStore = "WORKER_TEST_FAKE_NIX_STORE"

func TestMain(m *testing.M) {
	if os.Getenv(envFakeNixStore) == "1" {
		os.Exit(fakeNixStoreMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeNixStoreMain(args []string) int {
	if filepath.Base(os.Args[0]) == "nix" {
		return fakeNixMain(args)
	}
	if len(args) < 4 || args[0] != "--query" || args[1] != "--requisites" || args[2] != "--" {
		fmt.Fprintf(os.Stderr, "fake nix-store: unexpected arguments %q\n", args)
		return 2
	}
	for _, p := range args[3:] {
		if strings.Contains(p, "noclosure") {
			fmt.Fprintln(os.Stderr, "error: path is not valid")
			return 1
		}
		fmt.Println(p)
		if strings.Contains(p, "withdoc") {
			fmt.Println(mkPath("hello-2.12.1-doc").String())
		}
	}
	return 0
}

// fakeNixMain is `nix path-info --json [--recursive] -- PATHS`, printed as
// Nix 2.8 does: the same closures as fakeNixStoreMain; a "noclosure" path
// is not valid.
func fakeNixMain(args []string) int {
	i := slices.Index(args, "--")
	if i < 0 || !slices.Contains(args, "path-info") {
		fmt.Fprintf(os.Stderr, "fake nix: unexpected arguments %q\n", args)
		return 2
	}
	recursive := slices.Contains(args, "--recursive")
	type info struct {
		Path       string   `json:"path"`
		Valid      *bool    `json:"valid,omitempty"`
		References []string `json:"references"`
	}
	var out []info
	for _, p := range args[i+1:] {
		if strings.Contains(p, "noclosure") {
			if recursive {
				fmt.Fprintln(os.Stderr, "error: path is not valid")
				return 1
			}
			f := false
			out = append(out, info{Path: p, Valid: &f})
			continue
		}
		in := info{Path: p, References: []string{}}
		if refs := fakeListRefs(p); refs != nil {
			// A package list refers to what it names (lists_test.go).
			in.References = refs
			if recursive {
				for _, r := range refs {
					out = append(out, info{Path: r, References: []string{}})
				}
			}
		}
		if strings.Contains(p, "withdoc") {
			doc := mkPath("hello-2.12.1-doc").String()
			in.References = []string{doc}
			if recursive {
				out = append(out, info{Path: doc, References: []string{}})
			}
		}
		out = append(out, in)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	return 0
}

// fakeNixStore makes the test binary the nix-store (and nix) found in the
// returned bin dir.
func fakeNixStore(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"nix-store", "nix"} {
		if err := os.Symlink(exe, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(envFakeNixStore, "1")
	// A race-enabled test binary otherwise sleeps 1s when it exits 0.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	return dir
}

const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

// mkPath returns a well-formed store path named name in the current store
// directory.
func mkPath(name string) storepath.Path {
	sum := sha256.Sum256([]byte(name))
	h := make([]byte, storepath.HashLen)
	for i := range h {
		h[i] = nixBase32[sum[i]%32]
	}
	return storepath.New(storepath.StoreDir(), string(h), name)
}

// fakeStore points NIX_STORE_DIR at a temporary directory.
func fakeStore(t *testing.T) {
	t.Helper()
	t.Setenv("NIX_STORE_DIR", t.TempDir())
}

// build creates the store paths named, as files in the fake store.
func build(t *testing.T, names ...string) []storepath.Path {
	t.Helper()
	var ps []storepath.Path
	for _, n := range names {
		p := mkPath(n)
		if err := os.WriteFile(p.String(), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func mkTarget(t *testing.T, name string, allow, deny []string) *config.Target {
	t.Helper()
	r, err := filter.Compile(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return &config.Target{Name: name, Cache: name, Allow: allow, Deny: deny, ClosureDeny: config.ClosurePush, Rules: r}
}

func mkConfig(dir string, targets ...*config.Target) *config.Config {
	return &config.Config{
		Targets: targets,
		Cachix:  config.Cachix{Bin: "/nonexistent/cachix"},
		Queue: config.Queue{
			Dir:          dir,
			Batch:        64,
			RetryInitial: time.Hour,
			RetryMax:     2 * time.Hour,
			Linger:       0,
		},
		Log: config.Log{Level: "debug"},
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakePusher records every call; fail decides whether one fails.
type fakePusher struct {
	mu    sync.Mutex
	calls [][]string
	errs  []error
	fail  func(paths []string) error
}

func (f *fakePusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	fmt.Fprintf(out, "pushing %d paths\n", len(paths))
	var err error
	if f.fail != nil {
		err = f.fail(paths)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(paths))
	f.errs = append(f.errs, err)
	return err
}

func (f *fakePusher) Calls() ([][]string, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.errs)
}

type env struct {
	q   *queue.Queue
	cfg *config.Config
	log *syncBuffer
}

func newEnv(t *testing.T, targets ...*config.Target) *env {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{q: q, cfg: mkConfig(q.Dir, targets...), log: &syncBuffer{}}
}

// mainEnv is the setup of most tests: a fake store, and a queue for one
// target, "main", that allows all.
func mainEnv(t *testing.T) *env {
	t.Helper()
	fakeStore(t)
	return newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
}

// noCorruptDir puts a file where corrupt/ goes, so that an entry that
// cannot be read cannot be moved aside either.
func noCorruptDir(t *testing.T, e *env) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.q.Dir, "corrupt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// worker returns a worker whose pushers are the fakes given by target.
func (e *env) worker(fakes map[string]*fakePusher) *Worker {
	log := logrus.New()
	log.Out = e.log
	log.Level = logrus.DebugLevel
	w := New(e.cfg, e.q, log)
	for name, f := range fakes {
		w.pushers[name] = f
	}
	return w
}

// add queues (target, path) pairs, each queued a second apart in the past
// so that they are not a burst still arriving and sort in the given order.
func (e *env) add(t *testing.T, target string, paths ...storepath.Path) {
	t.Helper()
	base := time.Now().Add(-time.Hour)
	for i, p := range paths {
		if _, err := e.q.Add([]queue.Pair{{Target: target, Path: p}}, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) entries(t *testing.T) map[string]*queue.Entry {
	t.Helper()
	list, bad, err := e.q.List()
	if err != nil || len(bad) > 0 {
		t.Fatalf("List: %v %v", err, bad)
	}
	m := map[string]*queue.Entry{}
	for _, x := range list {
		m[x.Path] = x
	}
	return m
}

// runsWithin bounds a run of the worker, and the runs a test repeats
// until an entry is pushed or left alone. Only a hang guard: what is
// measured is what the pushers were asked, not how long it took, and a
// loaded 2-core machine has made one Run of TestRunBisectsLargeFailingBatch
// take 37 s.
const runsWithin = 5 * time.Minute

func run(t *testing.T, w *Worker, mode Mode) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runsWithin)
	defer cancel()
	err := w.Run(ctx, mode)
	if ctx.Err() != nil {
		t.Fatalf("Run did not return within %s (returned %v)", runsWithin, err)
	}
	return err
}

func strs(ps ...storepath.Path) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// ---- Backoff ----

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		initial, max time.Duration
		n            int
		want         time.Duration // before jitter
	}{
		{2 * time.Second, 10 * time.Minute, 0, 2 * time.Second},
		{2 * time.Second, 10 * time.Minute, 1, 2 * time.Second},
		{2 * time.Second, 10 * time.Minute, 2, 4 * time.Second},
		{2 * time.Second, 10 * time.Minute, 3, 8 * time.Second},
		{2 * time.Second, 10 * time.Minute, 9, 512 * time.Second},
		{2 * time.Second, 10 * time.Minute, 10, 10 * time.Minute},
		{2 * time.Second, 10 * time.Minute, 11, 10 * time.Minute},
		{2 * time.Second, 10 * time.Minute, 1000, 10 * time.Minute},
		{3 * time.Second, 10 * time.Second, 3, 10 * time.Second},
		{5 * time.Second, 5 * time.Second, 4, 5 * time.Second},
		{time.Nanosecond, time.Hour, 1 << 30, time.Hour},
	} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := Backoff(tc.n, tc.initial, tc.max)
			if d < tc.want/2 || d > tc.want {
				t.Fatalf("Backoff(%d, %v, %v) = %v, want within [%v, %v]", tc.n, tc.initial, tc.max, d, tc.want/2, tc.want)
			}
			if d > tc.max {
				t.Fatalf("Backoff(%d, %v, %v) = %v exceeds the maximum", tc.n, tc.initial, tc.max, d)
			}
			seen[d] = true
		}
		if tc.want >= time.Millisecond && len(seen) < 10 {
			t.Errorf("Backoff(%d, %v, %v) took only %d values in 200 calls: no jitter?", tc.n, tc.initial, tc.max, len(seen))
		}
	}
}

// TestBackoffHugeMax: config accepts any retry_max up to Go's largest
// duration ("2562047h"); doubling must not overflow past it.
func TestBackoffHugeMax(t *testing.T) {
	const maxDuration = time.Duration(1<<63 - 1)
	var problems []string
	for _, tc := range []struct {
		initial, max time.Duration
	}{
		{time.Hour, 1000000 * time.Hour},
		{time.Hour, maxDuration},
		{2 * time.Second, maxDuration},
		{3 * time.Second, maxDuration},
	} {
		for n := 1; n <= 100; n++ {
			var d time.Duration
			func() {
				defer func() {
					if r := recover(); r != nil {
						problems = append(problems, fmt.Sprintf("Backoff(%d, %v, %v) panicked: %v", n, tc.initial, tc.max, r))
						d = tc.initial
					}
				}()
				d = Backoff(n, tc.initial, tc.max)
			}()
			if d < tc.initial/2 || d > tc.max {
				problems = append(problems, fmt.Sprintf("Backoff(%d, %v, %v) = %v, want within [%v, %v]", n, tc.initial, tc.max, d, tc.initial/2, tc.max))
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("Backoff overflows when retry_max exceeds 2^62ns (about 146 years): d *= 2 wraps negative, "+
			"then rand.N panics or the delay becomes 0 (%d cases), e.g. %s", len(problems), problems[0])
	}
}

func TestBackoffDoubles(t *testing.T) {
	// Averaged over many calls, each failure doubles the delay until
	// the cap.
	mean := func(n int) time.Duration {
		var sum time.Duration
		for i := 0; i < 2000; i++ {
			sum += Backoff(n, time.Second, time.Minute)
		}
		return sum / 2000
	}
	prev := mean(1)
	for n := 2; n <= 6; n++ {
		m := mean(n)
		if r := float64(m) / float64(prev); r < 1.8 || r > 2.2 {
			t.Errorf("mean Backoff(%d)/Backoff(%d) = %.2f, want about 2", n, n-1, r)
		}
		prev = m
	}
	if m := mean(20); m < 40*time.Second || m > 50*time.Second {
		t.Errorf("mean capped Backoff = %v, want about 45s (3/4 of the cap)", m)
	}
}

// ---- Run ----

func TestRunOnceDrains(t *testing.T) {
	e := mainEnv(t)
	ps := build(t, "a-1", "b-1", "c-1")
	e.add(t, "main", ps...)
	f := &fakePusher{}
	start := time.Now()
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	calls, _ := f.Calls()
	if len(calls) != 1 || !slices.Equal(calls[0], strs(ps...)) {
		t.Errorf("pusher calls = %q, want one call with %q", calls, strs(ps...))
	}
	if names, _ := e.q.Names(); len(names) != 0 {
		t.Errorf("entries left after a successful push: %q", names)
	}
	st := LoadState(e.q.Dir).Targets["main"]
	if st == nil || st.Pushed != 3 || st.Calls != 1 || st.LastSuccess.Before(start.Add(-time.Second)) || !st.LastFailure.IsZero() {
		t.Errorf("state.json for main = %+v, want 3 pushed in 1 call, a recent success", st)
	}
	if fi, err := os.Stat(filepath.Join(e.q.Dir, "state.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json: %v, %v; want mode 0600", fi, err)
	}
	// The worker let go of the lock.
	if running, err := e.q.WorkerRunning(); err != nil || running {
		t.Errorf("WorkerRunning after Run = %v, %v", running, err)
	}
	// logrus copies the pusher's output to the log from a goroutine of
	// its own, which may still be at it when Run returns.
	waitFor(t, "the pusher's output in the log", func() bool { return strings.Contains(e.log.String(), "pushing 3 paths") }, e.log)
}

func TestRunOnceBatchesAndTargets(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil), mkTarget(t, "work", []string{"*"}, nil))
	e.cfg.Queue.Batch = 2
	ps := build(t, "a-1", "b-1", "c-1", "d-1", "e-1")
	e.add(t, "main", ps...)
	e.add(t, "work", ps[0])
	fm, fw := &fakePusher{}, &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": fm, "work": fw}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	calls, _ := fm.Calls()
	want := [][]string{strs(ps[0], ps[1]), strs(ps[2], ps[3]), strs(ps[4])}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("main calls = %q, want %q", calls, want)
	}
	if calls, _ := fw.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(ps[0])) {
		t.Errorf("work calls = %q", calls)
	}
	st := LoadState(e.q.Dir)
	if st.Targets["main"].Pushed != 5 || st.Targets["main"].Calls != 3 || st.Targets["work"].Pushed != 1 {
		t.Errorf("state = main %+v, work %+v", st.Targets["main"], st.Targets["work"])
	}
}

// gatedPusher holds each call until it is let go.
type gatedPusher struct {
	fakePusher
	started chan []string
	release chan struct{}
}

func (g *gatedPusher) Push(ctx context.Context, paths []string, out io.Writer) error {
	g.started <- paths
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.fakePusher.Push(ctx, paths, out)
}

// The first path goes at once; what arrives while that push runs is
// gathered into the next call, which starts when it ends, unless the Nix
// process that queued it has ended: that goes beside the running push at
// once (issue 22: a 0.5 s quiet timer held every burst's last path back).
func TestRunPushesAtOnceGathersMeanwhile(t *testing.T) {
	e := mainEnv(t)
	ps := build(t, "a-1", "b-1", "c-1", "d-1")
	g := &gatedPusher{started: make(chan []string, 4), release: make(chan struct{})}
	w := e.worker(nil)
	w.pushers["main"] = g
	pair := func(p storepath.Path, session int) {
		if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: p, Session: session}}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	next := func(what string) []string {
		t.Helper()
		select {
		case paths := <-g.started:
			return paths
		case <-time.After(eventually.Left(t)):
			t.Fatalf("no push of %s", what)
		}
		return nil
	}
	n := rounds(w)
	var jobs atomic.Int64
	w.jobStarts = func() { jobs.Add(1) }
	pair(ps[0], os.Getpid())
	defer runService(t, w)()
	if got := next("the first path"); !slices.Equal(got, strs(ps[0])) {
		t.Fatalf("first push = %q, want at once with the first path", got)
	}
	// Queued by a Nix process still running (this test): they wait.
	pair(ps[1], os.Getpid())
	pair(ps[2], os.Getpid())
	// Queued by one that has ended: beside the running push, at once.
	// It is reaped only when the test ends: a reaped pid could be taken
	// by a new process, which the worker would wait for.
	ended := exec.Command("true")
	if err := ended.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ended.Wait() })
	waitFor(t, "true to exit", func() bool { return !sessionAlive(int32(ended.Process.Pid)) })
	pair(ps[3], ended.Process.Pid)
	if got := next("the path of an ended Nix process"); !slices.Equal(got, strs(ps[3])) {
		t.Fatalf("second push = %q, want %q beside the first", got, strs(ps[3]))
	}
	// A round that began after the second push started would have
	// started a third, were it going to: counted as the round starts
	// it, not when its goroutine reaches the pusher.
	waitRound(t, n, e.log)
	if got := jobs.Load(); got != 2 {
		t.Fatalf("%d pushes started, want the 2 running: a third started while they run", got)
	}
	g.release <- struct{}{}
	g.release <- struct{}{}
	if got := next("what was gathered"); !slices.Equal(got, strs(ps[1], ps[2])) {
		t.Fatalf("third push = %q, want what arrived meanwhile in one call", got)
	}
	g.release <- struct{}{}
	waitFor(t, "the queue to empty", func() bool { n, _ := e.q.Names(); return len(n) == 0 })
}

func TestRunOnceFailure(t *testing.T) {
	e := mainEnv(t)
	ps := build(t, "a-1", "b-1")
	e.add(t, "main", ps...)
	f := &fakePusher{fail: func([]string) error { return errors.New("cachix exited with exit status 1: fake failure\n") }}
	before := time.Now()
	err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once)
	after := time.Now()
	if !errors.Is(err, ErrLeft) || !strings.HasPrefix(err.Error(), "2 ") {
		t.Fatalf("Run(Once) with a failing pusher = %v, want \"2 %v\"", err, ErrLeft)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher calls = %q, want 1", calls)
	}
	got := e.entries(t)
	if len(got) != 2 {
		t.Fatalf("entries = %v, want both kept", got)
	}
	for _, x := range got {
		if x.Attempts != 1 {
			t.Errorf("%s: attempts %d, want 1", x.Path, x.Attempts)
		}
		if x.LastError != "cachix exited with exit status 1: fake failure" {
			t.Errorf("%s: last error %q", x.Path, x.LastError)
		}
		if x.LastAttempt.Before(before.Add(-time.Second)) || x.LastAttempt.After(after) {
			t.Errorf("%s: last attempt %v not within the run", x.Path, x.LastAttempt)
		}
		// retry_initial is 1h: the first retry is 30m to 1h later.
		if lo, hi := x.LastAttempt.Add(30*time.Minute), x.LastAttempt.Add(time.Hour); x.NextAttempt.Before(lo) || x.NextAttempt.After(hi) {
			t.Errorf("%s: next attempt %v, want within [%v, %v]", x.Path, x.NextAttempt, lo, hi)
		}
	}
	st := LoadState(e.q.Dir).Targets["main"]
	if st == nil || st.Calls != 1 || st.Pushed != 0 || st.LastFailure.IsZero() || !st.LastSuccess.IsZero() {
		t.Errorf("state.json for main = %+v, want one failed call", st)
	}

	// A second Once run leaves at once: nothing is due.
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); !errors.Is(err, ErrLeft) {
		t.Errorf("second Run(Once) = %v, want ErrLeft", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("second run called the pusher although nothing was due: %q", calls)
	}
}

func TestRunBadPathDoesNotHoldBackBatch(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.RetryInitial = 10 * time.Millisecond
	e.cfg.Queue.RetryMax = 10 * time.Millisecond
	ps := build(t, "good-1", "bad-1", "good-2")
	e.add(t, "main", ps...)
	bad := ps[1].String()
	f := &fakePusher{fail: func(paths []string) error {
		if slices.Contains(paths, bad) {
			return errors.New("path is not valid: " + bad)
		}
		return nil
	}}
	// Each run pushes what is due; the back-offs are short.
	eventually.True(t, runsWithin, "the bad path to be left alone in the queue", func() bool {
		err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once)
		if err != nil && !errors.Is(err, ErrLeft) {
			t.Fatalf("Run(Once) = %v", err)
		}
		return len(e.entries(t)) == 1
	}, e.log.String)
	left := e.entries(t)
	if x := left[bad]; x == nil || x.Attempts < 3 {
		t.Errorf("left in the queue: %v; want only the bad path, with 3 attempts or more", left)
	}
	calls, errs := f.Calls()
	multi := 0
	var alone []string
	for i, c := range calls {
		switch {
		case len(c) > 1 && slices.Contains(c, bad):
			multi++
			if errs[i] == nil {
				t.Errorf("call %d with %d paths, the bad one among them, succeeded", i, len(c))
			}
		case errs[i] == nil:
			alone = append(alone, c...)
		}
	}
	// Twice whole, then halved: [good-1 bad-1], then alone.
	if multi != 3 {
		t.Errorf("%d batch calls with the bad path, want 3 (whole twice, then its half): %q", multi, calls)
	}
	slices.Sort(alone)
	want := strs(ps[0], ps[2])
	slices.Sort(want)
	if !slices.Equal(alone, want) {
		t.Errorf("pushed: %q, want %q", alone, want)
	}
	if st := LoadState(e.q.Dir).Targets["main"]; st.Pushed != 2 {
		t.Errorf("state: %+v, want 2 pushed", st)
	}
}

func TestRunDropsGarbageCollected(t *testing.T) {
	e := mainEnv(t)
	present := build(t, "present-1")[0]
	gone, gone2 := mkPath("gone-1"), mkPath("gone-2") // never built
	e.add(t, "main", present, gone)
	f := &fakePusher{}
	start := time.Now().Add(-time.Second)
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(present)) {
		t.Errorf("pusher calls = %q, want one with only the path still in the store", calls)
	}
	if names, _ := e.q.Names(); len(names) != 0 {
		t.Errorf("entries left: %q", names)
	}
	d, ok := e.q.Dropped(queue.Key("main", gone), start, 0)
	if !ok {
		t.Fatal("the garbage-collected path is not in dropped/")
	}
	if !strings.Contains(d.Reason, "garbage-collected") || d.Path != gone.String() {
		t.Errorf("dropped entry = %+v, want a reason saying garbage-collected", d)
	}
	if !strings.Contains(e.log.String(), "garbage-collected") {
		t.Errorf("the drop is not logged:\n%s", e.log)
	}

	// A batch of garbage-collected paths only does not call the pusher.
	e.add(t, "main", gone2)
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher called for a batch of garbage-collected paths: %q", calls)
	}
	if _, ok := e.q.Dropped(queue.Key("main", gone2), start, 0); !ok {
		t.Error("second garbage-collected path not dropped")
	}
}

func TestRunClosureDenySkip(t *testing.T) {
	fakeStore(t)
	tg := mkTarget(t, "main", []string{"*"}, []string{"*-doc"})
	tg.ClosureDeny = config.ClosureSkip
	e := newEnv(t, tg)
	e.cfg.Nix.BinDir = fakeNixStore(t)
	ps := build(t, "clean-1", "withdoc-1", "noclosure-1")
	e.add(t, "main", ps...)
	f := &fakePusher{}
	start := time.Now().Add(-time.Second)
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	// A path Nix does not know is not pushed blind: it could hold a
	// denied path in its closure.
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(ps[0])) {
		t.Errorf("pusher calls = %q, want the clean path only", calls)
	}
	if d, ok := e.q.Dropped(queue.Key("main", ps[2]), start, 0); !ok || !strings.Contains(d.Reason, "not a valid path") {
		t.Errorf("the path Nix does not know: dropped = %v, %+v", ok, d)
	}
	d, ok := e.q.Dropped(queue.Key("main", ps[1]), start, 0)
	if !ok {
		t.Fatal("the path with a denied closure was not dropped")
	}
	if !strings.Contains(d.Reason, `closure_deny = "skip"`) || !strings.Contains(d.Reason, "hello-2.12.1-doc") || !strings.Contains(d.Reason, `"*-doc"`) {
		t.Errorf("drop reason = %q", d.Reason)
	}
}

// Under closure_deny = "push" the denied dependency goes up inside the
// closure of the path pushed: the history says so, so that `log` can
// tell the user it left the machine (the worker's log said it, the
// history did not).
func TestRunClosureDenyPushRecordsDependency(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"*-doc"}))
	e.cfg.Nix.BinDir = fakeNixStore(t)
	ps := build(t, "withdoc-1")
	e.add(t, "main", ps...)
	f := &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Fatalf("pusher calls = %q, want one", calls)
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil || len(recs) != 1 || recs[0].Outcome != history.Pushed {
		t.Fatalf("history = %+v, %v; want one pushed record", recs, err)
	}
	doc := mkPath("hello-2.12.1-doc").String()
	if r := recs[0].Reason; !strings.Contains(r, doc) || !strings.Contains(r, `deny "*-doc"`) || !strings.Contains(r, `closure_deny = "push"`) {
		t.Errorf("pushed record's reason = %q, want it to say %s went up inside its closure, denied", r, doc)
	}
}

func TestRunLeavesUnknownTargetAlone(t *testing.T) {
	e := mainEnv(t)
	ps := build(t, "a-1", "b-1")
	e.add(t, "main", ps[0])
	e.add(t, "removed", ps[1])
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": f})
	ctx, cancel := context.WithTimeout(context.Background(), runsWithin)
	defer cancel()
	err := w.Run(ctx, Once)
	if ctx.Err() != nil {
		t.Fatal("Run(Once) never returns while an entry of a target that is no longer configured is in the queue: " +
			"scan leaves it out of live, so the idle branch unlocks, sees Names() non-empty, re-acquires the lock and loops (busy) forever")
	}
	if err != nil && !errors.Is(err, ErrLeft) {
		t.Errorf("Run(Once) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 || !slices.Equal(calls[0], strs(ps[0])) {
		t.Errorf("pusher calls = %q, want only main's path", calls)
	}
	left := e.entries(t)
	if x := left[ps[1].String()]; len(left) != 1 || x == nil || x.Target != "removed" || x.Attempts != 0 || x.Reason != "" {
		t.Errorf("entries = %v, want the removed target's entry untouched", left)
	}
	if n := strings.Count(e.log.String(), "no longer configured"); n != 1 {
		t.Errorf("the unknown target was logged %d times, want once:\n%s", n, e.log)
	}
}

func TestRunRetryRequestRunningWorker(t *testing.T) {
	e := mainEnv(t)
	p := build(t, "a-1")[0]
	e.add(t, "main", p)
	x, _ := e.q.Get(queue.Key("main", p))
	x.Attempts, x.NextAttempt = 1, time.Now().Add(time.Hour)
	if err := e.q.Update(x); err != nil {
		t.Fatal(err)
	}
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": f})
	n := rounds(w)
	stop := runIn(t, w, Service)
	defer func() {
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run(Service) after cancel = %v, want context.Canceled", err)
		}
	}()
	// Once the worker has seen the waiting entry, ask for a retry.
	waitRound(t, n, e.log)
	if calls, _ := f.Calls(); len(calls) != 0 {
		t.Fatalf("pushed before it was due: %q", calls)
	}
	if err := e.q.RequestRetry(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retry request to make the waiting entry due", func() bool { calls, _ := f.Calls(); return len(calls) == 1 }, e.log)
	waitFor(t, "the entry to be removed after the retried push", func() bool { names, _ := e.q.Names(); return len(names) == 0 }, e.log)
}

func TestRunRetryRequestFreshWorker(t *testing.T) {
	// `cachix-filter-hook retry` requests a retry and starts a worker
	// when none runs (after `worker --once` left entries waiting).
	e := mainEnv(t)
	p := build(t, "a-1")[0]
	e.add(t, "main", p)
	x, _ := e.q.Get(queue.Key("main", p))
	x.Attempts, x.NextAttempt = 1, time.Now().Add(time.Hour)
	if err := e.q.Update(x); err != nil {
		t.Fatal(err)
	}
	if err := e.q.RequestRetry(); err != nil {
		t.Fatal(err)
	}
	f := &fakePusher{}
	err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once)
	if errors.Is(err, ErrLeft) {
		t.Fatal("a retry request taken by a freshly started worker is lost: Run calls TakeRetryRequest/retryNow " +
			"before the first scan, when w.entries is still empty, so no entry is made due and the request file is gone")
	}
	if err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher calls = %q, want the retried entry pushed", calls)
	}
}

func TestRunSpawned(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.Linger = 200 * time.Millisecond
	p := build(t, "a-1")[0]
	e.add(t, "main", p)
	f := &fakePusher{}
	start := time.Now()
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Spawned); err != nil {
		t.Fatalf("Run(Spawned) = %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("spawned worker exited after %v, before lingering 200ms", d)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher calls = %q", calls)
	}

	// A spawned worker leaves at once when another worker holds the lock.
	e.add(t, "main", p)
	l, err := e.q.AcquireWorker(context.Background(), 0)
	if err != nil || l == nil {
		t.Fatal(l, err)
	}
	defer l.Unlock()
	// Leaving at once is AcquireWorker's (queue's TestWorkerLock); here
	// run's hang guard catches a worker that stays.
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Spawned); err != nil {
		t.Errorf("Run(Spawned) with the lock taken = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("a second worker pushed: %q", calls)
	}
}

func TestRunCleansTmp(t *testing.T) {
	e := mainEnv(t)
	old := filepath.Join(e.q.Dir, "tmp", "left-by-a-killed-hook")
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if err := run(t, e.worker(nil), Once); err != nil {
		t.Fatalf("Run(Once) on an empty queue = %v", err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("the worker did not clean an old tmp file")
	}
}

// A worker killed between the CreateTemp and the Rename of a save of
// state.json leaves its temporary file in the queue directory, where
// CleanTmp (tmp/ only) never looked: the next worker removes it once old.
func TestRunCleansStateTmp(t *testing.T) {
	e := mainEnv(t)
	old, fresh := filepath.Join(e.q.Dir, "state.json.tmp123"), filepath.Join(e.q.Dir, "state.json.tmp456")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if err := run(t, e.worker(nil), Once); err != nil {
		t.Fatalf("Run(Once) on an empty queue = %v", err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("the worker did not clean an old state.json.tmp file")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the worker removed a fresh state.json.tmp file: %v", err)
	}
}

func TestWorkerEnv(t *testing.T) {
	got := Env([]string{"PATH=/bin", "HOME=/homeless-shelter"})
	if slices.Contains(got, "HOME=/homeless-shelter") {
		t.Errorf("Env kept HOME=/homeless-shelter: %q", got)
	}
	if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "HOME=/") }) {
		t.Errorf("Env set no HOME: %q", got)
	}
	got = Env([]string{"HOME=/h", "XDG_CONFIG_HOME=/c"})
	want := []string{"HOME=/h", "XDG_CONFIG_HOME=/c", "XDG_CACHE_HOME=/h/.cache"}
	if !slices.Equal(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}
}

// The worker bounds dropped/ by queue.dropped_max and
// queue.dropped_max_age as it starts (and every pruneEvery).
func TestRunPrunesDropped(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.DroppedMax, e.cfg.Queue.DroppedMaxAge = 5, 48*time.Hour
	for i := range 20 {
		p := mkPath(fmt.Sprintf("gone-%d", i))
		x := &queue.Entry{Target: "main", Path: p.String(), Queued: time.Now()}
		if _, err := e.q.Add([]queue.Pair{{Target: "main", Path: p}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		x, _ = e.q.Read(queue.Key("main", p))
		if err := e.q.Drop(x, "no longer in the store (garbage-collected)"); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-time.Duration(i+1) * 4 * time.Hour)
		os.Chtimes(filepath.Join(e.q.Dir, "dropped", queue.Key("main", p)), when, when)
	}
	if err := run(t, e.worker(nil), Once); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(e.q.Dir, "dropped", "*"))
	if len(left) != 5 {
		t.Errorf("%d entries left in dropped/, want 5 (queue.dropped_max)", len(left))
	}
	e.cfg.Queue.DroppedMax, e.cfg.Queue.DroppedMaxAge = 0, 10*time.Hour
	if err := run(t, e.worker(nil), Once); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(e.q.Dir, "dropped", "*")); len(left) != 2 {
		t.Errorf("%d entries left in dropped/, want the 2 younger than queue.dropped_max_age", len(left))
	}
}

// The outcome is in the history before the entry leaves the queue: a wait
// woken by the removal (cli/wait.go) reads it there. Looked at the moment
// inotify reports each entry's removal.
func TestRunHistoryBeforeTheEntryLeaves(t *testing.T) {
	e := mainEnv(t)
	ps := build(t, "hello-1", "hello-2", "hello-3")
	e.add(t, "main", ps...)
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatalf("inotify: %v", err) // Linux only: never a silent skip
	}
	defer fw.Close()
	if err := fw.Add(filepath.Join(e.q.Dir, "entries")); err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{} // written by the goroutine, read after seen
	seen := make(chan struct{})
	go func() {
		defer close(seen)
		removed := 0
		for ev := range fw.Events {
			if !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
				continue
			}
			recs, _ := history.Read(e.q.Dir)
			for _, p := range ps {
				if _, err := os.Stat(filepath.Join(e.q.Dir, "entries", queue.Key("main", p))); err == nil {
					continue // still queued
				}
				found := false
				for _, r := range recs {
					found = found || r.Path == p.String() && r.Outcome == history.Pushed
				}
				if !found {
					missing[p.String()] = true
				}
			}
			if removed++; removed == len(ps) {
				return
			}
		}
	}()
	if err := run(t, e.worker(map[string]*fakePusher{"main": {}}), Once); err != nil {
		t.Fatalf("Run(Once) = %v", err)
	}
	select {
	case <-seen:
	case <-time.After(eventually.Left(t)):
		t.Fatal("the removals were not all seen")
	}
	for p := range missing {
		t.Errorf("%s left the queue before its outcome was in the history", p)
	}
}

// A spawned worker that lingers with nothing to do is woken by a path
// queued meanwhile, not by its next look: here looks are an hour apart.
func TestRunSpawnedLingerWokenByQueue(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.Linger = time.Hour
	var lingers, atPush atomic.Int64
	f := &fakePusher{fail: func([]string) error { atPush.Store(lingers.Load()); return nil }}
	w := e.worker(map[string]*fakePusher{"main": f})
	w.idlePoll = time.Hour
	w.lingers = func() { lingers.Add(1) }
	// What wakes the worker (Queue.Notify), seen by a watch of the
	// test's own, in the kernel's order, with a fence of the test's.
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	fence := t.TempDir()
	for _, d := range append([]string{e.q.Dir, fence}, e.q.ChangeDirs()...) {
		if err := fw.Add(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	stop := runIn(t, w, Spawned)
	defer stop()
	waitFor(t, "the worker to linger", func() bool { return lingers.Load() >= 1 }, e.log)
	ps := build(t, "late-1")
	e.add(t, "main", ps...)
	waitFor(t, "the path queued while the worker lingers pushed", func() bool {
		calls, _ := f.Calls()
		return len(calls) == 1
	}, e.log)
	// Nothing it does while idle wakes it again: a worker woken by its
	// own writes would spin through rounds. The first lingering round
	// after the push has done its writes; the fence comes after them.
	waitFor(t, "the worker to linger after the push", func() bool { return lingers.Load() > atPush.Load() }, e.log)
	if err := os.WriteFile(filepath.Join(fence, "fence"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(e.q.Dir, "entries", queue.Key("main", ps[0]))
	for {
		select {
		case ev := <-fw.Events:
			if filepath.Dir(ev.Name) == fence {
				return
			}
			wakes := slices.Contains(e.q.ChangeDirs(), filepath.Dir(ev.Name)) ||
				ev.Has(fsnotify.Create) && slices.Contains(e.q.ChangeDirs(), ev.Name)
			if wakes && ev.Name != entry {
				t.Errorf("the lingering worker made %s, which wakes it: it would spin through rounds", ev)
			}
		case err := <-fw.Errors:
			t.Fatalf("watching the queue: %v", err)
		case <-time.After(eventually.Left(t)):
			t.Fatal("the test's fence was not seen by its own watch")
		}
	}
}

// undecidedEnv queues 20 paths for a target whose deny rule needs their
// closures, with no nix-store to ask: a batch Nix cannot decide.
func undecidedEnv(t *testing.T) *env {
	t.Helper()
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, []string{"secret-*"}))
	e.cfg.Nix.BinDir = t.TempDir() // no nix-store: every query fails
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("p%02d-1", i))
	}
	e.add(t, "main", build(t, names...)...)
	return e
}

// A batch Nix cannot decide (its closures cannot be asked: the rules
// could deny a dependency) backs off as a batch, as a failed push does,
// so that it is tried again as one batch, not scattered by per-entry
// jitter into many small ones.
func TestRunUndecidedBatchBacksOffTogether(t *testing.T) {
	e := undecidedEnv(t)
	f := &fakePusher{}
	if err := run(t, e.worker(map[string]*fakePusher{"main": f}), Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want ErrLeft", err)
	}
	if calls, _ := f.Calls(); len(calls) != 0 {
		t.Fatalf("pushed blind: %q", calls)
	}
	next := map[int64]int{}
	for _, x := range e.entries(t) {
		if x.Attempts != 1 || x.LastError == "" {
			t.Errorf("%s: attempts %d, error %q, want 1 and why", x.Path, x.Attempts, x.LastError)
		}
		next[x.NextAttempt.UnixNano()]++
	}
	if len(next) != 1 {
		t.Errorf("the batch's 20 entries got %d different next attempts, want one for the batch", len(next))
	}
}

// A batch Nix cannot decide is one line in the log per reason, with the
// count and the first path, as drops are: not a line per path (a push
// --closure's batch is 10,000), which would rotate the log away.
func TestRunUndecidedBatchSummedUp(t *testing.T) {
	e := undecidedEnv(t)
	w := e.worker(map[string]*fakePusher{"main": {}})
	w.log.Level = logrus.InfoLevel
	if err := run(t, w, Once); !errors.Is(err, ErrLeft) {
		t.Fatalf("Run(Once) = %v, want ErrLeft", err)
	}
	var lines []string
	for _, l := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(l, `msg="not pushed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "paths=20") || !strings.Contains(lines[0], "cannot tell whether its closure holds") {
		t.Errorf("%d lines for the batch, want one with paths=20 and why:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// A spawned worker that finds entries queued after it let go of the lock
// takes it again even when a probe (status, wait, doctor, a hook) holds
// it shared at that instant: it waits the probe out, as at its start.
// Taking it without waiting, it left with the entry queued and no worker
// to push it.
func TestRunSpawnedRetakesLockPastAProbe(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.Linger = 0
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": f})
	var once sync.Once
	w.released = func() {
		once.Do(func() {
			e.add(t, "main", build(t, "late-1")...)
			pf, err := os.Open(filepath.Join(e.q.Dir, "lock"))
			if err != nil {
				t.Error(err)
				return
			}
			if err := syscall.Flock(int(pf.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
				t.Error(err)
			}
			go func() {
				time.Sleep(50 * time.Millisecond)
				pf.Close()
			}()
		})
	}
	if err := run(t, w, Spawned); err != nil {
		t.Fatalf("Run(Spawned) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 1 {
		t.Errorf("pusher calls = %q, want the entry queued at the release pushed", calls)
	}
}

// An entry that can be neither read nor moved aside (corrupt/ is not a
// directory) was seen: a spawned worker that finds nothing else leaves,
// rather than taking it for new at every look and lingering for ever.
func TestRunSpawnedLeavesPastUnmovableEntry(t *testing.T) {
	e := mainEnv(t)
	noCorruptDir(t, e)
	if err := os.WriteFile(filepath.Join(e.q.Dir, "entries", "junk"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runsWithin)
	defer cancel()
	if err := e.worker(nil).Run(ctx, Spawned); err != nil {
		t.Fatalf("Run(Spawned) = %v, want it to leave, nothing left to push", err)
	}
}

// An entry the scan could not read for a reason of the moment (not
// corrupt: left in entries/, see queue's readEntry; here a lease held on
// it, which a non-blocking open fails with EWOULDBLOCK) and read at a
// later scan, pushed,
// then queued again while the spawned worker releases the lock, is new:
// the mark that it was unreadable must not outlive the error, or the
// worker leaves it queued with no worker.
func TestRunSpawnedSeesAgainAnEntryOnceUnreadable(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.Linger = 0
	p := build(t, "hello-1")[0]
	e.add(t, "main", p)
	file := filepath.Join(e.q.Dir, "entries", queue.Key("main", p))
	release := leased(t, file)
	f := &fakePusher{}
	w := e.worker(map[string]*fakePusher{"main": f})
	w.scan(time.Now())
	if _, err := os.Lstat(file); err != nil {
		t.Fatalf("the entry unreadable for a moment left entries/: %v", err)
	}
	if !w.unreadable[queue.Key("main", p)] {
		t.Fatalf("the entry was read through the lease:\n%s", e.log.String())
	}
	release() // readable again
	var once sync.Once
	w.released = func() { once.Do(func() { e.add(t, "main", p) }) }
	if err := run(t, w, Spawned); err != nil {
		t.Fatalf("Run(Spawned) = %v", err)
	}
	if calls, _ := f.Calls(); len(calls) != 2 {
		t.Errorf("pusher calls = %q, want the entry pushed, then again once queued again", calls)
	}
}

// Past maxUnreadable entries that can be neither read nor moved aside,
// the names of the others are not kept: each was taken for new at every
// look before leaving, and a spawned worker took the lock again, round
// after round, for ever. It leaves after a few rounds.
func TestRunSpawnedLeavesPastManyUnmovableEntries(t *testing.T) {
	e := mainEnv(t)
	noCorruptDir(t, e)
	for i := range maxUnreadable + 1 {
		if err := os.WriteFile(filepath.Join(e.q.Dir, "entries", fmt.Sprintf("junk%d", i)), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := e.worker(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rounds := 0
	w.roundStarts = func() {
		if rounds++; rounds > 10 {
			cancel()
		}
	}
	if err := w.Run(ctx, Spawned); err != nil {
		t.Fatalf("Run(Spawned) = %v after %d rounds, want it to leave, nothing left to push", err, rounds)
	}
}

// A file in dropped/ that can never be removed (a non-empty directory,
// as one set aside from entries/) is said once, not at every prune (every
// 10 minutes, for as long as the worker runs).
func TestPruneSaysStuckFileOnce(t *testing.T) {
	e := mainEnv(t)
	e.cfg.Queue.DroppedMax, e.cfg.Queue.DroppedMaxAge = 0, time.Hour
	stuck := filepath.Join(e.q.Dir, "dropped", "stuck")
	if err := os.MkdirAll(filepath.Join(stuck, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stuck, old, old); err != nil {
		t.Fatal(err)
	}
	w := e.worker(nil)
	now := time.Now()
	for i := range 3 {
		w.prune(now.Add(time.Duration(i) * pruneEvery))
	}
	if n := strings.Count(e.log.String(), "pruning dropped/ and corrupt/"); n != 1 {
		t.Errorf("the file that cannot be removed is said %d times, want once:\n%s", n, e.log.String())
	}
}

// Past maxUnreadable entries that can be neither read nor moved aside,
// each full scan logged every one whose name was not kept again: on a
// broken queue the worker's log grew by thousands of lines a scan, for
// ever. The rest is one line with their count, said when it changes.
func TestScanLogsUnreadableBeyondMaxOnce(t *testing.T) {
	e := mainEnv(t)
	noCorruptDir(t, e)
	for i := range maxUnreadable + 3 {
		if err := os.WriteFile(filepath.Join(e.q.Dir, "entries", fmt.Sprintf("junk%d", i)), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := e.worker(nil)
	now := time.Now()
	w.scan(now)
	first := strings.Count(e.log.String(), "\n")
	for i := 1; i <= 3; i++ {
		w.scan(now.Add(time.Duration(i) * 2 * fullScanEvery))
	}
	if n := strings.Count(e.log.String(), "\n"); n != first {
		t.Errorf("full scans of the same unreadable entries logged %d more lines", n-first)
	}
	if first > maxUnreadable+1 {
		t.Errorf("the first scan logged %d lines, want the entries beyond %d as one", first, maxUnreadable)
	}
}

// truncate cut at a byte count, which could fall inside a UTF-8
// character of an error (a path, a pusher's line): state.json then
// recorded U+FFFD for half a character. It cuts before the character.
func TestTruncateKeepsUTF8Whole(t *testing.T) {
	for _, c := range []string{"é", "日", "🙂"} {
		s := strings.Repeat(c, 10)
		for n := range len(s) {
			got := truncate(s, n)
			if !utf8.ValidString(got) || !strings.HasPrefix(s, strings.TrimSuffix(got, "…")) || len(got) < n-3 {
				t.Errorf("truncate(%q, %d) = %q", s, n, got)
			}
		}
	}
}

// truncate cut an error at a byte count that could fall inside an
// escape the pusher's output cutter or %q wrote: state.json and status
// then showed "\x1…" or "\u20…", half an escape that reads as other
// text. It cuts before the escape.
func TestTruncateKeepsEscapesWhole(t *testing.T) {
	for _, esc := range []string{`\x1b`, `\u202e`, `\U000e0001`, `\\`} {
		const pre = "cachix: "
		s := pre + strings.Repeat(esc+"x", 5)
		for n := range len(s) {
			got := strings.TrimSuffix(truncate(s, n), "…")
			// Whole escapes, each with the x after it or not.
			if k := (len(got) - len(pre)) % (len(esc) + 1); len(got) > len(pre) && k != 0 && k != len(esc) || len(got) < n-len(esc) {
				t.Errorf("truncate(%q, %d) = %q, which ends in half an escape", s, n, got)
			}
		}
	}
}

// The worker the hook starts searches for hook.conf where the hook did.
// The hook found no file (settings from the environment alone) and
// passed no --config, but Env gave the worker the HOME and
// XDG_CONFIG_HOME nix-daemon's environment lacks (cachix needs them):
// the worker then found root's ~/.config/cachix-filter-hook/hook.conf,
// which the hook never read, and pushed by its rules.
func TestSpawnedWorkerSearchesWhereTheHookDid(t *testing.T) {
	vars := []string{"HOME", "XDG_CONFIG_HOME", config.EnvUserConfigDir}
	set := func(env []string) {
		for _, v := range vars {
			t.Setenv(v, "") // restored after the test
			os.Unsetenv(v)
		}
		for _, kv := range env {
			k, val, _ := strings.Cut(kv, "=")
			if slices.Contains(vars, k) {
				os.Setenv(k, val)
			}
		}
	}
	for _, hook := range [][]string{
		{},
		{"HOME=/homeless-shelter"},
		{"HOME=relative"},
		{"HOME=/h"},
		{"HOME=/h", "XDG_CONFIG_HOME=/c"},
		{"XDG_CONFIG_HOME=/c"},
	} {
		set(hook)
		want := config.SearchPath()
		set(spawnEnv("/q"))
		if got := config.SearchPath(); !slices.Equal(got, want) {
			t.Errorf("hook's environment %q: the worker searches %q, the hook searched %q", hook, got, want)
		}
	}
}

// After every pushed batch the drops of its pairs leave dropped/. A
// build's batch of one tried them by listing dropped/ whole: with
// thousands of drops there, each push cost milliseconds and a name
// allocated per drop (see BenchmarkForgetDrops). A small batch tries its
// own pairs, a large one lists once; both remove the drop of a pair
// pushed, and only that.
func TestForgetDropsCostsNoListingForASmallBatch(t *testing.T) {
	e := mainEnv(t)
	dropped := filepath.Join(e.q.Dir, "dropped")
	if err := os.Mkdir(dropped, 0o700); err != nil {
		t.Fatal(err)
	}
	const drops = 500
	for i := range drops {
		k := queue.Key("main", mkPath(fmt.Sprintf("gone-%d", i)))
		if err := os.WriteFile(filepath.Join(dropped, k), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := e.worker(nil)
	log := w.log.WithField("target", "main")
	stub := func(name string) *queue.Entry { return queue.Stub(queue.Key("main", mkPath(name)), "") }
	one := []*queue.Entry{stub("up-1")}
	if n := testing.AllocsPerRun(5, func() { w.forgetDrops(log, one) }); n > drops/10 {
		t.Errorf("forgetDrops of one path made %.0f allocations with %d drops in dropped/: it lists dropped/", n, drops)
	}
	for i, size := range []int{1, forgetEach + 1} {
		batch := []*queue.Entry{stub(fmt.Sprintf("gone-%d", size))}
		for len(batch) < size {
			batch = append(batch, stub(fmt.Sprintf("up-%d-%d", size, len(batch))))
		}
		w.metrics.stale = false
		w.forgetDrops(log, batch)
		if _, err := os.Lstat(filepath.Join(dropped, batch[0].Key())); err == nil {
			t.Errorf("batch of %d: the drop of a path pushed is still in dropped/", size)
		}
		if !w.metrics.stale {
			t.Errorf("batch of %d: a drop removed left the metrics as they were", size)
		}
		if names, _ := e.q.DroppedNames(); len(names) != drops-1-i {
			t.Errorf("batch of %d: %d drops left, want %d", size, len(names), drops-1-i)
		}
	}
}
