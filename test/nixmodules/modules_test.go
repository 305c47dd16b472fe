// Package nixmodules checks the repository's Nix files by evaluating them:
// the NixOS and home-manager modules (rendered hook.conf accepted by
// `validate`, assertions, activation snippets that parse, the worker
// service's hardening), the package (meta, source filter, checkPhase) and
// `nix flake check --no-build`.
//
// Full nixpkgs cannot be fetched on the test machines (and needs Nix 2.18),
// so the evaluations use nixpkgs.lib's lib, home-manager's real modules,
// and the stubs in stub/ for the rest. They run when CFH_NIXPKGS_LIB and
// CFH_HOME_MANAGER name checkouts of nix-community/nixpkgs.lib and
// nix-community/home-manager, and skip, saying so, when they are unset
// (fail, under CFH_TEST_REQUIRE_MODULES=1). `.ci/run` unpacks them from
// the snapshots in ../shared/fixtures; docs/nix-checks.md shows how.
//
// TestOfflineTestPackages needs neither: it runs the unit tests that
// nix/package.nix's checkPhase runs, the way the build sandbox would (no
// Nix, no HOME, no network).
package nixmodules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// repoRoot is the repository: two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// checkouts are the nixpkgs.lib and home-manager checkouts, and a
// directory laid out like nixpkgs for stub/pkgs.nix's `path`.
type checkouts struct {
	lib, hm, nixpkgs string
}

// tally holds the outcome of every test of the package ("passed",
// "failed", "skipped") by name, for the summary TestMain writes.
var tally struct {
	sync.Mutex
	outcome map[string]string
}

// tallied counts t in the summary by its outcome. Every test of the
// package calls it, through needCheckouts or libExpr or itself
// (TestEveryTestTallied checks): a check left out of the count could
// fail or skip while the summary said all passed.
func tallied(t *testing.T) {
	t.Cleanup(func() {
		outcome := "passed"
		switch {
		case t.Skipped():
			outcome = "skipped"
		case t.Failed():
			outcome = "failed"
		}
		tally.Lock()
		defer tally.Unlock()
		if tally.outcome == nil {
			tally.outcome = map[string]string{}
		}
		tally.outcome[t.Name()] = outcome
	})
}

// TestMain writes how many module checks passed, failed and skipped into
// the file named by CFH_TEST_SUMMARY, which `make test` prints after the
// tests (go test shows nothing of a passing package), so that a log shows
// that they ran, and with what.
func TestMain(m *testing.M) {
	code := m.Run()
	if f := os.Getenv("CFH_TEST_SUMMARY"); f != "" && len(tally.outcome) > 0 {
		line := summary(tally.outcome, os.Getenv("CFH_NIXPKGS_LIB"), os.Getenv("CFH_HOME_MANAGER"))
		if out, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintln(out, line)
			out.Close()
		}
	}
	os.Exit(code)
}

// summary is TestMain's line: the counts, the tests that failed or
// skipped by name, and the checkouts the module checks used.
func summary(outcome map[string]string, lib, hm string) string {
	by := map[string][]string{}
	for name, o := range outcome {
		by[o] = append(by[o], name)
	}
	line := fmt.Sprintf("module checks: %d passed, %d failed, %d skipped", len(by["passed"]), len(by["failed"]), len(by["skipped"]))
	for _, o := range []string{"failed", "skipped"} {
		if len(by[o]) > 0 {
			slices.Sort(by[o])
			line += fmt.Sprintf("; %s: %s", o, strings.Join(by[o], " "))
		}
	}
	if lib == "" || hm == "" {
		return line + " (CFH_NIXPKGS_LIB and CFH_HOME_MANAGER unset)"
	}
	return line + fmt.Sprintf(" (with nixpkgs.lib %s and home-manager %s)", lib, hm)
}

// needCheckouts skips the test unless CFH_NIXPKGS_LIB and CFH_HOME_MANAGER
// are set, or fails it then under CFH_TEST_REQUIRE_MODULES=1 (set by
// .ci/run, which unpacks the fixtures); with them set, a missing
// nix-instantiate is a failure.
func needCheckouts(t *testing.T) checkouts {
	t.Helper()
	tallied(t)
	c := checkouts{lib: os.Getenv("CFH_NIXPKGS_LIB"), hm: os.Getenv("CFH_HOME_MANAGER")}
	if c.lib == "" || c.hm == "" {
		const why = "CFH_NIXPKGS_LIB and CFH_HOME_MANAGER are not both set: the module checks need checkouts of nix-community/nixpkgs.lib and nix-community/home-manager (see docs/nix-checks.md)"
		if os.Getenv("CFH_TEST_REQUIRE_MODULES") == "1" {
			t.Fatal(why + ", and CFH_TEST_REQUIRE_MODULES=1")
		}
		t.Skip(why)
	}
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("CFH_NIXPKGS_LIB is set, but nix-instantiate is not on PATH: %v", err)
	}
	for _, f := range []string{filepath.Join(c.lib, "lib", "default.nix"), filepath.Join(c.hm, "modules", "modules.nix")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("not a checkout of nixpkgs.lib / home-manager: %v", err)
		}
	}
	// home-manager imports lib/ and nixos/modules/misc/ from pkgs.path.
	c.nixpkgs = t.TempDir()
	for name, target := range map[string]string{"lib": filepath.Join(c.lib, "lib"), "nixos": filepath.Join(repoRoot(t), "test", "nixmodules", "stub", "nixos")} {
		if err := os.Symlink(target, filepath.Join(c.nixpkgs, name)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// eval evaluates attr of eval.nix with the user's module config (a Nix
// expression) and decodes the JSON result into out.
func (c checkouts) eval(t *testing.T, attr, config string, out any, extraArgs ...string) error {
	t.Helper()
	args := fmt.Sprintf("nixpkgs = %s; hm = %s; config = %s;", nixPath(c.nixpkgs), nixPath(c.hm), config)
	for _, a := range extraArgs {
		args += " " + a
	}
	expr := fmt.Sprintf("(import %s { %s }).%s", nixPath(filepath.Join(repoRoot(t), "test", "nixmodules", "eval.nix")), args, attr)
	stdout, err := run(t, nil, "nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", "-E", expr)
	if err != nil {
		return err
	}
	d := json.NewDecoder(strings.NewReader(stdout))
	d.UseNumber()
	if err := d.Decode(out); err != nil {
		return fmt.Errorf("decoding %s: %w\n%s", attr, err, stdout)
	}
	return nil
}

// nixPath quotes a path for a Nix expression (as a path, not a string).
func nixPath(p string) string {
	return fmt.Sprintf("(/. + %q)", p)
}

// run runs a command with a timeout and returns its stdout; the error
// carries stderr.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 3000))
	}
	return stdout.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// runSandboxed runs name as Nix's sandbox runs a builder: uid 1000 and
// gid 100 in a user namespace of its own where only the build user is
// mapped (to a real unprivileged user here), so root's files (/, the
// store) look owned by nobody. writable is made the build user's.
func runSandboxed(t *testing.T, writable string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	u := testuser.New(t)
	if err := os.Chown(writable, u.Uid, u.Gid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 1000, HostID: u.Uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 100, HostID: u.Gid, Size: 1}},
		Credential:  &syscall.Credential{Uid: 1000, Gid: 100, NoSetGroups: true},
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s (sandboxed): %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 3000))
	}
	return stdout.String(), nil
}

// hookBin builds cachix-filter-hook once per test.
func hookBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cachix-filter-hook")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// validate renders settings (hook.conf as the module's Nix values) to TOML
// as nixpkgs' formats.toml does (JSON through a TOML encoder), and runs
// `cachix-filter-hook validate --config-only` on it: the token file and the
// store paths it names exist on the NixOS machine, not here. It returns
// validate's output.
func validate(t *testing.T, bin string, settings map[string]any) string {
	t.Helper()
	b, err := toml.Marshal(numbers(settings))
	if err != nil {
		t.Fatalf("rendering %v as TOML: %v", settings, err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "hook.conf")
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, bin, "--config", conf, "validate", "--config-only")
	if err != nil {
		t.Fatalf("validate refuses the module's hook.conf:\n%s\n%v", b, err)
	}
	return out
}

// numbers turns JSON numbers into int64 or float64, as json2toml does.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// bashN checks that a shell snippet parses.
func bashN(t *testing.T, what, script string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "snippet.sh")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, nil, "bash", "-n", f); err != nil {
		t.Errorf("%s does not parse: %v\n%s", what, err, script)
	}
}

type nixosResult struct {
	Failed     []string       `json:"failed"`
	Settings   map[string]any `json:"settings"`
	Hook       string         `json:"hook"`
	Activation *string        `json:"activation"`
	Tmpfiles   []string       `json:"tmpfiles"`
	Service    struct {
		ServiceConfig map[string]any    `json:"serviceConfig"`
		Environment   map[string]string `json:"environment"`
	} `json:"service"`
}

// evalNixOS evaluates the NixOS module enabled with settings (a Nix
// attribute set), failing the test when it does not evaluate.
func (c checkouts) evalNixOS(t *testing.T, settings string) nixosResult {
	t.Helper()
	var r nixosResult
	if err := c.eval(t, "nixos", `{ services.cachix-filter-hook = { enable = true; settings = `+settings+`; }; }`, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// readWritePaths is the worker's ReadWritePaths=, each as NixOS writes
// it: quoted, a %% doubled.
func (r nixosResult) readWritePaths() []any {
	paths, _ := r.Service.ServiceConfig["ReadWritePaths"].([]any)
	return paths
}

// wantWritable fails the test for each of dirs (a %% doubled) that the
// worker's ReadWritePaths= does not list.
func wantWritable(t *testing.T, r nixosResult, dirs ...string) {
	t.Helper()
	paths := r.readWritePaths()
	for _, dir := range dirs {
		if !slices.Contains(paths, any(`"`+dir+`"`)) {
			t.Errorf("ReadWritePaths %q: no %q", paths, dir)
		}
	}
}

// wantNotWritable fails the test, saying why not, when the worker's
// ReadWritePaths= lists dir.
func wantNotWritable(t *testing.T, r nixosResult, dir, why string) {
	t.Helper()
	if paths := r.readWritePaths(); slices.Contains(paths, any(`"`+dir+`"`)) {
		t.Errorf("ReadWritePaths %q: %s", paths, why)
	}
}

// wantTmpfiles fails the test for each of lines the module's tmpfiles
// rules lack.
func wantTmpfiles(t *testing.T, r nixosResult, lines ...string) {
	t.Helper()
	for _, line := range lines {
		if !slices.Contains(r.Tmpfiles, line) {
			t.Errorf("tmpfiles %q: no %q", r.Tmpfiles, line)
		}
	}
}

func TestNixOSModule(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)

	t.Run("rendered config, hook, activation, hardening", func(t *testing.T) {
		var r nixosResult
		err := c.eval(t, "nixos", `{
			services.cachix-filter-hook = {
				enable = true;
				settings = {
					cache = "main";
					allow = [ "*" ];
					deny = [ "*-doc" ];
					closure_deny = "skip";
					cachix.push_args = [ "-j" "8" ];
					queue.retry_max = "30m";
					queue.batch = 32;
					target = [ { store = "file:///var/cache/nix-local?compression=zstd"; allow = [ "hello-*" ]; } ];
				};
				authTokenFile = "/run/secrets/cachix-token";
				pushOnActivation = true;
			};
		}`, &r)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) != 0 {
			t.Fatalf("assertions failed: %v", r.Failed)
		}
		out := validate(t, bin, r.Settings)
		for _, want := range []string{`auth_token_file = "/run/secrets/cachix-token"`, `-cachix-1.7.4/bin/cachix"`, `-nix-2.28.3/bin"`, `batch = 32`} {
			if !strings.Contains(out, want) {
				t.Errorf("validate's effective config lacks %q:\n%s", want, out)
			}
		}
		if !strings.HasSuffix(r.Hook, "/bin/cachix-filter-hook") || !strings.HasPrefix(r.Hook, "/nix/store/") {
			t.Errorf("post-build-hook = %q, want the package's binary", r.Hook)
		}
		if r.Activation == nil || !strings.Contains(*r.Activation, `push --closure "$systemConfig"`) {
			t.Errorf("activation script lacks push --closure \"$systemConfig\": %v", r.Activation)
		} else {
			bashN(t, "the NixOS activation script", *r.Activation)
		}

		sc := r.Service.ServiceConfig
		want := map[string]any{
			"ExecStart":               r.Hook + " --config /etc/cachix-filter-hook/hook.conf worker",
			"Restart":                 "on-failure",
			"RestartSec":              "10s",
			"StateDirectory":          "cachix-filter-hook",
			"StateDirectoryMode":      "0700",
			"ProtectSystem":           "strict",
			"ProtectHome":             "read-only",
			"PrivateTmp":              true,
			"PrivateDevices":          true,
			"NoNewPrivileges":         true,
			"ProtectKernelTunables":   true,
			"ProtectKernelModules":    true,
			"ProtectKernelLogs":       true,
			"ProtectControlGroups":    true,
			"ProtectClock":            true,
			"ProtectHostname":         true,
			"RestrictSUIDSGID":        true,
			"RestrictNamespaces":      true,
			"RestrictRealtime":        true,
			"LockPersonality":         true,
			"SystemCallArchitectures": "native",
			"CacheDirectory":          "cachix-filter-hook",
			"CacheDirectoryMode":      "0700",
			"CapabilityBoundingSet":   "",
			"SystemCallErrorNumber":   "EPERM",
			"ProtectProc":             "invisible",
			"PrivateIPC":              true,
		}
		for k, v := range want {
			if sc[k] != v {
				t.Errorf("serviceConfig.%s = %v, want %v", k, sc[k], v)
			}
		}
		// Every setting is asserted, here or below: one added to the
		// module without a test (or one dropped from the test) is
		// noticed. The list-valued ones are checked below.
		for k := range sc {
			if _, ok := want[k]; !ok && k != "ReadWritePaths" && k != "RestrictAddressFamilies" && k != "SystemCallFilter" {
				t.Errorf("serviceConfig.%s = %v is not asserted by this test: assert it", k, sc[k])
			}
		}
		// What would break cachix or nix copy: no private network, the
		// address families they use, the daemon's socket reachable.
		for k, why := range map[string]string{
			"PrivateNetwork":         "cachix needs the network",
			"IPAddressDeny":          "cachix needs the network",
			"DynamicUser":            "the worker reads root's config and token",
			"InaccessiblePaths":      "nix copy needs the daemon's socket",
			"UMask":                  "nix copy writes a file:// cache with the worker's umask, and others read it",
			"ProcSubset":             "Nix's garbage collector reads /proc/stat at every nix copy",
			"MemoryDenyWriteExecute": "cachix (Haskell) is not tested under it",
			"AmbientCapabilities":    "the worker needs no capability",
		} {
			if _, ok := sc[k]; ok {
				t.Errorf("serviceConfig.%s is set: %s", k, why)
			}
		}
		// Exactly these: the daemon's socket, the caches over IP, and
		// netlink for the resolver's address checks; any other is to be
		// argued for.
		if families := fmt.Sprint(sc["RestrictAddressFamilies"]); families != "[AF_UNIX AF_INET AF_INET6 AF_NETLINK]" {
			t.Errorf("RestrictAddressFamilies = %s, want [AF_UNIX AF_INET AF_INET6 AF_NETLINK]", families)
		}
		// The usual start, and nothing more allowed: privileged calls
		// (chown, setuid, mount) and resource changes (setpriority,
		// sched_setaffinity) are denied with EPERM.
		if filter := fmt.Sprint(sc["SystemCallFilter"]); filter != "[@system-service ~@privileged ~@resources]" {
			t.Errorf("SystemCallFilter = %s, want [@system-service ~@privileged ~@resources]", filter)
		}
		wantWritable(t, r, "/var/cache/nix-local")
		rw := fmt.Sprint(sc["ReadWritePaths"])
		if !strings.Contains(rw, "/nix/var/nix/daemon-socket") { // "-": when there
			t.Errorf("ReadWritePaths %s lacks /nix/var/nix/daemon-socket", rw)
		}
		if strings.Contains(rw, "?compression") {
			t.Errorf("ReadWritePaths %s keeps the store URI's parameters", rw)
		}
		if r.Service.Environment["NIX_REMOTE"] != "daemon" {
			t.Errorf("the worker's NIX_REMOTE = %q, want daemon (the store is read-only for it)", r.Service.Environment["NIX_REMOTE"])
		}
		// Nix's narinfo cache for s3:// and https:// stores: root's home
		// is read-only, CacheDirectory is not.
		if got := r.Service.Environment["XDG_CACHE_HOME"]; got != "/var/cache/"+fmt.Sprint(sc["CacheDirectory"]) {
			t.Errorf("the worker's XDG_CACHE_HOME = %q, want /var/cache/%v (its CacheDirectory)", got, sc["CacheDirectory"])
		}
		if !slices.Contains(r.Tmpfiles, `d "/var/lib/cachix-filter-hook" 0700 root root -`) || !slices.Contains(r.Tmpfiles, `d "/var/cache/nix-local" 0755 root root -`) {
			t.Errorf("tmpfiles rules %q lack the queue or the file:// store's directory", r.Tmpfiles)
		}
	})

	t.Run("queue and log elsewhere", func(t *testing.T) {
		r := c.evalNixOS(t, `{ store = "s3://bucket"; allow = [ "*" ]; queue.dir = "/srv/cfh/queue"; log.file = "/var/log/cfh/worker.log"; }`)
		validate(t, bin, r.Settings)
		sc := r.Service.ServiceConfig
		if _, ok := sc["StateDirectory"]; ok {
			t.Errorf("StateDirectory = %v for a queue outside /var/lib/cachix-filter-hook", sc["StateDirectory"])
		}
		// The usual start, and nothing more allowed: privileged calls
		// (chown, setuid, mount) and resource changes (setpriority,
		// sched_setaffinity) are denied with EPERM.
		if filter := fmt.Sprint(sc["SystemCallFilter"]); filter != "[@system-service ~@privileged ~@resources]" {
			t.Errorf("SystemCallFilter = %s, want [@system-service ~@privileged ~@resources]", filter)
		}
		wantWritable(t, r, "/srv/cfh/queue", "/var/log/cfh")
		if _, ok := r.Settings["cachix"]; ok {
			t.Errorf("cachix.bin set although no target is a Cachix cache: %v", r.Settings["cachix"])
		}
		if r.Activation != nil {
			t.Errorf("activation script without pushOnActivation: %q", *r.Activation)
		}
	})

	t.Run("assertions", func(t *testing.T) {
		for _, tc := range []struct{ settings, want string }{
			{`{ allow = [ "*" ]; }`, "no destination"},
			{`{ cache = "a"; store = "file:///x"; }`, "not both"},
			{`{ cache = "a"; }; pushOnActivation = { keepRevisions = 3; }`, "go with pin"},
			{`{ cache = "a"; }; pushOnActivation = { pin = true; keepRevisions = 3; keepForever = true; }`, "exclude each other"},
			{`{ store = "file:///x"; }; pushOnActivation.pin = true`, "a Nix store has no pins"},
			{`{ cache = "a"; }; metrics.nodeExporterTextfile = true`, "no directory"},
		} {
			var r nixosResult
			if err := c.eval(t, "nixos.failed", `{ services.cachix-filter-hook = { enable = true; settings = `+tc.settings+`; }; }`, &r.Failed); err != nil {
				t.Fatal(err)
			}
			if len(r.Failed) != 1 || !strings.Contains(r.Failed[0], tc.want) {
				t.Errorf("settings %s: failed assertions %q, want one saying %q", tc.settings, r.Failed, tc.want)
			}
		}
		// NixOS writes nix.extraOptions after nix.settings into
		// nix.conf, and Nix takes the last line: a post-build-hook
		// there silently replaced this module's.
		for _, tc := range []struct{ extra, want string }{
			{"keep-outputs = true\n  post-build-hook = /etc/nix/upload.sh\n", "nix.extraOptions sets post-build-hook"},
			{"keep-outputs = true\n# post-build-hook = /etc/nix/upload.sh\n", ""},
		} {
			var failed []string
			if err := c.eval(t, "nixos.failed", `{ nix.extraOptions = "`+tc.extra+`"; services.cachix-filter-hook = { enable = true; settings.cache = "a"; }; }`, &failed); err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && len(failed) != 0 || tc.want != "" && (len(failed) != 1 || !strings.Contains(failed[0], tc.want)) {
				t.Errorf("nix.extraOptions %q: failed assertions %q, want %q", tc.extra, failed, tc.want)
			}
		}
	})

	// Issue 23: the fleet. A pin of the system on activation, the
	// metrics in node exporter's textfile directory with the
	// permissions it needs.
	t.Run("pin and metrics", func(t *testing.T) {
		var r nixosResult
		err := c.eval(t, "nixos", `{
			services.prometheus.exporters.node = { enable = true; extraFlags = [ "--collector.textfile.directory=/var/lib/node-textfile" ]; };
			services.cachix-filter-hook = {
				enable = true;
				settings = { cache = "fleet"; allow = [ "*" ]; hosts = [ "builder-*" ]; };
				pushOnActivation = { pin = true; keepRevisions = 5; };
			};
		}`, &r)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) != 0 {
			t.Fatalf("assertions failed: %v", r.Failed)
		}
		out := validate(t, bin, r.Settings)
		if !strings.Contains(out, `file = "/var/lib/node-textfile/cachix_filter_hook.prom"`) || !strings.Contains(out, `hosts = ["builder-*"]`) {
			t.Errorf("validate's effective config lacks the metrics file or hosts:\n%s", out)
		}
		if r.Activation == nil || !strings.Contains(*r.Activation, `push --closure --pin '{host}-system' --keep-revisions 5 "$systemConfig"`) {
			t.Errorf("activation script does not pin the system: %v", r.Activation)
		} else {
			bashN(t, "the NixOS activation script", *r.Activation)
		}
		wantWritable(t, r, "/var/lib/node-textfile") // the metrics' textfile directory
		// Root's, 0755: the worker refuses a directory others can
		// change, and node exporter (its own user) reads the 0644 file.
		if !slices.Contains(r.Tmpfiles, `d "/var/lib/node-textfile" 0755 root root -`) {
			t.Errorf("tmpfiles rules %q lack the textfile directory", r.Tmpfiles)
		}

		// The flag and its value as two words; and no node exporter:
		// no metrics file unless asked.
		var settings map[string]any
		if err := c.eval(t, "nixos.settings", `{
			services.prometheus.exporters.node = { enable = true; extraFlags = [ "--collector.textfile.directory" "/srv/tf" ]; };
			services.cachix-filter-hook = { enable = true; settings = { cache = "fleet"; allow = [ "*" ]; }; };
		}`, &settings); err != nil {
			t.Fatal(err)
		}
		if m, _ := settings["metrics"].(map[string]any); m["file"] != "/srv/tf/cachix_filter_hook.prom" {
			t.Errorf("metrics with the flag in two words: %v", settings["metrics"])
		}
		settings = nil
		if err := c.eval(t, "nixos.settings", `{ services.cachix-filter-hook = { enable = true; settings = { cache = "fleet"; allow = [ "*" ]; }; }; }`, &settings); err != nil {
			t.Fatal(err)
		}
		if _, ok := settings["metrics"]; ok {
			t.Errorf("a metrics file without node exporter: %v", settings["metrics"])
		}
	})
}

type hmResult struct {
	Failed     []string       `json:"failed"`
	Settings   map[string]any `json:"settings"`
	Packages   []string       `json:"packages"`
	Activation *string        `json:"activation"`
}

// home-manager's own modules (modules/modules.nix, all of them) with ours.
func TestHomeManagerModule(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)

	t.Run("rendered config and activation", func(t *testing.T) {
		var r hmResult
		err := c.eval(t, "hm", `{
			programs.cachix-filter-hook = {
				enable = true;
				settings = { cache = "mycache"; allow = [ "*" ]; deny = [ "*-doc" "home-manager-*" ]; };
				authTokenFile = "/run/user/1000/cachix-token";
				pushOnActivation = true;
			};
		}`, &r)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) != 0 {
			t.Fatalf("assertions failed: %v", r.Failed)
		}
		out := validate(t, bin, r.Settings)
		if !strings.Contains(out, `auth_token_file = "/run/user/1000/cachix-token"`) {
			t.Errorf("validate's effective config lacks the token file:\n%s", out)
		}
		if !slices.ContainsFunc(r.Packages, func(p string) bool { return strings.HasPrefix(p, "cachix-filter-hook-") }) {
			t.Errorf("home.packages %v lacks cachix-filter-hook", r.Packages)
		}
		if r.Activation == nil || !strings.Contains(*r.Activation, `push --closure "$newGenPath"`) {
			t.Fatalf("activation entry lacks push --closure \"$newGenPath\": %v", r.Activation)
		}
		bashN(t, "the home-manager activation entry", *r.Activation)
	})

	t.Run("pin", func(t *testing.T) {
		var r hmResult
		if err := c.eval(t, "hm", `{
			programs.cachix-filter-hook = { enable = true; settings = { cache = "mycache"; allow = [ "*" ]; }; pushOnActivation.pin = true; };
		}`, &r); err != nil {
			t.Fatal(err)
		}
		if r.Activation == nil || !strings.Contains(*r.Activation, `push --closure --pin '{host}-home' "$newGenPath"`) {
			t.Fatalf("activation entry does not pin the generation: %v", r.Activation)
		}
		bashN(t, "the home-manager activation entry", *r.Activation)
	})

	t.Run("assertions", func(t *testing.T) {
		for _, tc := range []struct{ settings, want string }{
			// enable with no destination wrote a hook.conf that every
			// command refuses.
			{`{ }`, "no destination"},
			{`{ allow = [ "*" ]; }`, "no destination"},
			{`{ cache = "a"; store = "file:///x"; }`, "not both"},
		} {
			var failed []string
			if err := c.eval(t, "hm.failed", `{ programs.cachix-filter-hook = { enable = true; settings = `+tc.settings+`; }; }`, &failed); err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(failed, func(m string) bool { return strings.Contains(m, "cachix-filter-hook") && strings.Contains(m, tc.want) }) {
				t.Errorf("settings %s: failed assertions %q, want one saying %q", tc.settings, failed, tc.want)
			}
		}
		// Not enabled: nothing to assert.
		var failed []string
		if err := c.eval(t, "hm.failed", `{ }`, &failed); err != nil {
			t.Fatal(err)
		}
		for _, m := range failed {
			if strings.Contains(m, "cachix-filter-hook") {
				t.Errorf("assertion fails without enable: %s", m)
			}
		}
	})
}

// The options the two modules share are declared once, in
// nix/shared-options.nix: both modules have the same options, and neither
// declares one of its own beside them, so that an option added for both is
// a change in one place.
func TestSharedOptions(t *testing.T) {
	c := needCheckouts(t)
	type options struct {
		Declarations   map[string][]string `json:"declarations"`
		PackageDefault string              `json:"packageDefault"`
	}
	var nixos, hm options
	if err := c.eval(t, "nixos.options", "{ }", &nixos); err != nil {
		t.Fatal(err)
	}
	if err := c.eval(t, "hm.options", "{ }", &hm); err != nil {
		t.Fatal(err)
	}
	names := func(o options) []string {
		var n []string
		for k := range o.Declarations {
			n = append(n, k)
		}
		slices.Sort(n)
		return n
	}
	// NixOS's own, with why: node exporter is a NixOS service.
	nixosOnly := map[string]string{"metrics": "nixos-module.nix"}
	var shared []string
	for _, n := range names(nixos) {
		if _, only := nixosOnly[n]; !only {
			shared = append(shared, n)
		}
	}
	if !slices.Equal(shared, names(hm)) {
		t.Errorf("services.cachix-filter-hook has options %q, programs.cachix-filter-hook %q: declare shared options in nix/shared-options.nix", names(nixos), names(hm))
	}
	for module, o := range map[string]options{"services.cachix-filter-hook": nixos, "programs.cachix-filter-hook": hm} {
		for name, files := range o.Declarations {
			if f, only := nixosOnly[name]; only && module == "services.cachix-filter-hook" {
				if !slices.Equal(files, []string{f}) {
					t.Errorf("%s.%s is declared in %q, want %s", module, name, files, f)
				}
				continue
			}
			if !slices.Equal(files, []string{"shared-options.nix"}) {
				t.Errorf("%s.%s is declared in %q, not (only) in nix/shared-options.nix", module, name, files)
			}
		}
		for _, want := range []string{"enable", "package", "settings", "authTokenFile", "pushOnActivation"} {
			if _, ok := o.Declarations[want]; !ok {
				t.Errorf("%s has no option %s", module, want)
			}
		}
		// lib.mkPackageOption's rendering of the default.
		if o.PackageDefault != "pkgs.cachix-filter-hook" {
			t.Errorf("%s.package's default shows as %q, want pkgs.cachix-filter-hook", module, o.PackageDefault)
		}
	}
}

// The package: full meta, checkPhase with the offline tests, and a source
// that holds only what the build reads even when the work tree has
// vendor/, build/, binaries and ./result in it.
func TestPackage(t *testing.T) {
	c := needCheckouts(t)
	root := repoRoot(t)

	// A copy of the repository's files, plus what a developer's tree
	// has lying around.
	repo := t.TempDir()
	if err := copyTree(root, repo); err != nil {
		t.Fatal(err)
	}
	junk := map[string]string{
		"vendor/modules.txt":                 "# github.com/x/y v1.0.0\n",
		"vendor/github.com/x/y/y.go":         "package y\n",
		"build/cachix-filter-hook":           "\x7fELF binary",
		"cachix-filter-hook":                 "\x7fELF binary",
		"test/cachix-standin/cachix-standin": "\x7fELF binary",
		".direnv/flake-profile":              "x",
		"docs/notes.md":                      "x",
	}
	for f, content := range junk {
		p := filepath.Join(repo, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/nix/store/00000000000000000000000000000000-x", filepath.Join(repo, "result")); err != nil {
		t.Fatal(err)
	}

	var p struct {
		Meta struct {
			Description string `json:"description"`
			Homepage    string `json:"homepage"`
			MainProgram string `json:"mainProgram"`
			// nixpkgs' check-meta expects the attribute, even empty.
			Maintainers *[]any `json:"maintainers"`
			License     struct {
				SpdxID string `json:"spdxId"`
			} `json:"license"`
		} `json:"meta"`
		Src               string   `json:"src"`
		DoCheck           bool     `json:"doCheck"`
		CheckPhase        string   `json:"checkPhase"`
		Offline           []string `json:"offlineTestPackages"`
		Version           string   `json:"version"`
		Ldflags           []string `json:"ldflags"`
		OverriddenLdflags []string `json:"overriddenLdflags"`
		PostInstall       string   `json:"postInstall"`
		NativeBuildInputs []string `json:"nativeBuildInputs"`
	}
	if err := c.eval(t, "package", "{ }", &p, "repo = "+nixPath(repo)+";"); err != nil {
		t.Fatal(err)
	}
	if p.Meta.License.SpdxID != "Apache-2.0" || p.Meta.Homepage == "" || p.Meta.Description == "" || p.Meta.MainProgram != "cachix-filter-hook" {
		t.Errorf("meta is incomplete: %+v", p.Meta)
	}
	if p.Meta.Maintainers == nil {
		t.Errorf("meta.maintainers is missing: nixpkgs' check-meta expects it (an empty list will do)")
	}
	if lic, err := os.ReadFile(filepath.Join(root, "LICENSE")); err != nil || !bytes.Contains(lic, []byte("Apache License")) || !bytes.Contains(lic, []byte("Version 2.0, January 2004")) {
		t.Errorf("LICENSE is not the Apache License 2.0 (%v)", err)
	}
	// finalAttrs, not rec: an override of version reaches the binary's
	// version string.
	if !slices.Contains(p.Ldflags, "-X main.version="+p.Version) {
		t.Errorf("ldflags %q lack -X main.version=%s", p.Ldflags, p.Version)
	}
	if !slices.Contains(p.OverriddenLdflags, "-X main.version=9.9.9") {
		t.Errorf("after overrideAttrs { version = \"9.9.9\"; }, ldflags are %q: the package does not take finalAttrs", p.OverriddenLdflags)
	}
	if !p.DoCheck || !strings.Contains(p.CheckPhase, "go test "+strings.Join(p.Offline, " ")) {
		t.Errorf("checkPhase does not run the offline tests %v:\n%s", p.Offline, p.CheckPhase)
	}

	// What the source holds, against what it should.
	var got []string
	err := filepath.WalkDir(p.Src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(p.Src, path)
			got = append(got, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing the package's source %s: %v", p.Src, err)
	}
	for _, f := range got {
		if !packageFile(f) || strings.HasPrefix(f, "vendor/") || strings.HasPrefix(f, "build/") || strings.HasPrefix(f, ".") {
			t.Errorf("the package's source holds %s", f)
		}
	}
	var want []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "vendor" || rel == "build") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && (strings.HasSuffix(rel, ".go") || rel == "go.mod" || rel == "go.sum" || rel == "cachix-filter-hook.1" || rel == "hook.conf.example" || strings.HasPrefix(rel, "cli/testdata/")) {
			want = append(want, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("the package's source lacks %s", f)
		}
	}
	t.Logf("the package's source: %d files", len(got))

	if !slices.Contains(p.NativeBuildInputs, "install-shell-files") {
		t.Errorf("nativeBuildInputs %q lack installShellFiles", p.NativeBuildInputs)
	}
	checkPostInstall(t, p.Src, p.PostInstall)
}

// checkPostInstall runs the package's postInstall in its source, as
// buildGoModule does after installing the binary in $out/bin, with
// stand-ins for installShellFiles' installManPage and
// installShellCompletion that install where nixpkgs' do: the man page and
// the three completions must land there, and the bash one must load.
func checkPostInstall(t *testing.T, src, postInstall string) {
	t.Helper()
	for _, want := range []string{"installManPage cachix-filter-hook.1", "installShellCompletion --cmd cachix-filter-hook", "--bash", "--zsh", "--fish"} {
		if !strings.Contains(postInstall, want) {
			t.Errorf("postInstall lacks %q:\n%s", want, postInstall)
		}
	}
	out := t.TempDir()
	bin := filepath.Join(out, "bin", "cachix-filter-hook")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	standins := `
installManPage() {
  local f
  for f; do install -D -m 0644 "$f" "$out/share/man/man1/$(basename "$f")"; done
}
installShellCompletion() {
  local name= shell
  while (($#)); do
    case $1 in
    --cmd) name=$2; shift 2 ;;
    --bash) install -D -m 0644 "$2" "$out/share/bash-completion/completions/$name.bash"; shift 2 ;;
    --zsh) install -D -m 0644 "$2" "$out/share/zsh/site-functions/_$name"; shift 2 ;;
    --fish) install -D -m 0644 "$2" "$out/share/fish/vendor_completions.d/$name.fish"; shift 2 ;;
    *) echo "installShellCompletion: unexpected $1" >&2; return 1 ;;
    esac
  done
}
set -euo pipefail
`
	cmd := exec.Command("bash", "-c", standins+postInstall)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "out="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postInstall: %v\n%s", err, b)
	}
	man, err := os.ReadFile(filepath.Join(out, "share/man/man1/cachix-filter-hook.1"))
	if want, _ := os.ReadFile(filepath.Join(repoRoot(t), "cachix-filter-hook.1")); err != nil || !bytes.Equal(man, want) {
		t.Errorf("postInstall did not install cachix-filter-hook.1 (%v)", err)
	}
	for _, f := range []string{"share/zsh/site-functions/_cachix-filter-hook", "share/fish/vendor_completions.d/cachix-filter-hook.fish"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("postInstall: %s missing or empty (%v)", f, err)
		}
	}
	load := "source " + filepath.Join(out, "share/bash-completion/completions/cachix-filter-hook.bash") + " && complete -p cachix-filter-hook"
	if b, err := exec.Command("bash", "--norc", "-c", load).CombinedOutput(); err != nil || !strings.Contains(string(b), "_cachix_filter_hook") {
		t.Errorf("the installed bash completion does not load: %v\n%s", err, b)
	}
}

// copyTree copies the regular files and directories of src into dst,
// skipping .git and symlinks.
// packageFile says whether the file rel (relative to the repository's
// root, outside the directories it leaves out) is one nix/package.nix's
// source keeps: what the build and checkPhase's tests read. TestPackage
// checks the filter against it, and TestOfflineTestPackages runs
// checkPhase's tests on a copy of just these files.
func packageFile(rel string) bool {
	return strings.HasSuffix(rel, ".go") || rel == "go.mod" || rel == "go.sum" ||
		rel == "cachix-filter-hook.1" || rel == "hook.conf.example" || strings.Contains("/"+rel, "/testdata/")
}

// copyPackageSource copies into dst the files of the repository at src
// that the package's source holds (see packageFile), with the
// directories nix/package.nix leaves out left out.
func copyPackageSource(src, dst string) error {
	excluded := []string{"vendor", "build", "docs", "examples", "nix", "scripts"}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && rel != "." && (strings.HasPrefix(d.Name(), ".") || slices.Contains(excluded, rel)) {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || !packageFile(rel) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
}

// nix flake check --no-build, with nixpkgs replaced by stub/flake.nix (and
// its lib input by the nixpkgs.lib checkout), as docs/nix-checks.md shows.
func TestFlakeCheck(t *testing.T) {
	c := needCheckouts(t)
	root := repoRoot(t)
	// A copy, so that `path:` does not take in vendor/ or build/ of the
	// work tree, and the lock file it would write goes nowhere.
	repo := t.TempDir()
	if err := copyTree(root, repo); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, "nix", "--extra-experimental-features", "nix-command flakes",
		"flake", "check", "--no-build", "--no-write-lock-file",
		"--override-input", "nixpkgs", "path:"+filepath.Join(repo, "test", "nixmodules", "stub"),
		"--override-input", "nixpkgs/lib", "path:"+c.lib,
		"path:"+repo)
	if err != nil {
		t.Fatalf("nix flake check --no-build: %v\n%s", err, out)
	}
}

// offlinePackages reads nix/offline-test-packages.nix: the packages whose
// tests nix/package.nix's checkPhase runs.
func offlinePackages(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "nix", "offline-test-packages.nix"))
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, m := range regexp.MustCompile(`"(\./[^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		pkgs = append(pkgs, m[1])
	}
	if len(pkgs) < 5 {
		t.Fatalf("nix/offline-test-packages.nix lists %d packages: %q", len(pkgs), pkgs)
	}
	return pkgs
}

// needNix are the packages whose tests need Nix (or build with it), so
// that checkPhase, which has none, cannot run them.
var needNix = []string{"./cli", "./test", "./test/matrix", "./test/nixmodules"}

// Every package with tests is in nix/offline-test-packages.nix or in
// needNix: one left out would have its tests silently not run by
// checkPhase. (Listed tests that do need Nix fail TestOfflineTestPackages.)
func TestOfflineTestPackagesListed(t *testing.T) {
	tallied(t)
	root := repoRoot(t)
	pkgs := offlinePackages(t)
	listed, err := run(t, nil, "go", "list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}", root+"/...")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(listed) {
		rel, _ := filepath.Rel(root, dir)
		rel = "./" + rel
		if !slices.Contains(pkgs, rel) && !slices.Contains(needNix, rel) {
			t.Errorf("%s has tests but is not in nix/offline-test-packages.nix: add it there (checkPhase runs its tests without Nix, network or HOME), or, if its tests need Nix, to needNix in %s", rel, "test/nixmodules/modules_test.go")
		}
	}
}

// The packages nix/package.nix tests in checkPhase, run as the build
// sandbox would: no Nix on PATH, HOME a directory that does not exist,
// GOPROXY=off, no NIX_* or CFH_* variables.
func TestOfflineTestPackages(t *testing.T) {
	tallied(t)
	if testing.Short() {
		t.Skip("runs the unit tests of every package in nix/offline-test-packages.nix")
	}
	root := repoRoot(t)
	pkgs := offlinePackages(t)

	// A PATH with the host's tools but no Nix.
	bin := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(goBin, filepath.Join(bin, "go")); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, "nix") || name == "go" {
				continue
			}
			if _, err := os.Lstat(filepath.Join(bin, name)); errors.Is(err, fs.ErrNotExist) {
				os.Symlink(filepath.Join(dir, name), filepath.Join(bin, name))
			}
		}
	}
	// HOME names a directory that does not exist, as the sandbox's
	// /homeless-shelter; not that one: run as root, some tests create
	// it (in the sandbox they cannot, and cope), and Nix refuses to
	// build while /homeless-shelter exists.
	home := filepath.Join(t.TempDir(), "homeless-shelter")
	env := []string{"PATH=" + bin, "HOME=" + home, "GOPROXY=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "TMPDIR=" + t.TempDir()}
	for _, kv := range os.Environ() {
		// The Go caches, so that this does not rebuild everything.
		if strings.HasPrefix(kv, "GOCACHE=") || strings.HasPrefix(kv, "GOMODCACHE=") || strings.HasPrefix(kv, "GOROOT=") {
			env = append(env, kv)
		}
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE"} {
		if os.Getenv(k) == "" {
			v, err := run(t, nil, "go", "env", k)
			if err != nil {
				t.Fatal(err)
			}
			env = append(env, k+"="+strings.TrimSpace(v))
		}
	}
	// On what the package's source holds, not the repository: a test
	// that reads a file the source leaves out fails checkPhase.
	src := t.TempDir()
	if err := copyPackageSource(root, src); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"test", "-count=1"}, pkgs...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = src
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test %s without Nix, HOME or network (what checkPhase runs): %v\n%s", strings.Join(pkgs, " "), err, tail(string(out), 6000))
	}
	t.Logf("%s", out)
}

// A secret file given in settings as a Nix path literal
// (cachix.auth_token_file = /run/secrets/token) is rendered as that path,
// as authTokenFile is: formats.toml writes its value with
// builtins.toJSON, which copies a path into the world-readable store, and
// hook.conf then named the copy.
func TestSecretPathLiterals(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"token", "signing", "secret-a", "secret-b"} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte("not-a-real-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = nixPath(f)
	}
	settings := fmt.Sprintf(`{
		store = "file:///var/cache/a"; allow = [ "*" ]; secret_key_file = %s;
		cachix.auth_token_file = %s; cachix.signing_key_file = %s;
		target = [ { cache = "work"; allow = [ "*" ]; } { store = "file:///var/cache/b"; allow = [ "*" ]; secret_key_file = %s; } ];
	}`, files["secret-a"], files["token"], files["signing"], files["secret-b"])
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		t.Run(m.attr, func(t *testing.T) {
			var r map[string]any
			if err := c.eval(t, m.attr+".settings", fmt.Sprintf(`{ %s = { enable = true; settings = %s; }; }`, m.path, settings), &r); err != nil {
				t.Fatal(err)
			}
			out := validate(t, bin, r)
			for _, name := range []string{"token", "signing", "secret-a", "secret-b"} {
				if want := fmt.Sprintf("%q", filepath.Join(dir, name)); !strings.Contains(out, want) {
					t.Errorf("hook.conf does not name %s as given:\n%s", want, out)
				}
			}
			for _, name := range []string{"token", "signing", "secret-a", "secret-b"} {
				if strings.Contains(out, "-"+name+`"`) {
					t.Errorf("hook.conf names a copy of %s in the Nix store:\n%s", name, out)
				}
			}
		})
	}
}

// The directory of a file:// store is the URI's path as Nix reads it,
// %-decoded: the worker's ReadWritePaths= and tmpfiles named
// "/srv/my%20cache" while nix copy wrote "/srv/my cache", read-only
// under ProtectSystem = "strict".
func TestNixOSFileStoreDirDecoded(t *testing.T) {
	r := needCheckouts(t).evalNixOS(t, `{ store = "file:///srv/my%20cache?compression=zstd"; allow = [ "*" ]; target = [ { store = "file:///srv/caf%C3%A9%2525"; allow = [ "*" ]; } ]; }`)
	// Decoded, as Nix 2.18 and later read it, and as written, as Nix 2.8
	// does (and, by NixOS/nix#15280, some later ones in some paths).
	for _, dir := range []string{"/srv/my cache", "/srv/café%%25", "/srv/my%%20cache", "/srv/caf%%C3%%A9%%2525"} {
		wantTmpfiles(t, r, `d "`+dir+`" 0755 root root -`)
		wantWritable(t, r, dir)
	}
}

// A local store target (a path, local://, local-overlay://) is written
// by nix copy in the worker itself, as root: its root and the
// directories its query names, and a local-overlay:// store's local
// lower store's, as the worker checks them. The worker's ReadWritePaths=
// had only file:// stores' directories, so nix copy found them
// read-only, and docs/nixos.md had them added by hand. The store
// directory (real=) is made as Nix wants it: root's, sticky, the build
// users' group's.
func TestNixOSLocalStoreDirs(t *testing.T) {
	r := needCheckouts(t).evalNixOS(t, `{
		store = "/srv/store?state=/srv/my%20state";
		allow = [ "*" ];
		target = [
			{ store = "local:///srv/l?real=/srv/real&log=/srv/log"; allow = [ "*" ]; }
			{ store = "local-overlay:///srv/o?upper-layer=/srv/upper&lower-store=local%3A%2F%2F%2Fsrv%2Flower%3Fstate%3D%2Fsrv%2Flstate"; allow = [ "*" ]; }
			{ store = "s3://bucket?root=/srv/not-local"; allow = [ "*" ]; }
		];
	}`)
	wantWritable(t, r, "/srv/store", "/srv/my state", "/srv/l", "/srv/real", "/srv/log", "/srv/o", "/srv/upper", "/srv/lower", "/srv/lstate")
	wantNotWritable(t, r, "/srv/not-local", "an s3:// store's root= is no directory here")
	wantTmpfiles(t, r, `d "/srv/store" 0755 root root -`, `d "/srv/lower" 0755 root root -`, `d "/srv/real" 1775 root nixbld -`)
}

// A local store named as Nix's local store with a root= in its query
// (local?root=ROOT, as `nix copy --to` takes it) is a local store at
// ROOT, as the worker checks it (LocalStoreDirs): the module looked only
// at a path, local:// and local-overlay://, so ROOT was left out of
// ReadWritePaths= (nix copy found it read-only). And under any root
// without real=, Nix's store directory is ROOT/nix/store, which Nix
// makes root's, sticky and the build users' group's: a chown the worker,
// without capabilities, may not do, so docs/nixos.md had it made by
// hand. It is made as real= is.
func TestNixOSLocalStoreRootQuery(t *testing.T) {
	r := needCheckouts(t).evalNixOS(t, `{
		store = "local?root=/srv/q";
		allow = [ "*" ];
		target = [
			{ store = "/srv/p/"; allow = [ "*" ]; }
			{ store = "local-overlay?root=/srv/o&upper-layer=/srv/upper&lower-store=local%3Froot%3D%2Fsrv%2Flower"; allow = [ "*" ]; }
			{ store = "local:///srv/r?real=/srv/real"; allow = [ "*" ]; }
		];
	}`)
	wantWritable(t, r, "/srv/q", "/srv/o", "/srv/upper", "/srv/lower")
	for _, dir := range []string{"/srv/q", "/srv/p", "/srv/o", "/srv/lower"} {
		wantTmpfiles(t, r, `d "`+dir+`/nix/store" 1775 root nixbld -`)
	}
	if line := `d "/srv/r/nix/store" 1775 root nixbld -`; slices.Contains(r.Tmpfiles, line) {
		t.Errorf("tmpfiles %q: %q, though real= puts the store directory elsewhere", r.Tmpfiles, line)
	}
}

// Nix reads scheme:/path as scheme:///path (nix copy --to file:/srv/cache
// writes /srv/cache), and the worker checks those directories so
// (config.FileStoreDirs, LocalStoreDirs), but the module looked only at
// "file://", "local://" and "local-overlay://": the directories of
// file:/DIR, local:/ROOT and a lower-store=local:/ROOT were left out of
// ReadWritePaths= and tmpfiles, and nix copy found them read-only.
func TestNixOSStoreSchemeWithoutSlashes(t *testing.T) {
	r := needCheckouts(t).evalNixOS(t, `{
		store = "file:/srv/fc?compression=zstd";
		allow = [ "*" ];
		target = [
			{ store = "local:/srv/l?state=/srv/lstate"; allow = [ "*" ]; }
			{ store = "local-overlay:/srv/o?upper-layer=/srv/upper&lower-store=local%3A%2Fsrv%2Flower"; allow = [ "*" ]; }
		];
	}`)
	wantWritable(t, r, "/srv/fc", "/srv/l", "/srv/lstate", "/srv/o", "/srv/upper", "/srv/lower")
	wantTmpfiles(t, r, `d "/srv/fc" 0755 root root -`, `d "/srv/l" 0755 root root -`, `d "/srv/l/nix/store" 1775 root nixbld -`, `d "/srv/lower/nix/store" 1775 root nixbld -`)
}

// A local store with no root (no path, no root=) has store= as its
// store directory, whatever state=, log= or upper-layer= say, as the
// worker's check has it (LocalStoreDirs): the module took store= only
// when none of them was set, so with state= the store directory was left
// out of ReadWritePaths= and nix copy found it read-only. Under a root,
// store= only names the paths.
func TestNixOSLocalStoreDirWithState(t *testing.T) {
	r := needCheckouts(t).evalNixOS(t, `{
		store = "local://?state=/srv/st&store=/srv/sd";
		allow = [ "*" ];
		target = [
			{ store = "local:///srv/r?store=/srv/not-a-dir"; allow = [ "*" ]; }
		];
	}`)
	wantWritable(t, r, "/srv/st", "/srv/sd", "/srv/r")
	wantNotWritable(t, r, "/srv/not-a-dir", "under a root, store= names no directory")
	wantTmpfiles(t, r, `d "/srv/sd" 1775 root nixbld -`)
}

// Any path literal in settings is rendered as the path it names, not
// only a secret file's: formats.toml would copy it into the
// world-readable store (queue.dir: root's private queue, a store
// target's directory; evaluation fails where it does not exist) and
// name the copy, read-only, in hook.conf. The NixOS module's service
// reads the same paths.
func TestPathLiteralsNotCopied(t *testing.T) {
	c := needCheckouts(t)
	dir := t.TempDir()
	settings := fmt.Sprintf(`{ cache = "a"; allow = [ "*" ]; queue.dir = %s; target = [ { store = %s; allow = [ "*" ]; } ]; }`, nixPath(dir), nixPath(dir))
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		var r nixosResult
		attr := m.attr
		if m.attr == "hm" {
			attr = "hm.settings"
		}
		out := any(&r)
		if m.attr == "hm" {
			out = &r.Settings
		}
		if err := c.eval(t, attr, fmt.Sprintf(`{ %s = { enable = true; settings = %s; }; }`, m.path, settings), out); err != nil {
			t.Fatal(err)
		}
		queue, _ := r.Settings["queue"].(map[string]any)
		targets, _ := r.Settings["target"].([]any)
		var store any
		if len(targets) == 1 {
			store = targets[0].(map[string]any)["store"]
		}
		if queue["dir"] != dir || store != dir {
			t.Errorf("%s: hook.conf has queue.dir = %v and target[0].store = %v, want %s for both", m.attr, queue["dir"], store, dir)
		}
		if want := `d "` + dir + `" 0700 root root -`; m.attr == "nixos" && !slices.Contains(r.Tmpfiles, want) {
			t.Errorf("tmpfiles %q, want %q", r.Tmpfiles, want)
		}
	}
}

// A secret file in the Nix store (authTokenFile = "${./token}", a
// pkgs.writeText) is world-readable: an assertion refuses it, naming the
// option, rather than the config evaluating fine with the secret
// published and every push refused at run time.
func TestSecretInStoreAssertion(t *testing.T) {
	c := needCheckouts(t)
	inStore := `"/nix/store/` + strings.Repeat("a", 32) + `-token"`
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		for _, tc := range []struct{ cfg, want string }{
			{`settings = { cache = "a"; allow = [ "*" ]; }; authTokenFile = ` + inStore + `;`, "cachix.auth_token_file"},
			{`settings = { cache = "a"; allow = [ "*" ]; cachix.signing_key_file = "${pkgs.writeText "key" "k:x"}"; };`, "cachix.signing_key_file"},
			{`settings = { store = "file:///x"; allow = [ "*" ]; secret_key_file = ` + inStore + `; };`, "secret_key_file"},
			{`settings = { cache = "a"; allow = [ "*" ]; target = [ { store = "file:///x"; allow = [ "*" ]; secret_key_file = "${pkgs.writeText "key" "k:x"}"; } ]; };`, "target[0].secret_key_file"},
			// A path literal of a flake's source (./secrets/key in a
			// flake is /nix/store/...-source/secrets/key): the file is
			// in the store already.
			{`settings = { cache = "a"; allow = [ "*" ]; cachix.signing_key_file = /nix/store/` + strings.Repeat("b", 32) + `-source/secrets/key; };`, "cachix.signing_key_file"},
			// The key nix copy signs with, named in the store URI
			// (escaped, as Nix decodes it).
			{`settings = { store = "file:///x?compression=zstd&secret-key=${pkgs.writeText "key" "k:x"}"; allow = [ "*" ]; };`, "store"},
			{`settings = { cache = "a"; allow = [ "*" ]; target = [ { store = "s3://b?secret%2Dkey=%2Fnix%2Fstore%2F` + strings.Repeat("c", 32) + `-key"; allow = [ "*" ]; } ]; };`, "target[0].store"},
			// One key of secret-keys' list (Nix 2.29 and later).
			{`settings = { store = "file:///x?secret-keys=/run/secrets/k1%2C${pkgs.writeText "key" "k:x"}"; allow = [ "*" ]; };`, "store (its secret-keys)"},
			// The private key ssh logs in with.
			{`settings = { store = "ssh-ng://nix@host?ssh-key=${pkgs.writeText "id" "x"}"; allow = [ "*" ]; };`, "store (its ssh-key)"},
			// An https store's TLS client key (Nix 2.34 and later).
			{`settings = { store = "https://cache.example.org?tls-private-key=${pkgs.writeText "tls" "x"}"; allow = [ "*" ]; };`, "store (its tls-private-key)"},
		} {
			var failed []string
			if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ pkgs, ... }: { %s = { enable = true; %s }; }`, m.path, tc.cfg), &failed); err != nil {
				t.Fatal(err)
			}
			if len(failed) != 1 || !strings.Contains(failed[0], tc.want) || !strings.Contains(failed[0], "in the Nix store") {
				t.Errorf("%s: %s: failed assertions %q, want one naming %s in the Nix store", m.attr, tc.cfg, failed, tc.want)
			}
		}
		// Outside the store, and a path literal: no assertion.
		var failed []string
		if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ %s = { enable = true; settings = { cache = "a"; allow = [ "*" ]; cachix.signing_key_file = /run/secrets/key; target = [ { store = "file:///nix/store-cache?secret-key=/run/secrets/key"; } ]; }; authTokenFile = "/run/secrets/token"; }; }`, m.path), &failed); err != nil {
			t.Fatal(err)
		}
		if len(failed) != 0 {
			t.Errorf("%s: secrets outside the store: failed assertions %q", m.attr, failed)
		}
	}
}

// A credential in a store URI or an upstream (https://user:password@,
// ?token=...) is refused by the program, but only when hook.conf is
// built: by then the value is in the world-readable store, in the .drv of
// the rendered file and in the file itself. The modules refuse it at
// evaluation, naming the key, and without quoting the secret.
func TestCredentialsInSettingsAssertion(t *testing.T) {
	c := needCheckouts(t)
	const secret = "hunter2"
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		for _, tc := range []struct{ settings, want string }{
			{`{ store = "https://u:hunter2@cache.example.org"; allow = [ "*" ]; }`, "store"},
			{`{ store = "s3://b?region=x&aws_secret_access_key=hunter2"; allow = [ "*" ]; }`, "store"},
			// As Nix and the program read the name: %-decoded.
			{`{ store = "https://cache.example.org?%74oken=hunter2"; allow = [ "*" ]; }`, "store"},
			{`{ cache = "a"; allow = [ "*" ]; target = [ { store = "ssh-ng://u:hunter2@host"; allow = [ "*" ]; } ]; }`, "target[0].store"},
			{`{ cache = "a"; allow = [ "*" ]; upstream = [ "https://cache.nixos.org" "https://u:hunter2@up.example.org" ]; }`, "upstream[1]"},
			{`{ cache = "a"; allow = [ "*" ]; target = [ { cache = "b"; upstream = [ "https://up.example.org?token=hunter2" ]; } ]; }`, "target[0].upstream[0]"},
		} {
			var failed []string
			if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ %s = { enable = true; settings = %s; }; }`, m.path, tc.settings), &failed); err != nil {
				t.Fatal(err)
			}
			if len(failed) != 1 || !strings.Contains(failed[0], m.path+".settings: "+tc.want+" ") || !strings.Contains(failed[0], "Nix store") {
				t.Errorf("%s: %s: failed assertions %q, want one naming %s", m.attr, tc.settings, failed, tc.want)
			}
			for _, f := range failed {
				if strings.Contains(f, secret) {
					t.Errorf("%s: %s: the assertion quotes the secret: %q", m.attr, tc.settings, f)
				}
			}
		}
		// What is not a credential: a user alone, the key files Nix signs
		// with (checked as files), a parameter that only looks like one.
		var failed []string
		if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ %s = { enable = true; settings = { store = "ssh-ng://nix@host?secret-key=/run/k&secret-keys=/run/k2&compression=zstd"; allow = [ "*" ]; upstream = [ "https://cache.nixos.org" ]; target = [ { store = "s3://b?profile=p&region=x"; } ]; }; }; }`, m.path), &failed); err != nil {
			t.Fatal(err)
		}
		if len(failed) != 0 {
			t.Errorf("%s: no credential: failed assertions %q", m.attr, failed)
		}
	}
}

// settings is freeform, so a key that is no key of hook.conf is refused
// only when hook.conf is built; one named for a secret (cachix.auth_token,
// a guess at how to give the token) has by then put its value, the
// secret, into the world-readable store. The modules refuse such a key at
// evaluation, naming it and the keys that take the secret's file.
func TestSecretNamedKeyAssertion(t *testing.T) {
	c := needCheckouts(t)
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		for _, tc := range []struct{ settings, want string }{
			{`{ cache = "a"; allow = [ "*" ]; cachix.auth_token = "hunter2"; }`, "cachix.auth_token"},
			{`{ cache = "a"; allow = [ "*" ]; cachix.signing_key = "k:hunter2"; }`, "cachix.signing_key"},
			{`{ cache = "a"; allow = [ "*" ]; target = [ { store = "file:///x"; secret_key = "k:hunter2"; } ]; }`, "target[0].secret_key"},
			{`{ cache = "a"; allow = [ "*" ]; CACHIX_AUTH_TOKEN = "hunter2"; }`, "CACHIX_AUTH_TOKEN"},
		} {
			var failed []string
			if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ %s = { enable = true; settings = %s; }; }`, m.path, tc.settings), &failed); err != nil {
				t.Fatal(err)
			}
			if len(failed) != 1 || !strings.Contains(failed[0], m.path+".settings: "+tc.want+" ") || strings.Contains(failed[0], "hunter2") {
				t.Errorf("%s: %s: failed assertions %q, want one naming %s, without its value", m.attr, tc.settings, failed, tc.want)
			}
		}
		// The keys that name a secret's file are hook.conf's own.
		var failed []string
		if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ %s = { enable = true; settings = { cache = "a"; allow = [ "*" ]; secret_key_file = "/run/k"; cachix = { auth_token_file = "/run/t"; signing_key_file = "/run/s"; }; target = [ { store = "file:///x"; secret_key_file = "/run/k2"; } ]; }; }; }`, m.path), &failed); err != nil {
			t.Fatal(err)
		}
		if len(failed) != 0 {
			t.Errorf("%s: the key files: failed assertions %q", m.attr, failed)
		}
	}
}

// pushOnActivation.pin goes to `push --pin`, which refuses a name it
// cannot pin (an unknown placeholder, a space) and then queues nothing;
// the activation's `|| true` hid that, so every switch pushed nothing
// without a word. The modules refuse such a name at evaluation, as push
// does (cli/pin.go's checkPinTemplate), naming the option.
func TestPinNameAssertion(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		for _, tc := range []struct {
			pin string
			ok  bool
		}{
			{`true`, true},
			{`"{host}-{target}"`, true},
			{`"ci.build+1@x=y:z"`, true},
			{`"my pin"`, false},
			{`"{hostname}-system"`, false},
			{`"-{host}"`, false},
			{`""`, false},
			{`"` + strings.Repeat("p", 201) + `"`, false},
		} {
			var failed []string
			if err := c.eval(t, m.attr+".failed", fmt.Sprintf(`{ %s = { enable = true; settings = { cache = "a"; allow = [ "*" ]; }; pushOnActivation.pin = %s; }; }`, m.path, tc.pin), &failed); err != nil {
				t.Fatal(err)
			}
			if tc.ok && len(failed) != 0 {
				t.Errorf("%s: pin = %s: failed assertions %q", m.attr, tc.pin, failed)
			}
			if !tc.ok && (len(failed) != 1 || !strings.Contains(failed[0], m.path+".pushOnActivation.pin")) {
				t.Errorf("%s: pin = %s: failed assertions %q, want one naming pushOnActivation.pin", m.attr, tc.pin, failed)
			}
			// What push itself says of the name. (It takes --pin "" as no
			// pin: the module refuses that, since it pins nothing.)
			if tc.pin != "true" && tc.pin != `""` {
				name := strings.Trim(tc.pin, `"`)
				_, err := run(t, nil, bin, "--config", "/nonexistent/hook.conf", "push", "--dry-run", "--pin", name, "/nix/store/"+strings.Repeat("a", 32)+"-x")
				// Its message, after run's command line; past the name,
				// push stops at the missing config.
				_, msg, _ := strings.Cut(fmt.Sprint(err), "\n")
				if refused := strings.Contains(msg, "--pin "); refused == tc.ok {
					t.Errorf("push --pin %q: refused %v, the module's check says ok %v: %v", name, refused, tc.ok, err)
				}
			}
		}
	}
}

// Paths the module writes into tmpfiles.d lines and the worker's
// ReadWritePaths= are the ones hook.conf names, which validate accepts
// with a space or a '%' in them. Unquoted, a space split the line
// (tmpfiles ignored it, so the queue was never made; ReadWritePaths took
// "/srv/cfh" and "queue"), and '%h' was a specifier (root's home).
func TestNixOSPathsQuoted(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)
	for _, tool := range []string{"systemd-tmpfiles", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CFH_TEST_REQUIRE_MODULES") == "1" {
				t.Fatalf("%s is not installed (.ci/run installs systemd): %v, and CFH_TEST_REQUIRE_MODULES=1", tool, err)
			}
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	r := c.evalNixOS(t, `{ cache = "main"; allow = [ "*" ]; queue.dir = "/srv/cfh queue"; log.file = "/var/log/cfh %h/worker.log"; }`)
	validate(t, bin, r.Settings)

	// tmpfiles, under a root of its own: the directories hook.conf
	// names, and nothing else.
	root := t.TempDir()
	rules := filepath.Join(t.TempDir(), "cachix-filter-hook.conf")
	if err := os.WriteFile(rules, []byte(strings.Join(r.Tmpfiles, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, "systemd-tmpfiles", "--create", "--root="+root, rules)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-tmpfiles on the module's rules %q: %v\n%s", r.Tmpfiles, err, out)
	}
	for _, dir := range []string{"/srv/cfh queue", "/var/log/cfh %h"} {
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
			t.Errorf("the rules %q did not make %q: %v", r.Tmpfiles, dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "srv", "cfh")); err == nil {
		t.Errorf("the rules %q made /srv/cfh", r.Tmpfiles)
	}

	// ReadWritePaths=, one line per path as NixOS writes them.
	paths := r.readWritePaths()
	unit := "[Service]\nExecStart=/bin/true\n"
	for _, p := range paths {
		unit += fmt.Sprintf("ReadWritePaths=%v\n", p)
	}
	f := filepath.Join(t.TempDir(), "cfh-paths-test.service")
	if err := os.WriteFile(f, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its warnings go to stderr, with exit status 0.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "systemd-analyze", "verify", f).CombinedOutput()
	if bytes.Contains(b, []byte("ReadWritePaths")) {
		t.Errorf("systemd refuses the worker's ReadWritePaths:\n%s%s%v", unit, b, err)
	}
	for _, p := range paths {
		if s := fmt.Sprint(p); strings.Contains(strings.ReplaceAll(s, "%%", ""), "%") {
			t.Errorf("ReadWritePaths=%s: a single %% starts a specifier (%%h: root's home)", s)
		}
	}
}

// hook.conf is built by a command that runs the package's `validate
// --config-only` on the rendered file: `settings` is freeform, and a
// misspelt key went through to the hook, which refused the whole file at
// every build (it queued nothing). The command is run here as the build
// would run it, with the real binary: a bad key fails it, naming the key,
// and leaves no $out; a good file is copied as it is.
func TestHookConfCheckedAtBuild(t *testing.T) {
	c := needCheckouts(t)
	w := newActWorld(t, hookBin(t))
	for _, m := range []struct{ attr, path string }{{"nixos", "services.cachix-filter-hook"}, {"hm", "programs.cachix-filter-hook"}} {
		for _, tc := range []struct{ settings, bad string }{
			{`{ cache = "main"; allow = [ "*" ]; deny = [ "*-doc" ]; }`, ""},
			{`{ cache = "main"; allow = [ "*" ]; denny = [ "*-doc" ]; }`, `unknown key "denny"`},
			{`{ cache = "main"; allow = [ "*" ]; queue.retry_max = "soon"; }`, "retry_max"},
		} {
			t.Run(m.attr, func(t *testing.T) {
				var r struct {
					Settings    map[string]any `json:"settings"`
					ConfigCheck string         `json:"configCheck"`
				}
				if err := c.eval(t, m.attr, fmt.Sprintf(`{ %s = { enable = true; package = %s; settings = %s; }; }`, m.path, w.pkg, tc.settings), &r); err != nil {
					t.Fatal(err)
				}
				for _, sandboxed := range []bool{false, true} {
					if sandboxed && os.Geteuid() != 0 {
						continue // testuser.New says whether CI allows that
					}
					dir, outDir := t.TempDir(), t.TempDir()
					// Open to the build user, as the store is.
					os.Chmod(filepath.Dir(dir), 0o755)
					os.Chmod(dir, 0o755)
					unchecked, out := filepath.Join(dir, "hook.conf"), filepath.Join(outDir, "out")
					hookConf(t, r.Settings, unchecked)
					// As a builder: nothing of this machine's but PATH (for cp).
					env := []string{"unchecked=" + unchecked, "out=" + out, "HOME=/homeless-shelter", "PATH=" + os.Getenv("PATH")}
					var stdout string
					var err error
					if sandboxed {
						stdout, err = runSandboxed(t, outDir, env, "bash", "-euc", r.ConfigCheck)
					} else {
						stdout, err = run(t, env, "bash", "-euc", r.ConfigCheck)
					}
					how := map[bool]string{false: "", true: " (in a sandbox)"}[sandboxed]
					_, statErr := os.Stat(out)
					switch {
					case tc.bad == "" && err != nil:
						t.Errorf("settings %s: the check%s refuses a good file: %v", tc.settings, how, err)
					case tc.bad == "" && statErr != nil:
						t.Errorf("settings %s: the check%s passes but writes no $out: %v", tc.settings, how, statErr)
					case tc.bad != "" && err == nil:
						t.Errorf("settings %s: the build of hook.conf%s passes:\n%s", tc.settings, how, stdout)
					case tc.bad != "" && !strings.Contains(err.Error(), tc.bad):
						t.Errorf("settings %s: the build%s fails, but does not say %q: %v", tc.settings, how, tc.bad, err)
					case tc.bad != "" && statErr == nil:
						t.Errorf("settings %s: the build%s fails but leaves $out", tc.settings, how)
					}
					if tc.bad == "" && statErr == nil {
						a, _ := os.ReadFile(unchecked)
						b, _ := os.ReadFile(out)
						if !bytes.Equal(a, b) {
							t.Errorf("$out%s is not the rendered file:\n%s\n---\n%s", how, b, a)
						}
					}
				}
			})
		}
	}
}

func TestNixOSStoreSchemeColonSlash(t *testing.T) {
	c := needCheckouts(t)
	stores := []string{
		"file:/srv/fc?compression=zstd",
		"file:/srv/frag#x",
		"local:/srv/lr?log=/srv/llog",
		"local-overlay:/srv/lo?upper-layer=/srv/lupper&lower-store=local%3A%2Fsrv%2Flower",
	}
	var targets []string
	for _, s := range stores {
		targets = append(targets, fmt.Sprintf("{ store = %q; allow = [ \"*\" ]; }", s))
	}
	r := c.evalNixOS(t, `{ cache = "c"; allow = [ "*" ]; target = [ `+strings.Join(targets, " ")+` ]; }`)
	paths := r.readWritePaths()
	for _, s := range stores {
		want := config.FileStoreDirs(s)
		dirs, storeDirs := config.LocalStoreDirs(s)
		want = append(append(want, dirs...), storeDirs...)
		if len(want) == 0 {
			t.Fatalf("%s: the program checks no directory of it", s)
		}
		if strings.Contains(s, "lower-store=") {
			// Checked as a store of its own (checkLowerStores).
			want = append(want, "/srv/lower", "/srv/lower/nix/store")
		}
		// Writable when it or a directory above it is listed.
		for _, dir := range want {
			q := strings.ReplaceAll(dir, "%", "%%")
			if !slices.ContainsFunc(paths, func(p any) bool {
				s, _ := p.(string)
				s = strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`)
				return s == q || strings.HasPrefix(q, strings.TrimRight(s, "/")+"/")
			}) {
				t.Errorf("%s: ReadWritePaths %q: no %q", s, paths, dir)
			}
		}
	}
}

// Every test of the package is counted in the summary: it calls tallied,
// needCheckouts or libExpr. The summary counted only needCheckouts' tests,
// and said all passed while a lib.nix check failed or skipped.
func TestEveryTestTallied(t *testing.T) {
	tallied(t)
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "test", "nixmodules", "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the package's test files: %v, %v", files, err)
	}
	counted := 0
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil {
				continue
			}
			// The helpers count their callers; a test calls one of them.
			names := []string{"tallied"}
			switch name := fn.Name.Name; {
			case name == "needCheckouts" || name == "libExpr":
			case strings.HasPrefix(name, "Test") && name != "TestMain":
				names = append(names, "needCheckouts", "libExpr")
				counted++
			default:
				continue
			}
			calls := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if id, ok := c.Fun.(*ast.Ident); ok && slices.Contains(names, id.Name) {
						calls = true
					}
				}
				return !calls
			})
			if !calls {
				t.Errorf("%s: %s is not counted in the summary: call one of %v", fset.Position(fn.Pos()), fn.Name.Name, names)
			}
		}
	}
	if counted < 10 {
		t.Errorf("found %d tests in %v", counted, files)
	}
}

func TestSummary(t *testing.T) {
	tallied(t)
	got := summary(map[string]string{"TestA": "passed", "TestC": "skipped", "TestB": "failed", "TestD": "skipped"}, "", "")
	if want := "module checks: 1 passed, 1 failed, 2 skipped; failed: TestB; skipped: TestC TestD (CFH_NIXPKGS_LIB and CFH_HOME_MANAGER unset)"; got != want {
		t.Errorf("summary:\n got %q\nwant %q", got, want)
	}
	if got := summary(map[string]string{"TestA": "passed"}, "/l", "/h"); got != "module checks: 1 passed, 0 failed, 0 skipped (with nixpkgs.lib /l and home-manager /h)" {
		t.Errorf("summary with checkouts: %q", got)
	}
}

// The modules' credential check (credentialsIn in nix/shared-options.nix)
// copies the program's (storeCredentials): run both on the same store
// URIs, so that neither drifts. A URI the program refuses as carrying a
// credential but the modules let through puts it in the world-readable
// store; the other way, the modules refuse a configuration that works.
func TestCredentialsCheckMatchesTheProgram(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)
	uris := []string{
		"https://u:hunter2@cache.example.org",
		"https://:hunter2@cache.example.org",
		"https://u:@cache.example.org",
		"https://u@cache.example.org",
		"HTTPS://u:hunter2@cache.example.org/x?compression=zstd",
		"ssh-ng://nix@host",
		"ssh://u:p%40ss@host",
		"https://u:pw@host#frag@x",
		"https://u%3Apw@host",
		"//u:hunter2@host",
		"///var/cache/nix",
		"/var/cache/nix",
		"file:///var/cache/nix?secret-key=/k&secret-keys=/a,/b",
		"file:///var/cache/nix#x?token=y",
		"s3://b?profile=p&region=eu-west-1",
		"s3://b?aws_secret_access_key=hunter2",
		"s3://b?AWS_SESSION_TOKEN=hunter2",
		"https://cache.example.org?%74oken=hunter2",
		"https://cache.example.org?token",
		"https://cache.example.org?to+ken=x",
		"https://cache.example.org?token%zz=x",
		"https://cache.example.org?x=token",
		"https://cache.example.org?passwd=x;y",
		"https://cache.example.org?Credentials=x",
		// The program lower-cases as Unicode does: a Kelvin sign is a
		// k, a dotted capital I an i, written or %-encoded.
		"https://cache.example.org?to\u212Aen=hunter2",
		"https://cache.example.org?credent%C4%B0al=hunter2",
	}
	targets := make([]string, len(uris))
	for i, u := range uris {
		targets[i] = fmt.Sprintf(`{ store = %q; allow = [ "*" ]; }`, u)
	}
	var failed []string
	if err := c.eval(t, "nixos.failed", fmt.Sprintf(`{ services.cachix-filter-hook = { enable = true; settings.target = [ %s ]; }; }`, strings.Join(targets, " ")), &failed); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(failed, "\n")
	dir := t.TempDir()
	for i, u := range uris {
		nixRefuses := strings.Contains(all, fmt.Sprintf("target[%d].store carries", i))
		conf := filepath.Join(dir, fmt.Sprintf("%d.conf", i))
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("store = %q\nallow = [\"*\"]\n[queue]\ndir = \"/tmp/q\"\n", u)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, nil, bin, "--config", conf, "validate", "--config-only")
		goRefuses := strings.Contains(fmt.Sprint(err), "store: ") && strings.Contains(fmt.Sprint(err), " carries ")
		if nixRefuses != goRefuses {
			t.Errorf("store %q: the modules refuse it as a credential: %v; the program: %v (%v)", u, nixRefuses, goRefuses, err)
		}
	}

	// An upstream takes no user at all (checkUpstream): https://TOKEN@host
	// is a token the program refuses, so the modules must too. The
	// program refuses other upstreams the modules may let through
	// (ssh://, a query), for no secret: the build fails, nothing leaks.
	ups := append([]string{
		"https://TOKEN@cache.example.org",
		"https://@cache.example.org",
		"HTTPS://TOKEN@cache.example.org/x",
		"https://cache.example.org/a@b",
		"https://cache.example.org",
		"file:///srv/cache",
		"//TOKEN@cache.example.org",
	}, uris...)
	targets = make([]string, len(ups))
	for i, u := range ups {
		targets[i] = fmt.Sprintf(`{ store = "file:///srv/c"; upstream = [ %q ]; allow = [ "*" ]; }`, u)
	}
	failed = nil
	if err := c.eval(t, "nixos.failed", fmt.Sprintf(`{ services.cachix-filter-hook = { enable = true; settings.target = [ %s ]; }; }`, strings.Join(targets, " ")), &failed); err != nil {
		t.Fatal(err)
	}
	all = strings.Join(failed, "\n")
	for i, u := range ups {
		nixRefuses := strings.Contains(all, fmt.Sprintf("target[%d].upstream[0] carries", i))
		conf := filepath.Join(dir, fmt.Sprintf("up%d.conf", i))
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("store = \"file:///srv/c\"\nupstream = [%q]\nallow = [\"*\"]\n[queue]\ndir = \"/tmp/q\"\n", u)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, nil, bin, "--config", conf, "validate", "--config-only")
		msg := fmt.Sprint(err)
		goRefuses := strings.Contains(msg, "upstream[0]: ")
		goCredential := goRefuses && (strings.Contains(msg, "takes no user or password") || strings.Contains(msg, " carries "))
		if goCredential && !nixRefuses {
			t.Errorf("upstream %q: the program refuses its user or password, the modules let it into the store (%v)", u, err)
		}
		if nixRefuses && !goRefuses {
			t.Errorf("upstream %q: the modules refuse it as a credential, the program takes it", u)
		}
	}
}

// A secret file's key takes an absolute path (checkValues,
// targetPathRules): the program refuses any other value, without showing
// it, since it may be the secret itself (auth_token_file = "eyJ..."). It
// refuses it only when hook.conf is built, with the value already in the
// world-readable store: the modules refuse the same values at
// evaluation, without quoting them either.
func TestSecretFileKeysTakeAbsolutePaths(t *testing.T) {
	c := needCheckouts(t)
	bin := hookBin(t)
	// Each key as the modules name it, and as the program does.
	keys := [][2]string{
		{"cachix.auth_token_file", "cachix.auth_token_file"},
		{"cachix.signing_key_file", "cachix.signing_key_file"},
		{"target[0].secret_key_file", "[[target]] #1: secret_key_file"},
	}
	dir := t.TempDir()
	for i, v := range []string{"eyJhbGciOiJIUzI1NiJ9.c2VjcmV0", "run/secrets/token", "~/token", "/run/secrets/token", ""} {
		var failed []string
		if err := c.eval(t, "nixos.failed", fmt.Sprintf(`{ services.cachix-filter-hook = { enable = true; settings = { cachix.auth_token_file = %q; cachix.signing_key_file = %[1]q; target = [ { store = "file:///srv/c"; allow = [ "*" ]; secret_key_file = %[1]q; } ]; }; }; }`, v), &failed); err != nil {
			t.Fatal(err)
		}
		all := strings.Join(failed, "\n")
		conf := filepath.Join(dir, fmt.Sprintf("%d.conf", i))
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("[cachix]\nauth_token_file = %q\nsigning_key_file = %[1]q\n[queue]\ndir = \"/tmp/q\"\n[[target]]\nstore = \"file:///srv/c\"\nallow = [\"*\"]\nsecret_key_file = %[1]q\n", v)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, nil, bin, "--config", conf, "validate", "--config-only")
		for _, k := range keys {
			nixRefuses := strings.Contains(all, k[0]) && strings.Contains(all, "not an absolute path")
			goRefuses := strings.Contains(fmt.Sprint(err), k[1]+": must be an absolute path")
			if nixRefuses != goRefuses {
				t.Errorf("%s = %q: the modules refuse it: %v; the program: %v (%v; modules: %q)", k[0], v, nixRefuses, goRefuses, err, failed)
			}
		}
		if v != "" && strings.Contains(all, v) {
			t.Errorf("%q: the modules' refusal quotes the value: %q", v, failed)
		}
	}
}
