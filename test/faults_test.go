package test

// Fault injection (issue 10): a build caller's pipe, a hanging pusher with
// a grandchild holding its output, a pusher printing without end, clocks
// that step, entries that cannot be removed, worker and pusher SIGKILLed
// at random. Helpers here are prefixed with fl.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// flTrick sets the stand-in's trick file, which the pushes of a running
// worker read too; "" removes it.
func flTrick(t *testing.T, e *Env, spec string) {
	t.Helper()
	file := filepath.Join(e.Standin, "trick")
	if spec == "" {
		if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flFailedPushes counts the stand-in's failed invocations.
func flFailedPushes(e *Env) int {
	n := 0
	for _, inv := range e.Invocations() {
		if inv.Exit != 0 {
			n++
		}
	}
	return n
}

// flCachix is the configuration of one cachix target, cache, allowing
// every path; the tests append the sections they need.
func flCachix(cache string) string {
	return `
cache = "` + cache + `"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`
}

// flFastQueue is a [queue] section whose retries come within a second.
const flFastQueue = `
[queue]
dir = "@DIR@/queue"
linger = "1s"
retry_initial = "200ms"
retry_max = "1s"
`

// flBuildQueued builds expr with the worker lock held, so the hook queues
// its paths but starts no worker: the test starts one as it needs.
func flBuildQueued(t *testing.T, e *Env, expr string) []string {
	t.Helper()
	unlock := plLockQueue(t, e.Queue)
	defer unlock()
	paths, _ := e.Build(expr)
	return paths
}

// flStart starts cmd and returns a channel that gets its exit.
func flStart(t *testing.T, cmd *exec.Cmd) <-chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited
}

// flBuildPiped runs `(nix-build FILE ... 7>&1) | cat` through a shell, as
// a CI script capturing the output may, and returns how long it took.
// nix-build, the hook and everything the hook starts inherit fd 7: the
// write end of the pipe cat reads until EOF.
func flBuildPiped(t *testing.T, e *Env, hook, expr string) time.Duration {
	t.Helper()
	file := filepath.Join(e.Dir, "piped-"+nixtest.Salt()+".nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c",
		`(nix-build "$1" --no-out-link --option substituters "" --option post-build-hook "$2" 7>&1) | cat`, "sh", file, hook)
	cmd.Env = e.environ()
	// Kill the whole pipeline on timeout, cat included.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("(nix-build ... 7>&1) | cat with hook %s did not return by go test's bound: something holds the pipe\n%s", hook, out)
	}
	if err != nil {
		t.Fatalf("nix-build failed: %v\n%s", err, out)
	}
	return took
}

// 1. A caller's pipe on another descriptor is not held by the worker:
// `(nix-build ... 7>&1) | cat` returns while the worker still runs,
// failing every push.
func TestFaultBuildCallerPipeNotHeld(t *testing.T) {
	e := NewEnv(t, flCachix("failing"))
	flTrick(t, e, "fail")
	base := flBuildPiped(t, e, "/bin/true", nixtest.List(nixtest.Drv(nixtest.Salt(), "base-1.0", nil)))
	took := flBuildPiped(t, e, hookBin, nixtest.List(nixtest.Drv(nixtest.Salt(), "piped-1.0", nil)))
	t.Logf("(nix-build ... 7>&1) | cat: %s with /bin/true as hook, %s with the hook", base.Round(time.Millisecond), took.Round(time.Millisecond))
	// The pipe closed although the worker still runs: it does not hold
	// the descriptor.
	if len(workerPIDs(e.Queue)) == 0 {
		t.Fatal("no worker runs after the build: the test cannot tell whether it would hold the pipe")
	}
	eventually.True(t, eventually.Left(t), "a push to fail", func() bool { return flFailedPushes(e) > 0 })
	if e.QueueEntries() == 0 {
		t.Error("the entry left the queue although every push fails")
	}
	// Let the cleanup's wait end quickly.
	flTrick(t, e, "")
}

// flPIDs reads the pids the stand-in's hang trick recorded.
func flHangPIDs(e *Env) []int {
	b, _ := os.ReadFile(filepath.Join(e.Standin, "hang.pids"))
	var pids []int
	// Whole lines only: a line read while the stand-in writes it could
	// be the first digits of a pid, another process's (or 1).
	lines := strings.Split(string(b), "\n")
	for _, f := range lines[:len(lines)-1] {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// flAlive reports whether pid runs and is not a zombie.
func flAlive(pid int) bool {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(st), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// flOpens reports which of pid's descriptors lead to file.
func flOpens(pid int, file string) []string {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, _ := os.ReadDir(dir)
	var fds []string
	for _, d := range ents {
		if l, err := os.Readlink(filepath.Join(dir, d.Name())); err == nil && l == file {
			fds = append(fds, d.Name())
		}
	}
	return fds
}

// 2. A pusher that hangs, with a grandchild holding its output, is killed
// with its whole group after queue.push_timeout; status says "timed out";
// SIGTERM stops the worker, not waiting for the push's timeout, every
// entry still queued; the pushers do not get the worker's inherited
// descriptors.
func TestFaultHangingPusherTimedOut(t *testing.T) {
	conf := flCachix("hanging") + flFastQueue + `push_timeout = "%s"
`
	// First a push_timeout longer than the test may run: a worker that
	// waited for it after SIGTERM, rather than stopping the push, would
	// not exit before the test's deadline, however fast the machine.
	e := NewEnv(t, fmt.Sprintf(conf, "1000h"))
	// Queue without a worker, to start one by hand with fd 7 open.
	s := nixtest.Salt()
	paths := flBuildQueued(t, e, nixtest.List(nixtest.Drv(s, "hang1-1.0", nil), nixtest.Drv(s, "hang2-1.0", nil)))
	flTrick(t, e, "hang")
	defer func() {
		for _, pid := range flHangPIDs(e) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	marker := filepath.Join(e.Dir, "inherited-fd")
	cmd := exec.Command("/bin/sh", "-c", `exec 7>>"$1"; exec "$2" worker`, "sh", marker, hookBin)
	cmd.Env = e.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	exited := flStart(t, cmd)
	defer cmd.Process.Kill()

	eventually.True(t, eventually.Left(t), "the pusher to hang", func() bool { return len(flHangPIDs(e)) > 0 && len(plStandinPIDs(e)) > 0 })
	if got := flOpens(cmd.Process.Pid, marker); len(got) == 0 {
		t.Fatalf("the worker does not have the marker open: the test cannot see the defect")
	}
	for _, pid := range append(plStandinPIDs(e), flHangPIDs(e)...) {
		if got := flOpens(pid, marker); len(got) > 0 {
			t.Errorf("pusher process %d inherited the worker's descriptor(s) %v", pid, got)
		}
	}

	// SIGTERM in the middle of the hanging push.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Logf("worker exited %v after SIGTERM", err)
	case <-time.After(eventually.Left(t)):
		t.Fatalf("the worker did not exit after SIGTERM: it waits for the push's timeout (1000h), not stopping it\n%s", stderr.String())
	}
	if got := e.QueueEntries(); got != len(paths) {
		t.Errorf("%d entries queued after SIGTERM, want %d", got, len(paths))
	}
	eventually.True(t, eventually.Left(t), "every pusher and grandchild to be gone after SIGTERM", func() bool {
		for _, pid := range flHangPIDs(e) {
			if flAlive(pid) {
				return false
			}
		}
		return len(plStandinPIDs(e)) == 0
	})

	// Then a push_timeout that passes: a new worker's hanging push is
	// killed after it, its grandchild too.
	if err := os.WriteFile(e.Conf, []byte(strings.NewReplacer("@DIR@", e.Dir, "@CACHIX@", standinBin).Replace(fmt.Sprintf(conf, "30s"))), 0o600); err != nil {
		t.Fatal(err)
	}
	hung := len(flHangPIDs(e))
	flStartWorker(t, e)
	var status string
	eventually.True(t, eventually.Left(t), "status to show the timeout", func() bool {
		status = plStatusText(t, e)
		return strings.Contains(status, "timed out after 30s")
	})
	t.Logf("status:\n%s", status)
	if pids := flHangPIDs(e); len(pids) <= hung {
		t.Fatalf("status shows a timeout, but the new worker's push did not hang")
	}
	first := flHangPIDs(e)[hung]
	eventually.True(t, eventually.Left(t), "the timed-out pusher's grandchild to be killed", func() bool { return !flAlive(first) })
	// The entries are written before the log line: status can show the
	// timeout a moment before the log does.
	eventually.True(t, eventually.Left(t), "the worker log to show the timeout", func() bool {
		return strings.Contains(e.Log(), "timed out after 30s")
	}, e.Log)
	flTrick(t, e, "")
	e.Wait(eventually.Left(t))
	plExpectCache(t, "hanging", filepath.Join(e.Standin, "hanging"), paths, func(string) bool { return true })
}

// 2b. SIGTERM in the middle of a round of batches: the batch being pushed
// is cut short and the batches after it are not started, all left as they
// were (no attempt counted, no error). Both targets deny something, so
// each batch asks Nix for its closures first: with the cancelled context
// that failed, and marked the later batches' entries failed.
func TestFaultSigtermLeavesLaterBatches(t *testing.T) {
	e := NewEnv(t, `
cache = "first"
allow = ["*"]
deny = ["*-secret-*"]

[[target]]
cache = "second"
allow = ["*"]
deny = ["*-secret-*"]

[cachix]
bin = "@CACHIX@"
`)
	s := nixtest.Salt()
	paths := flBuildQueued(t, e, nixtest.List(nixtest.Drv(s, "term1-1.0", nil), nixtest.Drv(s, "term2-1.0", nil)))
	// The first batch's push is still running when SIGTERM comes.
	plSetVar(e, "CACHIX_STANDIN_DELAY", "60s")
	cmd, exited := flStartWorker(t, e)
	eventually.True(t, eventually.Left(t), "the first push to start", func() bool { return len(plStandinPIDs(e)) > 0 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(eventually.Left(t)):
		t.Fatal("the worker did not exit after SIGTERM")
	}
	entries := plReadEntries(t, filepath.Join(e.Queue, "entries"))
	if len(entries) != 2*len(paths) {
		t.Errorf("%d entries after SIGTERM, want %d: the worker waited for the first push (60 s), or started the later batches", len(entries), 2*len(paths))
	}
	for _, en := range entries {
		if en.Attempts != 0 {
			t.Errorf("%s -> %s: %d attempts after SIGTERM, want 0", nixtest.Name(en.Path), en.Target, en.Attempts)
		}
	}
	if st := plStatusText(t, e); strings.Contains(st, "failing /nix/store") || strings.Contains(st, "queue error") {
		t.Errorf("status after SIGTERM shows failures:\n%s", st)
	}
	plSetVar(e, "CACHIX_STANDIN_DELAY", "")
	e.Wait(eventually.Left(t))
	for _, c := range []string{"first", "second"} {
		plExpectCache(t, c, filepath.Join(e.Standin, c), paths, func(string) bool { return true })
	}
}

// flVmHWM reads a process's peak resident set size, in KiB.
func flVmHWM(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// flStartWorker starts `cachix-filter-hook worker` (the foreground
// worker) and returns it with a channel that gets its exit.
func flStartWorker(t *testing.T, e *Env) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(hookBin, "worker")
	cmd.Env = e.environ()
	exited := flStart(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, exited
}

// flUnremovable makes file impossible to remove or replace, even for
// root, and returns the undo (also run when the test ends): the
// immutable attribute (chattr +i, which needs CAP_LINUX_IMMUTABLE, which
// containers often lack), or else a read-only bind mount of its
// directory (which needs CAP_SYS_ADMIN). With neither it skips, unless
// CI requires the test (CI=true or CFH_TEST_REQUIRE_NIX=1, as .ci/run
// sets): there it fails.
func flUnremovable(t *testing.T, file string) (undo func()) {
	t.Helper()
	out, err := exec.Command("chattr", "+i", file).CombinedOutput()
	if err == nil {
		undo = func() { exec.Command("chattr", "-i", file).Run() }
		t.Cleanup(undo)
		return undo
	}
	why := fmt.Sprintf("chattr +i: %v %s", err, bytes.TrimSpace(out))
	dir := filepath.Dir(file)
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		why += fmt.Sprintf("; mount --bind: %v %s", err, bytes.TrimSpace(out))
	} else {
		// Lazily: the worker may have the directory open.
		var once sync.Once
		undo = func() { once.Do(func() { exec.Command("umount", "-l", dir).Run() }) }
		t.Cleanup(undo)
		out, err := exec.Command("mount", "-o", "remount,ro,bind", dir).CombinedOutput()
		if err == nil {
			return undo
		}
		why += fmt.Sprintf("; remount read-only: %v %s", err, bytes.TrimSpace(out))
	}
	if os.Getenv("CI") == "true" || os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
		t.Fatalf("cannot make %s unremovable here, and CI requires this test: %s", file, why)
	}
	t.Skipf("cannot make %s unremovable here: %s", file, why)
	return nil
}

// 3. 50 MB of pusher output on one line, log.max_size = "1MiB": the log
// files stay under 3 MiB and the worker's peak RSS under 64 MiB.
func TestFaultFloodedOutputBounded(t *testing.T) {
	e := NewEnv(t, flCachix("flood")+flFastQueue+`
[log]
max_size = "1MiB"
`)
	paths := flBuildQueued(t, e, nixtest.List(nixtest.Drv(nixtest.Salt(), "flood-1.0", nil)))
	const flood = 50 << 20
	flTrick(t, e, "flood="+strconv.Itoa(flood))
	cmd, exited := flStartWorker(t, e)
	eventually.True(t, eventually.Left(t), "the flooding push to land", func() bool {
		return e.QueueEntries() == 0 && len(CachePaths(t, filepath.Join(e.Standin, "flood"))) > 0
	})
	hwm := flVmHWM(t, cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	// Bounded: a worker that ignores SIGTERM fails the test saying so,
	// not in go test's timeout panic, which runs no later test.
	eventually.Recv(t, eventually.Left(t), "the worker to exit after SIGTERM", exited, e.Log)
	var logBytes int64
	for _, f := range []string{"worker.log", "worker.log.1"} {
		if fi, err := os.Stat(filepath.Join(e.Queue, f)); err == nil {
			logBytes += fi.Size()
		}
	}
	t.Logf("%d bytes of pusher output on one line, log.max_size 1MiB: log files %d bytes, worker peak RSS (VmHWM) %d KiB", flood, logBytes, hwm)
	if logBytes >= 3<<20 {
		t.Errorf("the log files hold %d bytes, want under 3 MiB", logBytes)
	}
	if hwm >= 64<<10 {
		t.Errorf("the worker's peak RSS is %d KiB, want under 64 MiB", hwm)
	}
	if !strings.Contains(e.Log(), "line cut") {
		t.Errorf("the worker log does not show the cut line")
	}
	plExpectCache(t, "flood", filepath.Join(e.Standin, "flood"), paths, func(string) bool { return true })
}

// flRestamp rewrites a field of every queue entry (JSON: a file in
// entries/, or a line of a bulk file) with val.
func flRestamp(t *testing.T, e *Env, field string, val any) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.Queue, "entries", "*"))
	bulk, _ := filepath.Glob(filepath.Join(e.Queue, "bulk", "*"))
	if len(files)+len(bulk) == 0 {
		t.Fatal("no entries to restamp")
	}
	for _, f := range append(files, bulk...) {
		var lines []string
		for _, line := range strings.Split(strings.TrimSpace(plMustRead(t, f)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			m[field] = val
			b, _ := json.Marshal(m)
			lines = append(lines, string(b))
		}
		if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// 4a. An entry stamped a day in the future (the clock went back after the
// hook queued it) is pushed, and `worker --once` exits 0.
func TestFaultFutureStampedEntryPushed(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/future"
allow = ["*"]
`)
	paths := flBuildQueued(t, e, nixtest.List(nixtest.Drv(nixtest.Salt(), "future-1.0", nil)))
	flRestamp(t, e, "queued", time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339Nano))
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, "worker", "--once")
	if ctx.Err() != nil {
		t.Fatalf("worker --once did not exit by go test's bound with a future-stamped entry")
	}
	if code != 0 {
		t.Fatalf("worker --once exited %d: %s%s", code, out, errOut)
	}
	plExpectCache(t, "future", filepath.Join(e.Dir, "future"), paths, func(string) bool { return true })
}

// 4b. An entry that cannot be removed after its push is pushed again with
// back-off, not in a loop, and status shows why.
func TestFaultUnremovableEntryBackedOff(t *testing.T) {
	e := NewEnv(t, flCachix("stuck")+`
[queue]
dir = "@DIR@/queue"
linger = "1s"
retry_initial = "1s"
retry_max = "2s"
`)
	paths := flBuildQueued(t, e, nixtest.List(nixtest.Drv(nixtest.Salt(), "stuck-1.0", nil)))
	files, _ := filepath.Glob(filepath.Join(e.Queue, "entries", "*"))
	if len(files) != 1 {
		t.Fatalf("entries: %q", files)
	}
	undo := flUnremovable(t, files[0])
	start := time.Now()
	flStartWorker(t, e)
	var status string
	eventually.True(t, eventually.Left(t), "status to show the queue error", func() bool {
		status = plStatusText(t, e)
		return strings.Contains(status, "queue error") && strings.Contains(status, "removing the queue entry failed")
	})
	eventually.True(t, eventually.Left(t), "three pushes", func() bool { return len(e.Invocations()) >= 3 })
	elapsed := time.Since(start)
	n := len(e.Invocations())
	t.Logf("%d pushes of an unremovable entry in %s; status:\n%s", n, elapsed.Round(time.Millisecond), status)
	// retry_initial 1s: at least 500 ms between pushes.
	if max := int(elapsed/(500*time.Millisecond)) + 1; n > max {
		t.Errorf("%d pushes in %s: faster than the back-off allows (%d)", n, elapsed, max)
	}
	undo()
	eventually.True(t, eventually.Left(t), "the entry to be removed", func() bool { return e.QueueEntries() == 0 })
	plExpectCache(t, "stuck", filepath.Join(e.Standin, "stuck"), paths, func(string) bool { return true })
}

// 5. wait without --timeout returns, exit 3 with the errors, once every
// entry left has failed and only waits for a back-off; --keep-trying
// waits on until the target works again.
func TestFaultWaitGivesUpOnFailingEntries(t *testing.T) {
	e := NewEnv(t, flCachix("down"))
	flTrick(t, e, "fail")
	paths, _ := e.Build(nixtest.List(nixtest.Drv(nixtest.Salt(), "down-1.0", nil)))
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	_, errOut, code := e.Run(ctx, "wait")
	if ctx.Err() != nil {
		t.Fatal("wait without --timeout did not return by go test's bound although every push fails")
	}
	if code != 3 || !strings.Contains(errOut, "every path left has failed") || !strings.Contains(errOut, "simulated failure (trick)") {
		t.Fatalf("wait exited %d, want 3 with the errors:\n%s", code, errOut)
	}

	// --keep-trying waits through further failures, and returns 0 once
	// the target works.
	cmd := exec.CommandContext(ctx, hookBin, "wait", "--keep-trying")
	cmd.Env = e.environ()
	var kOut bytes.Buffer
	cmd.Stderr = &kOut
	exited := flStart(t, cmd)
	failed := flFailedPushes(e)
	eventually.True(t, eventually.Left(t), "two more failed pushes", func() bool { return flFailedPushes(e) >= failed+2 })
	select {
	case err := <-exited:
		t.Fatalf("wait --keep-trying returned while the target fails: %v\n%s", err, kOut.String())
	default:
	}
	flTrick(t, e, "")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("wait --keep-trying = %v once the target works\n%s", err, kOut.String())
		}
	case <-ctx.Done():
		t.Fatal("wait --keep-trying did not return once the target works")
	}
	plExpectCache(t, "down", filepath.Join(e.Standin, "down"), paths, func(string) bool { return true })
}

// 6. Soak: rounds of real builds while the worker and the pusher are
// SIGKILLed at random moments. Every selected path ends up in the cache,
// no denied path does, and the kills happened: at least flSoakMinKills of
// each kind (a soak whose kills all missed tests nothing). CFH_SOAK=1
// (set by .ci/run) runs 30 rounds; a plain `go test` runs 6.
func TestFaultSoakRandomKills(t *testing.T) {
	rounds, minKills := 6, 1
	if os.Getenv("CFH_SOAK") == "1" {
		rounds, minKills = 30, 5
	}
	e := NewEnv(t, `
cache = "soak"
allow = ["*"]
deny = ["*-secret-*"]

[cachix]
bin = "@CACHIX@"
`+flFastQueue)
	// Slow pushes leave room to be killed in the middle of one.
	plSetVar(e, "CACHIX_STANDIN_DELAY", "300ms")
	seed := uint64(time.Now().UnixNano())
	t.Logf("soak: seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 10))
	var mu sync.Mutex
	kills := map[string]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	stopped := func(d time.Duration) bool {
		select {
		case <-stop:
			return true
		case <-time.After(d):
			return false
		}
	}
	go func() {
		defer close(done)
		for !stopped(time.Duration(100+rng.IntN(700)) * time.Millisecond) {
			// Two pusher kills for one of the worker. A pusher runs
			// only while a batch goes up: look for one for a while
			// rather than let the tick pass, so that pushers are
			// really killed in the middle of their push.
			what, find := "pusher", func() []int { return plStandinPIDs(e) }
			if rng.IntN(3) == 0 {
				what, find = "worker", func() []int { return workerPIDs(e.Queue) }
			}
			var pids []int
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
				if pids = find(); len(pids) > 0 || stopped(20*time.Millisecond) {
					break
				}
			}
			for _, pid := range pids {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					mu.Lock()
					kills[what]++
					mu.Unlock()
				}
			}
		}
	}()
	s := nixtest.Salt()
	var allowed, denied []string
	start := time.Now()
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return kills["worker"] >= minKills && kills["pusher"] >= minKills
	}
	// Rounds go on, up to twice as many, until both kinds of kill
	// happened often enough: few rounds may miss the pushers by chance.
	for i := 0; i < rounds || i < 2*rounds && !enough(); i++ {
		paths, _ := e.Build(nixtest.List(nixtest.Drv(s, fmt.Sprintf("soak-%d", i), nil), nixtest.Drv(s, fmt.Sprintf("soak-secret-%d", i), nil)))
		for _, p := range paths {
			if strings.Contains(nixtest.Name(p), "-secret-") {
				denied = append(denied, p)
			} else {
				allowed = append(allowed, p)
			}
		}
		// Let the worker get into its pushes, to be killed there.
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	close(stop)
	<-done
	built := time.Since(start)
	// `wait` starts a worker if the last one was killed.
	e.Wait(eventually.Left(t))
	cache := CachePaths(t, filepath.Join(e.Standin, "soak"))
	landed, leaked := 0, 0
	for _, p := range allowed {
		if cache[p] {
			landed++
		} else {
			t.Errorf("selected path not in the cache: %s", p)
		}
	}
	for _, p := range denied {
		if cache[p] {
			leaked++
			t.Errorf("denied path in the cache: %s", p)
		}
	}
	invs := e.Invocations()
	t.Logf("soak: %d rounds of builds in %s; %d of %d selected paths in the cache; %d of %d denied paths in it (must be 0); SIGKILLed %d workers and %d pushers; %d pusher calls recorded (%d failed, killed ones unrecorded)",
		len(allowed), built.Round(time.Second), landed, len(allowed), leaked, len(denied), kills["worker"], kills["pusher"], len(invs), flFailedPushes(e))
	for _, what := range []string{"worker", "pusher"} {
		if kills[what] < minKills {
			t.Errorf("only %d %s SIGKILLs in %d rounds, want at least %d: the soak did not test what it claims", kills[what], what, len(allowed), minKills)
		}
	}
}
