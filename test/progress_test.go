package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termtest"
)

// openPTY opens a pseudo-terminal pair through /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
			t.Fatalf("no pseudo-terminals here, and CI requires this test: %v", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("opening /dev/pts/%d: %v", n, err)
	}
	return m, s
}

// prPushWait queues paths with push --wait, stderr on a terminal or a
// pipe, and returns what was written there. Every push of the stand-in
// waits until first has been written: a push --wait whose first look
// came after the worker had pushed everything (push descheduled a moment
// on a loaded machine) would draw no frame at all.
func prPushWait(t *testing.T, e *Env, onTTY bool, first string, paths ...string) (string, int) {
	t.Helper()
	gate := filepath.Join(e.Dir, "standin-gate")
	e.Vars = append(e.Vars, "CACHIX_STANDIN_GATE="+gate)
	open := func() {
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	// Before the Env's cleanup, which waits for the worker.
	t.Cleanup(open)
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, hookBin, append([]string{"push", "--wait", "--timeout", eventually.Left(t).String()}, paths...)...)
	cmd.Env = e.environ("TERM=xterm")
	var r, w *os.File
	if onTTY {
		r, w = openPTY(t)
	} else {
		var err error
		if r, w, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
	}
	defer r.Close()
	cmd.Stderr = w
	var mu sync.Mutex
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		// EOF, or EIO on a terminal, once the last holder of w is gone.
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			mu.Lock()
			out.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	text := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	err := cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Until first is drawn, or push --wait ended without it.
	func() {
		for !strings.Contains(text(), first) {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	open()
	err = cmd.Wait()
	select {
	case <-done:
	case <-time.After(eventually.Left(t)):
		t.Fatal("the terminal or pipe was not closed after push --wait exited")
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return text(), code
}

// Progress of push --wait: on a terminal one line per target redrawn in
// place, then the summary; on a pipe plain lines and the summary; with
// -q, nothing.
func TestProgressTerminalAndPlain(t *testing.T) {
	t.Parallel()
	s := nixtest.Salt()
	built := scBuild(t, `[ (`+nixtest.Drv(s, "hello-2.12.1", nil)+`) (`+nixtest.Drv(s, "hello-2.12.2", nil)+`) (`+nixtest.Drv(s, "hello-2.12.3", nil)+`) ]`)

	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		e := scCachixEnv(t)
		// Slow pushes, one path per call: the line is redrawn while
		// they go up.
		e.Vars = append(e.Vars, "CACHIX_STANDIN_DELAY=700ms")
		out, code := prPushWait(t, e, true, "\x1b[2Kmycache: 0 pushed, 2 pending, 0 failing", built["hello-2.12.1"], built["hello-2.12.2"])
		if code != 0 {
			t.Fatalf("push --wait exited %d:\n%q\nworker log:\n%s", code, out, e.Log())
		}
		if !strings.Contains(out, "\x1b[2Kmycache: 0 pushed, 2 pending, 0 failing") {
			t.Errorf("no progress line drawn on the terminal:\n%q", out)
		}
		if !strings.Contains(out, "\x1b[1F\x1b[2Kmycache: ") {
			t.Errorf("the progress line is not redrawn in place:\n%q", out)
		}
		if !strings.Contains(out, "pushed 2 paths to mycache in ") {
			t.Errorf("no summary:\n%q", out)
		}
	})

	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		e := scCachixEnv(t)
		out, code := prPushWait(t, e, false, "mycache: 0 pushed, 1 pending, 0 failing\n", built["hello-2.12.3"])
		if code != 0 {
			t.Fatalf("push --wait exited %d:\n%s\nworker log:\n%s", code, out, e.Log())
		}
		if strings.ContainsAny(out, "\x1b\r") {
			t.Errorf("control characters on a pipe:\n%q", out)
		}
		if !strings.Contains(out, "mycache: 0 pushed, 1 pending, 0 failing\n") || !strings.Contains(out, "pushed 1 path to mycache in ") {
			t.Errorf("want a plain progress line and the summary:\n%s", out)
		}
	})
}

// What wait and push --wait leave on a real terminal (tmux renders it):
// the last frame shows every target as it ended, right above the summary
// (the frame of the last tick said "0 pushed, 4 pending" above "pushed 4
// paths"), and a failing count comes with the newest error.
func TestProgressFinalScreen(t *testing.T) {
	e := NewEnv(t, `
cache = "main"
allow = ["app-*"]
[cachix]
bin = "@CACHIX@"
[[target]]
name = "backup"
store = "file://@DIR@/backup"
allow = ["app-*"]
[[target]]
name = "broken"
cache = "broken"
allow = ["broken-*"]
`)
	s := nixtest.Salt()
	paths, _, _ := e.BuildWith("/bin/true", "[ ("+nixtest.Drv(s, "app-1", nil)+") ("+nixtest.Drv(s, "app-2", nil)+") ("+nixtest.Drv(s, "app-3", nil)+") ("+nixtest.Drv(s, "broken-1", nil)+") ]")
	env := e.environ("TERM=xterm", "CACHIX_STANDIN_DELAY=700ms", "CACHIX_STANDIN_FAIL_PATHS=broken-*")
	// The command, then its exit status, and the window kept open to be
	// read.
	run := func(args ...string) *termtest.Tmux {
		sh := hookBin + " " + strings.Join(args, " ") + `; echo "exit=$?"; exec sleep 600`
		return termtest.Start(t, env, 160, 50, "sh", "-c", sh)
	}

	tm := run(append([]string{"push", "--wait", "--timeout", eventually.Left(t).String()}, paths[:3]...)...)
	screen := tm.Await("exit=")
	if !strings.Contains(screen, "exit=0") {
		t.Fatalf("push --wait failed:\n%s\nworker log:\n%s", screen, e.Log())
	}
	lines := strings.Split(screen, "\n")
	last := func(prefix string) int {
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.HasPrefix(lines[i], prefix) {
				return i
			}
		}
		return -1
	}
	summary := last("pushed 3 paths to main in ")
	if summary < 2 || !strings.HasPrefix(lines[summary-2], "main: 3 pushed, 0 pending, 0 failing") ||
		!strings.HasPrefix(lines[summary-1], "backup: 3 pushed, 0 pending, 0 failing") {
		t.Errorf("the last frame above the summary does not show every target as it ended:\n%s", screen)
	}
	if strings.Count(screen, "main: ") != 1 || strings.Count(screen, "backup: ") != 1 {
		t.Errorf("the frame was not redrawn in place:\n%s", screen)
	}

	// A target that keeps failing: wait stops once only it is left, its
	// line showing the error.
	tm = run("push", paths[3])
	tm.Await("exit=0")
	tm = run("wait")
	screen = tm.Await("exit=")
	if !strings.Contains(screen, "exit=3") {
		t.Fatalf("wait with a failing target:\n%s\nworker log:\n%s", screen, e.Log())
	}
	lines = strings.Split(screen, "\n")
	end := last("cachix-filter-hook: every path left has failed")
	if end < 0 {
		t.Fatalf("wait does not say it gave up:\n%s", screen)
	}
	// A wait whose first look finds the failure already recorded (the
	// stand-in's 700 ms passed while tmux started it, on a loaded
	// machine) gives up before its first frame: then only its report
	// shows the error. Otherwise the last frame, above the report, does.
	if i := last("broken: "); i >= 0 {
		if !strings.HasPrefix(lines[i], "broken: 0 pushed, 1 pending, 1 failing (last error: ") || !strings.Contains(lines[i], "simulated failure for") {
			t.Errorf("the failing count shows no error:\n%s", screen)
		}
		if end < i {
			t.Errorf("the last frame is not above what wait says at the end:\n%s", screen)
		}
	} else if !strings.Contains(strings.Join(lines[end:], ""), "simulated failure for") {
		t.Errorf("wait gave up before its first frame, and its report shows no error:\n%s", screen)
	}
}
