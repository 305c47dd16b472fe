package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// writeWorkerState writes state.json as a worker records itself.
func writeWorkerState(t *testing.T, dir string, wi *worker.WorkerInfo) {
	t.Helper()
	b, err := json.Marshal(&worker.State{Targets: map[string]*worker.TargetState{}, Worker: wi})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// status shows the config and log files the running worker uses, as it
// recorded them, not the caller's, and says how they differ.
func TestStatusShowsWorkersFiles(t *testing.T) {
	q, dir := testQueue(t)
	conf := func(name, log string) string {
		file := filepath.Join(dir, name)
		mainConf(t, file, q.Dir, fmt.Sprintf("[log]\nfile = %q\n", log))
		return file
	}
	theirs := conf("worker.conf", filepath.Join(dir, "theirs.log"))
	mine := conf("mine.conf", filepath.Join(dir, "mine.log"))
	c, err := config.Load(mine)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatal(lock, err)
	}
	defer func() {
		if lock != nil {
			lock.Unlock()
		}
	}()
	collect := func() (*queueStatus, string) {
		t.Helper()
		st, err := collectStatus(c, q)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		st.print(&out)
		return st, out.String()
	}

	// Another file and log.
	wi := &worker.WorkerInfo{PID: os.Getpid(), Fingerprint: worker.FingerprintOf(theirs), LogFile: filepath.Join(dir, "theirs.log"), Loaded: time.Now()}
	writeWorkerState(t, q.Dir, wi)
	st, out := collect()
	if st.FilesOf != "worker" || st.ConfigFile != theirs || st.LogFile != wi.LogFile || st.CallerConfigFile != mine ||
		!slices.Equal(st.ConfigDiffers, []string{"file", "log_file"}) || st.WorkerPID != os.Getpid() {
		t.Errorf("status = %+v", st)
	}
	for _, want := range []string{
		"config " + theirs + " (the running worker's; yours is " + mine + ")",
		"log " + wi.LogFile + " (the running worker's; yours is " + filepath.Join(dir, "mine.log") + ")",
		fmt.Sprintf("worker running (pid %d)", os.Getpid()),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// The same file, changed since the worker loaded it; then changed
	// into one it cannot load.
	wi.Fingerprint = worker.FingerprintOf(mine)
	wi.Digest = "0123"
	wi.LogFile = c.Log.File
	writeWorkerState(t, q.Dir, wi)
	if st, out = collect(); !slices.Equal(st.ConfigDiffers, []string{"content"}) || !strings.Contains(out, mine+" changed since the worker loaded it") {
		t.Errorf("status = %+v\n%s", st, out)
	}
	wi.ConfigError = `unknown key "alow"`
	writeWorkerState(t, q.Dir, wi)
	if st, out = collect(); st.WorkerConfigError != wi.ConfigError || !strings.Contains(out, `cannot load the changed configuration and keeps the one loaded at `) {
		t.Errorf("status = %+v\n%s", st, out)
	}

	// Other overrides in the worker's environment.
	wi.Fingerprint = worker.FingerprintOf(mine)
	wi.ConfigError = ""
	wi.Env, wi.EnvDigest = []string{config.EnvName("deny")}, "4567"
	writeWorkerState(t, q.Dir, wi)
	if st, out = collect(); !slices.Equal(st.ConfigDiffers, []string{"environment"}) || !strings.Contains(out, "other CACHIX_FILTER_HOOK_* overrides than yours (its own: CACHIX_FILTER_HOOK_DENY)") {
		t.Errorf("status = %+v\n%s", st, out)
	}

	// A record left by a worker that is gone is not the running one's.
	wi.PID = 1 << 30
	writeWorkerState(t, q.Dir, wi)
	if st, _ = collect(); st.FilesOf != "caller" || st.ConfigFile != mine || len(st.ConfigDiffers) != 0 {
		t.Errorf("status with a dead worker's record = %+v", st)
	}
	// No worker running: the caller's files.
	wi.PID = os.Getpid()
	writeWorkerState(t, q.Dir, wi)
	lock.Unlock()
	lock = nil
	if st, out = collect(); st.FilesOf != "caller" || st.ConfigFile != mine || !strings.Contains(out, "config "+mine+"\n") {
		t.Errorf("status without a worker = %+v\n%s", st, out)
	}
}

// droppedQueue is a queue whose config, in the file returned, does not
// load, with n entries of the target main in dropped/, each holding a
// reason of reasonSize bytes.
func droppedQueue(tb testing.TB, n, reasonSize int) (*queue.Queue, string) {
	tb.Helper()
	for _, k := range []string{config.EnvConfig, config.EnvName("cache"), config.EnvName("queue.dir")} {
		tb.Setenv(k, "")
	}
	dir := tb.TempDir()
	q, err := queue.Open(filepath.Join(dir, "queue"))
	if err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(dir, "hook.conf")
	if err := os.WriteFile(file, fmt.Appendf(nil, "cache = \"main\"\nalow = [\"*\"]\n[queue]\ndir = %q\n", q.Dir), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(q.Dir, "dropped"), 0o700); err != nil {
		tb.Fatal(err)
	}
	e := queue.Entry{Target: "main", Queued: time.Now().UTC(), Reason: strings.Repeat("x", reasonSize)}
	for i := range n {
		hash := fmt.Sprintf("%032d", i)
		e.Path = "/nix/store/" + hash + "-p"
		data, err := json.Marshal(&e)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(q.Dir, "dropped", hash+"."+queue.TargetDigest("main")), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return q, file
}

// status of a config that does not load learns the targets of dropped/
// from one entry each, and counts the rest by their names, as status
// does with a config: it read every entry (100,000 took seconds, see
// BenchmarkStatusDropped). Bounded by what it allocates, not by time:
// each entry holds a reason of 32 KiB.
func TestStatusWithoutConfigReadsOneDroppedPerTarget(t *testing.T) {
	const n, size = 500, 32 << 10
	_, file := droppedQueue(t, n, size)
	var out, errOut bytes.Buffer
	e := &env{ctx: context.Background(), configFlag: file, stdout: &out, stderr: &errOut}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st := runStatus(e, &statusOptions{})
	runtime.ReadMemStats(&after)
	if want := fmt.Sprintf("main (destination unknown): 0 pending, 0 failing, %d dropped", n); st != 1 || !strings.Contains(out.String(), want) {
		t.Fatalf("status exited %d, want 1 and %q:\n%s%s", st, want, out.String(), errOut.String())
	}
	// Reading each would allocate n*size = 16 MiB at least.
	if got := after.TotalAlloc - before.TotalAlloc; got > n*size/4 {
		t.Errorf("status allocated %d bytes for %d dropped entries of %d bytes: it read them", got, n, size)
	}
}

// BenchmarkStatusDropped is status with 100,000 entries in dropped/, with
// a config and with one that does not load.
func BenchmarkStatusDropped(b *testing.B) {
	q, broken := droppedQueue(b, 100000, 100)
	loads := filepath.Join(filepath.Dir(broken), "loads.conf")
	mainConf(b, loads, q.Dir, "")
	for _, bc := range []struct{ name, file string }{{"config", loads}, {"broken", broken}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				e := &env{ctx: context.Background(), configFlag: bc.file, stdout: io.Discard, stderr: io.Discard}
				runStatus(e, &statusOptions{})
			}
		})
	}
}

// status says when a failing entry is tried next as the worker counts
// it: a time stamped before the clock went back is cut to retry_max (10m
// by default), and one that passed is due. It said "next in 100h0m0s"
// and "next in -1h0m0s".
func TestStatusNextAttemptAsTheWorkerWaits(t *testing.T) {
	q, file := mainQueue(t)
	now := time.Now()
	for _, f := range []struct {
		path string
		next time.Time
	}{
		{"/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-ahead-1.0", now.Add(100 * time.Hour)},
		{"/nix/store/b9r346p3d25vs4g5v37f3r3f28js97kb-passed-1.0", now.Add(-time.Hour)},
	} {
		p, err := storepath.Parse("/nix/store", f.path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Add([]queue.Pair{{Target: "main", Path: p}}, now); err != nil {
			t.Fatal(err)
		}
		e, err := q.Peek(queue.Key("main", p))
		if err != nil {
			t.Fatal(err)
		}
		e.Attempts, e.NextAttempt, e.LastError = 1, f.next, "boom"
		if err := q.Update(e); err != nil {
			t.Fatal(err)
		}
	}
	e, _, out := loadedEnv(t, file)
	if st := runStatus(e, &statusOptions{}); st != 0 {
		t.Fatalf("status exited %d:\n%s", st, out)
	}
	for _, want := range []string{"ahead-1.0: 1 attempts, next in 10m0s: boom\n", "passed-1.0: 1 attempts, next in 0s: boom\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// status counted an entry it could not open for a reason of the moment
// (here a lease another holds on it: like EMFILE, the worker leaves it
// queued and reads it again) as unreadable, for the worker to set aside,
// where status --prometheus counts only what the worker will set aside.
func TestStatusCorruptIsWhatTheWorkerSetsAside(t *testing.T) {
	q, file := mainQueue(t)
	held := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "held-1")
	if _, err := q.Add([]queue.Pair{{Target: "main", Path: held}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	leased(t, filepath.Join(q.Dir, "entries", queue.Key("main", held)))
	bad := filepath.Join(q.Dir, "entries", queue.Key("main", storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "bad-1")))
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, c, _ := loadedEnv(t, file)
	st, err := collectStatus(c, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Corrupt != 1 {
		t.Errorf("status counts %d corrupt entries, want 1 (the garbage entry, not the leased one)", st.Corrupt)
	}
}

// status counted only the unreadable entries still in entries/, and
// status --prometheus (as the worker's metrics.file) those set aside in
// corrupt/ too, until forget --corrupt: with one in corrupt/, status
// said nothing of it where the metrics said 1. Both count the same.
func TestStatusCorruptAgreesWithMetrics(t *testing.T) {
	q, file := mainQueue(t)
	if err := os.MkdirAll(filepath.Join(q.Dir, "corrupt"), 0o700); err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(q.Dir, "corrupt", "x9r346p3d25vs4g5v37f3r3f28js97kb.0d6e4079e367.20261124T000000.000000000")
	if err := os.WriteFile(aside, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(q.Dir, "entries", queue.Key("main", storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "bad-1")))
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	if code := e.printMetrics(c, q, false); code != 0 || !strings.Contains(out.String(), "\ncachix_filter_hook_corrupt_entries 2\n") {
		t.Fatalf("printMetrics exited %d, want corrupt_entries 2:\n%s", code, out)
	}
	st, err := collectStatus(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	st.print(&text)
	if st.Corrupt != 2 || !strings.Contains(text.String(), "2 unreadable entries") {
		t.Errorf("status counts %d corrupt entries, want 2 as the metrics:\n%s", st.Corrupt, text.String())
	}
}

// A package list the hook did not read waits in the queue for the
// worker to read it: status counts it, for what it names is not queued
// yet. One past what a run reads (pkglist.ErrTooMany) the hook never
// tried: status does not say it "could not" read it.
func TestStatusCountsUnreadLists(t *testing.T) {
	q, file := mainQueue(t)
	list := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "cachix-packages-dev")
	if err := q.AddUnreadList(list, "cannot be read now", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	past := storepath.New(storepath.StoreDir(), "1123456789abcdfghijklmnpqrsvwxyz", "cachix-packages-more")
	if err := q.AddUnreadList(past, "package list not read by the hook: "+pkglist.ErrTooMany.Error(), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, c, _ := loadedEnv(t, file)
	st, err := collectStatus(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	st.print(&text)
	if st.UnreadLists != 2 || !strings.Contains(text.String(), "2 package lists not read by the hook") || strings.Contains(text.String(), "could not read") {
		t.Errorf("status counts %d lists to read again, want 2, not read by the hook:\n%s", st.UnreadLists, text.String())
	}
}
