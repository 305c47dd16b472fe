// Package nixtest is what the tests that build with real Nix share:
// derivations made new by a salt, so that Nix really builds them (the
// post-build-hook runs only for builds), and builds that keep the
// machine's configuration out.
//
// A test build must not run the machine's post-build-hook: on a user's
// machine that hook is this program, and it would push the test's paths
// to their real cache. Every build here names its hook ("" for none) on
// the command line, which wins over nix.conf, and asks no substituter
// (there is no network, and a substituted path runs no hook).
//
// The end-to-end tests (test/), the Nix matrix (test/matrix, whose builds
// run in a chroot) and the packages' tests that ask real Nix use it.
package nixtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Require skips the test when Nix is not installed or under -short (the
// quick `make test-unit` loop), or fails it when CFH_TEST_REQUIRE_NIX=1
// (set by .ci/run), where a skipped Nix test would hide a defect.
func Require(t testing.TB) {
	t.Helper()
	require := os.Getenv("CFH_TEST_REQUIRE_NIX") == "1"
	if testing.Short() && !require {
		t.Skip("-short: no tests with real Nix")
	}
	for _, p := range []string{"nix-build", "nix-store", "nix-instantiate", "nix"} {
		if _, err := exec.LookPath(p); err != nil {
			if require {
				t.Fatalf("%s not found and CFH_TEST_REQUIRE_NIX=1", p)
			}
			t.Skipf("%s not found: the test needs Nix", p)
		}
	}
}

// Salt makes a test's derivations new.
func Salt() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Drv is a derivation expression with the given outputs ("out" when
// none), whose out refers to the deps (Nix expressions), so that they are
// in its runtime closure. Each output's content holds the salt.
func Drv(salt, name string, outputs []string, deps ...string) string {
	if len(outputs) == 0 {
		outputs = []string{"out"}
	}
	var script strings.Builder
	fmt.Fprintf(&script, "echo %s", salt)
	for _, d := range deps {
		fmt.Fprintf(&script, " ${%s}", d)
	}
	script.WriteString(" > $out;")
	for _, o := range outputs[1:] {
		fmt.Fprintf(&script, " echo %s-%s > $%s;", salt, o, o)
	}
	q := make([]string, len(outputs))
	for i, o := range outputs {
		q[i] = fmt.Sprintf("%q", o)
	}
	return fmt.Sprintf(`derivation { name = %q; system = builtins.currentSystem; builder = "/bin/sh"; outputs = [ %s ]; args = [ "-c" %q ]; }`,
		name, strings.Join(q, " "), script.String())
}

// List is a Nix list of expressions.
func List(exprs ...string) string { return "[ (" + strings.Join(exprs, ") (") + ") ]" }

// Name is a store path's name (after "<hash>-").
func Name(p string) string {
	base := filepath.Base(p)
	if len(base) > 33 {
		return base[33:]
	}
	return base
}

// ByName indexes store paths by name.
func ByName(paths []string) map[string]string {
	m := map[string]string{}
	for _, p := range paths {
		m[Name(p)] = p
	}
	return m
}

// BuildArgs is the nix-build command line for file with hook as the
// post-build-hook ("" for none) and no substituters.
func BuildArgs(file, hook string, extra ...string) []string {
	args := []string{"nix-build", file, "--no-out-link", "--option", "substituters", "", "--option", "post-build-hook", hook}
	return append(args, extra...)
}

// WriteExpr writes expr into a new file in dir and returns its path.
func WriteExpr(t testing.TB, dir, expr string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "build-*.nix")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(expr); err != nil {
		t.Fatal(err)
	}
	// The store must be able to read it (the daemon, a build user).
	if err := f.Chmod(0o644); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// Build builds expr (one derivation or a list of them) with no
// post-build-hook and returns its derivations and every output of them
// (not only the default ones nix-build prints).
func Build(t testing.TB, expr string) (drvs, outputs []string) {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	file := WriteExpr(t, dir, expr)
	args := BuildArgs(file, "")
	cmd := exec.Command(args[0], args[1:]...)
	// Nor the user's nix.conf (~/.config/nix): a home of its own.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_")
	}), "HOME="+filepath.Join(dir, "home"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	drvs = Derivations(t, file)
	return drvs, Outputs(t, drvs...)
}

// Derivations instantiates the expression in file.
func Derivations(t testing.TB, file string) []string {
	t.Helper()
	out, err := exec.Command("nix-instantiate", file).Output()
	if err != nil {
		t.Fatalf("nix-instantiate %s: %v%s", file, err, stderr(err))
	}
	return strings.Fields(string(out))
}

// Outputs lists every output of the derivations.
func Outputs(t testing.TB, drvs ...string) []string {
	t.Helper()
	out, err := exec.Command("nix-store", append([]string{"--query", "--outputs"}, drvs...)...).Output()
	if err != nil {
		t.Fatalf("nix-store --query --outputs: %v%s", err, stderr(err))
	}
	return strings.Fields(string(out))
}

func stderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return "\n" + string(ee.Stderr)
	}
	return ""
}
