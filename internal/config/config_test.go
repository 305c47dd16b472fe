package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// isolate clears every CACHIX_FILTER_HOOK_* variable, points HOME and
// the XDG directories at an empty temporary directory, which it returns,
// and the machine-wide config directory at another, where SystemFile
// is (none until a test writes it).
func isolate(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, EnvPrefix+"_") {
			t.Setenv(k, "")
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("XDG_STATE_HOME", filepath.Join(home, "state"))
	old := systemDir
	systemDir = filepath.Join(t.TempDir(), "etc", "cachix-filter-hook")
	t.Cleanup(func() { systemDir = old })
	return home
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// minimal is the smallest valid config, with an absolute queue dir so the
// tests do not depend on who runs them.
const minimal = "cache = \"mycache\"\nallow = [\"hello-*\"]\n[queue]\ndir = \"/tmp/q\"\n"

func path(name string) storepath.Path {
	return storepath.New("/nix/store", "0123456789abcdfghijklmnpqrsvwxyz", name)
}

func TestSearchPath(t *testing.T) {
	home := isolate(t)
	for _, tc := range []struct {
		xdg  string
		want []string
	}{
		{"", []string{filepath.Join(home, ".config/cachix-filter-hook/hook.conf"), SystemFile()}},
		{"/xdg", []string{"/xdg/cachix-filter-hook/hook.conf", SystemFile()}},
		// A relative XDG_CONFIG_HOME is invalid per the XDG spec and ignored.
		{"rel", []string{filepath.Join(home, ".config/cachix-filter-hook/hook.conf"), SystemFile()}},
	} {
		t.Setenv("XDG_CONFIG_HOME", tc.xdg)
		if got := searchPath(1000); !slices.Equal(got, tc.want) {
			t.Errorf("XDG_CONFIG_HOME=%q: searchPath(1000) = %q, want %q", tc.xdg, got, tc.want)
		}
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "")
	for _, euid := range []int{0, 1000} {
		if got := searchPath(euid); !slices.Equal(got, []string{SystemFile()}) {
			t.Errorf("no HOME: searchPath(%d) = %q", euid, got)
		}
	}
}

// The hook runs as root with no --config and whatever HOME nix-daemon
// has: it read root's ~/.config/cachix-filter-hook/hook.conf before the
// machine's file, and so followed other rules than the NixOS worker unit
// (--config /etc/...) and `sudo doctor` where nix-daemon had HOME=/root.
// Root reads the machine's file first, its own only where there is none.
func TestSearchPathRootReadsTheMachineFileFirst(t *testing.T) {
	home := isolate(t)
	homeFile := write(t, filepath.Join(home, ".config", "cachix-filter-hook", "hook.conf"), minimal)
	if got, want := searchPath(0), []string{SystemFile(), homeFile}; !slices.Equal(got, want) {
		t.Errorf("searchPath(0) = %q, want %q", got, want)
	}
	if got, want := searchPath(1000), []string{homeFile, SystemFile()}; !slices.Equal(got, want) {
		t.Errorf("searchPath(1000) = %q, want %q", got, want)
	}
	// For either user, whoever runs the tests, and whatever the machine
	// has in /etc (isolate moves the machine's file).
	for _, euid := range []int{0, 1000} {
		if got, err := find("", euid); err != nil || got != homeFile {
			t.Errorf("uid %d, no machine file: find = %q, %v; want %s", euid, got, err, homeFile)
		}
	}
	sys := write(t, SystemFile(), minimal)
	for euid, want := range map[int]string{0: sys, 1000: homeFile} {
		if got, err := find("", euid); err != nil || got != want {
			t.Errorf("uid %d: find = %q, %v; want %s", euid, got, err, want)
		}
	}
}

func TestFindOrder(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	flagFile := write(t, filepath.Join(dir, "flag.conf"), minimal)
	envFile := write(t, filepath.Join(dir, "env.conf"), minimal)
	xdg := filepath.Join(dir, "xdg")
	xdgFile := write(t, filepath.Join(xdg, "cachix-filter-hook", "hook.conf"), minimal)
	homeFile := write(t, filepath.Join(home, ".config", "cachix-filter-hook", "hook.conf"), minimal)

	for _, tc := range []struct {
		why            string
		flag, env, xdg string
		want           string
	}{
		{"--config wins over everything", flagFile, envFile, xdg, flagFile},
		{"$CACHIX_FILTER_HOOK_CONFIG comes next", "", envFile, xdg, envFile},
		{"then $XDG_CONFIG_HOME", "", "", xdg, xdgFile},
		{"then ~/.config when XDG_CONFIG_HOME is unset", "", "", "", homeFile},
		// Named files need not exist: Load then says it cannot read them.
		{"a missing --config is returned, not skipped", filepath.Join(dir, "missing"), envFile, xdg, filepath.Join(dir, "missing")},
		{"a missing $CACHIX_FILTER_HOOK_CONFIG is returned", "", filepath.Join(dir, "missing"), xdg, filepath.Join(dir, "missing")},
	} {
		t.Run(tc.why, func(t *testing.T) {
			t.Setenv(EnvConfig, tc.env)
			t.Setenv("XDG_CONFIG_HOME", tc.xdg)
			got, err := Find(tc.flag)
			if err != nil || got != tc.want {
				t.Errorf("Find(%q) = %q, %v; want %q", tc.flag, got, err, tc.want)
			}
		})
	}

	t.Run("XDG_CONFIG_HOME set but empty: ~/.config is not consulted", func(t *testing.T) {
		t.Setenv(EnvConfig, "")
		t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "empty-xdg"))
		got, err := Find("")
		if err != nil {
			t.Fatal(err)
		}
		if got != "" {
			t.Errorf("Find = %q, want none", got)
		}
		// The machine-wide file comes last.
		sys := write(t, SystemFile(), minimal)
		t.Cleanup(func() { os.Remove(sys) })
		if got, err := Find(""); err != nil || got != sys {
			t.Errorf("Find = %q, %v; want %s", got, err, sys)
		}
	})

	t.Run("Load reports the missing named file", func(t *testing.T) {
		t.Setenv(EnvConfig, filepath.Join(dir, "missing"))
		_, err := Load("")
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing")) {
			t.Errorf("Load: %v", err)
		}
	})
}

// Each lookup step feeds Load; the values show which file was read.
func TestLoadLookup(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	conf := func(cache string) string { return strings.Replace(minimal, "mycache", cache, 1) }
	flagFile := write(t, filepath.Join(dir, "flag.conf"), conf("fromflag"))
	envFile := write(t, filepath.Join(dir, "env.conf"), conf("fromenv"))
	xdg := filepath.Join(dir, "xdg")
	write(t, filepath.Join(xdg, "cachix-filter-hook", "hook.conf"), conf("fromxdg"))
	write(t, filepath.Join(home, ".config", "cachix-filter-hook", "hook.conf"), conf("fromhome"))
	write(t, SystemFile(), conf("fromsystem"))
	for _, tc := range []struct{ flag, env, xdg, want string }{
		{flagFile, envFile, xdg, "fromflag"},
		{"", envFile, xdg, "fromenv"},
		{"", "", xdg, "fromxdg"},
		{"", "", "", "fromhome"},
		{"", "", filepath.Join(dir, "empty-xdg"), "fromsystem"},
	} {
		// Root reads the machine's file before its own (searchPath).
		if tc.flag == "" && tc.env == "" && os.Geteuid() == 0 {
			tc.want = "fromsystem"
		}
		t.Setenv(EnvConfig, tc.env)
		t.Setenv("XDG_CONFIG_HOME", tc.xdg)
		c, err := Load(tc.flag)
		if err != nil {
			t.Fatalf("Load(%q): %v", tc.flag, err)
		}
		if got := c.Targets[0].Cache; got != tc.want {
			t.Errorf("Load(%q) with env %q, xdg %q read cache %q, want %q", tc.flag, tc.env, tc.xdg, got, tc.want)
		}
	}
}

func TestLoadFull(t *testing.T) {
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), `
cache = "mycache"
name = "main"
allow = ["hello-*"]
deny  = ["*-doc"]
closure_deny = "skip"
strict = true

[[target]]
cache = "work"
allow = ["openc910-*"]

[[target]]
store = "file:///var/cache/nix"
allow = ["*"]

[cachix]
bin = "/run/current-system/sw/bin/cachix"
auth_token_file = "/run/secrets/cachix"
push_args = ["-j", "8"]

[nix]
bin_dir = "/nix/var/nix/profiles/default/bin"

[queue]
dir = "/var/lib/x"
batch = 16
retry_initial = "1s"
retry_max = "5m"
linger = "0s"
push_timeout = "90m"

[log]
file = "/var/log/x.log"
level = "debug"
max_size = "1MiB"
`)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != file || !c.Strict || len(c.Warnings) != 0 {
		t.Errorf("File %q, Strict %v, Warnings %q", c.File, c.Strict, c.Warnings)
	}
	var names []string
	for _, tg := range c.Targets {
		names = append(names, tg.Name)
		if tg.Rules == nil {
			t.Errorf("target %s has no compiled rules", tg.Name)
		}
	}
	if want := []string{"main", "work", "file:///var/cache/nix"}; !slices.Equal(names, want) {
		t.Errorf("targets %q, want %q", names, want)
	}
	main := c.Target("main")
	if main == nil || main.ClosureDeny != ClosureSkip || !slices.Equal(main.Deny, []string{"*-doc"}) {
		t.Errorf("main target: %+v", main)
	}
	if w := c.Target("work"); w == nil || w.ClosureDeny != ClosureSkip || len(w.Deny) != 0 {
		t.Errorf("work target: %+v", w)
	}
	if c.Target("nope") != nil {
		t.Error("Target(nope) is not nil")
	}
	wantCachix := Cachix{Bin: "/run/current-system/sw/bin/cachix", AuthTokenFile: "/run/secrets/cachix", PushArgs: []string{"-j", "8"}}
	if c.Cachix.Bin != wantCachix.Bin || c.Cachix.AuthTokenFile != wantCachix.AuthTokenFile || !slices.Equal(c.Cachix.PushArgs, wantCachix.PushArgs) {
		t.Errorf("Cachix = %+v", c.Cachix)
	}
	if c.Nix.BinDir != "/nix/var/nix/profiles/default/bin" {
		t.Errorf("Nix = %+v", c.Nix)
	}
	if want := (Queue{Dir: "/var/lib/x", Batch: 16, RetryInitial: time.Second, RetryMax: 5 * time.Minute, Linger: 0, PushTimeout: 90 * time.Minute, RememberPushed: DefaultRememberPushed, DroppedMax: DefaultDroppedMax, DroppedMaxAge: DefaultDroppedMaxAge}); c.Queue != want {
		t.Errorf("Queue = %+v, want %+v", c.Queue, want)
	}
	if want := (Log{File: "/var/log/x.log", Level: "debug", MaxSize: 1 << 20}); c.Log != want {
		t.Errorf("Log = %+v, want %+v", c.Log, want)
	}
}

func TestDefaults(t *testing.T) {
	home := isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "cache = \"c\"\nallow = [\"*\"]\n")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	wantDir := filepath.Join(home, "state", "cachix-filter-hook")
	if os.Geteuid() == 0 {
		wantDir = "/var/lib/cachix-filter-hook"
	}
	want := Queue{Dir: wantDir, Batch: DefaultBatch, RetryInitial: DefaultRetryInitial, RetryMax: DefaultRetryMax, Linger: DefaultLinger, PushTimeout: DefaultPushTimeout, RememberPushed: DefaultRememberPushed, DroppedMax: DefaultDroppedMax, DroppedMaxAge: DefaultDroppedMaxAge}
	if c.Queue != want {
		t.Errorf("Queue = %+v, want %+v", c.Queue, want)
	}
	if c.Log != (Log{File: filepath.Join(wantDir, "worker.log"), Level: "info", MaxSize: 10 << 20}) {
		t.Errorf("Log = %+v", c.Log)
	}
	if c.Cachix.Bin != "cachix" || c.Strict || c.Targets[0].ClosureDeny != ClosureSkip || c.Targets[0].Name != "c" {
		t.Errorf("Cachix %+v, Strict %v, target %+v", c.Cachix, c.Strict, c.Targets[0])
	}
}

func TestEnvOverrides(t *testing.T) {
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), `
cache = "filecache"
allow = ["file-*"]
[queue]
dir = "/file/q"
batch = 10
`)
	t.Setenv("CACHIX_FILTER_HOOK_CACHE", "envcache")
	t.Setenv("CACHIX_FILTER_HOOK_QUEUE_DIR", "/env/q")
	t.Setenv("CACHIX_FILTER_HOOK_QUEUE_BATCH", "7")
	t.Setenv("CACHIX_FILTER_HOOK_ALLOW", "hello-*  zlib-*")
	t.Setenv("CACHIX_FILTER_HOOK_DENY", "*-doc")
	t.Setenv("CACHIX_FILTER_HOOK_STRICT", "true")
	t.Setenv("CACHIX_FILTER_HOOK_CACHIX_PUSH_ARGS", "-j 8")
	t.Setenv("CACHIX_FILTER_HOOK_QUEUE_RETRY_MAX", "1h")
	t.Setenv("CACHIX_FILTER_HOOK_LOG_LEVEL", "debug")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Targets[0]
	if tg.Cache != "envcache" || tg.Name != "envcache" || !slices.Equal(tg.Allow, []string{"hello-*", "zlib-*"}) || !slices.Equal(tg.Deny, []string{"*-doc"}) {
		t.Errorf("target = %+v", tg)
	}
	if c.Queue.Dir != "/env/q" || c.Queue.Batch != 7 || c.Queue.RetryMax != time.Hour || !c.Strict || c.Log.Level != "debug" {
		t.Errorf("Queue %+v, Strict %v, Log %+v", c.Queue, c.Strict, c.Log)
	}
	if !slices.Equal(c.Cachix.PushArgs, []string{"-j", "8"}) {
		t.Errorf("PushArgs = %q", c.Cachix.PushArgs)
	}
	// The rules are the environment's.
	if !tg.Rules.Decide(path("zlib-1.3")).Selected || tg.Rules.Decide(path("file-1")).Selected {
		t.Error("rules do not come from CACHIX_FILTER_HOOK_ALLOW")
	}
	eff := c.Effective()
	for _, want := range []string{
		`dir = "/env/q"  # env CACHIX_FILTER_HOOK_QUEUE_DIR`,
		`batch = 7  # env CACHIX_FILTER_HOOK_QUEUE_BATCH`,
		`cache = "envcache"  # env CACHIX_FILTER_HOOK_CACHE`,
		`allow = ["hello-*", "zlib-*"]  # env CACHIX_FILTER_HOOK_ALLOW`,
		`strict = true  # env CACHIX_FILTER_HOOK_STRICT`,
		`retry_initial = "2s"  # default`,
		"# config file: " + file,
	} {
		if !strings.Contains(eff, want) {
			t.Errorf("Effective() lacks %q:\n%s", want, eff)
		}
	}
}

func TestEnvOnly(t *testing.T) {
	home := isolate(t)
	t.Setenv("CACHIX_FILTER_HOOK_CACHE", "ci")
	t.Setenv("CACHIX_FILTER_HOOK_ALLOW", "*")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "" || len(c.Targets) != 1 || c.Targets[0].Cache != "ci" || !slices.Equal(c.Targets[0].Allow, []string{"*"}) {
		t.Errorf("config from the environment: File %q, targets %+v", c.File, c.Targets)
	}
	if c.Queue.Dir == "" || c.Queue.Batch != DefaultBatch {
		t.Errorf("Queue = %+v", c.Queue)
	}
	if eff := c.Effective(); !strings.Contains(eff, "no config file") {
		t.Errorf("Effective():\n%s", eff)
	}

	// Without any setting there is nothing to push to, and the error says
	// where it looked.
	t.Setenv("CACHIX_FILTER_HOOK_CACHE", "")
	t.Setenv("CACHIX_FILTER_HOOK_ALLOW", "")
	_, err = Load("")
	if err == nil || !strings.Contains(err.Error(), "no target") || !strings.Contains(err.Error(), home) {
		t.Errorf("Load with nothing set: %v", err)
	}

	// Bad values from the environment name the variable.
	t.Setenv("CACHIX_FILTER_HOOK_CACHE", "ci")
	t.Setenv("CACHIX_FILTER_HOOK_ALLOW", "*")
	for k, want := range map[string]string{
		"CACHIX_FILTER_HOOK_QUEUE_BATCH":         "CACHIX_FILTER_HOOK_QUEUE_BATCH: queue.batch: expected an integer",
		"CACHIX_FILTER_HOOK_STRICT":              "CACHIX_FILTER_HOOK_STRICT: strict: expected a boolean",
		"CACHIX_FILTER_HOOK_QUEUE_RETRY_INITIAL": "CACHIX_FILTER_HOOK_QUEUE_RETRY_INITIAL: queue.retry_initial: expected a duration",
		"CACHIX_FILTER_HOOK_LOG_MAX_SIZE":        "CACHIX_FILTER_HOOK_LOG_MAX_SIZE: log.max_size: expected a size",
		"CACHIX_FILTER_HOOK_CLOSURE_DENY":        `CACHIX_FILTER_HOOK_CLOSURE_DENY: closure_deny: must be "push" or "skip"`,
		"CACHIX_FILTER_HOOK_QUEUE_DIR":           "CACHIX_FILTER_HOOK_QUEUE_DIR: queue.dir: must be an absolute path",
	} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, "bogus")
			_, err := Load("")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s=bogus: %v, want %q", k, err, want)
			}
		})
	}
	t.Run("store and cache both from the environment", func(t *testing.T) {
		t.Setenv("CACHIX_FILTER_HOOK_STORE", "file:///x")
		_, err := Load("")
		if err == nil || !strings.Contains(err.Error(), "both cache and store") {
			t.Errorf("Load: %v", err)
		}
	})
	t.Run("a bad pattern from the environment names the variable", func(t *testing.T) {
		t.Setenv("CACHIX_FILTER_HOOK_ALLOW", "ok {hello,world")
		_, err := Load("")
		if err == nil || !strings.Contains(err.Error(), `CACHIX_FILTER_HOOK_ALLOW: allow[1]: bad pattern "{hello,world"`) || !strings.Contains(err.Error(), "offset 12") {
			t.Errorf("Load: %v", err)
		}
	})
}

func TestBadInput(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		why, conf string
		want      []string
	}{
		{"typo alow", "cache = \"c\"\nalow = [\"*\"]\n", []string{`unknown key "alow"`, `did you mean "allow"?`}},
		{"typo in a section", minimal + "dri = \"/x\"\n", []string{`unknown key "queue.dri"`, `did you mean "queue.dir"?`}},
		{"typo in a [[target]]", minimal + "[[target]]\ncache = \"w\"\nalow = [\"x\"]\n", []string{`[[target]] #1: unknown key "alow"`, `did you mean "allow"?`}},
		{"unknown key far from any", "cache = \"c\"\nallow = [\"*\"]\nzzzzzzzzzz = 1\n", []string{`unknown key "zzzzzzzzzz"`}},
		{"section as a scalar", "cache = \"c\"\nallow = [\"*\"]\nqueue = 1\n", []string{"queue: expected a table ([queue])"}},
		{"cache not a string", "cache = 1\nallow = [\"*\"]\n", []string{"cache: expected a string, got 1"}},
		{"allow not a list", "cache = \"c\"\nallow = \"hello-*\"\n", []string{`allow: expected a list of strings, got the string "hello-*"`}},
		{"allow element not a string", "cache = \"c\"\nallow = [\"a\", 2]\n", []string{"allow[1]: expected a string, got 2"}},
		{"strict a string", "strict = \"yes\"\n" + minimal, []string{`strict: expected a boolean, got the string "yes"`}},
		{"batch a string", minimal + "batch = \"8\"\n", []string{"queue.batch: expected an integer"}},
		{"batch a float", minimal + "batch = 1.5\n", []string{"queue.batch: expected an integer"}},
		{"negative batch", minimal + "batch = -1\n", []string{"queue.batch: must be at least 1, got -1"}},
		{"zero batch", minimal + "batch = 0\n", []string{"queue.batch: must be at least 1, got 0"}},
		{"duration a number", minimal + "retry_initial = 2\n", []string{`queue.retry_initial: expected a duration such as "2s" or "10m"`}},
		{"bad duration", minimal + "retry_max = \"10 minutes\"\n", []string{`queue.retry_max: expected a duration`, `"10 minutes"`}},
		{"negative duration", minimal + "linger = \"-1s\"\n", []string{`queue.linger: must not be negative`}},
		{"zero push_timeout", minimal + "push_timeout = \"0s\"\n", []string{`queue.push_timeout: must be positive`}},
		{"zero upstream_timeout", "upstream_timeout = \"0s\"\n" + minimal, []string{`upstream_timeout: must be positive`}},
		{"retry_max below retry_initial", minimal + "retry_initial = \"1m\"\nretry_max = \"1s\"\n", []string{"queue.retry_max (1s) is shorter than queue.retry_initial (1m0s)"}},
		{"relative queue dir", "cache = \"c\"\nallow = [\"*\"]\n[queue]\ndir = \"q\"\n", []string{`queue.dir: must be an absolute path, got "q"`}},
		{"bad log level", minimal + "[log]\nlevel = \"loud\"\n", []string{`log.level: unknown level "loud"`}},
		{"bad log size", minimal + "[log]\nmax_size = \"ten\"\n", []string{`log.max_size: expected a size such as "10MiB"`}},
		{"relative cachix bin with a slash", minimal + "[cachix]\nbin = \"./cachix\"\n", []string{`cachix.bin: must be a command name or an absolute path`}},
		{"relative token file", minimal + "[cachix]\nauth_token_file = \"token\"\n", []string{`cachix.auth_token_file: must be an absolute path`}},
		// Read from the worker's directory, /, not validate's.
		{"relative signing key file", minimal + "[cachix]\nsigning_key_file = \"key.sec\"\n", []string{`cachix.signing_key_file: must be an absolute path`}},
		{"push_args not a list", minimal + "[cachix]\npush_args = \"-j 8\"\n", []string{"cachix.push_args: expected a list of strings"}},
		{"relative nix bin_dir", minimal + "[nix]\nbin_dir = \"bin\"\n", []string{"nix.bin_dir: must be an absolute path"}},
		// Taken from the worker's directory, /, by nix copy as root.
		{"relative local store", "store = \"local://store\"\nallow = [\"*\"]\n", []string{`store: "local://store": a local store's root (the path after local://) must be an absolute path`, "write it from / (local:///store, three slashes)"}},
		{"relative local: store", "store = \"local:store?compression=none\"\nallow = [\"*\"]\n", []string{`store: "local:store?compression=none": a local store's root (the path after local:) must be an absolute path`}},
		{"relative local overlay", minimal + "[[target]]\nstore = \"local-overlay://o?upper-layer=/u\"\n", []string{`[[target]] #1: store: "local-overlay://o?upper-layer=/u": a local store's root (the path after local-overlay://) must be an absolute path`}},
		{"relative local state=", "store = \"local:///srv/s?state=var\"\nallow = [\"*\"]\n", []string{`store: "local:///srv/s?state=var": a local store's state= must be an absolute path`, "write it from / (state=/var)"}},
		// The fix is the user's own value from /, not an example.
		{"relative real=", "store = \"local:///srv/s?real=./r\"\nallow = [\"*\"]\n", []string{`a local store's real= must be an absolute path`, "write it from / (real=/r)"}},
		{"relative store=", "store = \"local://?store=nix%2Fstore\"\nallow = [\"*\"]\n", []string{`a local store's store= must be an absolute path`, "write it from / (store=/nix%2Fstore)"}},
		{"relative local: root", "store = \"local:r\"\nallow = [\"*\"]\n", []string{"write it from / (local:/r)"}},
		{"relative root=", "store = \"local://?root=r\"\nallow = [\"*\"]\n", []string{`store: "local://?root=r": a local store's root= must be an absolute path`}},
		{"relative lower store", "store = \"local-overlay:///o?upper-layer=/u&lower-store=local%3A%2F%2Flow\"\nallow = [\"*\"]\n", []string{`a local store's root (the path after local://) of its lower-store=local://low must be an absolute path`}},
		// nix copy would connect to it from the worker's directory, /.
		{"relative unix socket", "store = \"unix://run/sock\"\nallow = [\"*\"]\n", []string{`hook.conf:1: store: "unix://run/sock": a unix:// store's socket run/sock must be an absolute path`, "name it from / (unix:///run/sock)"}},
		{"relative unix: socket", minimal + "[[target]]\nstore = \"unix:sock?max-connections=1\"\n", []string{`hook.conf:6: [[target]] #1: store: "unix:sock?max-connections=1": a unix:// store's socket sock must be an absolute path`}},
		{"relative lower store socket", "store = \"local-overlay:///o?upper-layer=/u&lower-store=unix%3Arel%2Fsock\"\nallow = [\"*\"]\n", []string{`hook.conf:1: store: "local-overlay:///o?upper-layer=/u&lower-store=unix%3Arel%2Fsock": a unix:// store's socket rel/sock of its lower-store=unix:rel/sock must be an absolute path`, "(unix:///rel/sock)"}},
		{"cache and store", "cache = \"c\"\nstore = \"file:///x\"\nallow = [\"*\"]\n", []string{"top level: both cache and store are set"}},
		{"neither cache nor store", "allow = [\"*\"]\n", []string{"top level: neither cache nor store is set"}},
		{"wrong type in a target", minimal + "[[target]]\ncache = 1\nallow = \"x\"\n", []string{"[[target]] #1: cache: expected a string, got 1", `[[target]] #1: allow: expected a list of strings, got the string "x"`}},
		{"target with both", minimal + "[[target]]\ncache = \"w\"\nstore = \"/x\"\n", []string{"[[target]] #1: both cache and store are set"}},
		{"target with neither", minimal + "[[target]]\nallow = [\"*\"]\n", []string{"[[target]] #1: neither cache nor store is set"}},
		{"no target at all", "[queue]\ndir = \"/q\"\n", []string{"no target: set cache or store"}},
		{"bad cache name", "cache = \"my cache\"\nallow = [\"*\"]\n", []string{`cache: "my cache" is not a cache name`}},
		{"option-like cache name", "cache = \"-h\"\nallow = [\"*\"]\n", []string{`cache: "-h" is not a cache name`}},
		{"bad store", "store = \"relative/dir\"\nallow = [\"*\"]\n", []string{`store: not a Nix store URI`}},
		// Older Nix writes it in the worker's directory, /, not validate's.
		{"relative file store", "store = \"file://cache?compression=zstd\"\nallow = [\"*\"]\n", []string{`store: "file://cache?compression=zstd": a file:// store's directory must be an absolute path`}},
		{"file store with a host", "store = \"file://localhost/srv/cache\"\nallow = [\"*\"]\n", []string{`store: "file://localhost/srv/cache": a file:// store's directory must be an absolute path`}},
		{"bad closure_deny at top", "closure_deny = \"maybe\"\n" + minimal, []string{`closure_deny: must be "push" or "skip", got "maybe"`}},
		{"bad closure_deny in a target", minimal + "[[target]]\ncache = \"w\"\nclosure_deny = \"always\"\n", []string{`[[target]] #1: closure_deny: must be "push" or "skip", got "always"`}},
		{"bad glob", "cache = \"c\"\nallow = [\"ok\", \"{hello,world\"]\n", []string{`allow[1]: bad pattern "{hello,world"`, "at offset 12", "    {hello,world\n                ^"}},
		// The caret is under the place as the line shows it: "é" is
		// two bytes and one column.
		{"bad glob after a non-ASCII character", "cache = \"c\"\nallow = [\"é[abc\"]\n", []string{"at offset 6", "    é[abc\n         ^"}},
		// and "接" two bytes more, and two columns.
		{"bad glob after a wide character", "cache = \"c\"\nallow = [\"接続[abc\"]\n", []string{"at offset 10", "    接続[abc\n            ^"}},
		{"bad glob in deny", "cache = \"c\"\nallow = [\"*\"]\ndeny = [\"[abc\"]\n", []string{`deny[0]: bad pattern "[abc"`, "at offset 4"}},
		{"bad glob in a target", minimal + "[[target]]\ncache = \"w\"\ndeny = [\"a[z-a]\"]\n", []string{`[[target]] #1: deny[0]: bad pattern "a[z-a]"`, "at offset 6"}},
		{"duplicate target names", minimal + "[[target]]\ncache = \"mycache\"\nallow = [\"*\"]\n", []string{`two targets are named "mycache"`}},
		{"duplicate explicit names", minimal + "[[target]]\nname = \"x\"\ncache = \"a\"\n[[target]]\nname = \"x\"\ncache = \"b\"\n", []string{`two targets are named "x"`}},
		// Names are shown on one line: in logs, status, the history.
		{"name with a line break", "name = \"a\\nb\"\n" + minimal, []string{`name: "a\nb" holds \x0a, a control character`}},
		{"name with a line separator", "name = \"a\\u2028b\"\n" + minimal, []string{`name: "a\u2028b" holds \u2028, a control character, line separator`}},
		// A name that reads backwards is never meant.
		{"name with a right-to-left override", minimal + "[[target]]\nname = \"w\\u202eterces\"\ncache = \"w\"\n", []string{`target "w\u202eterces": name: "w\u202eterces" holds \u202e, a control character, line separator or bidirectional control`}},
		{"target name with a carriage return", minimal + "[[target]]\nname = \"w\\r\"\ncache = \"w\"\n", []string{`target "w\r": name: "w\r" holds \x0d, a control character`}},
		{"store path with a line break", "store = \"/srv/a\\nb\"\nallow = [\"*\"]\n", []string{`store: it holds \x0a, a control character`}},
		// It is one, but for what it holds: the message says which
		// (not the URI, which may hold a password).
		{"store URI with a right-to-left mark", "store = \"s3://c?region=eu\\u200f\"\nallow = [\"*\"]\n", []string{`store: it holds \u200f, a control character, line separator or bidirectional control`}},
		{"target not an array of tables", "cache = \"c\"\nallow = [\"*\"]\ntarget = 1\n", []string{"target: expected an array of tables ([[target]])"}},
		{"TOML syntax error", "cache = \n", []string{"hook.conf"}},
		{"every problem at once", "alow = [\"x\"]\ncache = \"c\"\n[queue]\nbatch = -2\nretry_initial = \"x\"\n", []string{`unknown key "alow"`, "queue.batch: must be at least 1, got -2", "queue.retry_initial: expected a duration"}},
	} {
		t.Run(tc.why, func(t *testing.T) {
			// minimal ends in [queue]: keys appended to it are queue keys.
			file := write(t, filepath.Join(dir, strings.ReplaceAll(tc.why, " ", "_"), "hook.conf"), tc.conf)
			_, err := Load(file)
			if err == nil {
				t.Fatalf("Load succeeded on:\n%s", tc.conf)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			// Every message names the file.
			for _, line := range strings.Split(msg, "\n") {
				if line != "" && !strings.HasPrefix(line, "    ") && !strings.Contains(line, file) {
					t.Errorf("error line does not name %s: %q", file, line)
				}
			}
		})
	}
}

func TestEmptyAllowWarning(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for conf, want := range map[string]string{
		"cache = \"c\"\n":                           `target "c" has an empty allow list: it selects nothing`,
		"cache = \"c\"\nallow = []\n":               `target "c" has an empty allow list`,
		"cache = \"c\"\nallow = [\"*\"]\n":          "",
		minimal + "[[target]]\ncache = \"w\"\n":     `target "w" has an empty allow list`,
		"cache = \"c\"\ndeny = [\"*-doc\"]\n":       `target "c" has an empty allow list`,
		"cache = \"c\"\nallow = [\"hello-*\"]\n\n":  "",
		"store = \"/srv/cache\"\nallow = [\"*\"]\n": "",
		// A name pattern holding a '/' matches nothing either.
		"cache = \"c\"\nallow = [\"*\"]\ndeny = [\"nix/store/*-secret\"]\n": `hook.conf: deny[0] = "nix/store/*-secret" holds a '/' but does not start with one`,
		// An empty pattern is valid and matches nothing.
		"cache = \"c\"\nallow = [\"hello-*\", \"\"]\n":                          `hook.conf: allow[1] is "": an empty pattern matches no path`,
		minimal + "[[target]]\ncache = \"w\"\nallow = [\"*\"]\ndeny = [\"\"]\n": `hook.conf: target[0].deny[0] is ""`,
	} {
		file := write(t, filepath.Join(dir, "hook.conf"), conf)
		c, err := Load(file)
		if err != nil {
			t.Fatalf("%q: %v", conf, err)
		}
		got := strings.Join(c.Warnings, "\n")
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%q: warnings %q, want %q", conf, got, want)
		}
	}
}

func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@cache.example.org/x":         "https://user:REDACTED@cache.example.org/x",
		"ssh://nix:p%40ss@host":                           "ssh://nix:REDACTED@host",
		"https://user@host/x":                             "https://user@host/x",
		"https://host/x?token=abc&compression=zstd":       "https://host/x?token=REDACTED&compression=zstd",
		"s3://b?aws_secret_access_key=k&region=eu-west-1": "s3://b?aws_secret_access_key=REDACTED&region=eu-west-1",
		"file:///var/cache/nix?secret-key=/etc/nix/k.sec": "file:///var/cache/nix?secret-key=/etc/nix/k.sec",
		"file:///var/cache/nix":                           "file:///var/cache/nix",
		"s3://bucket?region=eu-west-1":                    "s3://bucket?region=eu-west-1",
		"/var/cache/nix":                                  "/var/cache/nix",
		"":                                                "",
		// As written, whether it parses or not.
		"https://u:secret@host/%zz":         "https://u:REDACTED@host/%zz",
		"https://u:secret@a host/x?token=t": "https://u:REDACTED@a host/x?token=REDACTED",
		"s3://b?region=eu&secret=a%zz#f":    "s3://b?region=eu&secret=REDACTED#f",
		"s3://b?aws_secret_access_key=k;x":  "s3://b?aws_secret_access_key=REDACTED",
		// A password with '?', '#' or '/' unescaped, which a URL
		// parser takes for the end of the host.
		"https://u:pa?ss@host/x":       "https://u:REDACTED@host/x",
		"https://u:12#ss@host":         "https://u:REDACTED@host",
		"ssh://u:p/ss@host":            "ssh://u:REDACTED@host",
		"https://u:a?b@c@host?token=t": "https://u:REDACTED@host?token=REDACTED",
		"s3://bucket?profile=me@corp":  "s3://bucket?profile=me@corp",
		"https://host:8443/x?a=b@c":    "https://host:REDACTED@c",
		// No scheme: validStore takes it as a path, url.Parse (and so
		// storeCredentials, which refuses it) reads its password, and
		// the message refusing it quoted the password.
		"//u:secret@host":         "//u:REDACTED@host",
		"//u:p/ss@host/x?token=t": "//u:REDACTED@host/x?token=REDACTED",
		"///var/cache/nix":        "///var/cache/nix",
	} {
		if got := RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}

	// A store URI with a password is refused (issue 9): it would be in
	// nix copy's argv. The message redacts it.
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "store = \"https://u:hunter2@cache.example.org\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load accepted a store URI with a password")
	}
	if msg := err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, "https://u:REDACTED@cache.example.org") {
		t.Errorf("the error leaks the password or does not name the URI: %v", err)
	}

	// An upstream whose password holds a '?' parses as host u:12 and
	// query "x@host": the message refusing the query must not show it.
	for _, up := range []string{"https://u:12?hunter2@cache.example.org", "https://u:hunter2#x@cache.example.org"} {
		file = write(t, filepath.Join(t.TempDir(), "hook.conf"), "cache = \"c\"\nupstream = [\""+up+"\"]\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
		if _, err := Load(file); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("upstream %s: the error leaks the password or there is none: %v", up, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10MiB": 10 << 20, "512KiB": 512 << 10, "1GB": 1e9, "1 MB": 1e6, "100": 100, "7B": 7, "2GiB": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// A size past int64 is an error, never wrapped round: 2^34+1 GiB
	// was 1 GiB.
	for _, in := range []string{"", "ten", "0", "-1MiB", "1TiB", "MiB", "17179869185GiB", "9223372036854775807KiB", "9300000000GB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"cache": "CACHIX_FILTER_HOOK_CACHE", "queue.dir": "CACHIX_FILTER_HOOK_QUEUE_DIR",
		"cachix.auth_token_file": "CACHIX_FILTER_HOOK_CACHIX_AUTH_TOKEN_FILE",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

// Running as root, a config or token file that someone else could write
// is refused (OpenSSH's StrictModes rule).
func TestRootRefusesUnsafeFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not running as root")
	}
	isolate(t)
	for _, tc := range []struct {
		why     string
		mode    fs.FileMode
		uid     int
		dirMode fs.FileMode // 0: the private temporary directory
		refused string      // "" when accepted
	}{
		{"0600 owned by root", 0o600, 0, 0, ""},
		// Readable by others: fine for the config, not for the token.
		{"0644 owned by root", 0o644, 0, 0, ""},
		{"0640 owned by root", 0o640, 0, 0, ""},
		{"group-writable", 0o620, 0, 0, "writable by group or others (owner root (uid 0), mode 0620)"},
		{"world-writable", 0o602, 0, 0, "writable by group or others (owner root (uid 0), mode 0602)"},
		{"0666", 0o666, 0, 0, "writable by group or others"},
		{"owned by nobody", 0o600, 65534, 0, "owned by nobody (uid 65534), not root"},
		{"in a group-writable directory", 0o600, 0, 0o770, "writable by group or others (owner root (uid 0), mode 0770)"},
		{"in a world-writable directory", 0o600, 0, 0o777, "writable by group or others (owner root (uid 0), mode 0777)"},
		{"in a sticky world-writable directory", 0o600, 0, 0o777 | fs.ModeSticky, ""},
	} {
		t.Run(tc.why, func(t *testing.T) {
			dir := t.TempDir()
			if tc.dirMode != 0 {
				dir = filepath.Join(dir, "d")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tc.dirMode); err != nil {
					t.Fatal(err)
				}
			}
			conf := write(t, filepath.Join(dir, "hook.conf"), minimal)
			token := write(t, filepath.Join(dir, "token"), "s3cr3t-t0ken\n")
			for _, f := range []string{conf, token} {
				if err := os.Chmod(f, tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(f, tc.uid, -1); err != nil {
					t.Fatal(err)
				}
			}

			_, err := Load(conf)
			check := func(what string, err error) {
				t.Helper()
				if tc.refused == "" {
					if err != nil {
						t.Errorf("%s refused: %v", what, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("%s accepted, want refusal (%s)", what, tc.refused)
				}
				if !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "refusing") || !strings.Contains(err.Error(), "running as root") {
					t.Errorf("%s: %v, want %q", what, err, tc.refused)
				}
			}
			check("config via --config", err)

			// The same file found through the environment or the XDG
			// directory is refused too.
			t.Setenv(EnvConfig, conf)
			_, err = Load("")
			check("config via "+EnvConfig, err)
			t.Setenv(EnvConfig, "")

			tok, err := ReadToken(token)
			if tc.mode&0o044 != 0 && tc.refused == "" {
				// A secret must not be readable by others either.
				if err == nil || !strings.Contains(err.Error(), "readable by group or others") || !strings.Contains(err.Error(), "chmod 600 "+token) {
					t.Errorf("token readable by others: %v", err)
				}
			} else {
				// The token's directories are checked too.
				check("token", err)
			}
			if err == nil && tok != "s3cr3t-t0ken" {
				t.Errorf("ReadToken = %q", tok)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("ReadToken's error contains the token: %v", err)
			}
		})
	}

	t.Run("through the XDG lookup", func(t *testing.T) {
		xdg := t.TempDir()
		conf := write(t, filepath.Join(xdg, "cachix-filter-hook", "hook.conf"), minimal)
		if err := os.Chmod(conf, 0o620); err != nil {
			t.Fatal(err)
		}
		t.Setenv("XDG_CONFIG_HOME", xdg)
		_, err := Load("")
		if err == nil || !strings.Contains(err.Error(), "refusing "+conf) {
			t.Errorf("Load: %v", err)
		}
	})
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	tok := write(t, filepath.Join(dir, "token"), "  tok-123\n\n")
	if got, err := ReadToken(tok); err != nil || got != "tok-123" {
		t.Errorf("ReadToken = %q, %v", got, err)
	}
	empty := write(t, filepath.Join(dir, "empty"), " \n")
	if _, err := ReadToken(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token file: %v", err)
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing token file: %v", err)
	}
	// A directory cannot be read; the error does not leak anything.
	if _, err := ReadToken(dir); err == nil {
		t.Error("ReadToken(dir) succeeded")
	}
}

func TestReadTokenFIFOAndSize(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadToken(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadToken(fifo) = %v, want a refusal", err)
		}
	case <-time.After(eventually.Left(t)):
		t.Fatal("ReadToken blocked on a FIFO")
	}
	big := write(t, filepath.Join(dir, "big"), strings.Repeat("x", maxTokenSize+1))
	if _, err := ReadToken(big); err == nil || !strings.Contains(err.Error(), "limit is 65536 bytes") || strings.Contains(err.Error(), "xxxx") {
		t.Errorf("ReadToken(big) = %v, want an error naming the limit", err)
	}
}

// A config over the limit is an error naming the limit, never a cut: the
// part cut off could be the deny list.
func TestConfigOverLimitIsAnError(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	pad := "# " + strings.Repeat("x", 1000) + "\n"
	body := "cache = \"c\"\nallow = [\"*\"]\n" + strings.Repeat(pad, MaxConfigSize/len(pad)+1) + "deny = [\"secret-*\"]\n"
	conf := write(t, filepath.Join(dir, "hook.conf"), body)
	_, err := Load(conf)
	if err == nil || !strings.Contains(err.Error(), "the limit is 1048576 bytes") || !strings.Contains(err.Error(), conf) {
		t.Errorf("Load of a %d-byte config = %v, want an error naming the limit", len(body), err)
	}
}

// TestKeyLookup: a key is found in its table, as a quoted dotted key at the
// top level (TOML allows `"queue.dir" = ...`), and not where the name only
// partly matches.
func TestKeyLookup(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, dir string }{
		{"table", "cache = \"c\"\n[queue]\ndir = \"/a\"\n", "/a"},
		{"quoted dotted key", "cache = \"c\"\n\"queue.dir\" = \"/b\"\n", "/b"},
		{"dotted key", "cache = \"c\"\nqueue.dir = \"/d\"\n", "/d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, filepath.Join(dir, tc.name+".conf"), tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if c.Queue.Dir != tc.dir {
				t.Errorf("queue.dir = %q, want %q", c.Queue.Dir, tc.dir)
			}
		})
	}
	for key, want := range map[string]any{"queue.dir": "/q", "queue": map[string]any{"dir": "/q"}, "a.b.c": 1} {
		got, ok := lookup(map[string]any{"queue": map[string]any{"dir": "/q"}, "a.b": map[string]any{"c": 1}}, key)
		if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("lookup(%q) = %v, %v; want %v", key, got, ok, want)
		}
	}
	if got, ok := lookup(map[string]any{"queue": map[string]any{"dir": "/q"}}, "queue.di"); ok {
		t.Errorf("lookup(queue.di) = %v, want nothing", got)
	}
}

// status shows the queue of a config that does not load at the
// queue.dir Load would read: the key as Load finds it, and nothing Load
// refuses to read.
func TestQueueDirOf(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for _, tc := range []struct{ why, conf, want string }{
		{"table", "cache = \"c\"\nbogus = 1\n[queue]\ndir = \"/srv/a\"\n", "/srv/a"},
		{"quoted dotted key", "cache = \"c\"\nbogus = 1\n\"queue.dir\" = \"/srv/b\"\n", "/srv/b"},
		{"spelt otherwise", "cache = \"c\"\n[QUEUE]\nDIR = \"/srv/c\"\n", DefaultQueueDir()},
	} {
		file := write(t, filepath.Join(dir, strings.ReplaceAll(tc.why, " ", "-")+".conf"), tc.conf)
		if got := QueueDirOf(file); got != tc.want {
			t.Errorf("%s: QueueDirOf = %q, want %q", tc.why, got, tc.want)
		}
	}
}

// validate prints the effective configuration as hook.conf takes it: a
// string holding a character Go's quoting writes as \x7f, \a or \v
// (escapes TOML does not have) did not load again.
func TestEffectiveLoadsAgain(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "hook.conf")
	allow := []string{"a\u007fb-*", "bell\a-*", "tab\t\v-*", "quote\"\\-*", "zero\u200bwidth-*"}
	conf := "cache = \"c\"\nallow = ["
	for i, a := range allow {
		if i > 0 {
			conf += ", "
		}
		conf += fmt.Sprintf("%q", a)
	}
	conf = strings.NewReplacer(`\x7f`, `\u007f`, `\a`, `\u0007`, `\v`, `\u000b`).Replace(conf) + "]\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	again := filepath.Join(dir, "again.conf")
	if err := os.WriteFile(again, []byte(c.Effective()), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(again)
	if err != nil {
		t.Fatalf("the effective configuration does not load: %v\n%s", err, c.Effective())
	}
	if !slices.Equal(c2.Targets[0].Allow, allow) {
		t.Errorf("allow loaded again = %q, want %q", c2.Targets[0].Allow, allow)
	}
}

func TestStoreKeyFiles(t *testing.T) {
	for uri, want := range map[string][]string{
		"file:///c?secret-key=/k":                       {"/k"},
		"file:///c?compression=zstd&secret-key=/a%20b":  {"/a b"},
		"file:///c?secret%2Dkey=%2Fa+b":                 {"/a+b"},
		"file:///c?secret-key=/k#x":                     {"/k"},
		"file:///c#x?secret-key=/k":                     nil,
		"file:///c?secret-key=":                         nil,
		"file:///c?secret-key=/a&secret-key=/b":         {"/a", "/b"},
		"file:///c?secret-key-x=/k&x=secret-key%3D%2Fk": nil,
		"/var/cache/nix":                                nil,
	} {
		if got := StoreKeyFiles(uri); !slices.Equal(got, want) {
			t.Errorf("StoreKeyFiles(%q) = %q, want %q", uri, got, want)
		}
	}
}

// A pattern past the linear matcher's budget was refused with a caret
// under its first character, which pointed at nothing, and without what
// the patterns before it used: the one to change may be among them. The
// message names the file, the key and the pattern, says what was used
// and what to do, and has no caret.
func TestLinearBudgetMessage(t *testing.T) {
	isolate(t)
	p := `"*-{doc,man}` + strings.Repeat("x", 1000) + `"`
	fit := filter.MaxLinear / (len(p) - 2)
	conf := "cache = \"c\"\nallow = [\"*\"]\n[[target]]\ncache = \"w\"\ndeny = [" + strings.TrimSuffix(strings.Repeat(p+", ", fit+1), ", ") + "]\n"
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), conf)
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load took more patterns than the budget")
	}
	msg := err.Error()
	used := fit * (len(p) - 2)
	for _, want := range []string{
		file + ":5: [[target]] #1: deny[" + fmt.Sprint(fit) + `]: bad pattern "*-{doc,man}xxx`,
		fmt.Sprintf("may total %d bytes over all targets: those before it use %d, it needs %d", filter.MaxLinear, used, len(p)-2),
		`"*-doc" and "*-man"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "^") || strings.Contains(msg, "offset") || strings.Contains(msg, strings.Repeat("x", 100)) {
		t.Errorf("error points at a place, or quotes the long pattern whole:\n%s", msg)
	}
}
