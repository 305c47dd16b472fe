package pusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	f := strings.Fields(string(st))
	return len(f) > 2 && f[2] != "Z"
}

func grandchild(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the fake started no grandchild: %v", err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 1 {
		// Never kill 0 (our own process group) or -1 (everything).
		t.Fatalf("the fake's grandchild file holds %q, not a pid", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// TestPushTimeoutKillsGroup: a pusher that hangs, with a grandchild
// holding its output, is killed with the grandchild after the timeout,
// and the error says so.
func TestPushTimeoutKillsGroup(t *testing.T) {
	fake(t, 0)
	t.Setenv(envSleep, "1h")
	gc := filepath.Join(t.TempDir(), "grandchild")
	t.Setenv(envGrandchild, gc)
	cfg := &config.Config{Cachix: config.Cachix{Bin: exe(t)}, Queue: config.Queue{PushTimeout: time.Second}}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &bytes.Buffer{})
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(eventually.Left(t)):
		t.Fatal("Push did not return after its push_timeout (1s): it waits for the fake's hour of sleep, or for the pipe its grandchild holds")
	}
	t.Logf("Push returned after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("Push = %v, want a timeout", err)
	}
	pid := grandchild(t, gc)
	eventually.True(t, eventually.Left(t), fmt.Sprintf("the grandchild %d to die after the timeout", pid), func() bool { return !alive(pid) })
}

// TestPushCancelKillsGroup: a cancelled push (the worker stopping) kills
// the grandchild too and does not wait for the pipe it holds.
func TestPushCancelKillsGroup(t *testing.T) {
	fake(t, 0)
	t.Setenv(envSleep, "1h")
	gc := filepath.Join(t.TempDir(), "grandchild")
	t.Setenv(envGrandchild, gc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cachixPusherFor(t, "").Push(ctx, paths, &bytes.Buffer{}) }()
	eventually.True(t, eventually.Left(t), "the fake pusher to start its grandchild", func() bool {
		_, err := os.Stat(gc)
		return err == nil
	})
	pid := grandchild(t, gc)
	cancel()
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "timed out") {
			t.Errorf("cancelled Push = %v", err)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("a cancelled Push did not return")
	}
	eventually.True(t, eventually.Left(t), fmt.Sprintf("the grandchild %d to die after the cancel", pid), func() bool { return !alive(pid) })
}

// TestPushGrandchildHoldsPipe: the pusher exits, but a grandchild keeps
// its output open; Push returns anyway and the grandchild goes.
func TestPushGrandchildHoldsPipe(t *testing.T) {
	fake(t, 0)
	gc := filepath.Join(t.TempDir(), "grandchild")
	t.Setenv(envGrandchild, gc)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cachixPusherFor(t, "").Push(context.Background(), paths, &bytes.Buffer{}) }()
	select {
	case err := <-done:
		// The pusher exits 0: the upload worked, whatever its child does.
		if err != nil {
			t.Errorf("Push = %v after %s, want success", err, time.Since(start))
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("Push did not return after the pusher exited: it waits for the pipe its grandchild holds (for an hour)")
	}
	pid := grandchild(t, gc)
	eventually.True(t, eventually.Left(t), fmt.Sprintf("the grandchild %d to go", pid), func() bool { return !alive(pid) })
}

// TestPushOutputReadAtAPace: a pusher printing a line per path, a write
// each, as nix copy does, is read a batch of lines at a time, not woken
// for at every line. Read through Go's poller, every line cost the
// worker about three context switches (0.3-0.4 s of its CPU for a
// 10,000-path copy, and Nix more system time); nothing is lost either
// way.
func TestPushOutputReadAtAPace(t *testing.T) {
	const n = 10000
	fake(t, 0)
	t.Setenv(envOutput, "")
	t.Setenv(envLines, strconv.Itoa(n))
	var before, after syscall.Rusage
	var out bytes.Buffer
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	if err := cachixPusherFor(t, "").Push(context.Background(), paths, &out); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	if got := strings.Count(out.String(), "\n"); got != n {
		t.Fatalf("%d lines reached the caller, want %d", got, n)
	}
	switches := after.Nvcsw - before.Nvcsw
	t.Logf("%d lines in %s: %d voluntary context switches", n, took.Round(time.Millisecond), switches)
	if switches > n/5 {
		t.Errorf("reading %d lines took %d voluntary context switches, want at most %d: the output is read a line at a time", n, switches, n/5)
	}
}

// TestOutputPipeStop: with the pipe held open by something that escaped
// the group kill, stop ends the reading, and what came before is kept.
// Until then, what comes after the pusher exited is still read: each
// line is written once the one before has been copied, so that a copyTo
// that gave up after a read would miss the next.
func TestOutputPipeStop(t *testing.T) {
	pipe, end, err := newOutputPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.close()
	defer end.Close()
	out := &chanWriter{wrote: make(chan string, 16)}
	copied := make(chan error, 1)
	go func() { copied <- pipe.copyTo(out) }()
	pipe.exited()
	lines := []string{"copying 1 paths...\n", "copied\n"}
	for _, l := range lines {
		if _, err := end.WriteString(l); errors.Is(err, syscall.EPIPE) {
			t.Fatalf("writing %q: %v: copyTo returned with the pipe still open", l, err)
		} else if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-out.wrote:
			if got != l {
				t.Fatalf("copied %q, want %q", got, l)
			}
		case err := <-copied:
			t.Fatalf("copyTo returned (%v) with the pipe still open, before %q", err, l)
		case <-time.After(eventually.Left(t)):
			t.Fatalf("%q was not copied", l)
		}
	}
	pipe.stop()
	select {
	case err := <-copied:
		if err != errStopped {
			t.Errorf("copyTo = %v, want errStopped", err)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("stop did not end copyTo")
	}
}

// chanWriter sends what is written to it on wrote.
type chanWriter struct{ wrote chan string }

func (w *chanWriter) Write(p []byte) (int, error) {
	w.wrote <- string(p)
	return len(p), nil
}

// TestPushEscapedFloodingGrandchild guards copyTo's look at stop before
// every read: a pusher exits 0, leaving a grandchild that left its
// process group (setsid), so the group kill misses it, and that floods
// the inherited output. Every read then fills the buffer, and copyTo
// never reached the pause where it looked at stop: Push hung for good.
// It must return after waitDelay.
func TestPushEscapedFloodingGrandchild(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	bin := filepath.Join(dir, "cachix")
	// The fake exits only once the flooder has left its group: exiting
	// before, the group kill could take the flooder too, and the pipe
	// would just end.
	script := "#!/bin/sh\nsetsid sh -c 'echo $$ > " + pidFile + ".tmp; mv " + pidFile + ".tmp " + pidFile + "; exec yes' &\n" +
		"while [ ! -e " + pidFile + " ]; do sleep 0.01; done\nexit 0\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// push_timeout plays no part: a fake slowed past it would be killed.
	cfg := &config.Config{Cachix: config.Cachix{Bin: bin}, Queue: config.Queue{PushTimeout: time.Hour}}
	p := New(cfg, &config.Target{Name: "main", Cache: "c"})
	out := &floodGate{pidFile: pidFile, within: eventually.Left(t)}
	done := make(chan error, 1)
	go func() { done <- p.Push(context.Background(), paths, out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Push = %v, want success: the pusher exited 0", err)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("Push did not return after the pusher exited (waitDelay 2s): copyTo never looked at stop while every read filled its buffer")
	}
}

// floodGate takes the flooder's lines ("y", two bytes each) and, every
// 32 KB of them, waits until the flooder is blocked on a full pipe (or
// gone), so that every read of copyTo fills its buffer however fast the
// machine reads: left to the race, a read that came up short reached
// the pause, which looks at stop too, and hid a missing look.
type floodGate struct {
	pidFile string
	within  time.Duration
	lines   int
}

func (g *floodGate) Write(p []byte) (int, error) {
	if g.lines++; g.lines%(16<<10) == 0 {
		// Nothing to fail in Push's goroutine: the test's own wait
		// says Push did not return.
		_ = eventually.Wait(g.within, func() bool {
			b, err := os.ReadFile(g.pidFile)
			if err != nil {
				return false
			}
			st, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(b)), "stat"))
			if err != nil {
				return true // gone: the read end was closed
			}
			// "pid (yes) S ...": asleep in its write.
			f := strings.Fields(string(st))
			return len(f) > 2 && (f[2] == "S" || f[2] == "Z")
		})
	}
	return len(p), nil
}

// A pusher that exits and leaves a child in its group that does not hold
// its output: the push is over, and so is that child (it would run as
// root with no time limit).
func TestPushLeavesNothingRunning(t *testing.T) {
	fake(t, 0)
	gc := filepath.Join(t.TempDir(), "grandchild")
	t.Setenv(envQuietGrandchild, gc)
	if err := cachixPusherFor(t, "").Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
		t.Fatalf("Push = %v, want success", err)
	}
	pid := grandchild(t, gc)
	eventually.True(t, eventually.Left(t), fmt.Sprintf("the grandchild %d to go", pid), func() bool { return !alive(pid) })
}

// escapedFake writes a fake pusher that starts a grandchild outside its
// process group (setsid), holding its output, prints msg and exits with
// code once that grandchild is out of the group, so that the group kill
// misses it and Push waits waitDelay for the pipe.
func escapedFake(t *testing.T, code int, msg string) (bin string) {
	t.Helper()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	bin = filepath.Join(dir, "cachix")
	// The grandchild writes its pid once it has left the group, and
	// the fake exits only then.
	script := "#!/bin/sh\nsetsid sh -c 'echo $$ > " + pidFile + ".tmp; mv " + pidFile + ".tmp " + pidFile + "; exec sleep 3600' &\n" +
		"while [ ! -e " + pidFile + " ]; do sleep 0.01; done\necho '" + msg + "' >&2\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return bin
}

// pastTimeout takes the pusher's output and holds its first line until
// the pusher has exited and push_timeout has passed: run cannot judge
// the push before then, so push_timeout passes after the exit and
// before the verdict however fast or slow the machine. It notes whether
// the pusher exited before push_timeout (on a loaded machine it may not
// have, and was rightly killed).
type pastTimeout struct {
	ctx         context.Context // run's, ended by push_timeout
	cmd         *exec.Cmd
	within      time.Duration
	held        bool
	exitedFirst bool
}

func (w *pastTimeout) Write(p []byte) (int, error) {
	if !w.held {
		w.held = true
		// cmd.Process was set before run started the reading.
		pid := w.cmd.Process.Pid
		_ = eventually.Wait(w.within, func() bool { return !alive(pid) })
		// Gone while push_timeout had not passed: nothing killed it.
		w.exitedFirst = !alive(pid) && w.ctx.Err() == nil
		<-w.ctx.Done()
	}
	return len(p), nil
}

// pushPastTimeout runs the fake made by mkFake as the pusher, with
// push_timeout passing after it exited and before run judges the push.
// A fake that did not exit within push_timeout is run again with one
// twice as long, so that the case is always exercised, never skipped.
func pushPastTimeout(t *testing.T, mkFake func() string) error {
	t.Helper()
	for timeout := 1500 * time.Millisecond; ; timeout *= 2 {
		if timeout > eventually.Left(t) {
			t.Fatalf("the fake never exited within push_timeout (up to %s)", timeout/2)
		}
		bin := mkFake()
		w := &pastTimeout{within: eventually.Left(t)}
		err := run(context.Background(), timeout, func(ctx context.Context) *exec.Cmd {
			w.ctx, w.cmd = ctx, exec.CommandContext(ctx, bin, "push", "--", "c")
			return w.cmd
		}, w)
		t.Logf("push_timeout %s: Push = %v", timeout, err)
		if !w.held {
			t.Fatalf("the fake printed nothing: Push = %v", err)
		}
		if w.exitedFirst {
			return err
		}
	}
}

// TestPushExitedZeroBeforeTimeout: a pusher that exits 0 while a
// grandchild holds its output is a success, even when push_timeout
// passes while Push waits for that pipe. Reported as a timeout, the
// batch was pushed again for nothing.
func TestPushExitedZeroBeforeTimeout(t *testing.T) {
	if err := pushPastTimeout(t, func() string { return escapedFake(t, 0, "pushed 2 paths") }); err != nil {
		t.Errorf("Push = %v, want success: the pusher exited 0", err)
	}
}

// TestPushFailedBeforeTimeoutNotTimedOut: a pusher that fails on its own
// (exit 1, with its reason), leaving a grandchild that escaped its group
// (setsid) holding its output, is reported with its own exit and
// output. push_timeout passing while Push waits for that pipe made the
// error say "timed out; it and its process group were killed", which
// neither happened: the reason was lost, and a user would raise
// push_timeout for nothing.
func TestPushFailedBeforeTimeoutNotTimedOut(t *testing.T) {
	err := pushPastTimeout(t, func() string { return escapedFake(t, 1, "error: the cache refused the upload") })
	if err == nil || strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "the cache refused the upload") {
		t.Errorf("Push = %v, want the pusher's own exit 1 and its reason, not a timeout", err)
	}
}
