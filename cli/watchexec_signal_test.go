package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
)

// wxRun is watch-exec, the real binary, running sh cmd.sh in a world of
// its own (a fake store, its own queue), with its stderr kept.
type wxRun struct {
	base, store string
	cmd         *exec.Cmd
	stderr      bytes.Buffer
	stderrTo    *os.File // instead of stderr, when set
}

// newWxRun makes the world of a watch-exec run: $WORK with hook.conf,
// store/, queue/ (whose worker lock the test holds, so that nothing
// queued starts a worker) and bin/.
func newWxRun(t *testing.T, conf string) (*wxRun, *sigintWorld) {
	t.Helper()
	w := newSigintWorld(t)
	r := &wxRun{base: filepath.Dir(w.conf), store: filepath.Join(filepath.Dir(w.conf), "store")}
	if err := os.WriteFile(w.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(r.base, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(holdWorker(t, filepath.Join(r.base, "queue")))
	return r, w
}

// start writes script as cmd.sh, which must write its pid ($$) to
// $WORK/ready once it runs, and runs watch-exec on it, with nix.bin_dir
// $WORK/bin. The command is killed when the test ends, should
// watch-exec have left it running.
func (r *wxRun) start(t *testing.T, w *sigintWorld, script string) {
	t.Helper()
	if err := os.WriteFile(w.cmdFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(w.prog, "--config", w.conf, "watch-exec", "--", "sh", w.cmdFile)
	r.cmd.Dir = r.base
	r.cmd.Env = append(w.env, "WORK="+r.base, "CACHIX_FILTER_HOOK_NIX_BIN_DIR="+filepath.Join(r.base, "bin"))
	r.cmd.Stderr = &r.stderr
	if r.stderrTo != nil {
		r.cmd.Stderr = r.stderrTo
	}
	// Only when watch-exec left the command behind, holding stderr.
	r.cmd.WaitDelay = time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(r.base, "ready")
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		if b, err := os.ReadFile(ready); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	eventually.True(t, eventually.Left(t), "the command to start", func() bool {
		b, err := os.ReadFile(ready)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
}

// wait waits for watch-exec to exit and returns its exit status, failing
// the test if a signal ended it.
func (r *wxRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatalf("watch-exec: %v; stderr:\n%s", err, &r.stderr)
	}
	return 0
}

// queued tells whether an entry of the queue names p.
func (r *wxRun) queued(p string) bool {
	entries, _ := filepath.Glob(filepath.Join(r.base, "queue", "entries", "*"))
	for _, f := range entries {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(p)) {
			return true
		}
	}
	return false
}

// nix writes a stand-in nix into $WORK/bin that answers path-info (Nix
// 2.8's list form) for the paths given, each built (it has a deriver),
// and for those added (no deriver, no signature).
func (r *wxRun) nix(t *testing.T, added []string, built ...string) {
	t.Helper()
	var infos []string
	for _, p := range built {
		infos = append(infos, fmt.Sprintf(`{"path":%q,"narSize":100,"deriver":%q,"references":[]}`, p, filepath.Join(r.store, "x0000000000000000000000000000000-x.drv")))
	}
	for _, p := range added {
		infos = append(infos, fmt.Sprintf(`{"path":%q,"narSize":100,"references":[]}`, p))
	}
	script := "#!/bin/sh\ncat <<'JSON'\n[" + strings.Join(infos, ",\n") + "]\nJSON\n"
	if err := os.WriteFile(filepath.Join(r.base, "bin", "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
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
	r, w := newWxRun(t, "cache = \"main\"\nallow = [\"*\"]\n")
	// The command waits for the test's "go" up to 300 s: writing the
	// files past the queue's limit must not outlast it on a slow disk.
	r.start(t, w, "echo $$ >ready\nfor i in $(seq 6000); do [ -e go ] && exit 0; sleep 0.05; done\nexit 1\n")
	pid := r.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, eventually.Left(t), "watch-exec to stop", func() bool { return procState(pid) == "T" })
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

// A hangup (a dropped ssh session, or kill -HUP) sent to watch-exec is
// passed on to its command, as SIGTERM is, and what the command built
// until then is still queued and named, instead of watch-exec dying by
// the signal's default action with nothing queued.
func TestWatchExecHangupQueuesWhatWasBuilt(t *testing.T) {
	r, w := newWxRun(t, "cache = \"main\"\nallow = [\"*\"]\n")
	app := filepath.Join(r.store, "a0000000000000000000000000000000-app-1.0")
	r.nix(t, nil, app)
	// On SIGHUP, registers a path (its lock deleted) and ends. Without
	// one it ends by itself after 300 s at least (exit 1, which fails
	// the test): the signal is sent as soon as it is ready, and must
	// find it still running however slow the machine.
	r.start(t, w, "trap 'echo HUP >>got; touch "+app+".lock; mkdir "+app+"; rm "+app+".lock; exit 129' HUP\n"+
		"echo $$ >ready\nfor i in $(seq 6000); do sleep 0.05; done\nexit 1\n")
	if err := syscall.Kill(r.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if st := r.wait(t); st != 129 {
		t.Errorf("watch-exec exited %d, want 129 (the command's status)", st)
	}
	if b, _ := os.ReadFile(filepath.Join(r.base, "got")); string(b) != "HUP\n" {
		t.Errorf("the command saw %q, want one SIGHUP", b)
	}
	if errs := r.stderr.String(); !strings.Contains(errs, "queued 1 of 1 paths") {
		t.Errorf("the path built is not said queued:\n%s", errs)
	}
	if !r.queued(app) {
		t.Errorf("%s is not in the queue; stderr:\n%s", app, &r.stderr)
	}
}

// envCtrlCHelper makes the test binary the helper of
// TestWatchExecCtrlCBeforeStart: the directory of its files.
const envCtrlCHelper = "CLI_TEST_CTRLC_HELPER"

// A Ctrl-C typed after watch-exec listens for signals but before its
// command starts does not reach the command from the terminal (it is not
// running yet), so watch-exec passes it on, even in the terminal's
// foreground, where it passes none on of those that come later. Here the
// command's start is held in fork (the test holds syscall.ForkLock) while
// a real Ctrl-C is typed at a terminal, a pty whose foreground
// runCommand runs in (the test binary again, as the helper).
func TestWatchExecCtrlCBeforeStart(t *testing.T) {
	if dir := os.Getenv(envCtrlCHelper); dir != "" {
		ctrlCHelper(t, dir)
		return
	}
	dir := t.TempDir()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// The helper's own waits end before this test's.
	helper := exec.Command(self, "-test.run=^TestWatchExecCtrlCBeforeStart$", "-test.v", "-test.timeout="+eventually.Left(t).String())
	helper.Env = append(os.Environ(), envCtrlCHelper+"="+dir)
	helper.Stdin, helper.Stdout, helper.Stderr = pts, &out, &out
	helper.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	eventually.True(t, eventually.Left(t), "the command's start to be held", fileExists(filepath.Join(dir, "held")))
	// Ctrl-C, typed: the terminal sends SIGINT to its foreground group.
	if _, err := ptmx.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	if !strings.Contains(out.String(), "--- PASS") {
		t.Fatalf("the helper did not pass:\n%s", &out)
	}
}

// ctrlCHelper is the helper's side: runCommand with its start held in
// fork until the Ctrl-C has come.
func ctrlCHelper(t *testing.T, dir string) {
	if !inForeground() {
		t.Fatal("not in the terminal's foreground")
	}
	// As Main listens.
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals()...)
	defer stop()
	mine := make(chan os.Signal, 1)
	signal.Notify(mine, os.Interrupt)
	var errs bytes.Buffer
	e := &env{ctx: ctx, stdout: &errs, stderr: &errs}
	// cat itself, not a shell running it: a SIGINT to bash alone while
	// its child runs on (bash where /bin/sh is bash: NixOS) does not end
	// it. cat waits for a writer to the FIFO, which comes only when no
	// SIGINT did.
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.ForkLock.RLock()
	status := make(chan int, 1)
	go func() { st, _ := e.runCommand([]string{"cat", fifo}); status <- st }()
	eventually.True(t, eventually.Left(t), "runCommand to wait to fork", func() bool {
		buf := make([]byte, 1<<20)
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("syscall.forkExec("))
	})
	if err := os.WriteFile(filepath.Join(dir, "held"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Bounded: a Ctrl-C that never came fails here naming it, not in
	// the helper's timeout panic, whose stacks the test reads as output.
	eventually.Recv(t, eventually.Left(t), "the SIGINT of the Ctrl-C typed at the terminal", mine, errs.String)
	// Stop waits until the signal was given to every channel, runCommand's
	// included.
	signal.Stop(mine)
	syscall.ForkLock.RUnlock()
	var st int
	select {
	case st = <-status:
	case <-time.After(eventually.Left(t)):
		// Not ended by the SIGINT: cat is told to end, and does with 0.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		st = <-status
	}
	if st != 130 {
		t.Errorf("the command ended with %d, want 130: the Ctrl-C typed before it started did not reach it\n%s", st, &errs)
	}
}

// With its stderr a pipe nobody reads any more (ssh without a terminal
// whose connection dropped), watch-exec still queues what its command
// built: writing a message to it fails, and does not kill watch-exec by
// SIGPIPE before it queued. Here the line leaving an added path out
// comes before the queueing.
func TestWatchExecClosedStderrStillQueues(t *testing.T) {
	r, w := newWxRun(t, "cache = \"main\"\nallow = [\"*\"]\n")
	app := filepath.Join(r.store, "a0000000000000000000000000000000-app-1.0")
	src := filepath.Join(r.store, "s0000000000000000000000000000000-source")
	r.nix(t, []string{src}, app)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	defer pw.Close()
	r.stderrTo = pw
	script := "echo $$ >ready\n"
	for _, p := range []string{src, app} {
		script += "touch " + p + ".lock; mkdir " + p + "; rm " + p + ".lock\n"
	}
	r.start(t, w, script)
	if st := r.wait(t); st != 0 {
		t.Errorf("watch-exec exited %d, want 0 (the command's status)", st)
	}
	if !r.queued(app) {
		t.Errorf("%s, built, is not in the queue", app)
	}
}

// envEarlyHelper makes the test binary the helper of
// TestWatchExecSignalBeforeListening: the directory of its files.
const envEarlyHelper = "CLI_TEST_EARLY_SIGNAL_HELPER"

// A signal that comes before watch-exec listens for it to pass it on
// (while the config loads) started COMMAND all the same, then sent it
// SIGTERM, whatever signal came. COMMAND is now not started, and
// watch-exec says why. Here the SIGTERM has come, and been seen, before
// watch-exec runs (the test binary again, as the helper, so that the
// signal reaches no other test).
func TestWatchExecSignalBeforeListening(t *testing.T) {
	if dir := os.Getenv(envEarlyHelper); dir != "" {
		earlySignalHelper(t, dir)
		return
	}
	w := newSigintWorld(t)
	dir := filepath.Dir(w.conf)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	helper := exec.Command(self, "-test.run=^TestWatchExecSignalBeforeListening$", "-test.v")
	helper.Env = append(w.env, envEarlyHelper+"="+dir)
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Run(); err != nil || !strings.Contains(out.String(), "--- PASS") {
		t.Fatalf("the helper did not pass: %v\n%s", err, &out)
	}
}

func earlySignalHelper(t *testing.T, dir string) {
	// As Main listens.
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals()...)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	var errs bytes.Buffer
	e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: &errs, stderr: &errs}
	ran := filepath.Join(dir, "ran")
	status := e.main([]string{"--config", filepath.Join(dir, "hook.conf"), "watch-exec", "--", "sh", "-c", "echo >" + ran + "; exit 0"})
	if _, err := os.Stat(ran); err == nil || status != 1 || !strings.Contains(errs.String(), "terminated signal received before sh started: not running it") {
		t.Errorf("a SIGTERM before watch-exec listened: exit %d, the command ran: %v; want 1, not run, and why\n%s", status, err == nil, &errs)
	}
}
