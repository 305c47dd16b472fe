package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// wxRun is watch-exec, the real binary, running sh cmd.sh in a world of
// its own (a fake store, its own queue), with its stderr kept.
type wxRun struct {
	base, store string
	cmd         *exec.Cmd
	stderr      bytes.Buffer
}

// startWatchExec writes script as cmd.sh and runs watch-exec on it; conf
// is the hook.conf.
func startWatchExec(t *testing.T, conf, script string) *wxRun {
	t.Helper()
	w := newSigintWorld(t)
	r := &wxRun{base: filepath.Dir(w.conf), store: filepath.Join(filepath.Dir(w.conf), "store")}
	if err := os.WriteFile(w.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.cmdFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(w.prog, "--config", w.conf, "watch-exec", "--", "sh", w.cmdFile)
	r.cmd.Dir = r.base
	r.cmd.Env = append(w.env, "WORK="+r.base)
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
	eventually.True(t, 30*time.Second, "the command to start", fileExists(filepath.Join(r.base, "ready")))
	return r
}

// wait waits for watch-exec to exit and returns its status.
func (r *wxRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// procState is the state letter of pid in /proc (R, S, T, Z...).
func procState(pid int) string {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// After the kernel dropped events, with no path seen, watch-exec warns
// that it may have missed paths and does not then say there were none.
// watch-exec is stopped (SIGSTOP) while more events than the kernel
// queues come, so that they overflow.
func TestWatchExecOverflowDoesNotSayNoPaths(t *testing.T) {
	max, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("no inotify queue limit to overflow: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(max)))
	if err != nil || n > 1<<20 {
		t.Skipf("max_queued_events %q", max)
	}
	r := startWatchExec(t, "cache = \"main\"\nallow = [\"*\"]\n",
		"touch ready\nfor i in $(seq 600); do [ -e go ] && exit 0; sleep 0.05; done\nexit 1\n")
	pid := r.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 30*time.Second, "watch-exec to stop", func() bool { return procState(pid) == "T" })
	for i := range n + 100 {
		if err := os.WriteFile(filepath.Join(r.store, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.base, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := r.wait(t); st != 0 {
		t.Fatalf("watch-exec exited %d: %s", st, &r.stderr)
	}
	errs := r.stderr.String()
	if !strings.Contains(errs, "some new paths may have been missed") {
		t.Fatalf("no warning of the overflow: %s", errs)
	}
	if strings.Contains(errs, "no new store paths") {
		t.Errorf("after warning that paths may have been missed, watch-exec said there were none:\n%s", errs)
	}
}
