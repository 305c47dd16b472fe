package cli

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/testuser"
)

// A store URI's ssh-key= or tls-private-key= that the trust rule refuses
// is a private key Nix logs in with, not a signing key: validate and
// doctor reported it as the "signing key" check, with the advice to write
// a key with nix-store --generate-binary-cache-key, which makes no SSH or
// TLS key.
func TestCheckUsedPrivateKeyNotSigningKey(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "id")
	if err := os.WriteFile(kf, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kf, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"ssh-ng://nix@host?ssh-key=" + kf, "https://cache.example.org?tls-private-key=" + kf} {
		cfg := &config.Config{Targets: []*config.Target{{Name: "s", Store: store}}}
		cfg.Queue.Dir = filepath.Join(dir, "queue")
		cfg.Log.File = filepath.Join(cfg.Queue.Dir, "worker.log")
		found := false
		for _, u := range checkUsed(cfg, os.Environ(), nil, "", "your PATH", "validate") {
			if u.err == nil || !strings.Contains(u.err.Error(), kf) {
				continue
			}
			found = true
			if u.check == "signing key" || strings.Contains(u.fix, "generate-binary-cache-key") {
				t.Errorf("%s: reported as check %q, fix %q", store, u.check, u.fix)
			}
			if !strings.Contains(u.fix, "600") {
				t.Errorf("%s: fix %q does not say how to mend the key", store, u.fix)
			}
		}
		if !found {
			t.Errorf("%s: the key others can read was not reported", store)
		}
	}
}

// A local store with no directory of its own but its store directory
// (local://?store=DIR, local://?real=DIR, no root) or its lower store
// (local-overlay://?lower-store=...) is one the worker checks before each
// push, and refuses when another user can write there: validate and
// doctor looked only at stores with a root or a state=, log= or
// upper-layer=, so they said nothing, and every push failed.
func TestCheckUsedStoreWithoutDirsOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"local://?store=" + open, "local://?real=" + open, "local-overlay://?lower-store=" + open} {
		if config.CheckStoreDirs(store) == nil {
			t.Fatalf("%s: the worker's check accepts it", store)
		}
		cfg := &config.Config{Targets: []*config.Target{{Name: "s", Store: store}}}
		cfg.Queue.Dir = filepath.Join(dir, "queue")
		cfg.Log.File = filepath.Join(cfg.Queue.Dir, "worker.log")
		found := false
		for _, u := range checkUsed(cfg, os.Environ(), nil, "", "your PATH", "validate") {
			if u.check == "store" && u.err != nil && strings.Contains(u.err.Error(), open) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: the directory others can write was not reported", store)
		}
	}
}

// A store directory refused for what others could write in it is to be
// made anew (or, shared by design as /tmp, left for one of root's), as
// the refusal says: a chown or chmod keeps what they put in it. validate
// and doctor added "make the directory, and each above it, writable by
// that user alone" to every such refusal, the chown or chmod the refusal
// advises against; also to a store directory refused for its group.
func TestCheckUsedStoreRefusalKeepsItsAdvice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("gives a directory another group with chown: run as root")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, mode os.FileMode, gid int) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, os.Geteuid(), gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The Nix store's group is gid 0 here; the store directory's is
	// another, which its members could write in.
	t.Setenv("NIX_STORE_DIR", mk("nixstore", os.ModeSticky|0o775, 0))
	open := mk("open", 0o777, 0)
	shared := mk("shared", os.ModeSticky|0o777, 0)
	group := mk("group", os.ModeSticky|0o775, 1)
	theirs := mk("theirs", 0o755, 0)
	testuser.New(t).Chown(t, theirs)
	for _, c := range []struct{ store, advice string }{
		{"file://" + open, "mv " + open + " " + open + ".untrusted"},
		{"file://" + theirs, "mv " + theirs + " " + theirs + ".untrusted"},
		{"file://" + shared, "use a directory of root's instead"},
		{"unix://" + shared + "/socket", "have the daemon bind its socket"},
		{"local://" + dir + "/root?real=" + group, "mv " + group + " " + group + ".untrusted"},
	} {
		for _, msg := range storeRefusals(t, dir, c.store) {
			if !strings.Contains(msg, c.advice) || strings.Contains(msg, "writable by that user alone") {
				t.Errorf("%s: %s\nwant the refusal's advice (%s) alone, not a chown or chmod", c.store, msg, c.advice)
			}
		}
	}
}

// A unix:// store target's socket is refused for its directory or for
// a relative path, and each refusal says how to mend it; validate's fix
// then told to make "the directory" writable by root alone, or to set
// store to a directory: no directory of the socket's is written, and a
// relative socket is mended by naming it by its absolute path.
func TestCheckUsedUnixStoreFixNamesNoDirectory(t *testing.T) {
	dir := t.TempDir()
	shared := sharedDir(t, dir)
	for _, c := range []struct{ store, advice string }{
		{"unix://" + shared + "/socket", "have the daemon bind its socket"},
		{"unix:socket", "name it by its absolute path"},
	} {
		for _, msg := range storeRefusals(t, dir, c.store) {
			if !strings.Contains(msg, c.advice) || strings.Contains(msg, "writable by that user alone") || strings.Contains(msg, "set store to a directory") {
				t.Errorf("%s: %s\nwant the refusal's advice (%s), with no directory to make or set store to", c.store, msg, c.advice)
			}
		}
	}
}

// sharedDir makes dir/shared sticky and everyone's to write, as /tmp is.
func sharedDir(t *testing.T, dir string) string {
	t.Helper()
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	return shared
}

// storeRefusals is what validate says of a target storing to store, its
// queue in dir: the line of each store check that refused it (none is an
// error of the test's).
func storeRefusals(t *testing.T, dir, store string) []string {
	t.Helper()
	cfg := &config.Config{Targets: []*config.Target{{Name: "s", Store: store}}}
	cfg.Queue.Dir = filepath.Join(dir, "queue")
	cfg.Log.File = filepath.Join(cfg.Queue.Dir, "worker.log")
	var msgs []string
	for _, u := range checkUsed(cfg, os.Environ(), nil, "", "your PATH", "validate") {
		if u.check == "store" && u.err != nil {
			msgs = append(msgs, usedError(cfg, u))
		}
	}
	if len(msgs) == 0 {
		t.Errorf("%s: not refused", store)
	}
	return msgs
}

// A unix:// store target whose socket passes the checks is reported as
// the other stores are, with an ok line naming the socket: validate and
// doctor said nothing of it, as if it had not been checked.
func TestCheckUsedUnixStoreOK(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "socket") // not bound: its directory is checked
	cfg := &config.Config{Targets: []*config.Target{{Name: "s", Store: "unix://" + sock}}}
	cfg.Queue.Dir = filepath.Join(dir, "queue")
	cfg.Log.File = filepath.Join(cfg.Queue.Dir, "worker.log")
	found := false
	for _, u := range checkUsed(cfg, os.Environ(), nil, "", "your PATH", "validate") {
		if u.check != "store" {
			continue
		}
		if u.err != nil {
			t.Fatalf("refused: %v", u.err)
		}
		found = strings.Contains(u.ok, sock) && strings.Contains(u.ok, `"s"`)
	}
	if !found {
		t.Errorf("no ok line naming the target and %s", sock)
	}
}

// A local-overlay:// store refused for its lower-store='s socket, or for
// a lower store that is none of those checked, was given the fix for a
// directory (make it writable by root alone, or set store to a
// directory), and the refusal of a lower store that is not local did not
// name unix://, which is accepted.
func TestCheckUsedLowerStoreFix(t *testing.T) {
	dir := t.TempDir()
	shared := sharedDir(t, dir)
	for _, c := range []struct{ store, advice string }{
		{"local-overlay://?lower-store=unix://" + shared + "/socket", "have the daemon bind its socket"},
		{"local-overlay://?lower-store=https://cache.example.org", "unix://"},
	} {
		for _, msg := range storeRefusals(t, dir, c.store) {
			if !strings.Contains(msg, c.advice) || strings.Contains(msg, "writable by that user alone") || strings.Contains(msg, "set store to a directory") {
				t.Errorf("%s: %s\nwant the refusal's advice (%s), with no directory to make or set store to", c.store, msg, c.advice)
			}
		}
	}
}

// local-overlay:// stores nested as one another's lower-store= deeper
// than is checked were refused with the fix for a directory (make it
// writable by root alone, or set store to a directory), which mends
// nothing: the refusal now says to nest fewer.
func TestCheckUsedLowerStoresTooDeep(t *testing.T) {
	dir := t.TempDir()
	store := "local://" + dir + "/l0"
	for i := 1; i <= 6; i++ {
		store = fmt.Sprintf("local-overlay://%s/o%d?upper-layer=%s/u%d&lower-store=%s", dir, i, dir, i, url.QueryEscape(store))
	}
	for _, msg := range storeRefusals(t, dir, store) {
		if !strings.Contains(msg, "nest deeper") || !strings.Contains(msg, "fewer") || strings.Contains(msg, "writable by that user alone") || strings.Contains(msg, "set store to a directory") {
			t.Errorf("%s\nwant it refused for nesting too deep, saying to nest fewer, with no directory to make or set store to", msg)
		}
	}
}

// A local-overlay:// store with a lower store but no directory of its
// own (no root, state=, log= or upper-layer=) is checked, lower store and
// all, as the others are, and reported as they are, with an ok line
// naming the target and its lower store: validate and doctor said
// nothing of it, as if it had not been checked.
func TestCheckUsedLowerStoreOnlyOK(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lower := filepath.Join(dir, "lower")
	if err := os.Mkdir(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ store, lower string }{
		{"local-overlay://?lower-store=" + lower, lower},
		{"local-overlay://?lower-store=daemon", "daemon"},
		{"local-overlay:?lower-store=unix://" + dir + "/socket", "unix://" + dir + "/socket"},
	} {
		cfg := &config.Config{Targets: []*config.Target{{Name: "s", Store: c.store}}}
		cfg.Queue.Dir = filepath.Join(dir, "queue")
		cfg.Log.File = filepath.Join(cfg.Queue.Dir, "worker.log")
		found := false
		for _, u := range checkUsed(cfg, os.Environ(), nil, "", "your PATH", "validate") {
			if u.check != "store" {
				continue
			}
			if u.err != nil {
				t.Fatalf("%s: refused: %v", c.store, u.err)
			}
			found = strings.Contains(u.ok, c.lower) && strings.Contains(u.ok, `"s"`)
		}
		if !found {
			t.Errorf("%s: no ok line naming the target and its lower store %s", c.store, c.lower)
		}
	}
}

// A relative -c in cachix.push_args, or a relative HOME, is what cachix,
// run by the worker, resolves from the worker's working directory, /:
// validate and doctor resolved it from their own, and so checked (and
// named) a file the worker will never read.
func TestCachixConfigRelativeFromWorkersDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("XDG_CONFIG_HOME", "")
	for _, c := range []struct {
		home string
		args []string
		want string
	}{
		{"/root", []string{"-c", "rel.dhall"}, "/rel.dhall"},
		{"/root", []string{"--config=sub/c.dhall"}, "/sub/c.dhall"},
		{"home", nil, "/home/.config/cachix/cachix.dhall"},
	} {
		u := cachixConfig([]string{"HOME=" + c.home}, c.args)
		msg := u.ok
		if u.err != nil {
			msg = u.err.Error()
		}
		if !strings.Contains(msg, "config "+c.want+" ") || strings.Contains(msg, dir) {
			t.Errorf("HOME=%s, push_args %q: %s\nwant %s, as the worker, in /, finds it", c.home, c.args, msg, c.want)
		}
	}
}
