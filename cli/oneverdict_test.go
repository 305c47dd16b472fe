package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// The stand-in for Nix that TestOneVerdict runs (the test binary, named
// nix in nix.bin_dir): `nix path-info --json [--recursive] -- PATHS` as
// Nix 2.8 prints it, from the database in the file $envFakeNix names,
// and `nix copy --to URI -- PATHS`, which appends "URI PATH" lines to
// the file $envFakeNixCopies names. No nix-store is there, so that the
// serve protocol fails and path-info answers.
const (
	envFakeNix       = "CLI_TEST_FAKE_NIX_DB"
	envFakeNixCopies = "CLI_TEST_FAKE_NIX_COPIES"
)

// fakeInfo is one valid path of the stand-in's database.
type fakeInfo struct {
	Path       string   `json:"path"`
	NarSize    int64    `json:"narSize"`
	Deriver    string   `json:"deriver,omitempty"`
	References []string `json:"references"`
	Signatures []string `json:"signatures,omitempty"`
}

func fakeNixMain(dbFile string, args []string) int {
	data, err := os.ReadFile(dbFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake nix:", err)
		return 2
	}
	db := map[string]fakeInfo{}
	if err := json.Unmarshal(data, &db); err != nil {
		fmt.Fprintln(os.Stderr, "fake nix:", err)
		return 2
	}
	i := slices.Index(args, "--")
	switch {
	case i >= 0 && slices.Contains(args, "copy"):
		to := args[slices.Index(args, "--to")+1]
		f, err := os.OpenFile(os.Getenv(envFakeNixCopies), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake nix:", err)
			return 1
		}
		defer f.Close()
		for _, p := range args[i+1:] {
			fmt.Fprintf(f, "%s %s\n", to, p)
		}
		return 0
	case i >= 0 && slices.Contains(args, "path-info"):
	default:
		fmt.Fprintf(os.Stderr, "fake nix: unexpected arguments %q\n", args)
		return 2
	}
	recursive := slices.Contains(args, "--recursive")
	type invalid struct {
		Path  string `json:"path"`
		Valid bool   `json:"valid"`
	}
	var out []any
	seen := map[string]bool{}
	queue := args[i+1:]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		info, ok := db[p]
		if !ok {
			if recursive {
				fmt.Fprintf(os.Stderr, "error: path '%s' is not valid\n", p)
				return 1
			}
			out = append(out, invalid{Path: p})
			continue
		}
		out = append(out, info)
		if recursive {
			queue = append(queue, info.References...)
		}
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	return 0
}

// world is the store, Nix and configuration TestOneVerdict runs every
// command on.
type world struct {
	store string
	conf  string
	db    map[string]fakeInfo
	path  map[string]string // by name
	drv   map[string]string // store path: its .drv
	cache map[string]string // target: its store URI
	args  []string          // the paths given to every command
	rows  []vpath
}

// vpath is a row of the table: a store path and its facts.
type vpath struct {
	name     string
	size     int64    // NAR size; 0: 1 KiB
	refs     []string // names of its references
	unsub    bool     // its derivation sets allowSubstitutes = false
	upstream bool     // the upstream cache has it
	list     []string // a package list: the names it names
	targets  []string // ... for these targets (none: all)
	listRefs []string // ... and of those, what it depends on
	invalid  bool     // Nix does not know it
	given    bool     // given to the commands (by name, or built)
}

func newWorld(t *testing.T, rows []vpath, conf string) *world {
	t.Helper()
	for _, k := range []string{config.EnvConfig, config.EnvName("cache"), config.EnvName("queue.dir")} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	w := &world{store: filepath.Join(dir, "store"), db: map[string]fakeInfo{}, path: map[string]string{}, drv: map[string]string{}, cache: map[string]string{}, rows: rows}
	bin, up := filepath.Join(dir, "bin"), filepath.Join(dir, "upstream")
	for _, d := range []string{w.store, bin, up} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("NIX_STORE_DIR", w.store)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "nix")); err != nil {
		t.Fatal(err)
	}
	hash := func(i int, c byte) string { return fmt.Sprintf("%c%031d", c, i) }
	for i, r := range rows {
		w.path[r.name] = filepath.Join(w.store, hash(i, 'a')+"-"+r.name)
	}
	for i, r := range rows {
		p := w.path[r.name]
		if r.given {
			w.args = append(w.args, p)
		}
		if r.list != nil {
			file := filepath.Join(w.store, hash(i, 'b')+"-"+r.name+".list")
			text := "cachix-filter-hook package list 1\n"
			for _, tg := range r.targets {
				text += "target " + tg + "\n"
			}
			var refs []string
			for _, n := range r.list {
				text += w.path[n] + "\n"
			}
			for _, n := range r.listRefs {
				refs = append(refs, w.path[n])
			}
			if err := os.WriteFile(file, []byte(text), 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(file, filepath.Join(p, "manifest.nix")); err != nil {
				t.Fatal(err)
			}
			if !r.invalid {
				w.db[file] = fakeInfo{Path: file, NarSize: 1024, References: refs, Signatures: []string{"test:x"}}
				w.db[p] = fakeInfo{Path: p, NarSize: 1024, References: []string{file}, Signatures: []string{"test:x"}}
			}
			continue
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		drv := filepath.Join(w.store, hash(i, 'd')+"-"+r.name+".drv")
		env := ""
		if r.unsub {
			env = `("allowSubstitutes","")`
		}
		text := fmt.Sprintf(`Derive([("out",%q,"","")],[],[],"x86_64-linux","/bin/sh",[],[%s])`, p, env)
		if err := os.WriteFile(drv, []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
		w.drv[p] = drv
		if r.upstream {
			h := filepath.Base(p)[:32]
			ni := fmt.Sprintf("StorePath: %s\nURL: nar/%s.nar\nCompression: none\nNarHash: sha256:0000000000000000000000000000000000000000000000000000\nNarSize: 1024\nReferences: \n", p, h)
			if err := os.WriteFile(filepath.Join(up, h+".narinfo"), []byte(ni), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if r.invalid {
			continue
		}
		size := r.size
		if size == 0 {
			size = 1024
		}
		refs := []string{}
		for _, n := range r.refs {
			refs = append(refs, w.path[n])
		}
		w.db[p] = fakeInfo{Path: p, NarSize: size, Deriver: drv, References: refs}
	}
	db, _ := json.Marshal(w.db)
	if err := os.WriteFile(filepath.Join(bin, "db.json"), db, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envFakeNix, filepath.Join(bin, "db.json"))
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	for _, name := range []string{"skipper", "pusher", "lister", "sizer", "elsewhere"} {
		w.cache[name] = "file://" + filepath.Join(dir, "cache-"+name)
	}
	conf = strings.NewReplacer("@BIN@", bin, "@UP@", "file://"+up, "@SKIPPER@", w.cache["skipper"], "@PUSHER@", w.cache["pusher"], "@LISTER@", w.cache["lister"], "@SIZER@", w.cache["sizer"], "@ELSEWHERE@", w.cache["elsewhere"]).Replace(conf)
	w.conf = filepath.Join(dir, "hook.conf")
	if err := os.WriteFile(w.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// closure is the runtime closure of p by the stand-in's database.
func (w *world) closure(p string) []string {
	var out []string
	seen := map[string]bool{}
	todo := []string{p}
	for len(todo) > 0 {
		s := todo[0]
		todo = todo[1:]
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
		todo = append(todo, w.db[s].References...)
	}
	return out
}

// outcome is one command's end for one path and target: what the worker
// did with what the command queued.
type outcome struct {
	queued  bool   // the command queued it
	outcome string // the worker's history outcome; "" when not queued
	reason  string
}

// run is one command's outcomes, by path and target, and what its
// worker gave nix copy, by target.
type run struct {
	said string
	// unseen are paths explain decides that the command cannot see.
	unseen map[string]bool
	out    map[string]map[string]outcome
	copied map[string][]string
}

// queueDir gives the next command a queue and a log of nix copy of its
// own.
func (w *world) queueDir(t *testing.T, name string) (dir, copies string) {
	t.Helper()
	dir = filepath.Join(filepath.Dir(w.conf), "queue-"+name)
	t.Setenv(config.EnvName("queue.dir"), dir)
	copies = filepath.Join(filepath.Dir(w.conf), "copies-"+name)
	t.Setenv(envFakeNixCopies, copies)
	return dir, copies
}

// holdWorker takes the worker lock of the queue in dir, so that what a
// command queues starts no worker process (the test binary); release
// before draining.
func holdWorker(t *testing.T, dir string) (release func()) {
	t.Helper()
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := q.AcquireWorker(context.Background(), 0)
	if err != nil || lock == nil {
		t.Fatalf("the worker lock of %s is taken (%v)", dir, err)
	}
	return func() { _ = lock.Unlock() }
}

// drain runs a worker (worker --once, in-process) on the queue in dir and
// returns the outcomes of what it held, and what it gave nix copy.
func (w *world) drain(t *testing.T, dir, copies, said string) run {
	t.Helper()
	c, err := config.Load(w.conf)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := run{said: said, out: map[string]map[string]outcome{}, copied: map[string][]string{}}
	set := func(path, target string, o outcome) {
		if r.out[path] == nil {
			r.out[path] = map[string]outcome{}
		}
		r.out[path][target] = o
	}
	queued, _, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range queued {
		set(e.Path, e.Target, outcome{queued: true})
	}
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	// Only a watchdog: worker --once ends when the queue is decided.
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if err := worker.New(c, q, log).Run(ctx, worker.Once); err != nil {
		t.Fatalf("worker --once on %s did not end deciding the queue: %v\n%s", dir, err, &logs)
	}
	recs, err := history.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		set(rec.Path, rec.Target, outcome{queued: true, outcome: rec.Outcome, reason: rec.Reason})
	}
	data, err := os.ReadFile(copies)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if to, p, ok := strings.Cut(l, " "); ok {
			for name, uri := range w.cache {
				if strings.HasPrefix(to, uri) {
					r.copied[name] = append(r.copied[name], p)
				}
			}
		}
	}
	return r
}

// cmd runs a command in-process and returns its exit status and what it
// printed.
func (w *world) cmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
	st := e.main(append([]string{"--config", w.conf}, args...))
	return st, out.String(), errs.String()
}

// explained is explain --json's verdicts, by path.
func (w *world) explained(t *testing.T, args []string) (map[string]policy.Verdict, string) {
	t.Helper()
	st, out, errs := w.cmd(t, append([]string{"explain", "--json"}, args...)...)
	if st != 0 {
		t.Fatalf("explain exited %d: %s%s", st, out, errs)
	}
	var all []explanation
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	vs := map[string]policy.Verdict{}
	for _, x := range all {
		vs[x.Path] = x.Verdict
	}
	_, text, _ := w.cmd(t, append([]string{"explain"}, args...)...)
	return vs, text
}

// viaPush is push's run: queued, then drained.
func (w *world) viaPush(t *testing.T) run {
	t.Helper()
	dir, copies := w.queueDir(t, "push")
	release := holdWorker(t, dir)
	st, out, errs := w.cmd(t, append([]string{"push"}, w.args...)...)
	release()
	if st != 0 {
		t.Fatalf("push exited %d: %s%s", st, out, errs)
	}
	return w.drain(t, dir, copies, out+errs)
}

// viaPushClosure is push --closure's run of roots, then drained; unseen
// are the paths of vs outside their closure.
func (w *world) viaPushClosure(t *testing.T, roots []string, vs map[string]policy.Verdict) run {
	t.Helper()
	dir, copies := w.queueDir(t, "pushclosure")
	release := holdWorker(t, dir)
	st, out, errs := w.cmd(t, append([]string{"push", "--closure"}, roots...)...)
	release()
	if st != 0 {
		t.Fatalf("push --closure exited %d: %s%s", st, out, errs)
	}
	r := w.drain(t, dir, copies, out+errs)
	in := map[string]bool{}
	for _, p := range roots {
		for _, s := range w.closure(p) {
			in[s] = true
		}
	}
	r.unseen = map[string]bool{}
	for p := range vs {
		if !in[p] {
			r.unseen[p] = true
		}
	}
	return r
}

// viaHook is the hook's run: one build a path given (OUT_PATHS, and
// DRV_PATH when it has one), then drained.
func (w *world) viaHook(t *testing.T) run {
	t.Helper()
	dir, copies := w.queueDir(t, "hook")
	release := holdWorker(t, dir)
	var said bytes.Buffer
	for _, p := range w.args {
		if st := hook.Run(context.Background(), w.conf, hook.Env{OutPaths: p, DrvPath: w.drv[p]}, &said); st != 0 {
			t.Fatalf("hook exited %d: %s", st, &said)
		}
	}
	release()
	return w.drain(t, dir, copies, said.String())
}

// viaWatchExec is watch-exec's run: a command that registers the paths
// given (deletes their lock files), then drained.
func (w *world) viaWatchExec(t *testing.T) run {
	t.Helper()
	dir, copies := w.queueDir(t, "watchexec")
	release := holdWorker(t, dir)
	script := ""
	for _, p := range w.args {
		script += fmt.Sprintf("touch %s.lock && rm %s.lock\n", p, p)
	}
	st, out, errs := w.cmd(t, "watch-exec", "--include-added", "--", "/bin/sh", "-c", script)
	release()
	if st != 0 {
		t.Fatalf("watch-exec exited %d: %s%s", st, out, errs)
	}
	r := w.drain(t, dir, copies, out+errs)
	// Nix registered no list it does not know as valid: watch-exec
	// never reads it (the hook, given it by Nix, would).
	r.unseen = map[string]bool{}
	for _, row := range w.rows {
		if row.list != nil && row.invalid {
			for _, n := range row.list {
				r.unseen[w.path[n]] = true
			}
		}
	}
	return r
}

// agree checks that a run ends as explain's verdicts say: each path a
// target selects is pushed to it, each it does not is not queued or is
// dropped with explain's reason; and that what nix copy was given for a
// target uploads exactly the closures of the paths explain pushes there.
func (w *world) agree(t *testing.T, name string, vs map[string]policy.Verdict, r run) {
	t.Helper()
	var bad []string
	for _, p := range slices.Sorted(maps.Keys(vs)) {
		if r.unseen[p] {
			continue
		}
		for _, td := range vs[p].Targets {
			o := r.out[p][td.Target]
			switch {
			case td.Selected && o.outcome != history.Pushed:
				bad = append(bad, fmt.Sprintf("%s -> %s: explain pushes it (%s); %s: %+v", filepath.Base(p), td.Target, td.Rule, name, o))
			case !td.Selected && o.outcome == history.Pushed:
				bad = append(bad, fmt.Sprintf("%s -> %s: explain skips it (%s); %s pushed it", filepath.Base(p), td.Target, td.Rule, name))
			case !td.Selected && o.queued && o.reason != td.DropReason():
				bad = append(bad, fmt.Sprintf("%s -> %s: explain skips it (%s); %s: %s: %s", filepath.Base(p), td.Target, td.Rule, name, o.outcome, o.reason))
			}
		}
	}
	for p, ts := range r.out {
		if _, ok := vs[p]; !ok {
			for tg, o := range ts {
				bad = append(bad, fmt.Sprintf("%s -> %s: explain does not decide it; %s: %+v", filepath.Base(p), tg, name, o))
			}
		}
	}
	for target := range w.cache {
		want, got := map[string]bool{}, map[string]bool{}
		for p, v := range vs {
			if slices.Contains(v.Push, target) && !r.unseen[p] {
				for _, s := range w.closure(p) {
					want[s] = true
				}
			}
		}
		for _, p := range r.copied[target] {
			for _, s := range w.closure(p) {
				got[s] = true
			}
		}
		for s := range want {
			if !got[s] {
				bad = append(bad, fmt.Sprintf("%s: explain uploads %s to %s; %s does not", name, filepath.Base(s), target, name))
			}
		}
		for s := range got {
			if !want[s] {
				bad = append(bad, fmt.Sprintf("%s: %s uploads %s to %s; explain does not", name, name, filepath.Base(s), target))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("%s disagrees with explain:\n  %s\n%s said: %s", name, strings.Join(bad, "\n  "), name, r.said)
	}
}

// oneVerdictConf has a target per closure rule; the first takes no
// package lists, the second does.
const oneVerdictConf = `
[nix]
bin_dir = "@BIN@"

[[target]]
name = "skipper"
store = "@SKIPPER@"
allow = ["*"]
deny = ["secret-*"]
closure_deny = "skip"
max_nar_size = "1MiB"
unsubstitutable = "skip"
upstream = ["@UP@"]

[[target]]
name = "pusher"
store = "@PUSHER@"
allow = ["app-*", "tool-*", "clean-*", "big-*", "unsub-*", "up-*", "needs-*"]
deny = ["secret-*"]
closure_deny = "push"
max_nar_size = "1MiB"
unsubstitutable = "push"
package_lists = true

[[target]]
name = "lister"
store = "@LISTER@"
allow = ["nothing-*"]
deny = ["secret-*"]
closure_deny = "skip"
max_nar_size = "1MiB"
unsubstitutable = "skip"
upstream = ["@UP@"]
package_lists = true

[[target]]
name = "sizer"
store = "@SIZER@"
allow = ["*"]
closure_deny = "skip"
max_nar_size = "1MiB"
unsubstitutable = "push"

[[target]]
name = "elsewhere"
store = "@ELSEWHERE@"
hosts = ["no-such-host-*"]
allow = ["*"]
`

// The rows of TestOneVerdict.
var oneVerdictRows = []vpath{
	{name: "clean-1.0", given: true},
	{name: "app-1.0", refs: []string{"secret-key-1"}, given: true},
	{name: "secret-key-1", given: true},
	{name: "tool-1.0", refs: []string{"big-1.0"}, given: true},
	{name: "big-1.0", size: 2 << 20, given: true},
	{name: "unsub-1.0", unsub: true, given: true},
	{name: "needs-unsub-1.0", refs: []string{"unsub-1.0"}, given: true},
	{name: "up-1.0", upstream: true, given: true},
	{name: "listed-1.0"},
	{name: "texty-1.0"},
	{name: "ghost-1.0"},
	{name: "l-unsub-1.0", unsub: true},
	{name: "l-up-1.0", upstream: true},
	{name: "l-big-1.0", size: 2 << 20},
	{name: "l-app-1.0", refs: []string{"secret-key-1"}},
	{name: "l-tool-1.0", refs: []string{"l-big-1.0"}},
	{name: "secret-listed-1.0"},
	{name: "cachix-packages-a", list: []string{"listed-1.0", "texty-1.0", "l-unsub-1.0", "l-up-1.0", "l-big-1.0", "l-app-1.0", "l-tool-1.0", "secret-listed-1.0"},
		listRefs: []string{"listed-1.0", "l-unsub-1.0", "l-up-1.0", "l-big-1.0", "l-app-1.0", "l-tool-1.0", "secret-listed-1.0"}, given: true},
	{name: "for-lister-1.0"},
	{name: "cachix-packages-c", list: []string{"for-lister-1.0"}, listRefs: []string{"for-lister-1.0"}, targets: []string{"lister"}, given: true},
	// A list Nix does not know as valid: what it names counts for
	// nothing.
	{name: "cachix-packages-b", list: []string{"ghost-1.0"}, listRefs: []string{"ghost-1.0"}, invalid: true, given: true},
	// A path two lists name, the first only as text: the second, which
	// depends on it, selects it, whichever reaches a command first.
	{name: "dual-1.0"},
	{name: "cachix-packages-d", list: []string{"dual-1.0"}, given: true},
	{name: "cachix-packages-e", list: []string{"dual-1.0"}, listRefs: []string{"dual-1.0"}, given: true},
}

// TestOneVerdict checks the promise that every command gives a path the
// same verdict by the same rules: the hook, push, watch-exec (each
// followed by the worker that drains what it queued) and push --dry-run
// end as explain says, path by path and target by target, with explain's
// reason for what is dropped, and upload to each target exactly the
// closures of what explain pushes there.
func TestOneVerdict(t *testing.T) {
	w := newWorld(t, oneVerdictRows, oneVerdictConf)
	vs, text := w.explained(t, w.args)
	if len(vs) == 0 {
		t.Fatal("explain decided nothing")
	}
	t.Logf("explain:\n%s", text)
	w.queueDir(t, "dry")
	st, dry, errs := w.cmd(t, append([]string{"push", "--dry-run"}, w.args...)...)
	if st != 0 || dry != text {
		t.Errorf("push --dry-run (exit %d) said:\n%s%s\nexplain said:\n%s", st, dry, errs, text)
	}
	w.agree(t, "push", vs, w.viaPush(t))
	w.agree(t, "hook", vs, w.viaHook(t))
	w.agree(t, "watch-exec", vs, w.viaWatchExec(t))

	// push --closure decides every path of the roots' closures, and
	// explain of those paths says the same of each.
	var roots, all []string
	for _, n := range []string{"app-1.0", "tool-1.0", "needs-unsub-1.0", "clean-1.0", "cachix-packages-a", "cachix-packages-c"} {
		roots = append(roots, w.path[n])
	}
	seen := map[string]bool{}
	for _, r := range roots {
		for _, s := range w.closure(r) {
			if !seen[s] {
				seen[s] = true
				all = append(all, s)
			}
		}
	}
	sort.Strings(all)
	vs, text = w.explained(t, all)
	t.Logf("explain of the closure:\n%s", text)
	w.queueDir(t, "dryclosure")
	st, dry, errs = w.cmd(t, append([]string{"push", "--dry-run", "--closure"}, roots...)...)
	// explain reads the lists it is given, and so decides what they
	// name only as text too, outside the closure.
	var inClosure []string
	for _, l := range strings.SplitAfter(text, "\n") {
		if f := strings.Fields(l); len(f) < 2 || seen[f[1]] {
			inClosure = append(inClosure, l)
		}
	}
	if st != 0 || dry != strings.Join(inClosure, "") {
		t.Errorf("push --dry-run --closure (exit %d) said:\n%s%s\nexplain of the closure said:\n%s", st, dry, errs, text)
	}
	w.agree(t, "push --closure", vs, w.viaPushClosure(t, roots, vs))
}
