package hook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// The test binary stands in for two programs:
//   - nix-store, when HOOK_TEST_FAKE_NIX_STORE=1: it answers
//     `--query --outputs -- DRV` with HOOK_TEST_OUTPUTS, or fails when
//     that is "FAIL";
//   - the worker that worker.Spawn starts (os.Executable is the test
//     binary): it records its argv and surroundings in
//     HOOK_TEST_SPAWN_RECORD and exits, so that no test ever leaves a
//     real worker behind.
const (
	envFakeNixStore = "HOOK_TEST_FAKE_NIX_STORE"
	envOutputs      = "HOOK_TEST_OUTPUTS"
	envSpawnRecord  = "HOOK_TEST_SPAWN_RECORD"
	// envFdsRecord, when set, names a file where the fake nix-store
	// lists what its open descriptors name, a line each.
	envFdsRecord = "HOOK_TEST_FDS_RECORD"
)

type spawnRecord struct {
	Args          []string `json:"args"`
	QueueDir      string   `json:"queue_dir"`
	SessionLeader bool     `json:"session_leader"`
	Stdio         []string `json:"stdio"`
	Cwd           string   `json:"cwd"`
}

func TestMain(m *testing.M) {
	if os.Getenv(envFakeNixStore) == "1" {
		os.Exit(fakeNixStore())
	}
	if slices.Contains(os.Args, "--spawned") {
		os.Exit(fakeWorker())
	}
	os.Exit(m.Run())
}

func fakeNixStore() int {
	args := os.Args[1:]
	if len(args) != 4 || args[0] != "--query" || args[1] != "--outputs" || args[2] != "--" {
		fmt.Fprintf(os.Stderr, "fake nix-store: unexpected arguments %q\n", args)
		return 2
	}
	if file := os.Getenv(envFdsRecord); file != "" {
		// What each names, not its number: the Go runtime's own
		// descriptors (and the listing's) may take the number the
		// parent's had.
		d, _ := os.Open("/proc/self/fd")
		names, _ := d.Readdirnames(-1)
		var targets []string
		for _, n := range names {
			if l, err := os.Readlink("/proc/self/fd/" + n); err == nil {
				targets = append(targets, l)
			}
		}
		os.WriteFile(file, []byte(strings.Join(targets, "\n")), 0o600)
	}
	out := os.Getenv(envOutputs)
	if out == "FAIL" {
		fmt.Fprintln(os.Stderr, "error: path is not valid")
		return 1
	}
	fmt.Println(strings.ReplaceAll(out, " ", "\n"))
	return 0
}

func fakeWorker() int {
	file := os.Getenv(envSpawnRecord)
	if file == "" {
		return 0
	}
	r := spawnRecord{Args: os.Args, QueueDir: os.Getenv(config.EnvName("queue.dir"))}
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	r.SessionLeader = errno == 0 && int(sid) == os.Getpid()
	for fd := 0; fd < 3; fd++ {
		l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		r.Stdio = append(r.Stdio, l)
	}
	r.Cwd, _ = os.Getwd()
	data, _ := json.Marshal(r)
	tmp := file + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		os.Rename(tmp, file)
	}
	return 0
}

// spawnWatch tells whether the hook started a worker: Spawn starts this
// test binary, which records how it was started into file.
type spawnWatch struct {
	file   string
	before map[int]bool // this process's children before the test
}

// isolate clears the configuration's environment and watches for
// spawned workers.
func isolate(t *testing.T) *spawnWatch {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix+"_") {
			t.Setenv(k, "")
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("NIX_STORE_DIR", "")
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	rec := filepath.Join(t.TempDir(), "spawned.json")
	t.Setenv(envSpawnRecord, rec)
	return &spawnWatch{file: rec, before: children(t)}
}

// noSpawn fails the test if the hook started a worker. Spawn never
// waits for the worker, so one it started is still this process's child
// when Run has returned, running or (having exited) a zombie: the check
// needs no waiting, and does not pass on a slow machine where the worker
// has not yet written its record.
func noSpawn(t *testing.T, w *spawnWatch) {
	t.Helper()
	for pid := range children(t) {
		if !w.before[pid] {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("the hook started a worker: process %d %q", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
}

// children lists this process's child processes, zombies included.
func children(t *testing.T) map[int]bool {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	pids := map[int]bool{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		var state string
		var ppid int
		if i < 0 {
			continue
		}
		if _, err := fmt.Sscan(string(stat[i+1:]), &state, &ppid); err == nil && ppid == self {
			pids[pid] = true
		}
	}
	return pids
}

const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

func mkPath(name string) storepath.Path {
	sum := sha256.Sum256([]byte(name))
	h := make([]byte, storepath.HashLen)
	for i := range h {
		h[i] = nixBase32[sum[i]%32]
	}
	return storepath.New(storepath.StoreDir(), string(h), name)
}

func mkPaths(names ...string) []storepath.Path {
	ps := make([]storepath.Path, len(names))
	for i, n := range names {
		ps[i] = mkPath(n)
	}
	return ps
}

func mkTarget(t *testing.T, name string, allow, deny []string) *config.Target {
	t.Helper()
	r, err := filter.Compile(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return &config.Target{Name: name, Cache: name, Allow: allow, Deny: deny, ClosureDeny: config.ClosurePush, Rules: r}
}

// ---- Select and Summary ----

func pairNames(ps []queue.Pair) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Target+":"+p.Path.Name)
	}
	return out
}

func TestSelectOneTarget(t *testing.T) {
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"hello-*"}, []string{"*-doc"})}}
	sel := Select(cfg, mkPaths("hello-2.12.1", "hello-2.12.1-doc"))
	if got := sel.Summary(); got != `queued 1 of 2 paths for main (skipped hello-2.12.1-doc: deny "*-doc")` {
		t.Errorf("Summary = %q", got)
	}
	if got := pairNames(sel.Pairs); !slices.Equal(got, []string{"main:hello-2.12.1"}) {
		t.Errorf("Pairs = %q", got)
	}
	if sel.Pairs[0].Path != mkPath("hello-2.12.1") {
		t.Errorf("Pair path = %+v", sel.Pairs[0].Path)
	}
}

func TestSelectSeveralTargets(t *testing.T) {
	cfg := &config.Config{Targets: []*config.Target{
		mkTarget(t, "main", []string{"hello-*", "foo-*"}, []string{"*-doc"}),
		mkTarget(t, "work", []string{"hello-*", "gcc-*"}, []string{"*-man"}),
	}}
	sel := Select(cfg, mkPaths("hello-2.12.1", "hello-2.12.1-doc", "gcc-13.2.0", "hello-2.12.1-man", "bash-5.2", "foo-doc"))
	wantPairs := []string{
		"main:hello-2.12.1", "work:hello-2.12.1",
		"work:hello-2.12.1-doc",
		"work:gcc-13.2.0",
		"main:hello-2.12.1-man",
	}
	if got := pairNames(sel.Pairs); !slices.Equal(got, wantPairs) {
		t.Errorf("Pairs = %q, want %q", got, wantPairs)
	}
	if sel.Total != 6 || sel.Selected != 4 {
		t.Errorf("Total %d, Selected %d; want 6, 4", sel.Total, sel.Selected)
	}
	if !slices.Equal(sel.Targets, []string{"main", "work"}) {
		t.Errorf("Targets = %q", sel.Targets)
	}
	wantSkipped := []string{
		"bash-5.2: no allow rule matches",
		`foo-doc: main: deny "*-doc"; work: no allow rule matches`,
	}
	if !slices.Equal(sel.Skipped, wantSkipped) {
		t.Errorf("Skipped = %q, want %q", sel.Skipped, wantSkipped)
	}
	want := `queued 4 of 6 paths for main, work (skipped bash-5.2: no allow rule matches; foo-doc: main: deny "*-doc"; work: no allow rule matches)`
	if got := sel.Summary(); got != want {
		t.Errorf("Summary =\n  %s\nwant\n  %s", got, want)
	}
}

func TestSelectTargetsInConfigOrder(t *testing.T) {
	cfg := &config.Config{Targets: []*config.Target{
		mkTarget(t, "main", []string{"hello-*"}, nil),
		mkTarget(t, "work", []string{"gcc-*"}, nil),
	}}
	// The first path goes to work only, the second to main.
	sel := Select(cfg, mkPaths("gcc-13.2.0", "hello-2.12.1"))
	if !slices.Equal(sel.Targets, []string{"main", "work"}) {
		t.Errorf("Selection.Targets is documented as \"in config order\" but is in order of first selection: %q; "+
			"the summary line then says \"for work, main\"", sel.Targets)
	}
}

func TestSummary(t *testing.T) {
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"hello-*"}, []string{"*-doc"})}}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, "queued 0 of 0 paths"},
		{[]string{"hello-1"}, "queued 1 of 1 paths for main"},
		{[]string{"a-doc"}, `queued 0 of 1 paths (skipped a-doc: deny "*-doc")`},
		{[]string{"bash-5"}, `queued 0 of 1 paths (skipped bash-5: no allow rule matches)`},
		{
			[]string{"a-doc", "b-doc", "hello-1", "c-doc"},
			`queued 1 of 4 paths for main (skipped a-doc: deny "*-doc"; b-doc: deny "*-doc"; c-doc: deny "*-doc")`,
		},
		{
			[]string{"a-doc", "b-doc", "c-doc", "d-doc", "hello-1", "bash-5"},
			`queued 1 of 6 paths for main (skipped a-doc: deny "*-doc"; b-doc: deny "*-doc"; c-doc: deny "*-doc"; and 2 more)`,
		},
	} {
		if got := Select(cfg, mkPaths(tc.names...)).Summary(); got != tc.want {
			t.Errorf("%q:\n  got  %s\n  want %s", tc.names, got, tc.want)
		}
	}
}

// ---- Run ----

type conf struct {
	strict   bool
	queueDir string
	binDir   string
	extra    string
}

func writeConf(t *testing.T, c conf) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "cache = \"mycache\"\nallow = [\"hello-*\"]\ndeny = [\"*-doc\"]\nstrict = %v\n%s\n", c.strict, c.extra)
	fmt.Fprintf(&b, "[queue]\ndir = %q\n", c.queueDir)
	if c.binDir != "" {
		fmt.Fprintf(&b, "[nix]\nbin_dir = %q\n", c.binDir)
	}
	return writeFile(t, b.String())
}

func writeFile(t testing.TB, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "hook.conf")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// holdWorkerLock makes the hook see a running worker, so it starts none.
func holdWorkerLock(t *testing.T, dir string) {
	t.Helper()
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || l == nil {
		t.Fatalf("AcquireWorker = %v, %v", l, err)
	}
	t.Cleanup(func() { l.Unlock() })
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func checkPrefixed(t *testing.T, out string) {
	t.Helper()
	for _, l := range lines(out) {
		if !strings.HasPrefix(l, "cachix-filter-hook: ") {
			t.Errorf("line %q lacks the cachix-filter-hook: prefix", l)
		}
	}
}

func unusableDir(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(file, "queue")
}

func TestRunQueues(t *testing.T) {
	rec := isolate(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeConf(t, conf{queueDir: dir})
	hello, doc := mkPath("hello-2.12.1"), mkPath("hello-2.12.1-doc")
	var out bytes.Buffer
	st := Run(context.Background(), cfgFile, Env{OutPaths: hello.String() + " " + doc.String()}, &out)
	if st != 0 {
		t.Errorf("Run = %d, want 0", st)
	}
	if want := "cachix-filter-hook: queued 1 of 2 paths for mycache (skipped hello-2.12.1-doc: deny \"*-doc\")\n"; out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
	// A path named twice in OUT_PATHS is one path, counted once.
	out.Reset()
	if st := Run(context.Background(), cfgFile, Env{OutPaths: hello.String() + " " + hello.String()}, &out); st != 0 {
		t.Errorf("Run = %d, want 0", st)
	}
	if want := "cachix-filter-hook: queued 1 of 1 paths for mycache\n"; out.String() != want {
		t.Errorf("a path named twice: output = %q, want %q", out.String(), want)
	}
	q := &queue.Queue{Dir: dir}
	e, ok := q.Get(queue.Key("mycache", hello))
	if !ok || e.Path != hello.String() || e.Target != "mycache" {
		t.Errorf("queued entry = %+v, %v", e, ok)
	}
	if names, _ := q.Names(); len(names) != 1 {
		t.Errorf("entries = %q, want one", names)
	}
	noSpawn(t, rec)
}

func TestRunStartsWorker(t *testing.T) {
	rec := isolate(t)
	dir := filepath.Join(t.TempDir(), "queue")
	cfgFile := writeConf(t, conf{queueDir: dir})
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: mkPath("hello-1").String()}, &out); st != 0 {
		t.Fatalf("Run = %d: %s", st, out.String())
	}
	var r spawnRecord
	var data []byte
	eventually.True(t, eventually.Left(t), "the worker to start and record how", func() bool {
		var err error
		data, err = os.ReadFile(rec.file)
		return err == nil
	})
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if want := []string{exe, "--config", cfgFile, "worker", "--spawned"}; !slices.Equal(r.Args, want) {
		t.Errorf("worker argv = %q, want %q", r.Args, want)
	}
	if r.QueueDir != dir {
		t.Errorf("worker's %s = %q, want %q", config.EnvName("queue.dir"), r.QueueDir, dir)
	}
	if !r.SessionLeader {
		t.Error("the worker is not in a session of its own")
	}
	if !slices.Equal(r.Stdio, []string{"/dev/null", "/dev/null", "/dev/null"}) {
		t.Errorf("worker stdio = %q, want /dev/null for all three", r.Stdio)
	}
	if r.Cwd != "/" {
		t.Errorf("worker cwd = %q, want /", r.Cwd)
	}
}

func TestRunQueueUnusable(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			rec := isolate(t)
			cfgFile := writeConf(t, conf{strict: strict, queueDir: unusableDir(t)})
			var out bytes.Buffer
			st := Run(context.Background(), cfgFile, Env{OutPaths: mkPath("hello-2.12.1").String()}, &out)
			want := 0
			if strict {
				want = 1
			}
			if st != want {
				t.Errorf("Run = %d, want %d", st, want)
			}
			if !strings.Contains(out.String(), "could not queue 1 paths, they will not be pushed") {
				t.Errorf("output = %q, want it to say the paths could not be queued", out.String())
			}
			if n := len(lines(out.String())); n != 1 {
				t.Errorf("output has %d lines, want 1: %q", n, out.String())
			}
			checkPrefixed(t, out.String())
			noSpawn(t, rec)
		})
	}
}

func TestRunNothingSelectedNeedsNoQueue(t *testing.T) {
	rec := isolate(t)
	cfgFile := writeConf(t, conf{strict: true, queueDir: unusableDir(t)})
	var out bytes.Buffer
	st := Run(context.Background(), cfgFile, Env{OutPaths: mkPath("hello-2.12.1-doc").String()}, &out)
	if st != 0 {
		t.Errorf("Run = %d, want 0", st)
	}
	if want := "cachix-filter-hook: queued 0 of 1 paths (skipped hello-2.12.1-doc: deny \"*-doc\")\n"; out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
	noSpawn(t, rec)
}

func TestRunMalformedOutPaths(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			rec := isolate(t)
			cfgFile := writeConf(t, conf{strict: strict, queueDir: unusableDir(t)})
			bad := []string{
				"/nix/store/tooshort-hello",
				"/tmp/" + mkPath("hello-1").Base(),
				mkPath("hello-1").String() + "/bin/hello",
				"relative",
			}
			var out bytes.Buffer
			st := Run(context.Background(), cfgFile, Env{OutPaths: strings.Join(bad, "  \n\t") + " " + mkPath("bash-5").String()}, &out)
			if st != 0 {
				t.Errorf("Run = %d, want 0: malformed paths are ignored, not failures", st)
			}
			ls := lines(out.String())
			if len(ls) != 2 {
				t.Fatalf("output has %d lines, want 2:\n%s", len(ls), out.String())
			}
			// One line: the count and three examples.
			if !strings.HasPrefix(ls[0], "cachix-filter-hook: ignoring 4 malformed paths: ") || !strings.HasSuffix(ls[0], "; and 1 more") {
				t.Errorf("line 0 = %q", ls[0])
			}
			for _, b := range bad[:3] {
				if !strings.Contains(ls[0], fmt.Sprintf("%q", b)) {
					t.Errorf("line 0 = %q, want it to name %q", ls[0], b)
				}
			}
			if want := "cachix-filter-hook: queued 0 of 5 paths (skipped bash-5: no allow rule matches)"; ls[1] != want {
				t.Errorf("last line = %q, want %q", ls[1], want)
			}
			noSpawn(t, rec)
		})
	}
}

func TestRunInvalidConfig(t *testing.T) {
	for name, content := range map[string]string{
		"unknown key":  "cache = \"c\"\nalow = [\"hello-*\"]\nstrict = true\n",
		"bad toml":     "cache = \"c\nstrict = true\n",
		"no target":    "strict = true\nallow = [\"*\"]\n",
		"bad pattern":  "cache = \"c\"\nallow = [\"hello-[\"]\nstrict = true\n",
		"relative dir": "cache = \"c\"\nallow = [\"*\"]\nstrict = true\n[queue]\ndir = \"q\"\n",
		"too deep":     "strict = true\ncache = \"c\"\nallow = [\"*\"]\nx = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n",
	} {
		for _, strict := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, strict %v", name, strict), func(t *testing.T) {
				rec := isolate(t)
				c := content
				if !strict {
					c = strings.Replace(c, "strict = true", "strict = false", 1)
				}
				var out bytes.Buffer
				// strict = true asks that a failure stop the build
				// loop (issue 9): an invalid config is one, and the
				// file says strict even where other keys are wrong.
				st := Run(context.Background(), writeFile(t, c), Env{OutPaths: mkPath("hello-1").String()}, &out)
				if want := map[bool]int{true: 1, false: 0}[strict]; st != want {
					t.Errorf("Run = %d, want %d", st, want)
				}
				if !strings.HasPrefix(out.String(), "cachix-filter-hook: not queueing anything, the configuration is invalid: ") {
					t.Errorf("output = %q", out.String())
				}
				noSpawn(t, rec)
			})
		}
	}
	t.Run("strict from the environment", func(t *testing.T) {
		rec := isolate(t)
		file := writeFile(t, "cache = \"c\"\nalow = [\"hello-*\"]\n")
		t.Setenv(config.EnvName("strict"), "1")
		var out bytes.Buffer
		if st := Run(context.Background(), file, Env{OutPaths: mkPath("hello-1").String()}, &out); st != 1 {
			t.Errorf("Run = %d, want 1", st)
		}
		// A missing file, and an unknown variable: strict still.
		t.Setenv(config.EnvPrefix+"_ALOW", "hello-*")
		if st := Run(context.Background(), filepath.Join(t.TempDir(), "nope.conf"), Env{OutPaths: mkPath("hello-1").String()}, &out); st != 1 {
			t.Errorf("Run with a missing file = %d, want 1", st)
		}
		noSpawn(t, rec)
	})
	t.Run("missing file", func(t *testing.T) {
		isolate(t)
		var out bytes.Buffer
		if st := Run(context.Background(), filepath.Join(t.TempDir(), "nope.conf"), Env{OutPaths: mkPath("hello-1").String()}, &out); st != 0 {
			t.Errorf("Run = %d, want 0", st)
		}
		if !strings.Contains(out.String(), "the configuration is invalid") {
			t.Errorf("output = %q", out.String())
		}
	})
	t.Run("group-writable file", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the ownership checks apply to root only")
		}
		isolate(t)
		// Its strict = true is not believed either: anyone who can
		// write it could otherwise stop root's builds.
		f := writeConf(t, conf{strict: true, queueDir: filepath.Join(t.TempDir(), "q")})
		if err := os.Chmod(f, 0o620); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if st := Run(context.Background(), f, Env{OutPaths: mkPath("hello-1").String()}, &out); st != 0 {
			t.Errorf("Run = %d, want 0", st)
		}
		if !strings.Contains(out.String(), "the configuration is invalid") || !strings.Contains(out.String(), "writable by group or others") {
			t.Errorf("output = %q", out.String())
		}
	})
}

func TestRunNoOutPaths(t *testing.T) {
	rec := isolate(t)
	cfgFile := writeConf(t, conf{strict: true, queueDir: unusableDir(t)})
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: "  "}, &out); st != 0 || out.Len() != 0 {
		t.Errorf("Run with nothing built = %d, %q; want 0 and silence", st, out.String())
	}
	noSpawn(t, rec)
}

func TestRunBadDrvPath(t *testing.T) {
	for _, drv := range []string{"/tmp/x.drv", mkPath("hello-1").String(), "/nix/store/short.drv"} {
		for _, strict := range []bool{false, true} {
			isolate(t)
			cfgFile := writeConf(t, conf{strict: strict, queueDir: unusableDir(t)})
			var out bytes.Buffer
			st := Run(context.Background(), cfgFile, Env{DrvPath: drv}, &out)
			want := 0
			if strict {
				want = 1
			}
			if st != want {
				t.Errorf("DRV_PATH %q, strict %v: Run = %d, want %d", drv, strict, st, want)
			}
			if !strings.Contains(out.String(), "is not a derivation in the store") {
				t.Errorf("DRV_PATH %q: output = %q", drv, out.String())
			}
		}
	}
}

// fakeNixStoreDir returns a directory whose nix-store is the test binary.
func fakeNixStoreDir(t *testing.T, outputs string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "nix-store")); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envFakeNixStore, "1")
	t.Setenv(envOutputs, outputs)
	return dir
}

func TestRunOutputsFromDrv(t *testing.T) {
	// Nix 2.8 passes OUT_PATHS empty: the hook asks nix-store.
	rec := isolate(t)
	hello, doc := mkPath("hello-2.12.1"), mkPath("hello-2.12.1-doc")
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeConf(t, conf{queueDir: dir, binDir: fakeNixStoreDir(t, hello.String()+" "+doc.String())})
	drv := mkPath("hello-2.12.1.drv").String()
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{DrvPath: drv}, &out); st != 0 {
		t.Errorf("Run = %d", st)
	}
	if want := "cachix-filter-hook: queued 1 of 2 paths for mycache (skipped hello-2.12.1-doc: deny \"*-doc\")\n"; out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
	if _, ok := (&queue.Queue{Dir: dir}).Get(queue.Key("mycache", hello)); !ok {
		t.Error("the output nix-store named was not queued")
	}
	noSpawn(t, rec)
}

// The nix-store the hook asks gets none of the descriptors the hook
// inherited beyond 0, 1 and 2 (the build caller's pipes).
func TestRunOutputsFromDrvInheritsNothing(t *testing.T) {
	isolate(t)
	// Opened as an inherited one is: not close-on-exec.
	inherited := filepath.Join(t.TempDir(), "inherited")
	fd, err := syscall.Open(inherited, syscall.O_CREAT|syscall.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	fdsFile := filepath.Join(t.TempDir(), "fds")
	t.Setenv(envFdsRecord, fdsFile)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeConf(t, conf{queueDir: dir, binDir: fakeNixStoreDir(t, mkPath("hello-2.12.1").String())})
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{DrvPath: mkPath("hello-2.12.1.drv").String()}, &out); st != 0 {
		t.Errorf("Run = %d: %s", st, out.String())
	}
	b, err := os.ReadFile(fdsFile)
	if err != nil {
		t.Fatalf("the fake nix-store did not run: %v", err)
	}
	if targets := strings.Split(string(b), "\n"); slices.Contains(targets, inherited) {
		t.Errorf("nix-store was started with the inherited fd %d (%s): it has %q", fd, inherited, targets)
	}
}

func TestRunOutputsFromDrvFail(t *testing.T) {
	for _, strict := range []bool{false, true} {
		isolate(t)
		cfgFile := writeConf(t, conf{strict: strict, queueDir: filepath.Join(t.TempDir(), "q"), binDir: fakeNixStoreDir(t, "FAIL")})
		drv := mkPath("hello-2.12.1.drv").String()
		var out bytes.Buffer
		st := Run(context.Background(), cfgFile, Env{DrvPath: drv}, &out)
		want := 0
		if strict {
			want = 1
		}
		if st != want {
			t.Errorf("strict %v: Run = %d, want %d", strict, st, want)
		}
		if !strings.Contains(out.String(), "OUT_PATHS is empty and asking Nix for the outputs of "+drv+" failed") ||
			!strings.Contains(out.String(), "path is not valid") {
			t.Errorf("output = %q", out.String())
		}
	}
}

// A megabyte of junk in OUT_PATHS gives a few lines in the build log.
func TestRunJunkOutPathsFewLines(t *testing.T) {
	rec := isolate(t)
	cfgFile := writeConf(t, conf{queueDir: unusableDir(t)})
	var junk strings.Builder
	for junk.Len() < 1<<20 {
		fmt.Fprintf(&junk, "/junk/%d ", junk.Len())
	}
	junk.WriteString(strings.Repeat("x", 100_000)) // and one huge field
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: junk.String()}, &out); st != 0 {
		t.Errorf("Run = %d", st)
	}
	t.Logf("%d bytes of OUT_PATHS: %d lines, %d bytes of build log", junk.Len(), len(lines(out.String())), out.Len())
	if n := len(lines(out.String())); n > 3 || out.Len() > 4096 {
		t.Errorf("the hook printed %d lines, %d bytes:\n%.2000s", n, out.Len(), out.String())
	}
	if !strings.Contains(out.String(), "malformed paths") || !strings.Contains(out.String(), "more") {
		t.Errorf("output = %q, want the count", out.String())
	}
	noSpawn(t, rec)
}

// panicsOnce is a build log whose first write panics, as any step of the
// hook might.
type panicsOnce struct {
	bytes.Buffer
	done bool
}

func (w *panicsOnce) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		panic("boom")
	}
	return w.Buffer.Write(p)
}

// A panic in the hook is a failure like the others: exit 0 (a panic's
// exit 2 stops Nix's build loop), or 1 when strict, and a line.
func TestRunPanicExitsZero(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			rec := isolate(t)
			cfgFile := writeConf(t, conf{strict: strict, queueDir: unusableDir(t)})
			var out panicsOnce
			var st int
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Run panicked: %v", r)
					}
				}()
				st = Run(context.Background(), cfgFile, Env{OutPaths: mkPath("hello-2.12.1-doc").String()}, &out)
			}()
			want := 0
			if strict {
				want = 1
			}
			if st != want {
				t.Errorf("Run = %d, want %d", st, want)
			}
			if !strings.Contains(out.String(), "internal error") || !strings.Contains(out.String(), "boom") {
				t.Errorf("output = %q, want the panic said", out.String())
			}
			noSpawn(t, rec)
		})
	}
}
