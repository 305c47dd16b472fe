package nixmodules

// The modules' `packages` option (issue 19): evaluated with both
// modules, and the activation snippets the modules render executed with
// real store paths on this machine's Nix: the NixOS activation script
// with $systemConfig and NIXOS_ACTION (switch, dry-activate, boot), the
// home-manager entry with $newGenPath and home-manager's own `run` (a
// live run and DRY_RUN), and both with a binary that fails. What the
// runs queued is read from the queue and the binary cache.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// pkgsExpr is a Nix list of real derivations (built with /bin/sh alone),
// made new by salt: a, a multi-output b (b.dev listed), c unlisted.
func pkgsExpr(salt string) string {
	d := func(name, outs, script string) string {
		return fmt.Sprintf(`(derivation { name = %q; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ %s ]; args = [ "-c" %q ]; salt = %q; })`, name, outs, script, salt)
	}
	return fmt.Sprintf(`let a = %s; b = %s; in [ a b.dev ]`,
		d("openc910-2.3", `"out"`, "echo $salt > $out"),
		d("myapp-1.0", `"out" "dev"`, "echo $salt > $out; echo $salt dev > $dev"))
}

// listResult is what the evaluation says of a module's package list.
type listResult struct {
	Settings          map[string]any `json:"settings"`
	Activation        *string        `json:"activation"`
	ExtraDependencies []string       `json:"extraDependencies"`
	Listed            [][]string     `json:"listed"`
	Names             []string       `json:"names"`
}

// The option: a non-empty list puts one package list into the
// generation's closure and makes package_lists default to true; empty,
// neither; a user's package_lists = false wins.
func TestPackagesOption(t *testing.T) {
	c := needCheckouts(t)
	for _, m := range []struct{ attr, path, name, list string }{
		{"nixos", "services.cachix-filter-hook", "nixos", "cachix-packages-system"},
		{"hm", "programs.cachix-filter-hook", "home-manager", "cachix-packages-home"},
	} {
		t.Run(m.name, func(t *testing.T) {
			eval := func(extra string) listResult {
				t.Helper()
				var r listResult
				attr := fmt.Sprintf(`%s // { listed = map (l: l.listedPaths) (e.%s.extraDependencies); names = map (l: l.name) (e.%s.extraDependencies); }`, m.attr, m.attr, m.attr)
				err := c.evalExpr(t, attr, fmt.Sprintf(`{ pkgs, ... }: { %s = { enable = true; settings.cache = "mycache"; %s }; }`, m.path, extra), &r)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			r := eval(`packages = [ pkgs.cachix pkgs.nix ];`)
			if len(r.Names) != 1 || r.Names[0] != m.list || len(r.Listed) != 1 || len(r.Listed[0]) != 2 ||
				!strings.HasSuffix(r.Listed[0][0], "-cachix-1.7.4") || !strings.HasSuffix(r.Listed[0][1], "-nix-2.28.3") {
				t.Errorf("package lists %v %v", r.Names, r.Listed)
			}
			if r.Settings["package_lists"] != true {
				t.Errorf("package_lists = %v, want true", r.Settings["package_lists"])
			}
			// The option's own words: `pkg.all` for all of a package's
			// outputs, as cachixPackages takes it, inside the list.
			r = eval(`packages = [ pkgs.cachix.all pkgs.nix ];`)
			if len(r.Names) != 1 || len(r.Listed) != 1 || len(r.Listed[0]) != 2 ||
				!strings.HasSuffix(r.Listed[0][0], "-cachix-1.7.4") || !strings.HasSuffix(r.Listed[0][1], "-nix-2.28.3") {
				t.Errorf("packages = [ pkgs.cachix.all pkgs.nix ]: package lists %v %v", r.Names, r.Listed)
			}
			r = eval(`packages = [ [ ] ];`)
			if len(r.Names) != 0 || r.Settings["package_lists"] != nil {
				t.Errorf("packages = [ [ ] ]: lists %v, package_lists %v", r.Names, r.Settings["package_lists"])
			}
			r = eval(``)
			if len(r.Names) != 0 || r.Settings["package_lists"] != nil {
				t.Errorf("with no packages: lists %v, package_lists %v", r.Names, r.Settings["package_lists"])
			}
			r = eval(`packages = [ pkgs.cachix ]; settings.package_lists = false;`)
			if r.Settings["package_lists"] != false || len(r.Names) != 1 {
				t.Errorf("package_lists = false set by the user: %v, lists %v", r.Settings["package_lists"], r.Names)
			}
		})
	}
}

// evalExpr evaluates an expression of e, eval.nix's result for config.
func (c checkouts) evalExpr(t *testing.T, expr, config string, out any, extraArgs ...string) error {
	t.Helper()
	args := fmt.Sprintf("nixpkgs = %s; hm = %s; config = %s;", nixPath(c.nixpkgs), nixPath(c.hm), config)
	for _, a := range extraArgs {
		args += " " + a
	}
	full := fmt.Sprintf("let e = import %s { %s }; in e.%s", nixPath(filepath.Join(repoRoot(t), "test", "nixmodules", "eval.nix")), args, expr)
	stdout, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", "-E", full)
	if err != nil {
		return err
	}
	d := json.NewDecoder(strings.NewReader(stdout))
	d.UseNumber()
	return d.Decode(out)
}

// actWorld is what an executed activation needs: a package holding the
// binary (or one that fails), a real coreutils, a cache and a queue.
type actWorld struct {
	dir, cache, queue string
	pkg, failing      string // Nix expressions of the packages
	coreutils         string
}

func newActWorld(t *testing.T, bin string) *actWorld {
	t.Helper()
	w := &actWorld{dir: t.TempDir()}
	os.Chmod(w.dir, 0o755)
	w.cache, w.queue = filepath.Join(w.dir, "cache"), filepath.Join(w.dir, "queue")
	mk := func(name, file string, content []byte, mode os.FileMode) string {
		d := filepath.Join(w.dir, name, "bin")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if content == nil {
			if err := os.Symlink(file, filepath.Join(d, filepath.Base(file))); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(filepath.Join(d, file), content, mode); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(w.dir, name)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	pkg := func(dir, name string) string {
		return fmt.Sprintf(`{ type = "derivation"; name = %q; outPath = builtins.path { path = %s; name = %q; }; meta.mainProgram = "cachix-filter-hook"; }`, name, nixPath(dir), name)
	}
	w.pkg = pkg(mk("pkg", "cachix-filter-hook", data, 0o755), "cachix-filter-hook-test")
	w.failing = pkg(mk("failing", "cachix-filter-hook", []byte("#!/bin/sh\necho 'cachix-filter-hook: broken' >&2\nexit 3\n"), 0o755), "cachix-filter-hook-broken")
	timeout, err := exec.LookPath("timeout")
	if err != nil {
		t.Fatal(err)
	}
	w.coreutils = fmt.Sprintf(`{ coreutils = { type = "derivation"; name = "coreutils-host"; outPath = builtins.path { path = %s; name = "coreutils-host"; }; }; }`, nixPath(mk("coreutils", timeout, nil, 0)))
	return w
}

// settings is the module's settings for the world: a file:// store, the
// world's queue, the host's Nix.
func (w *actWorld) settings() string {
	nixBin, _ := exec.LookPath("nix-store")
	return fmt.Sprintf(`{ store = "file://%s"; name = "mycache"; queue.dir = %q; queue.linger = "1s"; nix.bin_dir = %q; }`, w.cache, w.queue, filepath.Dir(nixBin))
}

// hookConf renders the module's settings as hook.conf into file.
func hookConf(t *testing.T, settings map[string]any, file string) {
	t.Helper()
	b, err := toml.Marshal(numbers(settings))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// genResult is an evaluated module with its generation built.
type genResult struct {
	Settings   map[string]any `json:"settings"`
	Activation string         `json:"activation"`
	Generation string         `json:"generation"`
	Drv        string         `json:"drv"`
	Listed     []string       `json:"listed"`
}

// generation evaluates the module (m: "nixos" or "hm") with the world's
// package and coreutils, and builds, with no post-build-hook, a
// generation whose closure holds the module's extraDependencies as the
// real ones do.
func (w *actWorld) generation(t *testing.T, c checkouts, m, config string) genResult {
	t.Helper()
	var r genResult
	expr := fmt.Sprintf(`%s // rec {
		generation = derivation { name = "generation-test"; system = builtins.currentSystem; builder = "/bin/sh"; deps = e.%s.extraDependencies; args = [ "-c" "echo $deps > $out" ]; };
		drv = generation.drvPath;
		listed = builtins.concatMap (l: l.listedPaths) e.%s.extraDependencies;
	}`, m, m, m)
	if err := c.evalExpr(t, expr, config, &r, "pkgsOverride = "+w.coreutils+";"); err != nil {
		t.Fatal(err)
	}
	// Build what the evaluation named (instantiated by --read-write-mode).
	if _, err := run(t, nil, "nix-store", "--realise", r.Drv, "--option", "substituters", "", "--option", "post-build-hook", ""); err != nil {
		t.Fatal(err)
	}
	return r
}

// queued lists the queued (target, path, listed) of the world's queue.
func (w *actWorld) queued(t *testing.T) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob(filepath.Join(w.queue, "entries", "*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // pushed meanwhile
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e struct{ Target, Path, Listed string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && strings.HasPrefix(filepath.Base(f), filepath.Base(e.Path)[:32]) {
				out = append(out, e.Target+" "+e.Path+" "+e.Listed)
			}
		}
		fh.Close()
	}
	slices.Sort(out)
	return out
}

// cachePaths lists what the world's binary cache holds.
func (w *actWorld) cachePaths(t *testing.T) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob(filepath.Join(w.cache, "*.narinfo"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(l, "StorePath: "); ok {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// drain waits for the world's queue to be pushed.
func (w *actWorld) drain(t *testing.T, bin, conf string) {
	t.Helper()
	out, err := run(t, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir}, bin, "--config", conf, "wait", "--timeout", "60s")
	if err != nil {
		t.Fatalf("wait: %v\n%s", err, out)
	}
}

// runScript runs a shell script with bash, the environment given and
// nothing else; unshare, when set, runs it in a mount namespace of its
// own where /etc/cachix-filter-hook/hook.conf is conf (overlaid on /etc,
// which stays as it is for everyone else).
func runScript(t *testing.T, script string, env []string, etcConf string) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "activate.sh")
	if err := os.WriteFile(f, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env = append(env, "PATH="+os.Getenv("PATH"))
	if etcConf == "" {
		return run(t, env, "bash", f)
	}
	over := t.TempDir()
	os.Chmod(over, 0o755)
	upper, work := filepath.Join(over, "upper"), filepath.Join(over, "work")
	hookConfFile := filepath.Join(upper, "cachix-filter-hook", "hook.conf")
	data, err := os.ReadFile(etcConf)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(hookConfFile), 0o755)
	os.Mkdir(work, 0o755)
	if err := os.WriteFile(hookConfFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc && exec bash %s", upper, work, f)
	return run(t, env, "unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper)
}

// NixOS: the activation script, run as NixOS runs it, queues the
// system's listed packages on switch and test, nothing on dry-activate
// or at boot, never fails the switch (a broken binary), and queues them
// again when the list did not change but the cache lost them.
func TestNixOSActivationRuns(t *testing.T) {
	c := needCheckouts(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: the script reads /etc/cachix-filter-hook/hook.conf, overlaid in a mount namespace of its own")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal(err)
	}
	bin := hookBin(t)
	w := newActWorld(t, bin)
	salt := fmt.Sprint(time.Now().UnixNano())
	config := func(pkg string) string {
		return fmt.Sprintf(`{ services.cachix-filter-hook = { enable = true; package = %s; pushOnActivation = true; packages = %s; settings = %s; }; }`, pkg, pkgsExpr(salt), w.settings())
	}
	r := w.generation(t, c, "nixos", config(w.pkg))
	conf := filepath.Join(w.dir, "etc-hook.conf")
	hookConf(t, r.Settings, conf)
	env := func(action string) []string {
		e := []string{"systemConfig=" + r.Generation, "HOME=/root"}
		if action != "" {
			e = append(e, "NIXOS_ACTION="+action)
		}
		return e
	}
	for _, action := range []string{"dry-activate", ""} {
		if out, err := runScript(t, r.Activation, env(action), conf); err != nil {
			t.Fatalf("NIXOS_ACTION=%q: %v\n%s", action, err, out)
		}
		if q := w.queued(t); len(q) != 0 {
			t.Errorf("NIXOS_ACTION=%q queued %v", action, q)
		}
	}
	if out, err := runScript(t, r.Activation, env("switch"), conf); err != nil {
		t.Fatalf("switch: %v\n%s", err, out)
	}
	w.drain(t, bin, conf)
	if got := w.cachePaths(t); !slices.Equal(got, sortedCopy(r.Listed)) {
		t.Errorf("after switch the cache holds\n%v\nwant the listed\n%v\nworker log:\n%s", got, r.Listed, readLog(w.queue))
	}
	// The cache lost them; the list did not change (nothing is built):
	// forget --pushed, and the next activation queues them again.
	os.RemoveAll(w.cache)
	if out, err := run(t, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir}, bin, "--config", conf, "forget", "--pushed"); err != nil {
		t.Fatalf("forget --pushed: %v\n%s", err, out)
	}
	if out, err := runScript(t, r.Activation, env("test"), conf); err != nil {
		t.Fatalf("test: %v\n%s", err, out)
	}
	w.drain(t, bin, conf)
	if got := w.cachePaths(t); !slices.Equal(got, sortedCopy(r.Listed)) {
		t.Errorf("after the cache lost them the cache holds %v, want %v", got, r.Listed)
	}
	// A binary that fails: the switch goes on, nothing is queued.
	os.RemoveAll(w.queue)
	rf := w.generation(t, c, "nixos", config(w.failing))
	if out, err := runScript(t, rf.Activation, env("switch"), conf); err != nil {
		t.Errorf("with a failing binary the activation failed: %v\n%s", err, out)
	}
	if q := w.queued(t); len(q) != 0 {
		t.Errorf("a failing binary queued %v", q)
	}
}

// home-manager: the activation entry with home-manager's own `run`
// queues the listed packages on a live run, prints the command on
// DRY_RUN, and never fails the activation.
func TestHomeManagerActivationRuns(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)
	w := newActWorld(t, bin)
	salt := fmt.Sprint(time.Now().UnixNano())
	home := filepath.Join(w.dir, "home")
	config := func(pkg string) string {
		return fmt.Sprintf(`{ lib, ... }: { home.homeDirectory = lib.mkForce %q; programs.cachix-filter-hook = { enable = true; package = %s; pushOnActivation = true; packages = %s; settings = %s; }; }`, home, pkg, pkgsExpr(salt), w.settings())
	}
	r := w.generation(t, c, "hm", config(w.pkg))
	hookConf(t, r.Settings, filepath.Join(home, ".config", "cachix-filter-hook", "hook.conf"))
	lib := filepath.Join(c.hm, "lib", "bash", "home-manager.sh")
	script := func(activation string) string {
		return "set -eu\nsource " + lib + "\n" + activation
	}
	env := []string{"newGenPath=" + r.Generation, "HOME=" + home}
	out, err := runScript(t, script(r.Activation), append(env, "DRY_RUN=1"), "")
	if err != nil || !strings.Contains(out, "push --closure "+r.Generation) {
		t.Fatalf("DRY_RUN: %v\n%s", err, out)
	}
	if q := w.queued(t); len(q) != 0 {
		t.Errorf("DRY_RUN queued %v", q)
	}
	if out, err := runScript(t, script(r.Activation), env, ""); err != nil {
		t.Fatalf("live run: %v\n%s", err, out)
	}
	w.drain(t, bin, filepath.Join(home, ".config", "cachix-filter-hook", "hook.conf"))
	if got := w.cachePaths(t); !slices.Equal(got, sortedCopy(r.Listed)) {
		t.Errorf("the cache holds %v, want the listed %v\nworker log:\n%s", got, r.Listed, readLog(w.queue))
	}
	os.RemoveAll(w.queue)
	rf := w.generation(t, c, "hm", config(w.failing))
	if out, err := runScript(t, script(rf.Activation), env, ""); err != nil {
		t.Errorf("with a failing binary the activation failed: %v\n%s", err, out)
	}
	if q := w.queued(t); len(q) != 0 {
		t.Errorf("a failing binary queued %v", q)
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func readLog(queue string) string {
	b, _ := os.ReadFile(filepath.Join(queue, "worker.log"))
	return string(b)
}

// libExpr is nix/lib.nix imported, as a Nix expression, for the tests
// that evaluate it with nix-instantiate. It skips the test without
// nix-instantiate, or fails it then under CFH_TEST_REQUIRE_MODULES=1.
func libExpr(t *testing.T) string {
	t.Helper()
	tallied(t)
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		if os.Getenv("CFH_TEST_REQUIRE_MODULES") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return "(import " + nixPath(filepath.Join(repoRoot(t), "nix", "lib.nix")) + " { })"
}

// cachixPackages refuses a derivation's drvPath: it is a store path with
// context, but the file of the recipe, not a package. Listed, it made
// the list depend on every output of the derivation's whole build-time
// closure (the context of a drvPath), and the hook queued the .drv.
func TestCachixPackagesRefusesDrvPath(t *testing.T) {
	lib := libExpr(t)
	pkg := fmt.Sprintf(`(derivation { name = "multi-1.0"; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ "out" "dev" ]; args = [ "-c" "exit 1" ]; salt = %q; })`, fmt.Sprint(time.Now().UnixNano()))
	for _, p := range []string{"pkg.drvPath", `"${pkg.drvPath}"`, "(builtins.unsafeDiscardOutputDependency pkg.drvPath)", "[ pkg pkg.dev.drvPath ]"} {
		expr := fmt.Sprintf("let pkg = %s; l = %s.cachixPackages { packages = [ %s ]; }; in builtins.seq l.drvPath l.listedPaths", pkg, lib, p)
		out, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", "-E", expr)
		if err == nil {
			t.Errorf("cachixPackages took %s: it lists %s", p, out)
		} else if !strings.Contains(err.Error(), "is a derivation (a .drv file)") {
			t.Errorf("cachixPackages refused %s without saying it is a .drv: %v", p, err)
		}
	}
}

// cachixPackages refuses a string whose context names another store path
// than the one it is ("${pkg}-extra"): the list then named a path that
// does not exist, refused far from the mistake (its build, or the worker
// dropping the path). What a package or a source is, it takes.
func TestCachixPackagesRefusesPathNotInContext(t *testing.T) {
	lib := libExpr(t)
	pkg := fmt.Sprintf(`(derivation { name = "multi-1.0"; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ "out" "dev" ]; args = [ "-c" "exit 1" ]; salt = %q; })`, fmt.Sprint(time.Now().UnixNano()))
	src := `(builtins.toFile "cfh-src" "x")`
	for _, tc := range []struct {
		p    string
		want string // the name of the path refused; "": taken
	}{
		{`"${pkg}-extra"`, "multi-1.0-extra"},
		{`"${pkg.dev}x"`, "multi-1.0-devx"},
		{`"${pkg.drvPath}-x"`, "multi-1.0.drv-x"},
		{`"${` + src + `}-extra"`, "cfh-src-extra"},
		{"pkg", ""},
		{"pkg.dev", ""},
		{`"${pkg.dev}"`, ""},
		{src, ""},
		{"[ pkg " + src + " ]", ""},
	} {
		expr := fmt.Sprintf("let pkg = %s; l = %s.cachixPackages { packages = [ %s ]; }; in builtins.seq l.drvPath l.listedPaths", pkg, lib, tc.p)
		out, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", "-E", expr)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("cachixPackages refused %s: %v", tc.p, err)
		case tc.want != "" && err == nil:
			t.Errorf("cachixPackages took %s: it lists %s", tc.p, out)
		case tc.want != "" && (!strings.Contains(err.Error(), tc.want+`" is not`) || !strings.Contains(err.Error(), "its context")):
			t.Errorf("cachixPackages refused %s without naming it and its context: %v", tc.p, err)
		}
	}
}

// cachixPackages finds each path once in work that grows as the paths
// do, not as their square: its fold with elem copied the list kept so far
// for each path, and a list of 100,000 paths took minutes to evaluate
// before the bound of 10,000 refused it. Nix's own count of list elements
// made is the work, whatever the machine's speed.
func TestCachixPackagesUniqueNotQuadratic(t *testing.T) {
	lib := libExpr(t)
	const n = 2000
	expr := fmt.Sprintf(`let l = %s.cachixPackages { packages = builtins.genList (i: derivation { name = "p${toString i}"; system = "cfh-test-system"; builder = "/bin/sh"; }) %d; }; in builtins.seq l.drvPath (builtins.length l.listedPaths)`, lib, n)
	stats := filepath.Join(t.TempDir(), "stats.json")
	out, err := run(t, append(os.Environ(), "NIX_SHOW_STATS=1", "NIX_SHOW_STATS_PATH="+stats), "nix-instantiate", "--eval", "--strict", "-E", expr)
	if err != nil || strings.TrimSpace(out) != fmt.Sprint(n) {
		t.Fatalf("cachixPackages of %d paths: %q, %v", n, out, err)
	}
	data, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		List struct{ Elements int64 } `json:"list"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.List.Elements == 0 {
		t.Fatalf("Nix's statistics %s: %v", data, err)
	}
	if st.List.Elements > 50*n {
		t.Errorf("cachixPackages of %d paths made %d list elements, want at most %d", n, st.List.Elements, 50*n)
	}
}

// cachixPackages refuses a name the hook would not read as a list's:
// pkglist.Named takes a name ending in .list for a list's file, so
// `name = "x.list"` built cachix-packages-x.list, which the hook, push
// and explain took for an ordinary path, and nothing it listed was
// queued. Every name it takes makes a directory Named.
func TestCachixPackagesNamesRoundTrip(t *testing.T) {
	lib := libExpr(t)
	pkg := fmt.Sprintf(`(derivation { name = "a-1.0"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "exit 1" ]; salt = %q; })`, fmt.Sprint(time.Now().UnixNano()))
	for _, name := range []string{"x.list", "dev", "x.lis", "list", "x.list.1", "a=b?c+d"} {
		expr := fmt.Sprintf("let l = %s.cachixPackages { packages = [ %s ]; name = %q; }; in builtins.seq l.drvPath l.name", lib, pkg, name)
		out, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", "-E", expr)
		if err != nil {
			if !strings.HasSuffix(name, ".list") || !strings.Contains(err.Error(), `ending in ".list"`) {
				t.Errorf("cachixPackages refused name %q: %v", name, err)
			}
			continue
		}
		var dir string
		if err := json.Unmarshal([]byte(out), &dir); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		p := storepath.New(storepath.StoreDir(), strings.Repeat("a", storepath.HashLen), dir)
		if !pkglist.Named(p) {
			t.Errorf("cachixPackages took name %q: the hook does not read %s as a package list", name, dir)
		}
	}
}

// The list's file is built for the system of the first package that
// says, also in a nested list (`[ pkg.all ]`, as the README shows):
// cachixPackages looked at the top level only and fell back to
// builtins.currentSystem, which a pure flake evaluation does not have
// ("attribute 'currentSystem' missing"). Here a package of another
// system than this machine's shows which one it took.
func TestCachixPackagesSystemOfNestedList(t *testing.T) {
	lib := libExpr(t)
	const system = "cfh-test-system"
	pkg := fmt.Sprintf(`(derivation { name = "multi-1.0"; system = %q; builder = "/bin/sh"; outputs = [ "out" "dev" ]; args = [ "-c" "exit 1" ]; })`, system)
	for _, p := range []string{"pkg", "pkg.dev", "(map (o: pkg.${o}) pkg.outputs)", "[ [ pkg.dev ] ]"} {
		expr := fmt.Sprintf("let pkg = %s; l = %s.cachixPackages { packages = [ %s ]; }; in l.list.system", pkg, lib, p)
		out, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "--json", "-E", expr)
		if err != nil {
			t.Errorf("cachixPackages { packages = [ %s ]; }: %v", p, err)
		} else if strings.TrimSpace(out) != fmt.Sprintf("%q", system) {
			t.Errorf("cachixPackages { packages = [ %s ]; }: the list is built for %s, not its package's %q", p, out, system)
		}
	}
}

// home-manager: the activation's push is bounded by a timeout, as NixOS's
// is (60 s): a push that does not return does not hold up `home-manager
// switch`. The stand-in binary sleeps 40 s and says how it ended, by
// that timeout's signal or by returning; the stand-in timeout makes the
// module's 60 s 2 s.
func TestHomeManagerActivationBounded(t *testing.T) {
	c := needCheckouts(t)
	w := newActWorld(t, hookBin(t))
	host, err := exec.LookPath("timeout")
	if err != nil {
		t.Fatal(err)
	}
	pkgDir := func(name, content string) string {
		d := filepath.Join(w.dir, name)
		if err := os.MkdirAll(filepath.Join(d, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		file := "cachix-filter-hook"
		if name == "short-coreutils" {
			file = "timeout"
		}
		if err := os.WriteFile(filepath.Join(d, "bin", file), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return nixPath(d)
	}
	ended := filepath.Join(w.dir, "push-ended")
	hang := fmt.Sprintf(`{ type = "derivation"; name = "cachix-filter-hook-hangs"; outPath = builtins.path { path = %s; name = "cachix-filter-hook-hangs"; }; meta.mainProgram = "cachix-filter-hook"; }`,
		pkgDir("hangs", fmt.Sprintf("#!/bin/sh\ntrap 'kill $! 2>/dev/null; echo killed > %[1]s; exit 143' TERM\nsleep 40 &\nwait $!\necho returned > %[1]s\n", "'"+ended+"'")))
	w.coreutils = fmt.Sprintf(`{ coreutils = { type = "derivation"; name = "coreutils-short"; outPath = builtins.path { path = %s; name = "coreutils-short"; }; }; }`,
		pkgDir("short-coreutils", "#!/bin/sh\nshift\nexec "+host+" 2 \"$@\"\n"))
	home := filepath.Join(w.dir, "home")
	r := w.generation(t, c, "hm", fmt.Sprintf(`{ lib, ... }: { home.homeDirectory = lib.mkForce %q; programs.cachix-filter-hook = { enable = true; package = %s; pushOnActivation = true; packages = %s; settings = %s; }; }`,
		home, hang, pkgsExpr(fmt.Sprint(time.Now().UnixNano())), w.settings()))
	script := "set -eu\nsource " + filepath.Join(c.hm, "lib", "bash", "home-manager.sh") + "\n" + r.Activation
	out, err := runScript(t, script, []string{"newGenPath=" + r.Generation, "HOME=" + home}, "")
	if err != nil {
		t.Errorf("the activation failed: %v\n%s", err, out)
	}
	// Whatever the machine's speed, the timeout's 2 s end the push
	// long before its 40 s do.
	if got, _ := os.ReadFile(ended); string(got) != "killed\n" {
		t.Errorf("the push that hangs ended %q, not by the activation's timeout: it waits for it without one\n%s", got, r.Activation)
	}
}

// cachixPackages refuses at evaluation a list past the hook's bounds of
// one list (256 targets, pkglist.MaxPaths paths, pkglist.MaxSize bytes),
// naming the bound: Nix built it happily and the hook refused it whole at
// build time, nothing of it queued. A list at the bounds evaluates.
func TestCachixPackagesRefusesPastHookBounds(t *testing.T) {
	lib := libExpr(t)
	pkgs := func(n int) string {
		return fmt.Sprintf(`(builtins.genList (i: derivation { name = "p${toString i}"; system = "cfh-test-system"; builder = "/bin/sh"; }) %d)`, n)
	}
	long := func(n int) string {
		return fmt.Sprintf(`(builtins.concatStringsSep "" (builtins.genList (i: "x") %d))`, n)
	}
	for _, tc := range []struct {
		name, args string
		want       string // "": evaluates
	}{
		{"256 targets", "packages = " + pkgs(1) + "; targets = builtins.genList (i: \"t${toString i}\") 256;", ""},
		{"257 targets", "packages = " + pkgs(1) + "; targets = builtins.genList (i: \"t${toString i}\") 257;", "at most 256"},
		{"MaxPaths paths", "packages = " + pkgs(pkglist.MaxPaths) + ";", ""},
		{"MaxPaths+1 paths", "packages = " + pkgs(pkglist.MaxPaths+1) + ";", fmt.Sprintf("at most %d", pkglist.MaxPaths)},
		// 256 targets of 4,200 characters: past MaxSize in all.
		{"past MaxSize", fmt.Sprintf(`packages = %s; targets = let x = builtins.concatStringsSep "" (builtins.genList (i: "x") 4200); in builtins.genList (i: "t${toString i}${x}") 256;`, pkgs(1)), fmt.Sprintf("at most %d", pkglist.MaxSize)},
		// One target, name or path longer than Nix's regex engine
		// takes (it overflows its stack past about 250,000 characters):
		// the size is checked first, naming the bound, and a target the
		// hook reads is not refused.
		{"one target of 300,000", fmt.Sprintf(`packages = %s; targets = [ %s ];`, pkgs(1), long(300000)), ""},
		{"one target past MaxSize", fmt.Sprintf(`packages = %s; targets = [ %s ];`, pkgs(1), long(pkglist.MaxSize+1)), fmt.Sprintf("at most %d", pkglist.MaxSize)},
		{"a name of 300,000", fmt.Sprintf(`packages = %s; name = %s;`, pkgs(1), long(300000)), "at most 150"},
		{"a path of 300,000", fmt.Sprintf(`packages = [ "${builtins.head %s}${%s}" ];`, pkgs(1), long(300000)), "is not a store path"},
		{"a string of 300,000 with no context", fmt.Sprintf(`packages = [ %s ];`, long(300000)), "is a string with no context"},
	} {
		expr := fmt.Sprintf("let l = %s.cachixPackages { %s }; in builtins.seq l.drvPath true", lib, tc.args)
		_, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "-E", expr)
		short := tc.name
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("cachixPackages { %s }: %v", short, err)
		case tc.want != "" && err == nil:
			t.Errorf("cachixPackages { %s } evaluates: the hook refuses the list it builds", short)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("cachixPackages { %s }: %.2000v; want an error with %q", short, err, tc.want)
		case tc.want != "" && strings.Contains(err.Error(), strings.Repeat("x", 1000)):
			// The message quoted the whole value: 300,000 characters
			// of it on the terminal (the command builds it, with no
			// such run of x).
			t.Errorf("cachixPackages { %s }: the error quotes the value whole, want it cut: %.500v", short, err)
		}
	}
}

// cachixPackages refuses at evaluation a target name the hook refuses
// (escape.OneLine, as hook.conf's names): a control character (a tab, an
// escape, DEL, a C1 control), a line or paragraph separator or a
// bidirectional control (a right-to-left override). It
// checked only for a line break and a carriage return, so Nix built such
// a list and the hook refused it whole, nothing of it queued, not even
// for the targets it names rightly. Ordinary Unicode evaluates.
func TestCachixPackagesRefusesTargetsTheHookRefuses(t *testing.T) {
	lib := libExpr(t)
	pkg := `derivation { name = "p"; system = "cfh-test-system"; builder = "/bin/sh"; }`
	dir := t.TempDir()
	for i, name := range []string{"a\tb", "a\x1b[2Jb", "a\x7fb", "a\u0085b", "a\u009bb", "a\u2028b", "a\u2029b", "a\u202eb", "a\u2066b", "a\u200fb", "a\u061cb", "\x01", "café", "ソフト-1", "a b", "שלום"} {
		refused := !escape.OneLine(name)
		b, err := json.Marshal([]string{"main", name})
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, fmt.Sprintf("targets-%d.json", i))
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		expr := fmt.Sprintf("let l = %s.cachixPackages { packages = [ (%s) ]; targets = builtins.fromJSON (builtins.readFile %s); }; in builtins.seq l.drvPath true", lib, pkg, nixPath(file))
		_, err = run(t, nil, "nix-instantiate", "--eval", "--strict", "-E", expr)
		switch {
		case refused && err == nil:
			t.Errorf("cachixPackages { targets = [ %q ]; } evaluates: the hook refuses the list it builds", name)
		case refused && !strings.Contains(err.Error(), "cachixPackages: targets"):
			t.Errorf("cachixPackages { targets = [ %q ]; }: %.2000v; want it refused naming targets", name, err)
		case !refused && err != nil:
			t.Errorf("cachixPackages { targets = [ %q ]; }: %v", name, err)
		}
	}
}

// The hook refuses a list whose target line is not UTF-8 (pkglist), and
// with it every path the list names, at build time. cachixPackages
// could not tell (Nix's strings are bytes, and fromJSON's check cannot be
// caught), so it built such a list. It now reads such a name a byte at a
// time and refuses it at evaluation, as utf8.ValidString would: a
// truncated character, an overlong form, a surrogate, a byte past
// U+10FFFF or one UTF-8 never uses.
func TestCachixPackagesRefusesTargetsNotUTF8(t *testing.T) {
	lib := libExpr(t)
	pkg := `derivation { name = "p"; system = "cfh-test-system"; builder = "/bin/sh"; }`
	dir := t.TempDir()
	for i, name := range []string{"a\xffb", "caf\xc3", "\xc3(", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf0\x80\x80\x80", "\x80", "\xf5\x80\x80\x80",
		"main", "café", "ソフト-1", "🙂x", "\U0010ffff", "\ud7ff", "\ue000", "\u0800\u07ff\U00010000"} {
		file := filepath.Join(dir, fmt.Sprintf("name-%d", i))
		if err := os.WriteFile(file, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		expr := fmt.Sprintf("let l = %s.cachixPackages { packages = [ (%s) ]; targets = [ \"main\" (builtins.readFile %s) ]; }; in builtins.seq l.drvPath true", lib, pkg, nixPath(file))
		_, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "-E", expr)
		switch valid := utf8.ValidString(name); {
		case !valid && err == nil:
			t.Errorf("cachixPackages { targets = [ %q ]; } evaluates: the hook refuses the list it builds", name)
		case !valid && !strings.Contains(err.Error(), "cachixPackages: targets must be UTF-8"):
			t.Errorf("cachixPackages { targets = [ %q ]; }: %.2000v; want it refused as not UTF-8", name, err)
		case valid && err != nil:
			t.Errorf("cachixPackages { targets = [ %q ]; }: %v", name, err)
		}
	}
}

// A target's name that holds a store path (made with "${pkg}") has its
// context, and the UTF-8 walk looked each byte past ASCII up as an
// attribute name, which may have none: "café-${pkg}", UTF-8 as the hook
// reads it, was refused with "the string '\xc3' is not allowed to refer
// to a store path". The walk reads the bytes alone.
func TestCachixPackagesTargetWithContextIsWalked(t *testing.T) {
	lib := libExpr(t)
	pkg := `derivation { name = "p"; system = "cfh-test-system"; builder = "/bin/sh"; }`
	for name, want := range map[string]string{`"café-${pkg}"`: "", `"caf${builtins.substring 0 1 "é"}-${pkg}"`: "targets must be UTF-8"} {
		expr := fmt.Sprintf("let pkg = %s; l = %s.cachixPackages { packages = [ pkg ]; targets = [ %s ]; }; in builtins.seq l.drvPath true", pkg, lib, name)
		_, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "-E", expr)
		switch {
		case want == "" && err != nil:
			t.Errorf("cachixPackages { targets = [ %s ]; }: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("cachixPackages { targets = [ %s ]; }: %v; want an error with %q", name, err, want)
		}
	}
}
