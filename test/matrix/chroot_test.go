// Package matrix runs the end-to-end scenarios on newer Nix, as users run
// it: in a Debian chroot (trixie: Nix 2.26, sid: Nix 2.34) made by
// scripts/nix-chroot.sh, nix-daemon running as root with the hook in the
// chroot's /etc/nix/nix.conf, the config in /etc/cachix-filter-hook/hook.conf,
// the default queue directory, and a non-root user in nix-users who builds
// with NIX_REMOTE=daemon. The hook then runs as root under the daemon, with
// the daemon's environment.
//
// The tests run when CFH_NIX_CHROOT names a chroot whose /proc, /dev and
// /dev/pts are mounted (`make test-nix-matrix` does that through
// `scripts/nix-chroot.sh run`); otherwise they skip, unless
// CFH_TEST_REQUIRE_NIX_CHROOT=1 (set by .ci/run) makes that a failure.
// They run as root: chroot needs it.
package matrix

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// Paths inside the chroot.
const (
	hookPath    = "/usr/local/bin/cachix-filter-hook"
	standinPath = "/usr/local/bin/cachix"
	confPath    = "/etc/cachix-filter-hook/hook.conf"
	tokenPath   = "/etc/cachix-filter-hook/token"
	queueDir    = "/var/lib/cachix-filter-hook" // the default as root
	standinRoot = "/var/lib/cfh-standin"        // the stand-in's caches: <root>/<cache>
	filesStore  = "/var/cache/cfh-files"        // a file:// store target
	socketPath  = "/nix/var/nix/daemon-socket/socket"
	user        = "cfhuser" // made by scripts/nix-chroot.sh, in nix-users
	userHome    = "/home/cfhuser"
	rootPATH    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	userPATH    = "/usr/local/bin:/usr/bin:/bin"
)

// nixConf is the chroot's /etc/nix/nix.conf: multi-user mode with build
// users, the socket open to nix-users (as Debian's nix-setup-systemd
// does), no substituters (there is no network), and our hook.
const nixConf = `build-users-group = nixbld
allowed-users = @nix-users root
sandbox = false
substituters =
max-jobs = 4
experimental-features = nix-command
post-build-hook = ` + hookPath + `
`

// chrootDir is CFH_NIX_CHROOT, resolved; "" when the tests skip.
var chrootDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir := os.Getenv("CFH_NIX_CHROOT")
	if dir == "" {
		return m.Run() // every test skips, or fails under CFH_TEST_REQUIRE_NIX_CHROOT=1
	}
	var err error
	if chrootDir, err = filepath.EvalSymlinks(dir); err != nil {
		fmt.Fprintf(os.Stderr, "CFH_NIX_CHROOT: %v\n", err)
		return 1
	}
	if err := installBinaries(chrootDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// installBinaries builds the hook and the cachix stand-in statically (the
// chroot's libc is not the host's) and installs them root-owned, mode 0755,
// into the chroot's /usr/local/bin.
func installBinaries(root string) error {
	if _, err := os.Stat(filepath.Join(root, "proc", "self")); err != nil {
		return fmt.Errorf("%s/proc is not mounted: run the tests through `make test-nix-matrix` (scripts/nix-chroot.sh run)", root)
	}
	for _, b := range []struct{ out, pkg string }{{hookPath, "."}, {standinPath, "./test/cachix-standin"}} {
		tmp := filepath.Join(root, b.out+".new")
		cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, b.pkg)
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", b.pkg, err, out)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(root, b.out)); err != nil {
			return err
		}
	}
	return nil
}

// Chroot is one scenario's world in the chroot: its config, its daemon.
type Chroot struct {
	t   *testing.T
	Dir string // the chroot on the host
}

// Host is the host path of a path inside the chroot.
func (c *Chroot) Host(p string) string { return filepath.Join(c.Dir, p) }

// needChroot skips the test (or fails it, under
// CFH_TEST_REQUIRE_NIX_CHROOT=1) when no chroot was given.
func needChroot(t *testing.T) {
	t.Helper()
	if chrootDir != "" {
		return
	}
	if os.Getenv("CFH_TEST_REQUIRE_NIX_CHROOT") == "1" {
		t.Fatal("CFH_NIX_CHROOT is not set and CFH_TEST_REQUIRE_NIX_CHROOT=1: run make test-nix-matrix")
	}
	t.Skip("CFH_NIX_CHROOT is not set: the Nix matrix runs with make test-nix-matrix (as root)")
}

// Setup gives the test a fresh world in the chroot: no daemon or worker
// left from before, an empty default queue directory, empty caches, the
// hook in nix.conf, conf as hook.conf, and nix-daemon started with
// daemonEnv added to its environment (which the hook and the workers it
// starts inherit). Everything it starts is stopped when the test ends,
// also when it fails.
func Setup(t *testing.T, conf string, daemonEnv ...string) *Chroot {
	t.Helper()
	needChroot(t)
	c := &Chroot{t: t, Dir: chrootDir}
	c.stopAll()
	for _, d := range []string{queueDir, standinRoot, filesStore} {
		if err := os.RemoveAll(c.Host(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(c.Host(standinRoot), 0o755); err != nil {
		t.Fatal(err)
	}
	c.write("/etc/nix/nix.conf", nixConf, 0o644)
	if err := os.MkdirAll(c.Host(filepath.Dir(confPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	// The hook runs as root: its config and token must be root's alone.
	c.write(tokenPath, "matrix-test-token\n", 0o600)
	c.write(confPath, conf, 0o600)
	// Cleanups run last first: the daemon gets its SIGTERM, then what is
	// left (workers, pushers) is killed.
	t.Cleanup(c.stopAll)
	c.startDaemon(daemonEnv)
	return c
}

func (c *Chroot) write(p, content string, mode os.FileMode) {
	c.t.Helper()
	if err := os.MkdirAll(filepath.Dir(c.Host(p)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.Host(p), []byte(content), mode); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chmod(c.Host(p), mode); err != nil {
		c.t.Fatal(err)
	}
}

// daemonBaseEnv is the environment nix-daemon gets, as from an init
// system: no HOME, no user variables. CACHIX_STANDIN_ROOT tells the
// stand-in where its caches are.
func daemonBaseEnv() []string {
	return []string{"PATH=" + rootPATH, "CACHIX_STANDIN_ROOT=" + standinRoot}
}

func (c *Chroot) startDaemon(extra []string) {
	c.t.Helper()
	os.Remove(c.Host(socketPath))
	args := append([]string{c.Dir, "env", "-i"}, daemonBaseEnv()...)
	args = append(append(args, extra...), "/usr/bin/nix-daemon")
	cmd := exec.Command("chroot", args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting nix-daemon: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if c.t.Failed() {
			c.t.Logf("nix-daemon's output:\n%s", tail(log.String(), 4000))
		}
	})
	eventually.True(c.t, 30*time.Second, "nix-daemon's socket", func() bool {
		select {
		case <-exited:
			c.t.Fatalf("nix-daemon exited: %s", log.String())
		default:
		}
		conn, err := net.Dial("unix", c.Host(socketPath))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// Procs lists the processes running inside the chroot whose argv match.
func (c *Chroot) Procs(match func(argv []string) bool) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if root, err := os.Readlink(filepath.Join("/proc", d.Name(), "root")); err != nil || root != c.Dir {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if match(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Workers are the cachix-filter-hook worker processes in the chroot.
func (c *Chroot) Workers() []int {
	return c.Procs(func(argv []string) bool {
		return argv[0] == hookPath && contains(argv, "worker")
	})
}

// Pushers are the cachix stand-in processes in the chroot.
func (c *Chroot) Pushers() []int {
	return c.Procs(func(argv []string) bool { return argv[0] == standinPath })
}

// stopAll SIGKILLs whatever still runs inside the chroot (the workers the
// hook started, their pushers; the daemon is stopped by its own cleanup
// first). They are all ours: scripts/nix-chroot.sh lets one test run use
// a chroot at a time.
func (c *Chroot) stopAll() {
	var pids []int
	// Wait and Errorf rather than True (which stops the test): this
	// runs at the start of a test and as its cleanup, and reports
	// survivors without stopping what follows.
	if eventually.Wait(20*time.Second, func() bool {
		pids = c.Procs(func([]string) bool { return true })
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(pids) == 0
	}) != nil {
		c.t.Errorf("processes %v in %s survive SIGKILL", pids, c.Dir)
	}
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
}

// Cmd is a command inside the chroot: as root with a root login's
// environment (plus CACHIX_STANDIN_ROOT, which a worker it starts needs),
// or as the non-root user building through the daemon.
func (c *Chroot) Cmd(ctx context.Context, asUser bool, env []string, args ...string) *exec.Cmd {
	var argv []string
	if asUser {
		argv = append(argv, "--userspec="+user+":"+user, c.Dir, "env", "-i",
			"HOME="+userHome, "USER="+user, "LOGNAME="+user, "PATH="+userPATH, "NIX_REMOTE=daemon")
	} else {
		argv = append(argv, c.Dir, "env", "-i", "HOME=/root", "USER=root", "LOGNAME=root", "PATH="+rootPATH,
			"CACHIX_STANDIN_ROOT="+standinRoot)
	}
	argv = append(append(argv, env...), args...)
	cmd := exec.CommandContext(ctx, "chroot", argv...)
	cmd.Dir = "/"
	return cmd
}

// Run runs a command in the chroot and returns its result; it fails the
// test only when the command cannot be run at all.
func (c *Chroot) Run(asUser bool, env []string, args ...string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := c.Cmd(ctx, asUser, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running %v in the chroot: %v", args, err)
	}
	return r
}

// combinedResult runs cmd with stdout and stderr together in Stdout. A
// command that did not start (or whose status cannot be had) has no
// ProcessState: its Code is -1 and Stderr says why, so that a caller in a
// goroutine, which may not call t.Fatal, reports it.
func combinedResult(cmd *exec.Cmd) Result {
	start := time.Now()
	b, err := cmd.CombinedOutput()
	r := Result{Stdout: string(b), Code: -1, Took: time.Since(start)}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	} else {
		r.Stderr = fmt.Sprintf("%v did not run: %v", cmd.Args, err)
	}
	return r
}

// Must is Run failing the test on a non-zero exit.
func (c *Chroot) Must(asUser bool, env []string, args ...string) Result {
	c.t.Helper()
	r := c.Run(asUser, env, args...)
	if r.Code != 0 {
		c.t.Fatalf("%v exited %d:\n%s%s", args, r.Code, r.Stdout, tail(r.Stderr, 4000))
	}
	return r
}

// exprFile writes a Nix expression into the user's home and returns its
// path inside the chroot.
func (c *Chroot) exprFile(expr string) string {
	c.t.Helper()
	p := filepath.Join(userHome, "build-"+nixtest.Salt()+".nix")
	c.write(p, expr, 0o644)
	return p
}

// NixBuild builds expr as the user with nix-build through the daemon and
// returns every output of the derivations built (not only the default
// ones) and the build log, where the hook's lines show.
func (c *Chroot) NixBuild(expr string, extra ...string) (outs []string, r Result) {
	c.t.Helper()
	file := c.exprFile(expr)
	args := append([]string{"nix-build", file, "--no-out-link", "--option", "substituters", ""}, extra...)
	r = c.Must(true, nil, args...)
	return c.outputs(file), r
}

// NixBuildL builds expr as the user with `nix build -L`, the new CLI that
// shows the hook's output only with -L, as `NAME (post)> ...`.
func (c *Chroot) NixBuildL(expr string, extra ...string) (outs []string, r Result) {
	c.t.Helper()
	file := c.exprFile(expr)
	args := append([]string{"nix", "build", "-L", "--no-link", "--option", "substituters", "", "-f", file}, extra...)
	r = c.Must(true, nil, args...)
	return c.outputs(file), r
}

func (c *Chroot) outputs(file string) []string {
	c.t.Helper()
	drvs := c.Must(true, nil, "nix-instantiate", file).Stdout
	outs := c.Must(true, nil, append([]string{"nix-store", "--query", "--outputs"}, strings.Fields(drvs)...)...).Stdout
	return strings.Fields(outs)
}

// CLI runs cachix-filter-hook as root in the chroot, with the default
// config and queue.
func (c *Chroot) CLI(env []string, args ...string) Result {
	c.t.Helper()
	return c.Run(false, env, append([]string{hookPath}, args...)...)
}

// CachePaths lists the store paths a file:// binary cache in the chroot
// holds, from its narinfo files' StorePath lines.
func (c *Chroot) CachePaths(dir string) map[string]bool {
	c.t.Helper()
	got := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(c.Host(dir), "*.narinfo"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // being written
		}
		for _, line := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(line, "StorePath: "); ok {
				got[p] = true
			}
		}
	}
	return got
}

// StandinCache is the directory of a cache of the cachix stand-in.
func StandinCache(name string) string { return filepath.Join(standinRoot, name) }

// Invocation is one line of the stand-in's invocations.jsonl.
type Invocation struct {
	Argv  []string `json:"argv"`
	Cache string   `json:"cache"`
	Paths []string `json:"paths"`
	Exit  int      `json:"exit"`
	PID   int      `json:"pid"`
}

// Invocations reads what the stand-in recorded.
func (c *Chroot) Invocations() []Invocation {
	c.t.Helper()
	f, err := os.Open(c.Host(filepath.Join(standinRoot, "invocations.jsonl")))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	var out []Invocation
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var inv Invocation
		if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
			c.t.Fatalf("invocations.jsonl: %v", err)
		}
		out = append(out, inv)
	}
	return out
}

// QueueEntries counts the entries in the default queue directory: the
// files in entries/ and the lines of the bulk files in bulk/ (many pairs
// queued at once, see queue.Add).
func (c *Chroot) QueueEntries() int {
	names, _ := filepath.Glob(filepath.Join(c.Host(queueDir), "entries", "*"))
	n := len(names)
	bulk, _ := filepath.Glob(filepath.Join(c.Host(queueDir), "bulk", "*"))
	for _, f := range bulk {
		data, _ := os.ReadFile(f)
		n += strings.Count(strings.TrimSpace(string(data)), "\n") + 1
	}
	return n
}

// WorkerLog is the worker's log in the default queue directory.
func (c *Chroot) WorkerLog() string {
	b, _ := os.ReadFile(c.Host(filepath.Join(queueDir, "worker.log")))
	return string(b)
}

// WaitLanded polls until the cache holds every path and the queue is
// empty, failing the test after timeout.
func (c *Chroot) WaitLanded(timeout time.Duration, cache string, paths []string) {
	c.t.Helper()
	eventually.True(c.t, timeout, fmt.Sprintf("%d paths to land in %s and the queue to empty", len(paths), cache), func() bool {
		got := c.CachePaths(cache)
		for _, p := range paths {
			if !got[p] {
				return false
			}
		}
		return c.QueueEntries() == 0
	}, func() string {
		return fmt.Sprintf("cache holds %d of them; %d entries queued; worker log:\n%s", countIn(c.CachePaths(cache), paths), c.QueueEntries(), tail(c.WorkerLog(), 3000))
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func countIn(set map[string]bool, paths []string) int {
	n := 0
	for _, p := range paths {
		if set[p] {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
