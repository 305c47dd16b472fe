package hook

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// siblingStore makes hello (out) and its doc output in a store under a
// temporary directory; out refers to doc when refers (in a file's
// contents, past the first chunk and across its boundary).
func siblingStore(t *testing.T, refers bool) (out, doc storepath.Path) {
	t.Helper()
	t.Setenv("NIX_STORE_DIR", filepath.Join(t.TempDir(), "store"))
	out, doc = mkPath("hello-2.12.1"), mkPath("hello-2.12.1-doc")
	for _, p := range []storepath.Path{out, doc} {
		if err := os.MkdirAll(filepath.Join(p.String(), "share"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The first read ends 10 bytes into doc's hash part.
	firstRead := storepath.HashLen - 1 + scanChunk
	body := []byte(strings.Repeat("x", firstRead-10-len(storepath.StoreDir()+"/")))
	if refers {
		body = append(body, []byte(doc.String()+"/share/doc\n")...)
	}
	if err := os.WriteFile(filepath.Join(out.String(), "share", "hello"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(doc.String(), "share", "README"), []byte("docs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return out, doc
}

// siblingSelect is the hook's selection, with the scan's deadline
// lifted: the lines checked here need the scan to end, which a loaded
// machine can keep past 300 ms.
func siblingSelect(cfg *config.Config, paths []storepath.Path) Selection {
	closures, errs := siblingClosuresWithin(cfg, paths, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(time.Hour)})
	sel := SelectClosures(cfg, paths, nil, func(s string) *policy.Closure { return closures[s] })
	for _, err := range errs {
		sel.Notes = append(sel.Notes, err.Error())
	}
	return sel
}

// The hook's line when an output refers to a denied sibling: under
// closure_deny = "push" the sibling is "uploaded inside the closure", never
// "skipped"; under "skip" the referring output is queued (the worker
// drops it, and `wait` reports it) and the line says it will be dropped.
// An output that does not refer to it keeps the plain line.
func TestSummarySiblingClosure(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		refers bool
		want   string
	}{
		{config.ClosurePush, true, `queued 1 of 2 paths for main (not queued hello-2.12.1-doc: deny "*-doc", but uploaded -> main inside the closure of hello-2.12.1 (closure_deny = "push"))`},
		{config.ClosureSkip, true, `queued 1 of 2 paths for main (the worker will drop hello-2.12.1 -> main: closure_deny = "skip": its closure contains @DOC@, denied by "*-doc"; skipped hello-2.12.1-doc: deny "*-doc")`},
		{config.ClosurePush, false, `queued 1 of 2 paths for main (skipped hello-2.12.1-doc: deny "*-doc")`},
		{config.ClosureSkip, false, `queued 1 of 2 paths for main (skipped hello-2.12.1-doc: deny "*-doc")`},
	} {
		t.Run(tc.mode+map[bool]string{true: "-refers", false: "-not"}[tc.refers], func(t *testing.T) {
			out, doc := siblingStore(t, tc.refers)
			tg := mkTarget(t, "main", []string{"hello-*"}, []string{"*-doc"})
			tg.ClosureDeny = tc.mode
			cfg := &config.Config{Targets: []*config.Target{tg}}
			sel := siblingSelect(cfg, []storepath.Path{out, doc})
			want := strings.ReplaceAll(tc.want, "@DOC@", doc.String())
			if got := sel.Summary(); got != want {
				t.Errorf("Summary:\n got %s\nwant %s", got, want)
			}
			if got := pairNames(sel.Pairs); !slices.Equal(got, []string{"main:hello-2.12.1"}) {
				t.Errorf("Pairs = %q, want hello queued either way", got)
			}
		})
	}
}

// Without a target that selects one output and denies another, no file
// is read.
func TestSiblingClosuresOnlyWhenNeeded(t *testing.T) {
	out, doc := siblingStore(t, true)
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"hello-*"}, nil)}}
	if cl, errs := siblingClosures(cfg, []storepath.Path{out, doc}); cl != nil || errs != nil {
		t.Errorf("closures %v, errors %v; want none asked", cl, errs)
	}
	// An output that cannot be read is said, not guessed; one that is
	// gone has nothing to say; one that no target selects has no
	// closure worth knowing.
	cfg = &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"hello-*"}, []string{"*-doc"})}}
	gone := mkPath("hello-2.12.1-man")
	if err := os.Chmod(filepath.Join(out.String(), "share"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(out.String(), "share"), 0o755)
	cl, errs := siblingClosures(cfg, []storepath.Path{out, gone, doc})
	if os.Geteuid() != 0 && (len(errs) != 1 || !strings.Contains(errs[0].Error(), out.Hash) || cl[out.String()] != nil) {
		t.Errorf("closures %v, errors %v; want an error naming %s", cl, errs, out)
	}
	if cl[gone.String()] != nil || cl[doc.String()] != nil {
		t.Errorf("closures %v; want none of the gone and the unselected outputs", cl)
	}
}

// References in a symlink's target and in a file name count too, as in
// the NAR Nix scans.
func TestReferencedIn(t *testing.T) {
	out, doc := siblingStore(t, false)
	man := mkPath("hello-2.12.1-man")
	if err := os.Symlink(doc.String()+"/share", filepath.Join(out.String(), "doc")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out.String(), "x-"+man.Hash), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := referencedIn(out.String(), []storepath.Path{doc, man, mkPath("zlib-1.3")}, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(time.Minute)})
	if err != nil || !slices.Equal(got, []string{doc.String(), man.String()}) {
		t.Errorf("referencedIn = %v, %v", got, err)
	}
}

// The scan is bounded on the build's path: an output larger than the
// budget (or with more files, or taking longer) is not read to the end,
// and the line claims nothing either way; the worker decides.
func TestSiblingScanBounded(t *testing.T) {
	out, doc := siblingStore(t, true)
	big, err := os.Create(filepath.Join(out.String(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: large to the scan, cheap to make. What it looks for is
	// past the budget, where only a scan that read on would find it.
	zlib := mkPath("zlib-1.3")
	if _, err := big.WriteAt([]byte(zlib.Hash), scanMaxBytes); err != nil {
		t.Fatal(err)
	}
	big.Close()
	_, err = referencedIn(out.String(), []storepath.Path{zlib}, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(time.Minute)})
	if err != errScanBudget {
		t.Fatalf("scanning past the byte budget: %v, want errScanBudget", err)
	}
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"hello-*"}, []string{"*-doc"})}}
	cl, errs := siblingClosures(cfg, []storepath.Path{out, doc})
	if cl[out.String()] != nil || len(errs) != 0 {
		t.Errorf("over budget: closures %v, errors %v; want none (nothing claimed, nothing printed)", cl, errs)
	}
	// The time bound, too: a budget already spent stops at once.
	_, err = referencedIn(doc.String(), []storepath.Path{out}, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(-time.Second)})
	if err != errScanBudget {
		t.Errorf("past the time budget: %v, want errScanBudget", err)
	}
}

// A crafted build (issue 18, defect 5): 302 outputs, one of them a 60
// MiB file of base32 text made of pieces of its siblings' hashes, so that
// a scan that searches once per sibling slows to a crawl. The hook's scan
// reads it once and stops at its deadline (300 ms, checked per chunk):
// it held the build 15 s when the deadline was checked between files.
func TestSiblingScan302Outputs(t *testing.T) {
	t.Setenv("NIX_STORE_DIR", filepath.Join(t.TempDir(), "store"))
	paths := []storepath.Path{mkPath("crafted-1.0"), mkPath("crafted-1.0-doc")}
	for i := range 300 {
		paths = append(paths, mkPath(fmt.Sprintf("crafted-1.0-o%d", i)))
	}
	if err := os.MkdirAll(storepath.StoreDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	var piece []byte
	for _, p := range paths[1:] {
		piece = append(piece, p.Hash[:8]...)
		piece = append(piece, p.Hash[24:]...)
	}
	data := bytes.Repeat(piece, (60<<20)/len(piece))
	if err := os.WriteFile(paths[0].String(), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths[1:] {
		if err := os.WriteFile(p.String(), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"crafted-*"}, []string{"*-doc"})}}
	// With its deadline lifted the scan reads the crafted file to the
	// end, in one pass, and claims its closure (itself: it refers to no
	// sibling).
	start := time.Now()
	cl, errs := siblingClosuresWithin(cfg, paths, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(time.Hour)})
	t.Logf("scan of 302 outputs, one of 60 MiB: %s", time.Since(start))
	if len(errs) > 0 || cl[paths[0].String()] == nil {
		t.Fatalf("without a deadline: closures %v, errors %v; want %s's", cl, errs, paths[0].Name)
	}
	// On a clock that moves 3 ms at each look, its 300 ms pass about
	// the hundredth of the file's 240 chunks, whatever the machine's
	// speed: the scan stops there and claims nothing. One that looked
	// at the clock only between files would read the file to the end.
	looks := 0
	t0 := time.Now()
	clock := func() time.Time { looks++; return t0.Add(time.Duration(looks) * scanMaxTime / 100) }
	cl, errs = siblingClosuresWithin(cfg, paths, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: t0.Add(scanMaxTime), Now: clock})
	if len(errs) > 0 || len(cl) > 0 {
		t.Errorf("past the deadline (by a clock looked at %d times): closures of %d outputs, errors %v; want none (nothing claimed, nothing printed)", looks, len(cl), errs)
	}
}

// A directory of a great many entries in an output is read a batch at a
// time: the entry bound stops the scan before the directory is read
// whole, which cost 45 MB and up to 0.9 s for 300,000 entries (issue 18,
// defect 5). Measured as bytes allocated during the scan.
func TestSiblingScanHugeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 60,000 directory entries")
	}
	out, doc := siblingStore(t, false)
	dir := filepath.Join(out.String(), "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 60_000
	for i := range n {
		// Symlinks: an entry for one syscall each.
		if err := os.Symlink("x", filepath.Join(dir, fmt.Sprintf("entry-with-a-longish-name-%07d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := referencedIn(out.String(), []storepath.Path{doc}, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(time.Minute)})
	runtime.ReadMemStats(&after)
	if err != errScanBudget {
		t.Fatalf("scan of %d entries, %d allowed: %v, want errScanBudget", n, scanMaxFiles, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB to stop at %d of %d entries", alloc>>10, scanMaxFiles, n)
	// About 3 MiB when read a batch at a time; reading the whole
	// directory first allocates over 10 MiB here.
	if alloc > 8<<20 {
		t.Errorf("allocated %d MiB: the directory was read whole", alloc>>20)
	}
}

// push and watch-exec know each path's whole closure (SelectFinal): under
// closure_deny = "push" their line says what goes up inside a queued
// path's closure though its rules deny it, also when that dependency is
// not among the paths given (push APP, not push --closure APP), once per
// target and dependency; under "skip" the path is not queued.
func TestSummaryClosureDependencyNotGiven(t *testing.T) {
	app, lib, secret, big := mkPath("app-1.0"), mkPath("lib-1.0"), mkPath("secret-key-1"), mkPath("big-1.0")
	closures := map[string]*policy.Closure{
		app.String(): {Paths: []string{app.String(), secret.String(), big.String()}},
		lib.String(): {Paths: []string{lib.String(), secret.String()}},
	}
	size := func(s string) (int64, bool) {
		if s == big.String() {
			return 2 << 20, true
		}
		return 1 << 10, true
	}
	for _, c := range closures {
		c.NarSize = size
	}
	closure := func(s string) *policy.Closure { return closures[s] }
	for _, tc := range []struct {
		mode  string
		paths []storepath.Path
		want  string
	}{
		{config.ClosurePush, []storepath.Path{app},
			`queued 1 of 1 paths for main (not queued secret-key-1: deny "secret-*", but uploaded -> main inside the closure of app-1.0 (closure_deny = "push"))`},
		{config.ClosurePush, []storepath.Path{app, lib},
			`queued 2 of 2 paths for main (not queued secret-key-1: deny "secret-*", but uploaded -> main inside the closure of app-1.0 (closure_deny = "push"))`},
		// Given along: its own verdict says it, once.
		{config.ClosurePush, []storepath.Path{app, secret},
			`queued 1 of 2 paths for main (not queued secret-key-1: deny "secret-*", but uploaded -> main inside the closure of app-1.0 (closure_deny = "push"))`},
		{config.ClosureSkip, []storepath.Path{app},
			`queued 0 of 1 paths (skipped app-1.0: closure_deny = "skip": its closure contains ` + secret.String() + `, denied by "secret-*")`},
	} {
		tg := mkTarget(t, "main", []string{"*"}, []string{"secret-*"})
		tg.ClosureDeny, tg.MaxNarSize = tc.mode, 1<<20
		cfg := &config.Config{Targets: []*config.Target{tg}}
		sel := SelectFinal(cfg, tc.paths, nil, closure)
		if got := sel.Summary(); got != tc.want {
			t.Errorf("%s %v:\n got %s\nwant %s", tc.mode, tc.paths, got, tc.want)
		}
	}
	// A dependency only max_nar_size leaves out is said with the size.
	tg := mkTarget(t, "main", []string{"*"}, nil)
	tg.MaxNarSize = 1 << 20
	sel := SelectFinal(&config.Config{Targets: []*config.Target{tg}}, []storepath.Path{app}, nil, closure)
	if want := `queued 1 of 1 paths for main (not queued big-1.0: larger than max_nar_size (NAR 2.0 MiB, limit 1.0 MiB), but uploaded -> main inside the closure of app-1.0 (closure_deny = "push"))`; sel.Summary() != want {
		t.Errorf("max_nar_size:\n got %s\nwant %s", sel.Summary(), want)
	}
}

// Many outputs that all refer to one that refers to them all: each
// output's closure holds every other, n² paths in all, kept for the
// line and walked again by the rules (1000 outputs: a million paths,
// 800 ms). The walk is bounded like the scan: past scanMaxRefs, the
// remaining outputs have no closure and the worker decides.
func TestSiblingClosuresBounded(t *testing.T) {
	t.Setenv("NIX_STORE_DIR", filepath.Join(t.TempDir(), "store"))
	if err := os.MkdirAll(storepath.StoreDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 400
	paths := []storepath.Path{mkPath("hub-1.0"), mkPath("hub-1.0-doc")}
	for i := range n {
		paths = append(paths, mkPath(fmt.Sprintf("hub-1.0-o%d", i)))
	}
	var all strings.Builder
	for _, p := range paths {
		all.WriteString(p.String() + "\n")
	}
	for i, p := range paths {
		body := paths[0].String()
		if i == 0 {
			body = all.String()
		}
		if err := os.WriteFile(p.String(), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"hub-*"}, []string{"*-doc"})}}
	// The scan's deadline lifted: on a loaded machine it could end the
	// scan before the walk this test bounds.
	cl, errs := siblingClosuresWithin(cfg, paths, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(time.Hour)})
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if cl[paths[0].String()] == nil {
		t.Fatal("no closure for the hub: the scan did not reach it")
	}
	total := 0
	for _, c := range cl {
		total += len(c.Paths)
	}
	t.Logf("%d closures of %d outputs, %d paths in all", len(cl), len(paths), total)
	if total > scanMaxRefs {
		t.Errorf("%d paths in the closures of %d outputs, over the bound of %d", total, len(paths), scanMaxRefs)
	}
	if c := cl[paths[2].String()]; c != nil && !slices.Contains(c.Paths, paths[1].String()) {
		t.Errorf("closure of %s = %d paths, lacks %s", paths[2].Name, len(c.Paths), paths[1].Name)
	}
}

// A build of 50,000 outputs: each selected one is scanned, and each
// scan cost time and memory in the number of outputs before it looked
// at its budget, so that the deadline held for none of them (31 s and
// 2.7 GiB allocated here). Once the budget is spent, a scan costs
// nothing: the test spends it before the first scan and bounds the
// memory the walk allocates, which does not depend on the machine's
// speed as a bound on the time would.
func TestSiblingScanManyOutputs(t *testing.T) {
	t.Setenv("NIX_STORE_DIR", filepath.Join(t.TempDir(), "store"))
	const n = 50_000
	paths := []storepath.Path{mkPath("many-1.0-doc")}
	for i := range n {
		paths = append(paths, mkPath(fmt.Sprintf("many-1.0-o%d", i)))
	}
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"many-*"}, []string{"*-doc"})}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cl, _ := siblingClosuresWithin(cfg, paths, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(-time.Second)})
	runtime.ReadMemStats(&after)
	if len(cl) != 0 {
		t.Errorf("%d closures claimed past the scan's deadline", len(cl))
	}
	// The walk's own maps and memo take a few MiB for 50,000 outputs; a
	// scan that allocates its answer before looking at the budget takes
	// 50,000 x 50,000 bytes.
	const bound = 128 << 20
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("the walk of %d outputs past the deadline allocated %d KiB", len(paths), got>>10)
	if got > bound {
		t.Errorf("the walk of %d outputs past the deadline allocated %d MiB (bound %d MiB)", len(paths), got>>20, bound>>20)
	}
}

// What goes up inside a closure (closure_deny = "push") is said only
// while the path whose closure holds it is queued: left out as already
// pushed, the note went on saying the denied path would be uploaded.
// Another path that uploads it is named then, and with none the path
// is skipped.
func TestSummaryInsideLeftOutAsPushed(t *testing.T) {
	hello, bin, doc := mkPath("hello-2.12.1"), mkPath("hello-2.12.1-bin"), mkPath("hello-2.12.1-doc")
	closures := map[string]*policy.Closure{
		hello.String(): {Paths: []string{hello.String(), doc.String()}},
		bin.String():   {Paths: []string{bin.String(), doc.String()}},
	}
	closure := func(s string) *policy.Closure { return closures[s] }
	cfg := &config.Config{Targets: []*config.Target{mkTarget(t, "main", []string{"*"}, []string{"*-doc"})}}
	pushed := func(ps ...storepath.Path) func(string, storepath.Path) bool {
		return func(_ string, p storepath.Path) bool { return slices.Contains(ps, p) }
	}
	for _, tc := range []struct {
		paths  []storepath.Path
		pushed []storepath.Path
		want   string
	}{
		// The dependency among the paths (the hook's outputs).
		{[]storepath.Path{hello, doc}, []storepath.Path{hello},
			`queued 0 of 2 paths (already pushed: 1 to main; skipped hello-2.12.1-doc: deny "*-doc")`},
		// Not among them (push APP).
		{[]storepath.Path{hello}, []storepath.Path{hello},
			`queued 0 of 1 paths (already pushed: 1 to main)`},
		// Another path still uploads it.
		{[]storepath.Path{hello, bin, doc}, []storepath.Path{hello},
			`queued 1 of 3 paths for main (already pushed: 1 to main; not queued hello-2.12.1-doc: deny "*-doc", but uploaded -> main inside the closure of hello-2.12.1-bin (closure_deny = "push"))`},
		{[]storepath.Path{hello, bin}, []storepath.Path{hello},
			`queued 1 of 2 paths for main (already pushed: 1 to main; not queued hello-2.12.1-doc: deny "*-doc", but uploaded -> main inside the closure of hello-2.12.1-bin (closure_deny = "push"))`},
	} {
		sel := SelectClosures(cfg, tc.paths, nil, closure)
		sel.LeaveOut(pushed(tc.pushed...))
		if got := sel.Summary(); got != tc.want {
			t.Errorf("%v, %v pushed:\n got %s\nwant %s", tc.paths, tc.pushed, got, tc.want)
		}
	}
}
