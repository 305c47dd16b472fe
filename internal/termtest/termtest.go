// Package termtest runs programs in a real terminal for tests: a tmux
// server of the test's own, whose screen a test reads as a person would
// see it (what a progress display left, what a TAB completed).
package termtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// Require returns the path of a program a test needs, skipping the test
// without it, or failing it under CI=true (.ci/run installs them all).
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed, and CI=true (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// Tmux is one tmux server with one window, stopped when the test ends.
type Tmux struct {
	t    testing.TB
	bin  string
	sock string
}

// Start runs argv in a new tmux server's window of cols x rows, with env
// as its whole environment. The server ends with the test; so does the
// window when argv exits (to read the screen of a program that exits,
// end argv with a shell's `exec sleep`).
func Start(t testing.TB, env []string, cols, rows int, argv ...string) *Tmux {
	t.Helper()
	tm := &Tmux{t: t, bin: Require(t, "tmux"), sock: filepath.Join(t.TempDir(), "tmux.sock")}
	args := []string{"-S", tm.sock, "-f", "/dev/null", "new-session", "-d", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows)}
	cmd := exec.Command(tm.bin, append(args, argv...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(tm.bin, "-S", tm.sock, "kill-server").Run() })
	return tm
}

func (tm *Tmux) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command(tm.bin, append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Send types keys (tmux key names such as Enter, Tab, C-u, or text).
func (tm *Tmux) Send(keys ...string) {
	tm.t.Helper()
	tm.tmux(append([]string{"send-keys", "-t", "0"}, keys...)...)
}

// Screen is what the terminal shows, without the blank lines at its end
// (and, as tmux captures it, without the spaces that end each line).
func (tm *Tmux) Screen() string {
	out, _ := exec.Command(tm.bin, "-S", tm.sock, "capture-pane", "-p", "-t", "0").Output()
	return strings.TrimRight(string(out), "\n")
}

// Await waits until the screen holds want and returns it, failing the
// test with the screen if it does not while the test may still wait
// (eventually.Left): a fixed bound failed on a loaded machine.
func (tm *Tmux) Await(want string) string {
	tm.t.Helper()
	within := 24 * time.Hour // as eventually.Left without a deadline
	if d, ok := tm.t.(interface{ Deadline() (time.Time, bool) }); ok {
		within = eventually.Left(d)
	}
	deadline := time.Now().Add(within)
	for {
		s := tm.Screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the terminal did not show %q within %s; it shows:\n%s", want, within, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
