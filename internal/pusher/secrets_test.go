package pusher

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// fakeNixConfig is a config whose nix.bin_dir holds the test binary as
// nix, to act as the fake that fake sets up.
func fakeNixConfig(t *testing.T) *config.Config {
	t.Helper()
	bin := t.TempDir()
	if err := os.Symlink(exe(t), filepath.Join(bin, "nix")); err != nil {
		t.Fatal(err)
	}
	return &config.Config{Nix: config.Nix{BinDir: bin}}
}

// keyFile writes a key file holding content and sets its mode, after the
// umask has had its say.
func keyFile(t *testing.T, file, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
	return file
}

// signingKeyFile is dir/key.sec, a Nix signing key with mode.
func signingKeyFile(t *testing.T, dir string, mode os.FileMode) string {
	t.Helper()
	return keyFile(t, filepath.Join(dir, "key.sec"), "cache-1:"+base64.StdEncoding.EncodeToString(make([]byte, 64))+"\n", mode)
}

// mkdirMode makes the directory d and sets its mode, after the umask has
// had its say.
func mkdirMode(t *testing.T, d string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// A store URI's credentials that reach the store pusher despite config
// (which refuses them) do not reach its output or its error: nix copy may
// quote the URI it was given.
func TestStorePusherRedactsURISecrets(t *testing.T) {
	fake(t, 1)
	cfg := fakeNixConfig(t)
	store := "https://nix:hunt%40er2@cache.example.org/c?token=tok-42&compression=zstd"
	t.Setenv(envOutput, "error: cannot connect to 'https://nix:hunt%40er2@cache.example.org/c?token=tok-42&compression=zstd' (user nix, password hunt@er2)\n")
	var out bytes.Buffer
	err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &out)
	if err == nil {
		t.Fatal("Push succeeded")
	}
	for _, secret := range []string{"hunt%40er2", "hunt@er2", "tok-42"} {
		if strings.Contains(out.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q reached the output or the error:\n%s\n%v", secret, out.String(), err)
		}
	}
	if !strings.Contains(out.String(), "cannot connect to") {
		t.Errorf("output = %q", out.String())
	}
}

// TestSigningKeySecretRedacted guards the redaction of the signing key's
// secret part: cachix takes CACHIX_SIGNING_KEY with or without its
// "name:" prefix and works with the base64 secret, so it may echo that
// part alone. Only the whole name:BASE64 key was redacted, and the bare
// secret reached the output and the error.
func TestSigningKeySecretRedacted(t *testing.T) {
	raw := bytes.Repeat([]byte{0xa5, 0x5a, 0x3c, 0xc3}, 16)
	data := base64.StdEncoding.EncodeToString(raw)
	dir := t.TempDir()
	kf := filepath.Join(dir, "key")
	if err := os.WriteFile(kf, []byte("cache-1:"+data+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cachix")
	script := "#!/bin/sh\necho \"using key $CACHIX_SIGNING_KEY\" >&2\necho \"error: cannot sign with key ${CACHIX_SIGNING_KEY#*:}\" >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Cachix: config.Cachix{Bin: bin, SigningKeyFile: kf}}
	var out bytes.Buffer
	err := New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &out)
	if err == nil {
		t.Fatal("Push succeeded")
	}
	if strings.Contains(out.String(), data) || strings.Contains(err.Error(), data) {
		t.Errorf("the signing key's secret reached the output or the error:\nout: %q\nerr: %v", out.String(), err)
	}
	if want := "using key cache-1:[redacted]\nerror: cannot sign with key [redacted]\n"; out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}

// TestInheritedSecretsRedacted: without a token file or a signing key
// file, cachix uses the CACHIX_AUTH_TOKEN and CACHIX_SIGNING_KEY it
// inherits from the worker (doctor accepts a token given so), and may
// echo them as it would the files' (TestCachixFailureRedacted). They are
// as secret, but were passed through unredacted into the log and the
// error.
func TestInheritedSecretsRedacted(t *testing.T) {
	const envToken = "inherited-T0KEN-0123456789"
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x3c, 0xc3, 0xa5, 0x5a}, 16))
	t.Setenv("CACHIX_AUTH_TOKEN", envToken)
	t.Setenv("CACHIX_SIGNING_KEY", "cache-1:"+data)
	out, err := pushWithScript(t, "#!/bin/sh\necho \"using token $CACHIX_AUTH_TOKEN and key $CACHIX_SIGNING_KEY\" >&2\necho \"error: cannot sign with key ${CACHIX_SIGNING_KEY#*:}\" >&2\nexit 1\n")
	if err == nil {
		t.Fatal("Push succeeded")
	}
	for _, secret := range []string{envToken, data} {
		if strings.Contains(out.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("an inherited secret reached the output or the error:\nout: %q\nerr: %v", out.String(), err)
		}
	}
	if want := "using token [redacted] and key cache-1:[redacted]\nerror: cannot sign with key [redacted]\n"; out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}

// A store URI's own secret-key= is a key nix copy signs with as root, as
// secret_key_file's is: the same rule applies. A key others can read
// (mode 0644) was passed to nix copy unchecked; now the push fails naming
// it, and nix copy does not run.
func TestStoreURISigningKeyChecked(t *testing.T) {
	rec := fake(t, 0)
	cfg := fakeNixConfig(t)
	kf := signingKeyFile(t, t.TempDir(), 0o644)
	// As written, and with the name and value %-encoded (Nix decodes
	// both).
	for _, store := range []string{
		"file:///srv/cache?secret-key=" + kf,
		"file:///srv/cache?compression=zstd&secret%2Dkey=" + strings.ReplaceAll(kf, "/", "%2F"),
	} {
		var out bytes.Buffer
		err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &out)
		if err == nil || !strings.Contains(err.Error(), kf) || !strings.Contains(err.Error(), "readable by group or others") {
			t.Errorf("%s: Push = %v, want the key refused", store, err)
		}
		if _, serr := os.Stat(rec); serr == nil {
			t.Fatalf("%s: nix copy ran with a key others can read", store)
		}
	}
	if err := os.Chmod(kf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(cfg, &config.Target{Name: "s", Store: "file:///srv/cache?secret-key=" + kf}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
		t.Errorf("a private key: %v", err)
	}
}

// secret_key_file goes into the store URI %-encoded as Nix decodes it,
// where a '+' is a '+' (Nix 2.8 read "…/a+b/key.sec" for a key in
// "…/a b/": "opening file …: No such file or directory", or another
// file, unchecked, where one has that name): a space is %20.
func TestSigningStoreKeyPathAsNixReadsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b&c+d#e")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	kf := signingKeyFile(t, dir, 0o600)
	store, err := signingStore("file:///srv/cache?compression=zstd", kf)
	if err != nil {
		t.Fatal(err)
	}
	// StoreKeyFiles decodes as Nix does; one reading, cut at '#' or not.
	if got := config.StoreKeyFiles(store); len(got) != 1 || got[0] != kf {
		t.Errorf("signingStore = %q, which Nix reads as the key files %q, want %q", store, got, kf)
	}
}

// secret_key_file's parameter goes before a store URI's fragment: Nix
// reads none after a '#' (Nix 2.8 copied "file:///c#x?secret-key=K"
// unsigned, without a word), so the cache was left unsigned.
func TestSigningStoreBeforeFragment(t *testing.T) {
	kf := signingKeyFile(t, t.TempDir(), 0o600)
	for _, store := range []string{"file:///srv/cache#x", "file:///srv/cache?compression=zstd#x"} {
		got, err := signingStore(store, kf)
		if err != nil {
			t.Fatal(err)
		}
		if files := config.StoreKeyFiles(got); len(files) != 1 || files[0] != kf || !strings.HasSuffix(got, "#x") {
			t.Errorf("signingStore(%q) = %q, which Nix reads as the key files %q, want %q", store, got, files, kf)
		}
	}
}

// An ssh:// or ssh-ng:// store URI's ssh-key= is the private key ssh logs
// in with as root: it passes the trust rule for a secret, as a signing
// key does. A key others could read, or replace from a directory they can
// write, was passed to nix copy unchecked; now the push fails naming it,
// and nix copy does not run.
func TestStoreURISSHKeyChecked(t *testing.T) {
	rec := fake(t, 0)
	cfg := fakeNixConfig(t)
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	readable, private, underOpen := filepath.Join(dir, "readable"), filepath.Join(dir, "private"), filepath.Join(open, "id")
	for f, mode := range map[string]os.FileMode{readable: 0o644, private: 0o600, underOpen: 0o600} {
		keyFile(t, f, "-----BEGIN OPENSSH PRIVATE KEY-----\n", mode)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ store, bad, problem string }{
		{"ssh-ng://nix@host?ssh-key=" + readable, readable, "readable by group or others"},
		{"ssh://nix@host?compression=zstd&ssh%2Dkey=" + strings.ReplaceAll(underOpen, "/", "%2F"), open, "writable by group or others"},
	} {
		err := New(cfg, &config.Target{Name: "s", Store: c.store}).Push(context.Background(), paths, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "ssh-key=") || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%s: Push = %v, want the key refused", c.store, err)
		}
		if _, serr := os.Stat(rec); serr == nil {
			t.Fatalf("%s: nix copy ran with an untrusted ssh key", c.store)
		}
		tc := &config.Config{Targets: []*config.Target{{Name: "s", Store: c.store}}}
		if errs := tc.CheckKeyFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "ssh-key=") {
			t.Errorf("%s: CheckKeyFiles = %v, want the key refused", c.store, errs)
		}
	}
	if err := New(cfg, &config.Target{Name: "s", Store: "ssh-ng://nix@host?ssh-key=" + private}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
		t.Errorf("a private key: %v", err)
	}
}

// Nix 2.34 and later log in to an http(s):// store with a TLS client
// certificate whose private key ?tls-private-key= names: the same rule as
// ssh-key=. A key others could read was passed to nix copy unchecked.
func TestStoreURITLSKeyChecked(t *testing.T) {
	rec := fake(t, 0)
	cfg := fakeNixConfig(t)
	kf := keyFile(t, filepath.Join(t.TempDir(), "client.key"), "-----BEGIN PRIVATE KEY-----\n", 0o644)
	store := "https://cache.example.org?tls-certificate=/etc/nix/client.crt&tls-private-key=" + kf
	err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "tls-private-key=") || !strings.Contains(err.Error(), kf) || !strings.Contains(err.Error(), "readable by group or others") {
		t.Errorf("Push = %v, want the key refused", err)
	}
	if _, serr := os.Stat(rec); serr == nil {
		t.Fatal("nix copy ran with a TLS key others can read")
	}
	if err := os.Chmod(kf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
		t.Errorf("a private key: %v", err)
	}
}

// A file:// store's directory is written by nix copy as root, through
// temporary files it opens by name and follows: one another user can
// write, or one they could make because the directory above it is theirs
// to write (/tmp), let them have root write a file of their choosing.
// nix copy ran there unchecked; now the push fails naming the directory,
// and nix copy does not run.
func TestFileStoreDirChecked(t *testing.T) {
	rec := fake(t, 0)
	cfg := fakeNixConfig(t)
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string { return mkdirMode(t, filepath.Join(dir, name), mode) }
	open, sticky, ok := mk("open", 0o777), mk("sticky", os.ModeSticky|0o777), mk("ok", 0o755)
	openNar := mk("ok2", 0o755)
	mkdirMode(t, filepath.Join(openNar, "nar"), 0o777)
	for _, c := range []struct{ store, bad string }{
		{"file://" + open + "?compression=zstd", open},
		{"file://" + sticky, sticky},
		// Missing: made in a directory others can write.
		{"file://" + sticky + "/cache", sticky},
		{"file://" + open + "/a/b", open},
		{"file://" + openNar, filepath.Join(openNar, "nar")},
	} {
		err := New(cfg, &config.Target{Name: "s", Store: c.store}).Push(context.Background(), paths, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("%s: Push = %v, want the directory refused", c.store, err)
		}
		if _, serr := os.Stat(rec); serr == nil {
			t.Fatalf("%s: nix copy ran into a directory others can write", c.store)
		}
	}
	for _, store := range []string{"file://" + ok, "file://" + ok + "/missing/cache?compression=zstd"} {
		if err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
			t.Errorf("%s: %v", store, err)
		}
	}
}

// A local store (a plain path, local://, or root=, state=, log=, store=,
// real= in its query) is a whole Nix store that nix copy writes as root:
// files, links, its database. Only file:// stores were checked, so a
// directory another user can write (or make) had root write there; now
// the push fails naming it, and nix copy does not run.
func TestLocalStoreDirChecked(t *testing.T) {
	rec := fake(t, 0)
	cfg := fakeNixConfig(t)
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string { return mkdirMode(t, filepath.Join(dir, name), mode) }
	open, sticky, ok := mk("open", 0o777), mk("sticky", os.ModeSticky|0o777), mk("ok", 0o755)
	for _, c := range []struct{ store, bad string }{
		{open + "?compression=zstd", open},
		{sticky + "/store", sticky},
		{"local://" + open, open},
		{"local://" + strings.ReplaceAll(open, "/", "%2F"), open},
		{ok + "?root=" + open, open},
		{"local://" + ok + "?state=" + open, open},
		{"local://" + ok + "?log=" + open + "/log", open},
		{"local://" + ok + "?real=" + open, open},
		{"local?store=" + sticky, sticky}, // no root: store= is the store directory
	} {
		err := New(cfg, &config.Target{Name: "s", Store: c.store}).Push(context.Background(), paths, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("%s: Push = %v, want the directory refused", c.store, err)
		}
		if _, serr := os.Stat(rec); serr == nil {
			t.Fatalf("%s: nix copy ran into a directory others can write", c.store)
		}
	}
	stores := []string{ok, ok + "/missing/root?state=" + ok}
	var st syscall.Stat_t
	if os.Geteuid() == 0 && syscall.Stat(storepath.StoreDir(), &st) == nil && st.Mode&syscall.S_ISVTX != 0 && st.Mode&0o020 != 0 {
		// The store directory as Nix makes it, /nix/store's mode and
		// group (the build users').
		sd := mk("nixstore", os.ModeSticky|0o775)
		if err := os.Chown(sd, 0, int(st.Gid)); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, "local://"+ok+"?real="+sd)
	}
	for _, store := range stores {
		if err := New(cfg, &config.Target{Name: "s", Store: store}).Push(context.Background(), paths, &bytes.Buffer{}); err != nil {
			t.Errorf("%s: %v", store, err)
		}
	}
}

// TestCachixConfigChecked: cachix reads cachix.dhall from
// $XDG_CONFIG_HOME/cachix (or ~/.config/cachix), whose hostname is where
// it sends the token it is given and uploads. The worker runs cachix as
// root with the environment it got (a sudo that kept another user's HOME
// gives it theirs): a file there that others can write, or a directory
// in which they can make one, was read unchecked, and the token went to
// whatever server it named. Now the push fails naming it, and cachix
// does not run.
func TestCachixConfigChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		// set up dir, the XDG_CONFIG_HOME
		setup func(t *testing.T, dir string)
		ok    bool
	}{
		{"writable file", func(t *testing.T, dir string) {
			mkdirMode(t, filepath.Join(dir, "cachix"), 0o755)
			keyFile(t, filepath.Join(dir, "cachix", "cachix.dhall"), `{ hostname = "https://evil.example" }`, 0o666)
		}, false},
		{"writable directory, no file", func(t *testing.T, dir string) {
			mkdirMode(t, filepath.Join(dir, "cachix"), 0o777)
		}, false},
		{"own file", func(t *testing.T, dir string) {
			mkdirMode(t, filepath.Join(dir, "cachix"), 0o755)
			keyFile(t, filepath.Join(dir, "cachix", "cachix.dhall"), `{ hostname = "https://cachix.org" }`, 0o644)
		}, true},
		{"none", func(t *testing.T, dir string) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := fake(t, 0)
			dir := t.TempDir()
			tc.setup(t, dir)
			t.Setenv("XDG_CONFIG_HOME", dir)
			err := cachixPusherFor(t, tokenFile(t, 0o600)).Push(context.Background(), paths, &bytes.Buffer{})
			_, ran := os.Stat(rec)
			if tc.ok {
				if err != nil || ran != nil {
					t.Fatalf("Push = %v (cachix ran: %v), want a push", err, ran == nil)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "cachix")) {
				t.Errorf("Push = %v, want a refusal naming cachix's config", err)
			}
			if ran == nil {
				t.Error("cachix ran with a config others can write")
			}
		})
	}
}

// TestInheritedSecretsRedactedTrimmed: an inherited CACHIX_AUTH_TOKEN or
// CACHIX_SIGNING_KEY with white space around it (`export
// CACHIX_AUTH_TOKEN="$(cat f)"` keeps a "\r" or a space; a unit file's
// quoting a newline) was redacted only with that white space, and cachix
// quoting the token without it, as a message does, put it in the log and
// the error.
func TestInheritedSecretsRedactedTrimmed(t *testing.T) {
	const envToken = "inherited-T0KEN-0123456789"
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x3c, 0xc3, 0xa5, 0x5a}, 16))
	t.Setenv("CACHIX_AUTH_TOKEN", envToken+"\n")
	t.Setenv("CACHIX_SIGNING_KEY", "cache-1:"+data+" \r\n")
	out, err := pushWithScript(t, "#!/bin/sh\necho \"error: token '"+envToken+"' was rejected, key '"+data+"' unknown\" >&2\nexit 1\n")
	if err == nil {
		t.Fatal("Push succeeded")
	}
	for _, secret := range []string{envToken, data} {
		if strings.Contains(out.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("an inherited secret reached the output or the error:\nout: %q\nerr: %v", out.String(), err)
		}
	}
}

// TestCachixConfigFlagChecked: cachix takes its global -c/--config after
// the subcommand too, so cachix.push_args can name the cachix.dhall it
// reads. The check looked at $XDG_CONFIG_HOME's file all the same, and
// a file named there that others could write went to cachix unchecked.
func TestCachixConfigFlagChecked(t *testing.T) {
	dir := t.TempDir()
	evil := keyFile(t, filepath.Join(dir, "evil.dhall"), `{ hostname = "https://evil.example" }`, 0o666)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, args := range [][]string{
		{"-c", evil}, {"-c" + evil}, {"--config", evil}, {"--config=" + evil},
		{"-j", "4", "-vc", evil}, {"-j8", "--omit-deriver", "-c", evil},
	} {
		rec := fake(t, 0)
		err := cachixPusherFor(t, tokenFile(t, 0o600), args...).Push(context.Background(), paths, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), evil) {
			t.Errorf("push_args %q: Push = %v, want a refusal naming %s", args, err, evil)
		}
		if _, ran := os.Stat(rec); ran == nil {
			t.Errorf("push_args %q: cachix ran with a config others can write", args)
		}
	}
	// Not a config: values of other options, and what follows "--".
	for _, args := range [][]string{{"-j", "-c"}, {"-m", "xz"}} {
		if f, ok := configFlag(append([]string{"push"}, args...)); ok {
			t.Errorf("configFlag(push %q) = %q, want none", args, f)
		}
	}
	if f, ok := configFlag([]string{"push", "--", "-c", evil}); ok {
		t.Errorf("configFlag after -- = %q, want none", f)
	}
}

// TestCachixConfigRelativeHome: cachix takes HOME as set, empty or
// relative, and then reads .config/cachix/cachix.dhall from its working
// directory, the worker's (the passwd entry's home only when HOME is
// unset). The check took an empty HOME for unset, and a relative one
// for none at all: a file others could write there reached cachix
// unchecked.
func TestCachixConfigRelativeHome(t *testing.T) {
	for _, home := range []string{"", "h"} {
		cwd := t.TempDir()
		t.Chdir(cwd)
		conf := filepath.Join(cwd, home, ".config", "cachix")
		if err := os.MkdirAll(conf, 0o700); err != nil {
			t.Fatal(err)
		}
		evil := keyFile(t, filepath.Join(conf, "cachix.dhall"), `{ hostname = "https://evil.example" }`, 0o666)
		t.Setenv("XDG_CONFIG_HOME", "")
		t.Setenv("HOME", home)
		rec := fake(t, 0)
		err := cachixPusherFor(t, tokenFile(t, 0o600)).Push(context.Background(), paths, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), evil) {
			t.Errorf("HOME=%q: Push = %v, want a refusal naming %s", home, err, evil)
		}
		if _, ran := os.Stat(rec); ran == nil {
			t.Errorf("HOME=%q: cachix ran with a config others can write", home)
		}
	}
}

// TestCachixGlobalArgsBeforeCommand: cachix's global options in
// cachix.push_args (-c FILE, --host, -v) go before the subcommand, where
// its grammar has them, for push and for pin alike; push's own stay after
// `push` and never reach `cachix pin`, which refuses them. Pin got none
// of push_args, and read the default cachix.dhall (another server,
// another token) when push_args named one.
func TestCachixGlobalArgsBeforeCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := keyFile(t, filepath.Join(dir, "cachix.dhall"), `{ authToken = "x" }`, 0o644)
	path := paths[0]
	for _, tc := range []struct {
		args, global, own []string
	}{
		{[]string{"-c", cfg, "-j", "8"}, []string{"-c", cfg}, []string{"-j", "8"}},
		{[]string{"-j8", "--host", "https://h", "-vc" + cfg}, []string{"--host", "https://h", "-v", "-c", cfg}, []string{"-j8"}},
		{[]string{"--config=" + cfg, "-vl", "3", "--omit-deriver", "-m", "xz"}, []string{"--config=" + cfg, "-v"}, []string{"-l", "3", "--omit-deriver", "-m", "xz"}},
		{[]string{"-j", "-c", "--jobs", "-v"}, nil, []string{"-j", "-c", "--jobs", "-v"}},
		// cachix's --help spells the host --hostname: pin must get it
		// too, or it sends the token to cachix.org, not to that host.
		{[]string{"--hostname", "https://h", "-j8"}, []string{"--hostname", "https://h"}, []string{"-j8"}},
		{[]string{"-j8", "--hostname=https://h"}, []string{"--hostname=https://h"}, []string{"-j8"}},
	} {
		rec := fake(t, 0)
		p := cachixPusherFor(t, tokenFile(t, 0o600), tc.args...)
		if err := p.Push(context.Background(), []string{path}, &bytes.Buffer{}); err != nil {
			t.Fatalf("push_args %q: Push = %v", tc.args, err)
		}
		want := append(append(append(append([]string{exe(t)}, tc.global...), "push"), tc.own...), "--", "mycache", path)
		if got := readRecord(t, rec).Args; !slices.Equal(got, want) {
			t.Errorf("push_args %q: push argv = %q, want %q", tc.args, got, want)
		}
		if err := p.(Pinner).Pin(context.Background(), "n", path, queue.Keep{Revisions: 3}, &bytes.Buffer{}); err != nil {
			t.Fatalf("push_args %q: Pin = %v", tc.args, err)
		}
		want = append(append([]string{exe(t)}, tc.global...), "pin", "--keep-revisions", "3", "--", "mycache", "n", path)
		if got := readRecord(t, rec).Args; !slices.Equal(got, want) {
			t.Errorf("push_args %q: pin argv = %q, want %q", tc.args, got, want)
		}
	}
}
