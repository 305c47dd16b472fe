// Package test holds the end-to-end tests: real Nix builds with the real
// binary set as post-build-hook, real binary caches written by nix copy
// (directly, or through the cachix stand-in), and real processes killed
// with SIGKILL.
//
// Without Nix the tests skip, unless CFH_TEST_REQUIRE_NIX=1 (set by
// .ci/run), which turns the skip into a failure.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// Binaries built once for all tests.
var (
	hookBin    string // cachix-filter-hook
	standinBin string // the cachix stand-in
	repoRoot   string
	// systemConfDir is where hookBin looks for the machine-wide
	// hook.conf instead of /etc/cachix-filter-hook (empty unless a test
	// writes there): the tests must not read this machine's.
	systemConfDir string
)

// systemDirVar is the link-time variable that names the machine-wide
// config directory (see internal/config).
const systemDirVar = "github.com/cachix-filter-hook/cachix-filter-hook/internal/config.systemDir"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Dir(wd)
	if testing.Short() && os.Getenv("CFH_TEST_REQUIRE_NIX") != "1" {
		// The tests that need the binaries need Nix, and skip.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "cfh-e2e-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// What runs outside an Env (nix-store queries, nix copy) gets a
	// home of its own too, and no setting of the caller's. Go's own
	// directories, which default to places under HOME, stay where they
	// are (the builds below, and the tests that run go, would start from
	// an empty cache).
	goEnv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH", "GOENV").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go env: %v\n", err)
		return 1
	}
	for i, v := range strings.Split(strings.TrimSpace(string(goEnv)), "\n") {
		os.Setenv([]string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"}[i], v)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CACHIX_FILTER_HOOK_") || strings.HasPrefix(k, "CACHIX_STANDIN_") || strings.HasPrefix(k, "XDG_") {
			os.Unsetenv(k)
		}
	}
	os.Setenv("HOME", filepath.Join(dir, "home"))
	systemConfDir = filepath.Join(dir, "etc")
	hookBin = filepath.Join(dir, "cachix-filter-hook")
	standinBin = filepath.Join(dir, "cachix")
	for _, b := range []struct {
		out, pkg string
		args     []string
	}{
		{hookBin, ".", []string{"-ldflags", "-X " + systemDirVar + "=" + systemConfDir}},
		{standinBin, "./test/cachix-standin", nil},
	} {
		cmd := exec.Command("go", append(append([]string{"build", "-o", b.out}, b.args...), b.pkg)...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// Env is one test's world: a config file, a queue, binary caches.
type Env struct {
	t       *testing.T
	Dir     string
	Conf    string // hook.conf path
	Queue   string // queue dir
	Standin string // CACHIX_STANDIN_ROOT: the stand-in's caches are Standin/<cache>
	Vars    []string
	// Host, when set, is the host name the builds and commands run
	// with, in a UTS namespace of their own (see onHost).
	Host string
}

// NewEnv writes hook.conf from conf, where @DIR@ stands for the test's
// directory and @CACHIX@ for the stand-in binary. The queue is @DIR@/queue
// unless conf sets one.
func NewEnv(t *testing.T, conf string) *Env {
	t.Helper()
	nixtest.Require(t)
	dir := t.TempDir()
	// The store must be able to read what we pass nix copy, and root
	// refuses group-writable config directories.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &Env{t: t, Dir: dir, Conf: filepath.Join(dir, "hook.conf"), Queue: filepath.Join(dir, "queue"), Standin: filepath.Join(dir, "standin")}
	// The stand-in logs its invocations and counts CACHIX_STANDIN_FAIL in
	// this directory: it must exist before the first push, which may fail.
	if err := os.Mkdir(e.Standin, 0o755); err != nil {
		t.Fatal(err)
	}
	conf = strings.NewReplacer("@DIR@", dir, "@CACHIX@", standinBin).Replace(conf)
	if !strings.Contains(conf, "[queue]") {
		conf += fmt.Sprintf("\n[queue]\ndir = %q\nlinger = \"1s\"\nretry_initial = \"200ms\"\nretry_max = \"1s\"\n", e.Queue)
	}
	if err := os.WriteFile(e.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Vars = []string{
		"CACHIX_FILTER_HOOK_CONFIG=" + e.Conf,
		"CACHIX_STANDIN_ROOT=" + e.Standin,
		"CACHIX_AUTH_TOKEN=test-token-from-env",
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_STATE_HOME=" + filepath.Join(dir, "state"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
	}
	t.Cleanup(func() {
		// Leave no worker behind: it would outlive the temp dir.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.Run(ctx, "wait", "--timeout", "20s")
		killWorkers(e.Queue)
	})
	return e
}

// environ is the process environment with the test's variables on top.
func (e *Env) environ(extra ...string) []string {
	env := os.Environ()
	// CI may set these; a test's world must not inherit them.
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CACHIX_FILTER_HOOK_") && !strings.HasPrefix(kv, "CACHIX_STANDIN_") {
			out = append(out, kv)
		}
	}
	return append(append(out, e.Vars...), extra...)
}

// Build runs nix-build on expr with the hook set as post-build-hook and
// returns the paths of every output of the derivations built, and the
// build log (where the hook's lines appear).
func (e *Env) Build(expr string, extra ...string) (paths []string, log string) {
	e.t.Helper()
	paths, log, _ = e.BuildWith(hookBin, expr, extra...)
	return paths, log
}

// BuildWith is Build with another post-build-hook (such as /bin/true, for
// a build without ours); it also returns how long nix-build took.
func (e *Env) BuildWith(hook, expr string, extra ...string) (paths []string, log string, took time.Duration) {
	e.t.Helper()
	file := nixtest.WriteExpr(e.t, e.Dir, expr)
	args := e.onHost(nixtest.BuildArgs(file, hook, extra...))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = e.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if err != nil {
		e.t.Fatalf("nix-build failed: %v\n%s", err, stderr.String())
	}
	return nixtest.Outputs(e.t, nixtest.Derivations(e.t, file)...), stderr.String(), took
}

// Run runs cachix-filter-hook with args and returns stdout, stderr and
// the exit code.
func (e *Env) Run(ctx context.Context, args ...string) (string, string, int) {
	return e.RunEnv(ctx, nil, args...)
}

// RunEnv is Run with more environment variables.
func (e *Env) RunEnv(ctx context.Context, extra []string, args ...string) (string, string, int) {
	argv := e.onHost(append([]string{hookBin}, args...))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = e.environ(extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code, err := runCode(ctx, cmd)
	if err != nil {
		e.t.Fatalf("running %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// runCode runs cmd, made with ctx, and gives its exit code: -1 (as if
// killed) when ctx ended before it began; an error only when it could
// not run.
func runCode(ctx context.Context, cmd *exec.Cmd) (int, error) {
	err := cmd.Run()
	if cmd.ProcessState != nil {
		// Whenever it ran: one that exits 0 as ctx ends gets ctx's
		// error, not an ExitError.
		return cmd.ProcessState.ExitCode(), nil
	}
	if ctx.Err() != nil {
		return -1, nil
	}
	return -1, err
}

// Wait runs `wait` and fails the test unless the queue drains.
func (e *Env) Wait(timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	if out, errOut, code := e.Run(ctx, "wait", "--timeout", timeout.String()); code != 0 {
		e.t.Fatalf("wait for the queue to drain (--timeout %s) exited %d:\n%s%s\nworker log:\n%s", timeout, code, out, errOut, e.Log())
	}
}

// WaitDropped runs `wait --fail-on-drop` when the worker is expected to
// drop the given paths: wait exits 3 naming each drop it saw (without
// --fail-on-drop a drop by the rules is a verdict: exit 0). A drop that
// happened before wait began (the hooks' worker ran during the build) is
// not one it waited for, so unless sawAll, exit 0 is accepted too; either
// way the queue must drain and no other path be named as dropped.
func (e *Env) WaitDropped(timeout time.Duration, sawAll bool, dropped ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	out, errOut, code := e.Run(ctx, "wait", "--fail-on-drop", "--timeout", timeout.String())
	if code == 0 && !sawAll {
		return
	}
	// Unless sawAll, wait may have begun after some of the drops: it
	// names those it saw, which must be among the expected.
	named := 0
	for _, l := range strings.Split(errOut, "\n") {
		if p, _, ok := strings.Cut(strings.TrimPrefix(l, "  "), " -> "); ok && strings.HasPrefix(l, "  /") {
			named++
			if !slices.Contains(dropped, p) {
				e.t.Errorf("wait names %s as dropped, which should not be:\n%s", p, errOut)
			}
		}
	}
	if code != 3 || sawAll && named != len(dropped) || !sawAll && named == 0 {
		e.t.Fatalf("wait --fail-on-drop exited %d, want 3 naming %d dropped paths:\n%s%s\nworker log:\n%s", code, len(dropped), out, errOut, e.Log())
	}
	for _, p := range dropped {
		if sawAll && !strings.Contains(errOut, "  "+p+" -> ") {
			e.t.Errorf("wait does not name the dropped %s:\n%s", p, errOut)
		}
	}
	if n := e.QueueEntries(); n != 0 {
		e.t.Errorf("%d entries left after wait", n)
	}
}

// WaitWorkersGone waits until no worker of the queue runs and the log's
// last line is a worker's exit: what the workers write is then all there
// is, which `wait` does not promise (a worker logs, lingers and exits
// after the queue drained).
func (e *Env) WaitWorkersGone(within time.Duration) {
	e.t.Helper()
	eventually.True(e.t, within, "the queue's workers to exit", func() bool {
		lines := strings.Split(strings.TrimSpace(e.Log()), "\n")
		return len(workerPIDs(e.Queue)) == 0 && strings.Contains(lines[len(lines)-1], "worker exiting")
	}, e.Log)
}

// Log returns the worker's log.
func (e *Env) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.Queue, "worker.log"))
	return string(b)
}

// CachePaths lists the store paths a file:// binary cache holds, read
// from its narinfo files' StorePath lines.
func CachePaths(t testing.TB, dir string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(line, "StorePath: "); ok {
				got[p] = true
			}
		}
	}
	return got
}

// Invocation is one line of the stand-in's invocations.jsonl.
type Invocation struct {
	Argv        []string `json:"argv"`
	Cache       string   `json:"cache"`
	Paths       []string `json:"paths"`
	TokenSHA256 string   `json:"token_sha256"`
	Exit        int      `json:"exit"`
}

// Invocations reads what the stand-in recorded.
func (e *Env) Invocations() []Invocation {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.Standin, "invocations.jsonl"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []Invocation
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var inv Invocation
		if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
			e.t.Fatalf("invocations.jsonl: %v", err)
		}
		out = append(out, inv)
	}
	return out
}

// QueueEntries counts the files in the queue's entries directory.
func (e *Env) QueueEntries() int {
	return len(queuePairs(e.Queue))
}

// queuePairs are the keys of the pairs queued in a queue directory: the
// files in entries/ (named by their key) and the lines of the bulk files
// in bulk/ (see queue.Add), each pair once. A line that is not an entry
// (cut by a kill) counts under its text, so it is not lost from view.
func queuePairs(queue string) map[string]bool {
	keys := map[string]bool{}
	names, _ := filepath.Glob(filepath.Join(queue, "entries", "*"))
	for _, n := range names {
		keys[filepath.Base(n)] = true
	}
	bulk, _ := filepath.Glob(filepath.Join(queue, "bulk", "*"))
	for _, f := range bulk {
		data, _ := os.ReadFile(f)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var en struct{ Target, Path string }
			if json.Unmarshal([]byte(line), &en) != nil || en.Target == "" {
				keys[line] = true
				continue
			}
			keys[plKey(en.Target, en.Path)] = true
		}
	}
	return keys
}

// killWorkers SIGKILLs any worker process draining queue, found by the
// CACHIX_FILTER_HOOK_QUEUE_DIR the hook gives it.
func killWorkers(queue string) {
	for _, pid := range workerPIDs(queue) {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
}

// workerPIDs finds the workers of a queue through /proc.
func workerPIDs(queue string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	want := "CACHIX_FILTER_HOOK_QUEUE_DIR=" + queue
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if !bytes.Contains(cmdline, []byte("worker")) {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if string(kv) == want {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// TestRunEnvExitAsContextEnds: a command that exits 0 as its context
// ends is reported by os/exec with the context's error, not an
// ExitError (the kill reached it exited but unreaped). RunEnv must give
// its exit code, not fail the test: the cleanup of every Env runs `wait`
// so, and a test that passed failed. The kill landing in that moment is
// made certain by a Cancel that reports success without killing, and a
// command that exits 0 only once Cancel has run.
func TestRunEnvExitAsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, startedW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer started.Close()
	goOn, goOnW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer goOn.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "echo started; read -r line; exit 0")
	cmd.Stdin, cmd.Stdout = goOn, startedW
	canceled := make(chan struct{})
	cmd.Cancel = func() error {
		close(canceled)
		return nil // as a kill of an exited, unreaped command succeeds
	}
	go func() {
		defer goOnW.Close()
		// Ended once the command runs; it exits once Cancel has run.
		if _, err := bufio.NewReader(started).ReadString('\n'); err != nil {
			return
		}
		cancel()
		select {
		case <-canceled:
		case <-time.After(eventually.Left(t)):
		}
	}()
	code, err := runCode(ctx, cmd)
	startedW.Close() // unblocks the goroutine if the command never said so
	if err != nil || code != 0 {
		t.Errorf("runCode = %d, %v; want 0, nil", code, err)
	}
	select {
	case <-canceled:
	default:
		t.Errorf("the command exited before its context ended: the test did not test")
	}
}
