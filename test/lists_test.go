package test

// Package lists (issue 19): nix/lib.nix's cachixPackages built with real
// Nix and the hook set, the worker's check against the list's closure,
// push, push --closure, explain and push --dry-run, into real binary
// caches written by nix copy. Helpers are prefixed with pk.

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// pkConf takes only what lists name: no allow rule, a deny rule, and
// package_lists on. @DIR@/cache is the binary cache.
const pkConf = `
store = "file://@DIR@/cache"
name = "mycache"
deny = ["secret-*"]
package_lists = true
`

// pkExpr is a Nix file of an attribute set: the packages (each with a
// dependency, and openc910 with a dev output), and the bindings given.
func pkExpr(salt string, bindings string) string {
	return fmt.Sprintf(`let
  cfh = import %s/nix/lib.nix { };
  libdep = %s;
  openc910 = %s;
  myapp = %s;
  unlisted = %s;
  secret = %s;
  # A list made by hand, as an attacker could: NAME.list written by a
  # builder of theirs, and the directory pointing to it.
  handmade = name: script: let
    file = derivation { name = "${name}.list"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; inherit openc910; };
  in derivation { inherit name; system = "builtin"; builder = "builtin:buildenv"; derivations = [ ]; manifest = file; };
in rec {
  inherit libdep openc910 myapp unlisted secret;
  %s
}`, repoRoot,
		nixtest.Drv(salt, "libdep-1.0", nil),
		nixtest.Drv(salt, "openc910-2.3", []string{"out", "dev"}, "libdep"),
		nixtest.Drv(salt, "myapp-1.0", nil),
		nixtest.Drv(salt, "unlisted-1.0", nil),
		nixtest.Drv(salt, "secret-key-1", nil),
		bindings)
}

// pkPaths evaluates the store paths of the attributes of file.
func pkPaths(t *testing.T, file string, attrs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range attrs {
		b, err := exec.Command("nix-instantiate", "--eval", "--strict", "-E", fmt.Sprintf("(import %s).%s.outPath", file, a)).Output()
		if err != nil {
			t.Fatalf("evaluating %s: %v%s", a, err, stderrOf(err))
		}
		out[a] = strings.Trim(strings.TrimSpace(string(b)), `"`)
	}
	return out
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return "\n" + string(ee.Stderr)
	}
	return ""
}

// pkClosure is the runtime closure of paths.
func pkClosure(t *testing.T, paths ...string) map[string]bool {
	t.Helper()
	out, err := exec.Command("nix-store", append([]string{"-qR"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("nix-store -qR: %v%s", err, stderrOf(err))
	}
	set := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		set[p] = true
	}
	return set
}

// pkBuild writes the expression and builds its attribute attr with the
// hook set; it returns the file and the build log.
func pkBuild(t *testing.T, e *Env, expr, attr string) (string, string) {
	t.Helper()
	file := nixtest.WriteExpr(t, e.Dir, expr)
	cmd := exec.Command("nix-build", file, "-A", attr, "--no-out-link", "--option", "substituters", "", "--option", "post-build-hook", hookBin)
	cmd.Env = e.environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nix-build -A %s: %v\n%s", attr, err, out)
	}
	return file, string(out)
}

// pkHookLine is the hook's line about the list named name.
func pkHookLine(t *testing.T, log, name string) string {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "cachix-filter-hook: ") && strings.Contains(l, " listed in "+name) {
			return l[strings.Index(l, "cachix-filter-hook: "):]
		}
	}
	t.Fatalf("no hook line about %s in:\n%s", name, log)
	return ""
}

func pkSame(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// The acceptance: a user with only deny rules and package_lists = true
// builds a list and gets exactly the listed packages, with their
// closures, into a real file:// cache; not the list, not what it does
// not name (another output of a listed package, an unlisted package).
// Rebuilt with one more package, only that one is queued.
func TestListAcceptance(t *testing.T) {
	e := NewEnv(t, pkConf)
	salt := nixtest.Salt()
	expr := pkExpr(salt, `
  list = cfh.cachixPackages { packages = [ openc910 myapp ]; name = "dev"; };
  list2 = cfh.cachixPackages { packages = [ openc910 myapp unlisted ]; name = "dev"; };`)
	file, log := pkBuild(t, e, expr, "list")
	p := pkPaths(t, file, "list", "openc910", "openc910.dev", "myapp", "unlisted", "libdep")
	if got, want := pkHookLine(t, log, "cachix-packages-dev"), "cachix-filter-hook: queued 2 of 2 listed in cachix-packages-dev: openc910-2.3, myapp-1.0 -> mycache"; got != want {
		t.Errorf("hook line:\n got %s\nwant %s", got, want)
	}
	e.Wait(eventually.Left(t))
	cache := CachePaths(t, filepath.Join(e.Dir, "cache"))
	pkSame(t, "cache", cache, pkClosure(t, p["openc910"], p["myapp"]))
	if !cache[p["libdep"]] || cache[p["openc910.dev"]] || cache[p["list"]] {
		t.Errorf("cache holds %v", cache)
	}
	// log names the list as the reason.
	out, _ := ruRun(t, e, 0, "log")
	if !strings.Contains(out, "pushed  mycache "+p["myapp"]) || !strings.Contains(out, "(listed in "+p["list"]+")") {
		t.Errorf("log:\n%s", out)
	}

	// The list changed: Nix builds it again, and only the new package is
	// queued (the record has the others).
	_, log = pkBuild(t, e, expr, "list2")
	if got, want := pkHookLine(t, log, "cachix-packages-dev"), "cachix-filter-hook: queued 1 of 3 listed in cachix-packages-dev: unlisted-1.0 -> mycache (already pushed: 2 to mycache)"; got != want {
		t.Errorf("hook line after the change:\n got %s\nwant %s", got, want)
	}
	e.Wait(eventually.Left(t))
	if c := CachePaths(t, filepath.Join(e.Dir, "cache")); !c[p["unlisted"]] || len(c) != len(cache)+1 {
		t.Errorf("after the change the cache holds %v", c)
	}
	out, _ = ruRun(t, e, 0, "log", "--path", "myapp-*")
	if n := strings.Count(out, "pushed"); n != 1 {
		t.Errorf("myapp pushed %d times:\n%s", n, out)
	}
}

// A list as an input of another derivation (a shell's, as mkShell's
// packages make it): building the shell builds the list, whose build
// queues what it names; the shell itself is no list.
func TestListAsInput(t *testing.T) {
	e := NewEnv(t, pkConf)
	salt := nixtest.Salt()
	expr := pkExpr(salt, `
  list = cfh.cachixPackages { packages = [ myapp ]; };
  shell = derivation { name = "dev-shell"; system = builtins.currentSystem; builder = "/bin/sh"; buildInputs = [ list ]; args = [ "-c" "echo $buildInputs > $out" ]; };`)
	file, log := pkBuild(t, e, expr, "shell")
	p := pkPaths(t, file, "myapp", "shell")
	if got, want := pkHookLine(t, log, "cachix-packages"), "cachix-filter-hook: queued 1 of 1 listed in cachix-packages: myapp-1.0 -> mycache"; got != want {
		t.Errorf("hook line:\n got %s\nwant %s", got, want)
	}
	e.Wait(eventually.Left(t))
	pkSame(t, "cache", CachePaths(t, filepath.Join(e.Dir, "cache")), map[string]bool{p["myapp"]: true})
}

// pkg stands for its default output, pkg.dev for that one; deny beats a
// listed path.
func TestListOutputsAndDeny(t *testing.T) {
	e := NewEnv(t, pkConf)
	salt := nixtest.Salt()
	expr := pkExpr(salt, `
  list = cfh.cachixPackages { packages = [ openc910.dev secret ]; name = "x"; };`)
	file, log := pkBuild(t, e, expr, "list")
	p := pkPaths(t, file, "openc910", "openc910.dev", "secret")
	if got, want := pkHookLine(t, log, "cachix-packages-x"), `cachix-filter-hook: queued 1 of 2 listed in cachix-packages-x: openc910-2.3-dev -> mycache (skipped secret-key-1: deny "secret-*")`; got != want {
		t.Errorf("hook line:\n got %s\nwant %s", got, want)
	}
	e.Wait(eventually.Left(t))
	pkSame(t, "cache", CachePaths(t, filepath.Join(e.Dir, "cache")), pkClosure(t, p["openc910.dev"]))
}

// package_lists = false (the default): nothing queued, and the line says
// what it ignored and the one line that takes lists.
func TestListNotTaken(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["hello-*"]
`)
	salt := nixtest.Salt()
	_, log := pkBuild(t, e, pkExpr(salt, `list = cfh.cachixPackages { packages = [ openc910 myapp ]; };`), "list")
	want := "cachix-filter-hook: queued 0 of 2 listed in cachix-packages (ignored openc910-2.3, myapp-1.0: no target takes package lists; add package_lists = true at the top of " + e.Conf + " to push what lists name)"
	if got := pkHookLine(t, log, "cachix-packages"); got != want {
		t.Errorf("hook line:\n got %s\nwant %s", got, want)
	}
	if n := e.QueueEntries(); n != 0 {
		t.Errorf("%d entries queued", n)
	}
}

// Two targets, one taking lists: only it gets them, though the list is
// for every target.
func TestListTwoTargets(t *testing.T) {
	e := NewEnv(t, `
[[target]]
store = "file://@DIR@/on"
name = "on"
package_lists = true
[[target]]
store = "file://@DIR@/off"
name = "off"
allow = ["unlisted-*"]
`)
	salt := nixtest.Salt()
	file, log := pkBuild(t, e, pkExpr(salt, `list = cfh.cachixPackages { packages = [ myapp ]; };`), "list")
	p := pkPaths(t, file, "myapp")
	if got, want := pkHookLine(t, log, "cachix-packages"), "cachix-filter-hook: queued 1 of 1 listed in cachix-packages: myapp-1.0 -> on"; got != want {
		t.Errorf("hook line:\n got %s\nwant %s", got, want)
	}
	e.Wait(eventually.Left(t))
	pkSame(t, "on", CachePaths(t, filepath.Join(e.Dir, "on")), map[string]bool{p["myapp"]: true})
	pkSame(t, "off", CachePaths(t, filepath.Join(e.Dir, "off")), map[string]bool{})
}

// Hostile lists, made by hand as any local user can: one naming an
// existing store path as text only (outside its closure) with a good
// one, one oversized, one malformed. Only the good path reaches the
// cache; explain, push --dry-run and push say why the text-only one is
// not pushed, and push does not queue it.
func TestListHostile(t *testing.T) {
	e := NewEnv(t, pkConf+"\n[[target]]\nstore = \"file://@DIR@/other\"\nname = \"other\"\npackage_lists = true\n")
	salt := nixtest.Salt()
	// A path already in the store that nothing of the attacker's refers to.
	_, victims := nixtest.Build(t, nixtest.Drv(salt, "victim-1.0", nil))
	victim := victims[0]
	expr := pkExpr(salt, fmt.Sprintf(`
  textonly = handmade "cachix-packages-t" "printf '%%s\n' '%s' '%s' $openc910 > $out";
  oversized = handmade "cachix-packages-big" "echo '%s' > $out; i=0; while [ $i -lt 20000 ]; do echo $openc910; i=$((i+1)); done >> $out";
  malformed = handmade "cachix-packages-bad" "printf 'junk\n%%s\n' $openc910 > $out";`,
		"cachix-filter-hook package list 1", victim, "cachix-filter-hook package list 1"))
	file, log := pkBuild(t, e, expr, "oversized")
	p := pkPaths(t, file, "openc910", "textonly")
	if !strings.Contains(log, "is larger than 1048576 bytes") || !strings.Contains(log, "nothing of it is queued") {
		t.Errorf("oversized list, build log:\n%s", log)
	}
	_, log = pkBuild(t, e, expr, "malformed")
	if !strings.Contains(log, "is malformed") || !strings.Contains(log, `line 1 is "junk"`) {
		t.Errorf("malformed list, build log:\n%s", log)
	}
	if n := e.QueueEntries(); n != 0 {
		t.Fatalf("%d entries queued by bad lists", n)
	}
	// Before building it: explain of the text-only list, once built
	// without the hook, says what the worker will do.
	if _, out := nixtest.Build(t, fmt.Sprintf("(import %s).textonly", file)); len(out) != 1 {
		t.Fatalf("outputs %v", out)
	}
	explain, _ := ruRun(t, e, 0, "explain", p["textonly"])
	dry, _ := ruRun(t, e, 0, "push", "--dry-run", p["textonly"])
	wantExplain := "skip " + victim + " (named in " + p["textonly"] + " only as text: not in its closure, so the list does not depend on it)\n" +
		"push " + p["openc910"] + " -> mycache, other (listed in " + p["textonly"] + ")\n"
	if explain != wantExplain || dry != wantExplain {
		t.Errorf("explain:\n%s\npush --dry-run:\n%s\nwant:\n%s", explain, dry, wantExplain)
	}
	// push of the list asks Nix for its closure, as --dry-run does: it
	// queues the good path alone and says why the victim is not queued,
	// so the worker has nothing of it to drop. (The worker's own check,
	// for a list the hook queues, is TestMatrixPackageList's.)
	out, _ := ruRun(t, e, 0, "push", p["textonly"])
	if !strings.Contains(out, "queued 1 of 2 listed in cachix-packages-t") || !strings.Contains(out, "only as text") {
		t.Errorf("push of the text-only list said:\n%s", out)
	}
	e.Wait(eventually.Left(t))
	for _, cache := range []string{"cache", "other"} {
		pkSame(t, cache, CachePaths(t, filepath.Join(e.Dir, cache)), pkClosure(t, p["openc910"]))
	}
	if d := ruDropped(t, e, victim); len(d) != 0 {
		t.Errorf("the victim, never queued, was dropped: %v", d)
	}
}

// push --closure of a generation that holds a list: the list's packages,
// and nothing else the deny-only rules do not select.
func TestListPushClosure(t *testing.T) {
	e := NewEnv(t, pkConf)
	salt := nixtest.Salt()
	expr := pkExpr(salt, `
  list = cfh.cachixPackages { packages = [ myapp openc910 ]; name = "system"; };
  generation = derivation { name = "generation-1"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${list} ${unlisted} > $out" ]; };`)
	file := nixtest.WriteExpr(t, e.Dir, expr)
	nixtest.Build(t, fmt.Sprintf("(import %s).generation", file))
	p := pkPaths(t, file, "generation", "list", "myapp", "openc910", "unlisted")
	dry, _ := ruRun(t, e, 0, "push", "--closure", "--dry-run", p["generation"])
	if l := ruLine(dry, p["myapp"]); l != "push "+p["myapp"]+" -> mycache (listed in "+p["list"]+")" {
		t.Errorf("dry run: %s\n%s", l, dry)
	}
	if l := ruLine(dry, p["unlisted"]); !strings.HasPrefix(l, "skip ") || strings.Contains(dry, " "+p["list"]+" (") {
		t.Errorf("dry run:\n%s", dry)
	}
	out, _ := ruRun(t, e, 0, "push", "--closure", p["generation"])
	if !strings.Contains(out, "queued 2 of ") || !strings.Contains(out, "2 listed in cachix-packages-system") {
		t.Errorf("push --closure: %s", out)
	}
	e.Wait(eventually.Left(t))
	pkSame(t, "cache", CachePaths(t, filepath.Join(e.Dir, "cache")), pkClosure(t, p["myapp"], p["openc910"]))
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if out, _, _ := e.Run(ctx, "log", "--json"); !strings.Contains(out, `"listed_in":"`+p["list"]+`"`) {
		t.Errorf("history:\n%s", out)
	}
}

// watch-exec, for users who cannot set the hook, treats a list built
// while the command ran as the hook does.
func TestListWatchExec(t *testing.T) {
	e := NewEnv(t, pkConf)
	salt := nixtest.Salt()
	file := nixtest.WriteExpr(t, e.Dir, pkExpr(salt, `list = cfh.cachixPackages { packages = [ myapp ]; name = "wx-`+salt+`"; };`))
	p := pkPaths(t, file, "myapp")
	out, errOut := ruRun(t, e, 0, "watch-exec", "--wait", "--timeout", eventually.Left(t).String(), "--", "nix-build", file, "-A", "list", "--no-out-link", "--option", "substituters", "", "--option", "post-build-hook", "")
	// Other tests' lists built meanwhile may be named beside it
	// ("listed in cachix-packages-system, cachix-packages-wx-…").
	if !regexp.MustCompile(`listed in [^;()]*\bcachix-packages-wx-` + salt + `\b`).MatchString(errOut) {
		t.Errorf("watch-exec's line does not name the list:\n%s%s", out, errOut)
	}
	// Other tests build on the same store meanwhile: what watch-exec saw
	// of theirs may go up too, never less than the list.
	if !CachePaths(t, filepath.Join(e.Dir, "cache"))[p["myapp"]] {
		t.Errorf("myapp did not go up:\n%s%s\nworker log:\n%s", out, errOut, e.Log())
	}
}

// watch-exec, as push, asks Nix for the closure of a list built while
// the command ran: a path the list names only as text is not queued
// (before, it was queued and then dropped by the worker, while
// watch-exec's line counted it as queued).
func TestListWatchExecTextOnly(t *testing.T) {
	e := NewEnv(t, pkConf)
	salt := nixtest.Salt()
	_, victims := nixtest.Build(t, nixtest.Drv(salt, "wx-victim-1.0", nil))
	victim := victims[0]
	file := nixtest.WriteExpr(t, e.Dir, pkExpr(salt, fmt.Sprintf(`
  textonly = handmade "cachix-packages-wxt" "printf '%%s\n' '%s' '%s' $openc910 > $out";`,
		"cachix-filter-hook package list 1", victim)))
	p := pkPaths(t, file, "openc910")
	out, errOut := ruRun(t, e, 0, "watch-exec", "--wait", "--timeout", eventually.Left(t).String(), "--", "nix-build", file, "-A", "textonly", "--no-out-link", "--option", "substituters", "", "--option", "post-build-hook", "")
	// Five new paths; of the list's two, openc910 alone is queued (the
	// victim is not new, and is named in the list alone).
	if !strings.Contains(errOut, "queued 1 of 5 paths for mycache (2 listed in cachix-packages-wxt;") {
		t.Errorf("watch-exec's line:\n%s%s", out, errOut)
	}
	if !CachePaths(t, filepath.Join(e.Dir, "cache"))[p["openc910"]] {
		t.Errorf("openc910 did not go up:\n%s%s\nworker log:\n%s", out, errOut, e.Log())
	}
	if CachePaths(t, filepath.Join(e.Dir, "cache"))[victim] {
		t.Errorf("the victim, named only as text, was pushed")
	}
	if d := ruDropped(t, e, victim); len(d) != 0 {
		t.Errorf("the victim was queued (and dropped by the worker): %v", d)
	}
}

// What cachixPackages takes and refuses, at evaluation: a package, its
// other outputs (pkg.dev, pkg.all), a store path string with its
// context; not a store path as text (the list would not depend on it),
// not a file inside a store path, not a number, not a bad name or
// targets; each with a message that says why.
func TestListEvaluation(t *testing.T) {
	nixtest.Require(t)
	salt := nixtest.Salt()
	lib := "(import " + repoRoot + "/nix/lib.nix { })"
	pkg := nixtest.Drv(salt, "multi-1.0", []string{"out", "dev"})
	eval := func(args string) (string, error) {
		out, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E",
			fmt.Sprintf("let pkg = %s; l = %s.cachixPackages %s; in builtins.seq l.drvPath l.listedPaths", pkg, lib, args)).CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct{ args, want string }{
		{`{ packages = [ pkg ]; }`, `-multi-1.0"]`},
		{`{ packages = [ pkg.dev ]; }`, `-multi-1.0-dev"]`},
		{`{ packages = [ pkg.all ]; }`, `-multi-1.0-dev"]`},
		{`{ packages = [ "${pkg}" pkg ]; targets = [ "mycache" ]; name = "x"; }`, `-multi-1.0"]`},
	} {
		if out, err := eval(tc.args); err != nil || !strings.HasSuffix(strings.TrimSpace(out), tc.want) {
			t.Errorf("%s: %v\n%s", tc.args, err, out)
		}
	}
	for _, tc := range []struct{ args, want string }{
		{`{ packages = [ "/nix/store/` + strings.Repeat("a", 32) + `-hello-2.12.1" ]; }`, "is a string with no context: a store path written as text gives the list no dependency on it"},
		{`{ packages = [ "${pkg}/bin/x" ]; }`, "is not a store path (a file inside one?)"},
		{`{ packages = [ 3 ]; }`, "is not a package"},
		{`{ packages = [ pkg ]; name = "a b"; }`, `name "a b" must be`},
		{`{ packages = [ pkg ]; targets = [ ]; }`, "targets must be null (every target) or a non-empty list"},
	} {
		if out, err := eval(tc.args); err == nil || !strings.Contains(out, "cachixPackages: ") || !strings.Contains(out, tc.want) {
			t.Errorf("%s: want the error %q, got %v\n%s", tc.args, tc.want, err, out)
		}
	}
}
