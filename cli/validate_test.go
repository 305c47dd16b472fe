package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The modules build hook.conf with `validate --config-only` on the
// rendered file, in Nix's sandbox, where / and the store belong to root,
// a uid the sandbox does not map: they are seen owned by nobody (65534),
// and the trust rule refused every file there ("its directory / is owned
// by nobody"), failing every sandboxed build of the modules' config.
// --config-only checks a config for another machine: who owns it here
// says nothing of it there, and nothing it names is run. Here the file is
// one the rule refuses (others can write it; as root, nobody owns it
// too): validate refuses it, validate --config-only takes it.
func TestValidateConfigOnlyTakesFileOwnedByNobodyHere(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hook.conf")
	if err := os.WriteFile(file, []byte("cache = \"main\"\nallow = [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(file, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	validate := func(args ...string) (int, string, string) {
		var out, errs bytes.Buffer
		e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
		st := e.main(append([]string{"--config", file, "validate"}, args...))
		return st, out.String(), errs.String()
	}
	if st, _, errs := validate(); st != 1 || !strings.Contains(errs, "refusing "+file) {
		t.Fatalf("validate exited %d, said %q; want the file refused by the trust rule", st, errs)
	}
	st, out, errs := validate("--config-only")
	if st != 0 || !strings.Contains(out, `cache = "main"`) {
		t.Errorf("validate --config-only exited %d, said:\n%s%s\nwant the config checked and printed", st, out, errs)
	}
	// What it still refuses: a file that is no regular file.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	if st, _, errs := validate("--config-only"); st != 1 || !strings.Contains(errs, file) {
		t.Errorf("validate --config-only of a directory exited %d, said %q; want it refused, naming it", st, errs)
	}
}

// validate's refusal of a target's store for what it names (a directory,
// a socket) named neither the file, nor the key, nor the value: only the
// target's name, which a [[target]] may not set.
func TestValidateStoreRefusalNamesPlace(t *testing.T) {
	dir := t.TempDir()
	shared := sharedDir(t, dir)
	file := filepath.Join(dir, "hook.conf")
	store := "unix://" + shared + "/socket"
	conf := "cache = \"main\"\nallow = [\"*\"]\n[queue]\ndir = \"" + filepath.Join(dir, "q") + "\"\n\n[[target]]\nallow = [\"*\"]\nstore = \"" + store + "\"\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
	st := e.main([]string{"--config", file, "validate"})
	want := file + `:8: [[target]] #1: store = "` + store + `": the unix:// store's socket's directory: refusing`
	if st != 1 || !strings.Contains(errs.String(), want) {
		t.Errorf("validate exited %d, said:\n%s\nwant the refusal placed: %s", st, errs.String(), want)
	}
	// The top level's, at its line.
	conf = "allow = [\"*\"]\nstore = \"" + store + "\"\n[queue]\ndir = \"" + filepath.Join(dir, "q") + "\"\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errs.Reset()
	st = e.main([]string{"--config", file, "validate"})
	want = file + `:2: top level: store = "` + store + `": the unix:// store's socket's directory: refusing`
	if st != 1 || !strings.Contains(errs.String(), want) {
		t.Errorf("validate exited %d, said:\n%s\nwant the refusal placed: %s", st, errs.String(), want)
	}
}

// The worker refuses to run cachix while cachix's own cachix.dhall, in
// the environment it will have, is another user's or one others can
// write, or is missing where they could make it (it names the server the
// token goes to): validate said the config was fine, and every push
// failed. It now checks that file as the worker will find it, from
// XDG_CONFIG_HOME, or from HOME as the hook's worker gets it.
func TestValidateChecksCachixConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hook.conf")
	if err := os.WriteFile(file, []byte("cache = \"main\"\nallow = [\"*\"]\n[cachix]\nbin = \"/bin/true\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CACHIX_FILTER_HOOK_QUEUE_DIR", filepath.Join(dir, "queue"))
	for _, viaHome := range []bool{false, true} {
		home := t.TempDir()
		confDir := filepath.Join(home, ".config", "cachix")
		if err := os.MkdirAll(confDir, 0o700); err != nil {
			t.Fatal(err)
		}
		dhall := filepath.Join(confDir, "cachix.dhall")
		if err := os.WriteFile(dhall, []byte(`{ hostname = "https://evil.example" }`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dhall, 0o666); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOME", home)
		if viaHome {
			t.Setenv("XDG_CONFIG_HOME", "") // restored at the end
			os.Unsetenv("XDG_CONFIG_HOME")
		} else {
			t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
		}
		validate := func() (int, string) {
			var out, errs bytes.Buffer
			e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
			return e.main([]string{"--config", file, "validate"}), errs.String()
		}
		if st, errs := validate(); st != 1 || !strings.Contains(errs, dhall) {
			t.Errorf("viaHome %v: validate exited %d, said %q; want %s refused", viaHome, st, errs, dhall)
		}
		if err := os.Chmod(dhall, 0o644); err != nil {
			t.Fatal(err)
		}
		if st, errs := validate(); st != 0 {
			t.Errorf("viaHome %v: validate exited %d, said %q; want a config of one's own taken", viaHome, st, errs)
		}
	}
}

// doctor's store lines named the target but not where its store was set,
// as validate's refusal and doctor's config lines do: each now starts
// with the file and line of the store key, passed or refused.
func TestDoctorStoreLinesNamePlace(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shared := sharedDir(t, dir)
	ok := filepath.Join(dir, "cache")
	file := filepath.Join(dir, "hook.conf")
	conf := "allow = [\"*\"]\nstore = \"file://" + ok + "\"\n[queue]\ndir = \"" + filepath.Join(dir, "q") + "\"\n\n[[target]]\nallow = [\"*\"]\nstore = \"file://" + shared + "\"\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
	e.main([]string{"--config", file, "doctor"})
	for _, want := range []string{
		"ok       store: " + file + `:2: top level: store = "file://` + ok + `": target "`,
		"problem  store: " + file + `:8: [[target]] #1: store = "file://` + shared + `": the file:// store's directory: refusing`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor said:\n%s\nwant the store line placed: %s", out.String(), want)
		}
	}
}

// validate took the daemon's socket from NIX_DAEMON_SOCKET_PATH in its
// own environment, which the worker, started with nix-daemon's, does not
// have: a unix:// store at a socket whose directory others can write
// passed as the daemon's, and the worker refused it at every push. It is
// now judged where a clean environment puts the daemon's socket.
func TestValidateDaemonSocketNotFromItsEnvironment(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(open, "socket")
	t.Setenv("NIX_DAEMON_SOCKET_PATH", sock)
	t.Setenv("NIX_STATE_DIR", "")
	file := filepath.Join(dir, "hook.conf")
	conf := "allow = [\"*\"]\nstore = \"unix://" + sock + "\"\n[queue]\ndir = \"" + filepath.Join(dir, "q") + "\"\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), stdout: &out, stderr: &errs}
	if rc := e.main([]string{"--config", file, "validate"}); rc != 1 || !strings.Contains(errs.String(), open) {
		t.Errorf("validate = %d, said:\n%s\nwant the socket in %s, which others can write, refused", rc, errs.String(), open)
	}
}
