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
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Binaries built once for all tests.
var (
	hookBin    string // cachix-filter-hook
	standinBin string // the cachix stand-in
	repoRoot   string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "cfh-e2e-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	hookBin = filepath.Join(dir, "cachix-filter-hook")
	standinBin = filepath.Join(dir, "cachix")
	for _, b := range []struct{ out, pkg string }{{hookBin, "."}, {standinBin, "./test/cachix-standin"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// requireNix skips the test when Nix is missing, or fails it when
// CFH_TEST_REQUIRE_NIX=1.
func requireNix(t testing.TB) {
	t.Helper()
	for _, p := range []string{"nix-build", "nix-store", "nix"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
				t.Fatalf("%s not found and CFH_TEST_REQUIRE_NIX=1", p)
			}
			t.Skipf("%s not found: end-to-end tests need Nix", p)
		}
	}
}

// Env is one test's world: a config file, a queue, binary caches.
type Env struct {
	t       *testing.T
	Dir     string
	Conf    string // hook.conf path
	Queue   string // queue dir
	Standin string // CACHIX_STANDIN_ROOT: the stand-in's caches are Standin/<cache>
	Vars    []string
}

// NewEnv writes hook.conf from conf, where @DIR@ stands for the test's
// directory and @CACHIX@ for the stand-in binary. The queue is @DIR@/queue
// unless conf sets one.
func NewEnv(t *testing.T, conf string) *Env {
	t.Helper()
	requireNix(t)
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

// Salt makes each test's derivations new, so Nix really builds them and
// runs the hook.
func Salt() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Drv is a derivation expression with the given outputs, whose out
// refers to the deps' outputs (so they are in its runtime closure).
func Drv(salt, name string, outputs []string, deps ...string) string {
	if len(outputs) == 0 {
		outputs = []string{"out"}
	}
	var script strings.Builder
	fmt.Fprintf(&script, "echo %s", salt)
	for _, d := range deps {
		fmt.Fprintf(&script, " ${%s}", d)
	}
	script.WriteString(" > $out;")
	for _, o := range outputs[1:] {
		fmt.Fprintf(&script, " echo %s-%s > $%s;", salt, o, o)
	}
	q := make([]string, len(outputs))
	for i, o := range outputs {
		q[i] = fmt.Sprintf("%q", o)
	}
	return fmt.Sprintf(`derivation { name = %q; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ %s ]; args = [ "-c" %q ]; }`,
		name, strings.Join(q, " "), script.String())
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
	file := filepath.Join(e.Dir, fmt.Sprintf("build-%s.nix", Salt()))
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		e.t.Fatal(err)
	}
	args := append([]string{file, "--no-out-link", "--option", "substituters", "", "--option", "post-build-hook", hook}, extra...)
	cmd := exec.Command("nix-build", args...)
	cmd.Env = e.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if err != nil {
		e.t.Fatalf("nix-build failed: %v\n%s", err, stderr.String())
	}
	// nix-build prints only the default outputs; list them all.
	drvs, err := exec.Command("nix-instantiate", file).Output()
	if err != nil {
		e.t.Fatalf("nix-instantiate: %v", err)
	}
	all, err := exec.Command("nix-store", append([]string{"--query", "--outputs"}, strings.Fields(string(drvs))...)...).Output()
	if err != nil {
		e.t.Fatalf("nix-store --query --outputs: %v", err)
	}
	return strings.Fields(string(all)), stderr.String(), took
}

// Run runs cachix-filter-hook with args and returns stdout, stderr and
// the exit code.
func (e *Env) Run(ctx context.Context, args ...string) (string, string, int) {
	return e.RunEnv(ctx, nil, args...)
}

// RunEnv is Run with more environment variables.
func (e *Env) RunEnv(ctx context.Context, extra []string, args ...string) (string, string, int) {
	cmd := exec.CommandContext(ctx, hookBin, args...)
	cmd.Env = e.environ(extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// Wait runs `wait` and fails the test unless the queue drains.
func (e *Env) Wait(timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	if out, errOut, code := e.Run(ctx, "wait", "--timeout", timeout.String()); code != 0 {
		e.t.Fatalf("wait exited %d:\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
	}
}

// WaitDropped runs `wait` when the worker is expected to drop the given
// paths: wait exits 1 naming each drop it saw. A drop that happened
// before wait began (the hooks' worker ran during the build) is not one
// it waited for, so unless sawAll, exit 0 is accepted too; either way the
// queue must drain and no other path be named as dropped.
func (e *Env) WaitDropped(timeout time.Duration, sawAll bool, dropped ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	out, errOut, code := e.Run(ctx, "wait", "--timeout", timeout.String())
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
	want := fmt.Sprintf("dropped %d (not pushed):", len(dropped))
	if code != 1 || sawAll && !strings.Contains(errOut, want) || !sawAll && named == 0 {
		e.t.Fatalf("wait exited %d, want 1 naming %d dropped paths:\n%s%s\nworker log:\n%s", code, len(dropped), out, errOut, e.Log())
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
	names, _ := filepath.Glob(filepath.Join(e.Queue, "entries", "*"))
	return len(names)
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
