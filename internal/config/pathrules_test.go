package config

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPathRulesInheritAndOverride: top-level max_nar_size, unsubstitutable,
// upstream and secret_key_file are every target's defaults; a [[target]]
// overrides them; alone at the top level they make no default target.
func TestPathRulesInheritAndOverride(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	conf := write(t, filepath.Join(dir, "hook.conf"), `
max_nar_size = "1GiB"
unsubstitutable = "push"
upstream = ["https://cache.nixos.org/", "file:///srv/up"]
secret_key_file = "/etc/k"

[[target]]
store = "file:///srv/a"
allow = ["*"]

[[target]]
store = "file:///srv/b"
allow = ["*"]
max_nar_size = "10MiB"
unsubstitutable = "skip"
upstream = []
secret_key_file = "/etc/k2"

[[target]]
cache = "c"
allow = ["*"]

[queue]
dir = "/tmp/q"
`)
	c, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 3 {
		t.Fatalf("%d targets, want 3 (no default target from inherited keys alone)", len(c.Targets))
	}
	a, b, cc := c.Targets[0], c.Targets[1], c.Targets[2]
	if a.MaxNarSize != 1<<30 || a.Unsubstitutable != UnsubstPush || strings.Join(a.Upstream, " ") != "https://cache.nixos.org file:///srv/up" || a.SecretKeyFile != "/etc/k" {
		t.Errorf("inherited: %+v", a)
	}
	if b.MaxNarSize != 10<<20 || b.Unsubstitutable != UnsubstSkip || len(b.Upstream) != 0 || b.SecretKeyFile != "/etc/k2" {
		t.Errorf("overridden: %+v", b)
	}
	if cc.SecretKeyFile != "" || cc.MaxNarSize != 1<<30 {
		t.Errorf("cachix target: %+v (secret_key_file is for store targets)", cc)
	}
	eff := c.Effective()
	for _, want := range []string{`max_nar_size = "1GiB"  # top level`, `unsubstitutable = "push"`, `secret_key_file = "/etc/k2"`, `upstream = ["https://cache.nixos.org", "file:///srv/up"]`} {
		if !strings.Contains(eff, want) {
			t.Errorf("Effective lacks %q:\n%s", want, eff)
		}
	}
}

func TestPathRulesDefaultsAndEnv(t *testing.T) {
	isolate(t)
	c, err := Load(write(t, filepath.Join(t.TempDir(), "hook.conf"), minimal))
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Targets[0]
	if tg.MaxNarSize != 0 || tg.Unsubstitutable != UnsubstSkip || len(tg.Upstream) != 0 || c.UpstreamTimeout != DefaultUpstreamTimeout {
		t.Errorf("defaults: %+v, timeout %s", tg, c.UpstreamTimeout)
	}
	t.Setenv(EnvName("max_nar_size"), "5MiB")
	t.Setenv(EnvName("upstream"), "https://a.example https://b.example")
	t.Setenv(EnvName("upstream_timeout"), "2s")
	c, err = Load(write(t, filepath.Join(t.TempDir(), "hook.conf"), minimal))
	if err != nil {
		t.Fatal(err)
	}
	tg = c.Targets[0]
	if tg.MaxNarSize != 5<<20 || strings.Join(tg.Upstream, " ") != "https://a.example https://b.example" || c.UpstreamTimeout.String() != "2s" {
		t.Errorf("from the environment: %+v, timeout %s", tg, c.UpstreamTimeout)
	}
	if eff := c.Effective(); !strings.Contains(eff, "# env CACHIX_FILTER_HOOK_MAX_NAR_SIZE") {
		t.Errorf("Effective does not name the variable:\n%s", eff)
	}
}

func TestPathRulesBadInput(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	const q = "[queue]\ndir = \"/tmp/q\"\n"
	for _, tc := range []struct{ why, conf, want string }{
		{"bad unsubstitutable", "cache = \"c\"\nallow = [\"*\"]\nunsubstitutable = \"maybe\"\n", `unsubstitutable: must be "skip" or "push", got "maybe"`},
		{"bad size", "cache = \"c\"\nallow = [\"*\"]\nmax_nar_size = \"big\"\n", `max_nar_size: expected a size such as "10MiB", got the string "big"`},
		{"zero size", "cache = \"c\"\nallow = [\"*\"]\nmax_nar_size = 0\n", `max_nar_size: expected a size`},
		{"ftp upstream", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"ftp://x\"]\n", `upstream[0]: "ftp://x": only http://, https:// and file:// upstreams are supported`},
		{"hostless upstream", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://\"]\n", `upstream[0]: "https://" has no host`},
		{"relative file upstream", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"file://rel/dir\"]\n", `upstream[0]: "file://rel/dir": a file:// upstream needs an absolute path`},
		{"upstream with a password", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"ftp://u:hunter2@x\"]\n", `REDACTED`},
		// A URL that does not parse is redacted as written.
		{"unparsable upstream with a password", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://u:hunter2@cache.example/%zz\"]\n", `not a URL: "https://u:REDACTED@cache.example/%zz"`},
		{"upstream with a password and a space", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://u:hunter2@cache example\"]\n", `not a URL`},
		{"file upstream with a password", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"file://u:hunter2@host/dir\"]\n", `a file:// upstream needs an absolute path`},
		{"https upstream with a password", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://u:hunter2@cache.example\"]\n", `an upstream takes no user or password`},
		// A user alone is a token to an upstream (https://TOKEN@host),
		// which takes none: no message shows it, whichever refuses it.
		{"https upstream with a token as its user", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://hunter2@cache.example\"]\n", `"https://REDACTED@cache.example": an upstream takes no user or password`},
		{"upstream with a token and an empty password", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://hunter2:@cache.example\"]\n", `"https://REDACTED@cache.example": an upstream takes no user or password`},
		{"upstream with a token and a query", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://hunter2@cache.example?x=1\"]\n", `an upstream takes no ?query`},
		{"upstream with a token and no host", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://hunter2@\"]\n", `has no host`},
		{"schemeless upstream with a token", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"//hunter2@cache.example\"]\n", `only http://`},
		{"unparsable upstream with a token", "cache = \"c\"\nallow = [\"*\"]\nupstream = [\"https://hunter2@cache.example/%zz\"]\n", `not a URL: "https://REDACTED@cache.example/%zz"`},
		{"per-target bad upstream", "[[target]]\ncache = \"c\"\nallow = [\"*\"]\nupstream = [\"x\"]\n", `[[target]] #1: upstream[0]`},
		{"relative key file", "store = \"file:///s\"\nallow = [\"*\"]\nsecret_key_file = \"key\"\n", `secret_key_file: must be an absolute path of the file holding the secret`},
		{"key file on a cachix target", "[[target]]\ncache = \"c\"\nallow = [\"*\"]\nsecret_key_file = \"/k\"\n", `[[target]] #1: secret_key_file: only store targets sign with it; a Cachix target takes cachix.signing_key_file`},
		{"key file on a local store", "store = \"/srv/store\"\nallow = [\"*\"]\nsecret_key_file = \"/k\"\n", `secret_key_file: signs for binary cache stores`},
		{"bad upstream_timeout", "cache = \"c\"\nallow = [\"*\"]\nupstream_timeout = 5\n", `upstream_timeout: expected a duration`},
		{"typo", "cache = \"c\"\nallow = [\"*\"]\nmax_nar_sise = \"1GiB\"\n", `did you mean "max_nar_size"?`},
	} {
		t.Run(tc.why, func(t *testing.T) {
			_, err := Load(write(t, filepath.Join(dir, tc.why+".conf"), tc.conf+q))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{136: "136 B", 1024: "1.0 KiB", 65536 + 120: "64.1 KiB", 1395864371: "1.3 GiB", 5 << 40: "5.0 TiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// cachix.signing_key_file is read by the worker only for a Cachix
// target: with none, a missing file is no problem of the config's.
func TestCheckKeyFilesOnlyWhatIsUsed(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.sec")
	c := &Config{Cachix: Cachix{SigningKeyFile: missing}, Targets: []*Target{{Name: "local", Store: "file:///srv/cache"}}}
	if errs := c.CheckKeyFiles(); len(errs) != 0 {
		t.Errorf("store targets only: %v", errs)
	}
	c.Targets = append(c.Targets, &Target{Name: "main", Cache: "main"})
	if errs := c.CheckKeyFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "cachix.signing_key_file") {
		t.Errorf("with a Cachix target: %v", errs)
	}
}

// A key whose base64 is wrapped over lines is refused, as Nix and cachix
// refuse it (Go's decoder alone skips the line break).
func TestReadSecretKeyWrapped(t *testing.T) {
	data := base64.StdEncoding.EncodeToString(make([]byte, 64))
	dir := t.TempDir()
	for name, text := range map[string]string{"whole": "k-1:" + data + "\n", "wrapped": "k-1:" + data[:40] + "\n" + data[40:] + "\n"} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSecretKey(file)
		if (err == nil) != (name == "whole") {
			t.Errorf("%s key: %v", name, err)
		}
	}
}

func TestReadSecretKey(t *testing.T) {
	if _, err := exec.LookPath("nix-store"); err != nil {
		if os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
			t.Fatal("nix-store not found and CFH_TEST_REQUIRE_NIX=1")
		}
		t.Skip("needs nix-store --generate-binary-cache-key")
	}
	dir := t.TempDir()
	sec, pub := filepath.Join(dir, "sec"), filepath.Join(dir, "pub")
	if out, err := exec.Command("nix-store", "--generate-binary-cache-key", "test-1", sec, pub).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{sec, pub} {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ReadSecretKey(sec)
	if err != nil || !strings.HasPrefix(key, "test-1:") {
		t.Fatalf("= %.8q..., %v", key, err)
	}
	// The public key is no secret key; the error does not show it.
	content, _ := os.ReadFile(pub)
	if _, err := ReadSecretKey(pub); err == nil || !strings.Contains(err.Error(), "is not a Nix secret key") || strings.Contains(err.Error(), strings.TrimSpace(string(content))[8:]) {
		t.Errorf("public key: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chmod(sec, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSecretKey(sec); err == nil || !strings.Contains(err.Error(), "readable by group or others") || !strings.Contains(err.Error(), "mode 0640") {
			t.Errorf("group-readable key as root: %v", err)
		}
	}
}

// A store URI's secret-key= is checked as secret_key_file is: validate
// and doctor report a key others can read, and a relative one.
func TestCheckKeyFilesStoreURI(t *testing.T) {
	kf := filepath.Join(t.TempDir(), "key.sec")
	key := "cache-1:" + base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\n"
	if err := os.WriteFile(kf, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Config{Targets: []*Target{{Name: "local", Store: "file:///srv/cache?secret-key=" + kf}}}
	if errs := c.CheckKeyFiles(); len(errs) != 0 {
		t.Errorf("a private key: %v", errs)
	}
	if err := os.Chmod(kf, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := c.CheckKeyFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), `target "local": store's secret-key=`) || !strings.Contains(errs[0].Error(), kf) {
		t.Errorf("a key others can read: %v", errs)
	}
	c.Targets[0].Store = "file:///srv/cache?secret-key=key.sec"
	if errs := c.CheckKeyFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "must be an absolute path") {
		t.Errorf("a relative key: %v", errs)
	}
}

// A store URI's relative secret-key= is refused when the config loads, as
// a relative secret_key_file is, naming the target and the parameter: it
// was refused only at each push and by validate, and that message showed
// the value, which may be the key itself.
func TestStoreURIRelativeKeyRefusedAtLoad(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"store = \"file:///x?secret-key=cache-1:hunter2\"\nallow = [\"*\"]\n", "store: its secret-key= must be an absolute path"},
		{"cache = \"c\"\nallow = [\"*\"]\n[[target]]\nstore = \"file:///x?compression=zstd&secret%2Dkey=hunter2.sec\"\nallow = [\"*\"]\n", "[[target]] #1: store: its secret-key= must be an absolute path"},
		{"store = \"ssh-ng://nix@host?ssh-key=id_hunter2\"\nallow = [\"*\"]\n", "store: its ssh-key= must be an absolute path"},
	} {
		isolate(t)
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), c.conf+"[queue]\ndir = \"/q\"\n")
		_, err := Load(file)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: Load = %v, want an error with %q, without the value", c.conf, err, c.want)
		}
	}
	isolate(t)
	t.Setenv(EnvName("store"), "file:///x?secret-key=hunter2")
	t.Setenv(EnvName("allow"), "*")
	t.Setenv(EnvName("queue.dir"), "/q")
	if _, err := Load(""); err == nil || !strings.HasPrefix(err.Error(), "CACHIX_FILTER_HOOK_STORE: store: its secret-key= must be an absolute path") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("from the environment: %v", err)
	}
	// The worker's and validate's check say the same, without the value.
	if err := CheckStoreKeys("file:///x?secret-key=cache-1:hunter2"); err == nil || !strings.Contains(err.Error(), "must be an absolute path") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("CheckStoreKeys = %v", err)
	}
}

// Nix 2.29 and later sign with each key of a store URI's
// secret-keys=FILE1,FILE2 (a comma-separated list, %-decoded first). It
// was refused as an inline credential, with netrc advice; each file is
// now checked as secret-key='s is: private, and an absolute path.
func TestStoreURISecretKeys(t *testing.T) {
	dir := t.TempDir()
	key := "cache-1:" + base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\n"
	a, b := filepath.Join(dir, "a.sec"), filepath.Join(dir, "b.sec")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for uri, want := range map[string][]string{
		"file:///c?secret-keys=" + a + "," + b:                  {a, b},
		"file:///c?secret%2Dkeys=" + a + "%2C" + b:              {a, b},
		"file:///c?secret-key=" + a + "&secret-keys=" + b + ",": {a, b},
		"file:///c?secret-keys=":                                nil,
	} {
		if got := StoreKeyFiles(uri); !slices.Equal(got, want) {
			t.Errorf("StoreKeyFiles(%q) = %q, want %q", uri, got, want)
		}
	}
	store := "file:///srv/cache?compression=zstd&secret-keys=" + a + "," + b
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "store = \""+store+"\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
	if _, err := Load(file); err != nil {
		t.Errorf("Load: %v", err)
	}
	c := &Config{Targets: []*Target{{Name: "local", Store: store}}}
	if errs := c.CheckKeyFiles(); len(errs) != 0 {
		t.Errorf("private keys: %v", errs)
	}
	if err := os.Chmod(b, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := c.CheckKeyFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), `target "local": store's secret-keys=`) || !strings.Contains(errs[0].Error(), b) {
		t.Errorf("a key others can read: %v", errs)
	}
	isolate(t)
	file = write(t, filepath.Join(t.TempDir(), "hook.conf"), "store = \"file:///x?secret-keys="+a+",cache-1:hunter2\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "store: its secret-keys= must be an absolute path") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a relative key in the list: %v", err)
	}
}
