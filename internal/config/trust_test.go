package config

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
	"golang.org/x/sys/unix"
)

// Issue 9: a store URI that carries credentials is refused, naming the
// file or variable and the key, never showing the secret, and saying
// where the credentials go instead.
func TestStoreCredentialsRefused(t *testing.T) {
	for _, c := range []struct {
		uri, secret, fix string
	}{
		{"https://nix:hunter2@cache.example.org", "hunter2", "netrc-file"},
		{"https://cache.example.org/x?token=hunter2", "hunter2", "machine cache.example.org login USER password"},
		{"https://cache.example.org?compression=zstd&Access_Token=hunter2", "hunter2", "netrc"},
		{"s3://bucket?region=eu-west-1&aws_secret_access_key=hunter2", "hunter2", "AWS profile"},
		{"s3://bucket?authorization=hunter2", "hunter2", "?profile=NAME"},
		{"ssh://nix:hunter2@host", "hunter2", "netrc"},
		{"https://x?password=hunter2", "hunter2", "netrc"},
		// Parameters Go's query parser drops are in argv all the same.
		{"s3://bucket?aws_secret_access_key=hunter2;x", "hunter2", "AWS profile"},
		{"s3://bucket?region=eu&aws_secret_access_key=hun%zzter2", "hunter2", "AWS profile"},
		{"https://x?token%zz=hunter2", "hunter2", "netrc"},
		// A path is a store URI without parsing as a URL.
		{"/var/cache/nix%zz?password=hunter2", "hunter2", "netrc"},
	} {
		isolate(t)
		dir := t.TempDir()
		file := write(t, filepath.Join(dir, "hook.conf"), "store = \""+c.uri+"\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
		_, err := Load(file)
		if err == nil {
			t.Errorf("%s: accepted", c.uri)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, c.secret) {
			t.Errorf("%s: the error shows the secret: %v", c.uri, err)
		}
		for _, want := range []string{file + ":1: store: ", "nix copy's command line", c.fix} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error lacks %q: %v", c.uri, want, err)
			}
		}

		// From the environment, the variable is named.
		isolate(t)
		t.Setenv(EnvName("store"), c.uri)
		t.Setenv(EnvName("allow"), "*")
		t.Setenv(EnvName("queue.dir"), "/q")
		_, err = Load("")
		if err == nil || !strings.HasPrefix(err.Error(), "CACHIX_FILTER_HOOK_STORE: store: ") || strings.Contains(err.Error(), c.secret) {
			t.Errorf("%s from the environment: %v", c.uri, err)
		}
	}
	// What carries no secret is accepted: a user name, a key file's path
	// (secret-key is where Nix reads the signing key), an AWS profile.
	for _, uri := range []string{
		"ssh://nix@host",
		"ssh-ng://nix@host?ssh-key=/root/.ssh/id_ed25519",
		"file:///var/cache/nix?secret-key=/etc/nix/key.sec&compression=zstd",
		"s3://bucket?region=eu-west-1&profile=cache",
		"https://user@cache.example.org",
		"https://user:@cache.example.org",
		"/var/cache/nix",
	} {
		isolate(t)
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "store = \""+uri+"\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
		if _, err := Load(file); err != nil {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

func TestURISecrets(t *testing.T) {
	for uri, want := range map[string][]string{
		"https://u:p%40ss@host/x":            {"p%40ss", "p@ss"},
		"https://host?token=a%2Bb&region=eu": {"a%2Bb", "a+b"},
		"https://u:pw@host?auth=xyz":         {"pw", "xyz"},
		"file:///c?secret-key=/k":            nil,
		"s3://b?aws_secret_access_key=k;x":   {"k;x"},
		"https://host?token%zz=x%zz":         {"x%zz"},
		"/var/cache/nix":                     nil,
		"/var/cache%zz?token=x":              {"x"},
		// No scheme: url.Parse reads the authority all the same.
		"//u:p%40ss@host": {"p%40ss", "p@ss"},
	} {
		if got := URISecrets(uri); !slices.Equal(got, want) {
			t.Errorf("URISecrets(%q) = %q, want %q", uri, got, want)
		}
	}
}

// Issue 9: an unknown CACHIX_FILTER_HOOK_* variable is an error naming it
// and the closest known one; the variables the program sets or reads
// itself are known.
func TestUnknownEnv(t *testing.T) {
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), minimal)
	t.Setenv("CACHIX_FILTER_HOOK_ALOW", "hello-*")
	t.Setenv("CACHIX_FILTER_HOOK_QUEUE_BACH", "8")
	t.Setenv("CACHIX_FILTER_HOOK_SOMETHING_ELSE_ENTIRELY", "1")
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load accepted unknown variables")
	}
	for _, want := range []string{
		"CACHIX_FILTER_HOOK_ALOW: unknown variable: no key of hook.conf is named so (did you mean CACHIX_FILTER_HOOK_ALLOW?)",
		"CACHIX_FILTER_HOOK_QUEUE_BACH: unknown variable: no key of hook.conf is named so (did you mean CACHIX_FILTER_HOOK_QUEUE_BATCH?)",
		"CACHIX_FILTER_HOOK_SOMETHING_ELSE_ENTIRELY: unknown variable: no key of hook.conf is named so (see hook.conf.example",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), file) {
		t.Errorf("an error caused by a variable names the file:\n%v", err)
	}

	// Empty counts as unset, as for the keys.
	isolate(t)
	t.Setenv("CACHIX_FILTER_HOOK_ALOW", "")
	if _, err := Load(file); err != nil {
		t.Errorf("an empty unknown variable: %v", err)
	}

	// What the program reads or sets itself: the config file, strict,
	// and the queue.dir that worker.Spawn gives the worker.
	isolate(t)
	t.Setenv(EnvConfig, file)
	t.Setenv(EnvName("strict"), "1")
	t.Setenv(EnvName("queue.dir"), "/q")
	for _, name := range []string{"CACHIX_FILTER_HOOK_CONFIG", "CACHIX_FILTER_HOOK_STRICT", "CACHIX_FILTER_HOOK_QUEUE_DIR"} {
		if !KnownEnv()[name] {
			t.Errorf("%s is not known", name)
		}
	}
	if _, err := Load(""); err != nil {
		t.Errorf("CONFIG, STRICT and QUEUE_DIR: %v", err)
	}
}

// Issue 9: an error a variable causes names the variable, not the file.
func TestEnvErrorsNameTheVariable(t *testing.T) {
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), minimal)
	t.Setenv(EnvName("store"), "file:///srv/cache")
	_, err := Load(file)
	want := "CACHIX_FILTER_HOOK_STORE: top level: both cache and store are set (cache from " + file + ", store from CACHIX_FILTER_HOOK_STORE)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("cache in the file, store from the environment: %v\nwant it to start with %q", err, want)
	}

	// The environment alone, allow but no destination.
	isolate(t)
	t.Setenv(EnvName("allow"), "*")
	t.Setenv(EnvName("queue.dir"), "/q")
	_, err = Load("")
	if err == nil || !strings.HasPrefix(err.Error(), "CACHIX_FILTER_HOOK_ALLOW: top level: neither cache nor store is set") {
		t.Errorf("allow from the environment alone: %v", err)
	}

	// The default target's name from the environment clashes with a
	// [[target]]'s.
	isolate(t)
	file = write(t, filepath.Join(t.TempDir(), "hook.conf"), "cache = \"a\"\nallow = [\"*\"]\n[[target]]\ncache = \"work\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
	t.Setenv(EnvName("name"), "work")
	_, err = Load(file)
	if err == nil || !strings.HasPrefix(err.Error(), `CACHIX_FILTER_HOOK_NAME: two targets are named "work"`) {
		t.Errorf("a name from the environment: %v", err)
	}
}

// Issue 9: deep nesting is refused before parsing, in bounded memory and
// time. 400,000 nested arrays took the parser 520 MB and 2 s.
func TestNestingBounded(t *testing.T) {
	isolate(t)
	const n = 400000
	bomb := "cache = \"c\"\nallow = [\"*\"]\nx = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n"
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), bomb)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Load(file)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), file+": line 3: arrays and inline tables nest deeper than 32 levels") {
		t.Errorf("Load = %v", err)
	}
	// Reading the file is 0.8 MB; the old parse allocated 520 MB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("Load allocated %d MB", alloc>>20)
	}
	// The allocation above is the bound that holds on any machine; the
	// time is only told.
	t.Logf("Load refused %d nested arrays in %s, allocating %d KB", n, took.Round(time.Millisecond), (after.TotalAlloc-before.TotalAlloc)>>10)

	// The limit itself passes; brackets in strings and comments count for
	// nothing.
	b := strings.Repeat("[", 2*MaxNesting)
	ok := "cache = \"c\"\nallow = [\"*\"] # " + b + "\n" +
		"[cachix]\npush_args = [\"" + b + "\", '" + b + "', \"\"\"\n" + b + "\n\"\"\", \"\\\"" + b + "\"]\n" +
		"[queue]\ndir = \"/q\"\n"
	if _, err := Load(write(t, filepath.Join(t.TempDir(), "hook.conf"), ok)); err != nil {
		t.Errorf("brackets in strings and comments: %v", err)
	}
	at := func(depth int) error {
		return checkNesting("f", []byte("x = "+strings.Repeat("[", depth)+strings.Repeat("]", depth)))
	}
	if err := at(MaxNesting); err != nil {
		t.Errorf("depth %d: %v", MaxNesting, err)
	}
	if err := at(MaxNesting + 1); err == nil {
		t.Errorf("depth %d accepted", MaxNesting+1)
	}
	if err := checkNesting("f", []byte("a = {b = {c = [[{d = 1}]]}}\n[[target]]\n")); err != nil {
		t.Errorf("inline tables: %v", err)
	}
}

// Issue 9: strict = true applies to an invalid configuration too, from the
// file (if root may trust it) or from CACHIX_FILTER_HOOK_STRICT.
func TestStrictRequested(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	conf := func(content string) string {
		return write(t, filepath.Join(dir, "hook.conf"), content)
	}
	const n = 100000
	for _, c := range []struct {
		name, content string
		want          bool
	}{
		{"unknown key", "strict = true\ncache = \"c\"\nalow = [\"*\"]\n", true},
		{"bad value", "strict = true\ncache = 7\n", true},
		{"not TOML", "cache = \"c\nstrict = true # yes\n", true},
		{"nested too deep", "strict = true\nx = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n", true},
		{"strict false", "strict = false\ncache = 7\n", false},
		{"no strict", "cache = 7\n", false},
		{"strict in a table", "cache = \"c\n[queue]\nstrict = true\n", false},
	} {
		if got := StrictRequested(conf(c.content)); got != c.want {
			t.Errorf("%s: StrictRequested = %v, want %v", c.name, got, c.want)
		}
	}
	file := conf("cache = 7\n")
	for val, want := range map[string]bool{"1": true, "true": true, "yes": true, "0": false, "false": false} {
		t.Setenv(EnvName("strict"), val)
		if got := StrictRequested(file); got != want {
			t.Errorf("%s=%s: StrictRequested = %v, want %v", EnvName("strict"), val, got, want)
		}
	}
	// The variable wins over the file, as for every key.
	t.Setenv(EnvName("strict"), "0")
	if StrictRequested(conf("strict = true\ncache = 7\n")) {
		t.Error("CACHIX_FILTER_HOOK_STRICT=0 did not override the file")
	}
	t.Setenv(EnvName("strict"), "1")
	if !StrictRequested(filepath.Join(dir, "missing.conf")) {
		t.Error("CACHIX_FILTER_HOOK_STRICT=1 with a missing file")
	}
	t.Setenv(EnvName("strict"), "")
	if StrictRequested(filepath.Join(dir, "missing.conf")) {
		t.Error("a missing file asked for strict")
	}
	if os.Geteuid() == 0 {
		// A file root refuses says nothing root believes.
		f := conf("strict = true\ncache = 7\n")
		os.Chmod(f, 0o622)
		if StrictRequested(f) {
			t.Error("a group-writable file's strict was believed")
		}
	}
}

// The lines a syntax error shows hide a URI's credentials as the store
// key's own error does: the message is in every build's log.
func TestSyntaxErrorHidesURICredentials(t *testing.T) {
	isolate(t)
	for _, conf := range []string{
		"store = \"https://nix:hunter2@cache.example.org\"\nallow = [\"*\"\n",
		"store = \"s3://bucket?aws_secret_access_key=hunter2\" x\nallow = [\"*\"]\n",
		"[[target]]\nstore = 's3://bucket?region=eu&token=hunter2'\nallow = [\"*\"]\n\"\n",
	} {
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), conf)
		_, err := Load(file)
		if err == nil {
			t.Fatalf("Load took:\n%s", conf)
		}
		if msg := err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, "REDACTED") || !strings.Contains(msg, "| allow = [") {
			t.Errorf("the excerpt shows the secret, or no line:\n%s", msg)
		}
	}
}

// A URI with credentials written under another key (a store URI as
// cache, one upstream as a string) is refused without showing them, as
// under store.
func TestMisplacedURIHidesCredentials(t *testing.T) {
	for _, conf := range []string{
		"cache = \"https://nix:hunter2@mycache.cachix.org\"\nallow = [\"*\"]\n",
		"[[target]]\ncache = \"s3://bucket?aws_secret_access_key=hunter2\"\n",
		"cache = \"c\"\nallow = [\"*\"]\nupstream = \"https://nix:hunter2@cache.example.org\"\n",
	} {
		isolate(t)
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), conf)
		_, err := Load(file)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "REDACTED") {
			t.Errorf("%q: %v", conf, err)
		}
	}
	isolate(t)
	t.Setenv(EnvName("cache"), "https://nix:hunter2@mycache.cachix.org")
	t.Setenv(EnvName("queue.dir"), "/q")
	if _, err := Load(""); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.HasPrefix(err.Error(), "CACHIX_FILTER_HOOK_CACHE: cache: ") {
		t.Errorf("from the environment: %v", err)
	}
}

// A store URI's secret-key= and secret_key_file both name the key nix
// copy signs with, but Nix reads one secret-key= only (the first, which
// is the URI's): secret_key_file, added after it, was silently ignored,
// and an empty secret-key= left the cache unsigned. The combination is
// refused at load, naming both, never a key.
func TestStoreSecretKeyAndSecretKeyFileRefused(t *testing.T) {
	for _, c := range []struct{ name, conf string }{
		{"target", "store = \"file:///srv/cache?secret-key=/etc/nix/a.sec\"\nsecret_key_file = \"/etc/nix/b.sec\"\n"},
		{"empty", "store = \"file:///srv/cache?compression=zstd&secret-key=\"\nsecret_key_file = \"/etc/nix/b.sec\"\n"},
		{"encoded", "store = \"file:///srv/cache?secret%2Dkey=/etc/nix/a.sec\"\nsecret_key_file = \"/etc/nix/b.sec\"\n"},
		{"inherited", "secret_key_file = \"/etc/nix/b.sec\"\n[[target]]\nstore = \"file:///srv/cache?secret-key=/etc/nix/a.sec\"\nallow = [\"*\"]\n"},
	} {
		isolate(t)
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), c.conf+"allow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
		if c.name == "inherited" {
			file = write(t, file, c.conf+"[queue]\ndir = \"/q\"\n")
		}
		_, err := Load(file)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, want := range []string{file, "secret_key_file", "secret-key="} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", c.name, want, err)
			}
		}
	}
	// secret-keys= (Nix 2.29 and later) signs with each key as well as
	// secret-key's: both are used.
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "store = \"file:///srv/cache?secret-keys=/etc/nix/a.sec\"\nsecret_key_file = \"/etc/nix/b.sec\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n")
	if _, err := Load(file); err != nil {
		t.Errorf("secret-keys= with secret_key_file: %v", err)
	}
}

// A local store's store directory (store=, real=) may be what Nix makes
// it as root, as /nix/store: root's, sticky, writable by its group, when
// that group is Nix's build users' group, the Nix store's own. Any group
// was accepted, so the members of another (here a user's own group)
// could add entries to a directory root fills, such as the lock files
// Nix opens by name, following links.
func TestLocalStoreDirGroup(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	sd := filepath.Join(d, "store")
	must(t, os.Mkdir(sd, 0o755))
	must(t, os.Chown(sd, 0, u.Gid))
	must(t, os.Chmod(sd, os.ModeSticky|0o775))
	store := "local://" + d + "?real=" + sd
	err := CheckStoreDirs(store)
	if err == nil || !strings.Contains(err.Error(), sd) || !strings.Contains(err.Error(), "group") {
		t.Errorf("%s, its group %d's to write: CheckStoreDirs = %v, want it refused, naming it and its group", sd, u.Gid, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(storepath.StoreDir(), &st); err != nil || st.Uid != 0 || st.Mode&syscall.S_ISVTX == 0 || st.Mode&0o020 == 0 {
		t.Skipf("no Nix store here with a build users' group (%s: %v)", storepath.StoreDir(), err)
	}
	must(t, os.Chown(sd, 0, int(st.Gid)))
	if err := CheckStoreDirs(store); err != nil {
		t.Errorf("%s as Nix makes it (the group of %s): %v", sd, storepath.StoreDir(), err)
	}
}

// A local-overlay:// store opens its lower-store= as a store of its own,
// as root: a local one is written as any local store is (its database,
// its directories, its store directory's owner and mode), so its
// directories are checked the same way, whether written as a path, a
// local:// URI or local?root=, as written or %-decoded. One that cannot
// be checked (not a local store, the daemon or auto) is refused. It was
// not looked at. A unix:// one, a daemon Nix connects to as root, has its
// socket checked as a unix:// target's: it was taken for the daemon's.
func TestLocalOverlayLowerStoreChecked(t *testing.T) {
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(d, name)
		must(t, os.Mkdir(p, mode))
		must(t, os.Chmod(p, mode))
		return p
	}
	open, ok := mk("open", 0o777), mk("ok", 0o755)
	overlay := "local-overlay://" + ok + "/root?upper-layer=" + ok + "/upper&lower-store="
	for _, c := range []struct{ lower, bad string }{
		{open, open},
		{open + "/lower", open},
		{"local://" + ok + "?state=" + open, open},
		{url.QueryEscape("local://" + ok + "?state=" + open), open},
		{url.QueryEscape("local?root=" + open), open},
		{"local?root=" + open, open},
		{url.QueryEscape("local-overlay://" + ok + "/l?upper-layer=" + ok + "/u&lower-store=" + open), open},
		{"ssh://builder", "ssh://builder"},
		// Nix connects to it as root, as to a unix:// target's.
		{"unix://" + open + "/socket", open},
		{url.QueryEscape("unix://" + open + "/socket"), open},
	} {
		err := CheckStoreDirs(overlay + c.lower)
		if err == nil || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "lower-store") {
			t.Errorf("lower-store=%s: CheckStoreDirs = %v, want it refused naming lower-store and %s", c.lower, err, c.bad)
		}
	}
	for _, lower := range []string{"", "auto", "daemon", "unix://" + ok + "/socket", ok + "/lower", url.QueryEscape("local://" + ok + "/lower?state=" + ok + "/state")} {
		if err := CheckStoreDirs(overlay + lower); err != nil {
			t.Errorf("lower-store=%s: %v", lower, err)
		}
	}
}

// A local store's root holds what Nix makes in it unless the query puts
// it elsewhere: nix/var/nix (its database), nix/var/log/nix and the
// store directory nix/store. Only the root itself was checked, so a
// nix/ in it that another user owns, or a world-writable database
// directory, had root write Nix's database and store through them.
func TestLocalStoreRootSubdirsChecked(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	mk := func(p string, mode os.FileMode) string {
		must(t, os.MkdirAll(p, 0o755))
		must(t, os.Chmod(p, mode))
		return p
	}
	theirs := mk(filepath.Join(d, "a", "nix"), 0o755)
	u.Chown(t, theirs)
	open := mk(filepath.Join(d, "b", "nix", "var", "nix", "db"), 0o777)
	for _, c := range []struct{ store, bad string }{
		{filepath.Join(d, "a"), theirs},
		{"local://" + filepath.Join(d, "a") + "?compression=none", theirs},
		{"local://?root=" + filepath.Join(d, "a"), theirs},
		{filepath.Join(d, "b"), open},
	} {
		err := CheckStoreDirs(c.store)
		if err == nil || !strings.Contains(err.Error(), c.bad) {
			t.Errorf("%s: CheckStoreDirs = %v, want it refused naming %s", c.store, err, c.bad)
		}
	}
	// What Nix makes, or puts elsewhere: accepted.
	ok := mk(filepath.Join(d, "c", "nix", "var", "nix", "db"), 0o755)
	for _, store := range []string{filepath.Join(d, "c"), filepath.Join(d, "missing"), filepath.Join(d, "b") + "?state=" + ok} {
		if err := CheckStoreDirs(store); err != nil {
			t.Errorf("%s: %v", store, err)
		}
	}
}

// A store directory refused for its group's members' writing in it is to
// be made anew, as a file:// store's directory another user could write
// (trust.CheckWriteDir): a chgrp or chmod would keep what they could put
// in it, such as a link at a .lock name that nix copy, as root, opens and
// writes through. The refusal said chgrp or chmod g-w, after which the
// directory was accepted with their link in it.
func TestLocalStoreDirGroupAdviceKeepsNoLinks(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	// The Nix store's group is root's here: the user's is not it.
	nixStore := filepath.Join(d, "nixstore")
	must(t, os.Mkdir(nixStore, 0o755))
	sd := filepath.Join(d, "store")
	must(t, os.Mkdir(sd, 0o755))
	must(t, os.Chown(sd, 0, u.Gid))
	must(t, os.Chmod(sd, os.ModeSticky|0o775))
	lock := filepath.Join(sd, strings.Repeat("a", 32)+"-x.lock")
	must(t, os.Symlink(filepath.Join(d, "elsewhere"), lock))
	u.Chown(t, lock)
	store := "local://" + d + "?real=" + sd
	for _, storeMode := range []os.FileMode{os.ModeSticky | 0o775, 0o755} {
		must(t, os.Chmod(nixStore, storeMode))
		t.Setenv("NIX_STORE_DIR", nixStore)
		err := CheckStoreDirs(store)
		if err == nil || !strings.Contains(err.Error(), "mv "+sd+" "+sd+".untrusted") {
			t.Errorf("%s, its group %d's to write, with a link of theirs in it (the Nix store %v): CheckStoreDirs = %v, want it to be made anew", sd, u.Gid, storeMode, err)
		}
	}
}

// Under a root (a path, local://ROOT, root=), store= is the store's
// logical name only: Nix puts the store directory at ROOT/nix/store
// unless real= says otherwise, whatever store= says. store= was checked
// as a real directory (refusing a name under a directory others can
// write, where nothing is written), and ROOT plus store= instead of
// ROOT/nix/store, which went unchecked: a world-writable one was
// accepted.
func TestLocalStoreLogicalStoreUnderRoot(t *testing.T) {
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	open := mkdirMode(t, filepath.Join(d, "open"), 0o777)
	root := filepath.Join(d, "root")
	for _, store := range []string{"local://" + root + "?store=" + open + "/store", root + "?store=" + open + "/store", "local?root=" + root + "&store=" + open + "/store"} {
		if err := CheckStoreDirs(store); err != nil {
			t.Errorf("%s: store= names no directory under a root: %v", store, err)
		}
	}
	sd := filepath.Join(root, "nix", "store")
	must(t, os.MkdirAll(sd, 0o755))
	must(t, os.Chmod(sd, 0o777))
	for _, store := range []string{"local://" + root + "?store=/cfh-logical/store", "local?root=" + root + "&store=/cfh-logical/store"} {
		if err := CheckStoreDirs(store); err == nil || !strings.Contains(err.Error(), sd) {
			t.Errorf("%s: CheckStoreDirs = %v, want %s (mode 0777) refused", store, err, sd)
		}
	}
	// Without a root, store= is the store directory itself.
	if err := CheckStoreDirs("local?store=" + sd); err == nil || !strings.Contains(err.Error(), sd) {
		t.Errorf("local?store=%s: CheckStoreDirs = %v, want it refused", sd, err)
	}
}

// Nix 2.35 and later keep a file:// cache's realisations in
// build-trace-v2/ (realisationsPrefix), which every nix copy makes as
// root (createDirs, following links) and writes through temporary files
// it opens by name, as realisations/ before: only realisations/ was
// checked, so a build-trace-v2/ others can write was accepted.
func TestFileStoreBuildTraceChecked(t *testing.T) {
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	bt := mkdirMode(t, filepath.Join(d, "build-trace-v2"), 0o777)
	if err := CheckStoreDirs("file://" + d); err == nil || !strings.Contains(err.Error(), bt) {
		t.Errorf("CheckStoreDirs = %v, want %s (mode 0777) refused", err, bt)
	}
}

// A unix:// store is the daemon behind that socket, which nix copy, as
// root, hands the paths to: a socket in a directory another user can
// write (they bind their own in its place), or one they own (their
// daemon listens on it), is refused, as its link is. Root's socket in a
// directory only root writes is accepted, and so is one not there yet,
// and the default socket (unix:// without a path).
func TestUnixStoreSocketChecked(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	bind := func(p string) string {
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		return p
	}
	theirDir := mkdirMode(t, filepath.Join(d, "theirs"), 0o755)
	u.Chown(t, theirDir)
	inTheirDir := bind(filepath.Join(theirDir, "socket"))
	openDir := mkdirMode(t, filepath.Join(d, "open"), os.ModeSticky|0o777)
	inOpenDir := bind(filepath.Join(openDir, "socket"))
	rootDir := mkdirMode(t, filepath.Join(d, "root"), 0o755)
	theirSocket := bind(filepath.Join(rootDir, "theirs"))
	u.Chown(t, theirSocket)
	link := filepath.Join(rootDir, "link")
	must(t, os.Symlink(inTheirDir, link))
	for _, c := range []struct{ store, bad string }{
		{"unix://" + inTheirDir, theirDir},
		{"unix://" + inOpenDir, openDir},
		{"unix://" + filepath.Join(openDir, "missing"), openDir},
		{"unix://" + theirSocket + "?max-connections=1", "owned by " + u.Name},
		{"unix://" + link, theirDir},
		{"unix://relative/socket", "absolute"},
	} {
		err := CheckStoreDirs(c.store)
		if err == nil || !strings.Contains(err.Error(), c.bad) {
			t.Errorf("%s: CheckStoreDirs = %v, want it refused naming %s", c.store, err, c.bad)
		}
		// The directory may be /tmp: never "mv /tmp /tmp.untrusted".
		if err != nil && strings.Contains(err.Error(), "mv ") {
			t.Errorf("%s: CheckStoreDirs = %v, which says to move the directory aside", c.store, err)
		}
	}
	ours := bind(filepath.Join(rootDir, "socket"))
	for _, store := range []string{"unix://" + ours, "unix://" + filepath.Join(rootDir, "missing"), "unix://", "daemon"} {
		if err := CheckStoreDirs(store); err != nil {
			t.Errorf("%s: %v", store, err)
		}
	}
}

// mkdirMode makes the directory p with mode, whatever the umask takes
// off, and returns p.
func mkdirMode(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	must(t, os.Mkdir(p, mode))
	must(t, os.Chmod(p, mode))
	return p
}

// must fails the test on err: the setup of a test, not what it checks.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// keepSwapping exchanges the names a and b (RENAME_EXCHANGE) over and
// over, until the function it returns is called, which returns once the
// swapping stopped.
func keepSwapping(t *testing.T, a, b string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// The daemon's own socket, named by its path, is the daemon `daemon` and
// unix:// alone name: Debian's nix packages make its directory 0770
// root:nix-users, which the unix:// rule refused, though the same socket
// as `daemon` passes. Another socket in that directory is still refused.
func TestUnixStoreDaemonSocketIsTheDaemon(t *testing.T) {
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	sockDir := mkdirMode(t, filepath.Join(d, "daemon-socket"), 0o770)
	// No socket bound: the check is of its directory (and owner, when
	// it is there), and a path under a nested TMPDIR can be longer than
	// a socket's address may be.
	sock := filepath.Join(sockDir, "socket")
	t.Setenv("NIX_STATE_DIR", d)
	t.Setenv("NIX_DAEMON_SOCKET_PATH", "")
	for _, store := range []string{"daemon", "unix://", "unix://" + sock} {
		if err := CheckStoreDirs(store); err != nil {
			t.Errorf("%s: CheckStoreDirs = %v, want it taken for the daemon", store, err)
		}
	}
	if err := CheckStoreDirs("unix://" + filepath.Join(sockDir, "other")); err == nil || !strings.Contains(err.Error(), sockDir) {
		t.Errorf("another socket in %s: CheckStoreDirs = %v, want it refused", sockDir, err)
	}
}

// Nix's URL parser takes scheme:/path as scheme:///path: nix copy --to
// file:/srv/cache writes /srv/cache (Nix 2.8 as the latest), unix:/dir/sock
// connects to that socket, local:/root opens a local store there. Only
// the forms with "//" were checked, so file:, unix:, local: and
// local-overlay: with one slash went to nix copy, as root, unchecked.
func TestStoreSchemeWithoutSlashesChecked(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	open := mkdirMode(t, filepath.Join(d, "open"), 0o777)
	theirs := filepath.Join(d, "theirs")
	must(t, os.Mkdir(theirs, 0o755))
	u.Chown(t, theirs)
	ok := filepath.Join(d, "ok")
	must(t, os.Mkdir(ok, 0o755))
	for _, c := range []struct{ store, bad string }{
		{"file:" + open, open},
		{"file:" + open + "?compression=none", open},
		{"unix:" + theirs + "/socket", theirs},
		{"local:" + open, open},
		{"local-overlay:" + ok + "?upper-layer=" + open, open},
		{"local-overlay:" + ok + "?lower-store=local:" + open, open},
		{"local-overlay://" + ok + "?lower-store=unix:" + theirs + "/socket", theirs},
	} {
		err := CheckStoreDirs(c.store)
		if err == nil || !strings.Contains(err.Error(), c.bad) {
			t.Errorf("%s: CheckStoreDirs = %v, want it refused naming %s", c.store, err, c.bad)
		}
	}
	if !relativeFileStore("file:cache") {
		t.Errorf("file:cache: not refused as relative")
	}
	for _, store := range []string{"file:" + ok, "local:" + ok, "unix:" + ok + "/socket"} {
		if err := CheckStoreDirs(store); err != nil {
			t.Errorf("%s: %v", store, err)
		}
	}
}

// A directory Nix makes in a local store's root or state directory
// (nix/var/nix, its db/), made sticky and everyone's to write by mistake,
// is the store's own, to be made anew as any other refused directory: it
// was refused with the advice for a directory shared by design (/tmp),
// to use a directory of root's instead of it.
func TestLocalStoreSharedSubdirAdvice(t *testing.T) {
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	root := filepath.Join(d, "root")
	db := filepath.Join(root, "nix", "var", "nix", "db")
	must(t, os.MkdirAll(db, 0o755))
	must(t, os.Chmod(db, os.ModeSticky|0o777))
	for _, store := range []string{root, root + "/", "local?root=" + root, "local://?state=" + filepath.Dir(db)} {
		err := CheckStoreDirs(store)
		if err == nil || !strings.Contains(err.Error(), "mv "+db+" "+db+".untrusted") {
			t.Errorf("%s, with %s sticky and everyone's to write: CheckStoreDirs = %v, want it made anew", store, db, err)
		}
	}
}

// The store's root itself, sticky and everyone's to write, is the top
// the user chose: it keeps the advice for a directory shared by design,
// written with a slash at its end or not.
func TestLocalStoreSharedRootAdvice(t *testing.T) {
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	root := mkdirMode(t, filepath.Join(d, "root"), os.ModeSticky|0o777)
	for _, store := range []string{root, root + "/", "local?root=" + root + "/"} {
		err := CheckStoreDirs(store)
		if err == nil || !strings.Contains(err.Error(), "directory of root's") {
			t.Errorf("%s, sticky and everyone's to write: CheckStoreDirs = %v, want a directory of root's instead", store, err)
		}
	}
}

// unix:/// (and a socket path ending in '/') names a directory, not a
// socket: it was refused as "/ is not a file", which says neither what
// is wrong with the store nor how to mend it, and unix:///run/missing/
// was accepted.
func TestUnixStoreNoSocketPath(t *testing.T) {
	for _, store := range []string{"unix:///", "unix:/", "unix:///?max-connections=1", "unix:///run/missing/"} {
		err := CheckStoreDirs(store)
		if err == nil || strings.Contains(err.Error(), "is not a file") || !strings.Contains(err.Error(), "no socket") || !strings.Contains(err.Error(), "unix://") {
			t.Errorf("%s: CheckStoreDirs = %v, want it refused for naming no socket, with the fix", store, err)
		}
	}
}

// The daemon's socket named otherwise than NIX_DAEMON_SOCKET_PATH (or
// the default) spells it, with a doubled slash, a "." or through links
// only root can change, is still the daemon: it was compared as written,
// and refused for the daemon's directory (0770 root:nix-users on
// Debian). A link or directory another user can change on the way still
// leads to their socket, and is refused.
func TestUnixStoreDaemonSocketOtherSpellings(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	sockDir := mkdirMode(t, filepath.Join(d, "daemon-socket"), 0o770)
	sock := filepath.Join(sockDir, "socket")
	t.Setenv("NIX_STATE_DIR", "")
	t.Setenv("NIX_DAEMON_SOCKET_PATH", sock)
	rootDir := filepath.Join(d, "root")
	must(t, os.Mkdir(rootDir, 0o755))
	sockLink := filepath.Join(rootDir, "daemon.sock")
	must(t, os.Symlink(sock, sockLink))
	relLink := filepath.Join(rootDir, "rel.sock")
	must(t, os.Symlink("../daemon-socket/socket", relLink))
	dirLink := filepath.Join(rootDir, "sockdir")
	must(t, os.Symlink(sockDir, dirLink))
	chain := filepath.Join(rootDir, "chain.sock")
	must(t, os.Symlink("daemon.sock", chain))
	for _, store := range []string{
		"unix://" + sockDir + "//socket",
		"unix://" + d + "/./daemon-socket/socket",
		"unix://" + sockLink,
		"unix://" + relLink,
		"unix://" + dirLink + "/socket",
		"unix://" + chain,
		"unix://" + rootDir + "/../daemon-socket/socket",
	} {
		if err := CheckStoreDirs(store); err != nil {
			t.Errorf("%s: CheckStoreDirs = %v, want it taken for the daemon", store, err)
		}
	}
	// Others' to change: an open directory holding the link, their
	// link in a sticky one.
	openDir := mkdirMode(t, filepath.Join(d, "open"), 0o777)
	openLink := filepath.Join(openDir, "daemon.sock")
	must(t, os.Symlink(sock, openLink))
	sticky := mkdirMode(t, filepath.Join(d, "sticky"), os.ModeSticky|0o777)
	theirLink := filepath.Join(sticky, "daemon.sock")
	must(t, os.Symlink(sock, theirLink))
	u.Chown(t, theirLink)
	theirDirLink := filepath.Join(sticky, "sockdir")
	must(t, os.Symlink(sockDir, theirDirLink))
	u.Chown(t, theirDirLink)
	for _, store := range []string{"unix://" + openLink, "unix://" + theirLink, "unix://" + theirDirLink + "/socket", "unix://" + theirDirLink + "/../daemon-socket/socket", "unix://" + sockDir + "/other", "unix://" + sockDir + "/socket/"} {
		if err := CheckStoreDirs(store); err == nil {
			t.Errorf("%s: CheckStoreDirs accepted it", store)
		}
	}
}

// A local store's root or directory given by a relative path is taken by
// nix copy from the worker's working directory: LocalStoreDirs leaves it
// out, so it went to nix copy unchecked. A Target not made by Load (and
// a lower store) is refused by the worker's check too.
func TestLocalStoreRelativeRefused(t *testing.T) {
	for _, store := range []string{"local://rel", "local:rel", "local-overlay://rel?upper-layer=/u", "local:///srv/s?state=var", "local://?real=r", "local-overlay:///o?lower-store=local%3A%2F%2Flow"} {
		if err := CheckStoreDirs(store); err == nil || !strings.Contains(err.Error(), "must be an absolute path") {
			t.Errorf("%s: CheckStoreDirs = %v, want it refused for a relative path", store, err)
		}
	}
	// The fix is the user's own value from /, not an example.
	for store, fix := range map[string]string{
		"local://rel":                                      "local:///rel",
		"local:///srv/s?state=var":                         "state=/var",
		"local://?real=r":                                  "real=/r",
		"local:///srv/s?store=./nix/store":                 "store=/nix/store",
		"local-overlay:///o?lower-store=local%3A%2F%2Flow": "local:///low",
		"unix://rel/sock":                                  "unix:///rel/sock",
		// Cleaned: Nix's canonPath drops "link/.." in a path
		// setting lexically, so "state=/link/../var" is /var to it.
		"local:///srv/s?state=link/../var": "state=/var",
		// Not cleaned: the kernel takes ".." above the link's target.
		"unix://run/link/../sock": "unix:///run/link/../sock",
	} {
		if err := CheckStoreDirs(store); err == nil || !strings.Contains(err.Error(), "("+fix) || strings.Contains(err.Error(), "/srv/store") {
			t.Errorf("%s: CheckStoreDirs = %v, want the fix %s", store, err, fix)
		}
	}
}

// A link on the way to a unix:// socket was judged by its owner from one
// Lstat and followed by a Readlink of the same name later: a link put in
// its place between the two (here another user's, leading to the
// daemon's socket, swapped with root's, leading elsewhere) was followed
// on the word of the one it replaced. Neither link leads to the daemon
// through links only root can change, whichever is there.
func TestUnixStoreDaemonSocketLinkSwapped(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	sockDir := mkdirMode(t, filepath.Join(d, "daemon-socket"), 0o755)
	t.Setenv("NIX_STATE_DIR", "")
	t.Setenv("NIX_DAEMON_SOCKET_PATH", filepath.Join(sockDir, "socket"))
	rootDir := mkdirMode(t, filepath.Join(d, "root"), 0o755)
	p := filepath.Join(rootDir, "daemon.sock")
	must(t, os.Symlink(filepath.Join(d, "elsewhere", "socket"), p))
	theirs := filepath.Join(rootDir, "theirs")
	must(t, os.Symlink(filepath.Join(sockDir, "socket"), theirs))
	u.Chown(t, theirs)
	defer keepSwapping(t, theirs, p)()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		if isDaemonSocket(p, daemonSocket(os.Environ())) {
			t.Fatalf("%s, swapped between root's link elsewhere and %s's to the daemon's socket, taken for the daemon's socket (after %d tries)", p, u.Name, i+1)
		}
	}
}

// The directory of a unix:// socket was found by name (Lstat, or
// EvalSymlinks above a "..") and checked by name again after
// (trust.CheckParents): a link on its way swapped between the two (here
// another user's, leading to the daemon's socket's directory, with
// root's, leading elsewhere) made the socket taken for the daemon's.
func TestUnixStoreDaemonSocketDirSwapped(t *testing.T) {
	u := testuser.New(t)
	d := t.TempDir()
	must(t, os.Chmod(d, 0o755))
	top := mkdirMode(t, filepath.Join(d, "top"), 0o755)
	sockDir := mkdirMode(t, filepath.Join(top, "daemon-socket"), 0o755)
	mkdirMode(t, filepath.Join(sockDir, "sub"), 0o755)
	t.Setenv("NIX_STATE_DIR", "")
	t.Setenv("NIX_DAEMON_SOCKET_PATH", filepath.Join(sockDir, "socket"))
	elsewhere := mkdirMode(t, filepath.Join(d, "elsewhere"), 0o755)
	mkdirMode(t, filepath.Join(elsewhere, "daemon-socket"), 0o755)
	mkdirMode(t, filepath.Join(elsewhere, "daemon-socket", "sub"), 0o755)
	rootDir := mkdirMode(t, filepath.Join(d, "root"), 0o755)
	for _, c := range []struct{ ours, theirs, sock string }{
		// A directory through the link: root's leads elsewhere.
		{filepath.Join(elsewhere, "daemon-socket"), sockDir, "l/socket"},
		// Above the link's target.
		{filepath.Join(elsewhere, "daemon-socket", "sub"), filepath.Join(sockDir, "sub"), "l/../socket"},
		{filepath.Join(elsewhere, "daemon-socket"), sockDir, "l/sub/../socket"},
		// Through the link, to a directory in its target: found by
		// Lstat through one, checked through the other.
		{elsewhere, top, "l/daemon-socket/socket"},
	} {
		l := filepath.Join(rootDir, "l")
		theirs := filepath.Join(rootDir, "theirs")
		must(t, os.Symlink(c.ours, l))
		must(t, os.Symlink(c.theirs, theirs))
		u.Chown(t, theirs)
		sock := rootDir + "/" + c.sock // not cleaned: ".." is above the link's target
		stop := keepSwapping(t, theirs, l)
		deadline := time.Now().Add(2 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			if isDaemonSocket(sock, daemonSocket(os.Environ())) {
				t.Errorf("%s, through a link swapped between root's to %s and %s's to %s, taken for the daemon's socket (after %d tries)", sock, c.ours, u.Name, c.theirs, i+1)
				break
			}
		}
		stop()
		must(t, os.Remove(l))
		must(t, os.Remove(theirs))
	}
}
