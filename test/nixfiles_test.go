package test

// Checks on the repository's Nix files: every .nix file parses, and
// nix/package.nix's vendorHash matches go.mod and go.sum.
//
// Without nix-instantiate on PATH these tests skip, unless
// CFH_TEST_REQUIRE_NIX=1, which makes a missing Nix a failure (CI sets it
// where Nix is installed, so the checks cannot silently stop running).

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// nixfilesRepoRoot is the repository root: the parent of this package's
// directory, which is the working directory of `go test`.
func nixfilesRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// nixfilesRequire returns the paths of the programs, skipping the test when
// nix-instantiate or one of them is not on PATH (failing it instead under
// CFH_TEST_REQUIRE_NIX=1).
func nixfilesRequire(t *testing.T, programs ...string) []string {
	t.Helper()
	nixtest.Require(t)
	var paths []string
	for i, p := range append([]string{"nix-instantiate"}, programs...) {
		path, err := exec.LookPath(p)
		if err != nil {
			if os.Getenv("CFH_TEST_REQUIRE_NIX") == "1" {
				t.Fatalf("%s is not on PATH, and CFH_TEST_REQUIRE_NIX=1", p)
			}
			t.Skipf("%s is not on PATH (set CFH_TEST_REQUIRE_NIX=1 to make this a failure)", p)
		}
		if i > 0 {
			paths = append(paths, path)
		}
	}
	return paths
}

// nixfilesRun runs a command and returns its stdout; on failure the error
// carries stderr.
func nixfilesRun(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.Join(err, errors.New(strings.TrimSpace(stderr.String())))
	}
	return stdout.String(), nil
}

func TestNixfilesParse(t *testing.T) {
	nixfilesRequire(t)
	root := nixfilesRepoRoot(t)

	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == ".git" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".nix") && d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The files this project ships; a walk that misses them is broken.
	for _, want := range []string{"default.nix", "flake.nix", "nix/package.nix", "nix/nixos-module.nix", "nix/home-manager-module.nix", "examples/shell.nix"} {
		found := false
		for _, f := range files {
			if f == filepath.Join(root, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not found in the walk from %s", want, root)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		if _, err := nixfilesRun(ctx, root, nil, "nix-instantiate", "--parse", f); err != nil {
			t.Errorf("nix-instantiate --parse %s: %v", rel, err)
		}
	}
	t.Logf("parsed %d .nix files", len(files))
}

// nixfilesVendorHashRe matches the one vendorHash line of nix/package.nix.
var nixfilesVendorHashRe = regexp.MustCompile(`(?m)^[ \t]*vendorHash[ \t]*=[ \t]*(.*?);[ \t]*$`)

func TestNixfilesVendorHash(t *testing.T) {
	bins := nixfilesRequire(t, "nix", "go")
	nix, goBin := bins[0], bins[1]
	root := nixfilesRepoRoot(t)

	src, err := os.ReadFile(filepath.Join(root, "nix", "package.nix"))
	if err != nil {
		t.Fatal(err)
	}
	m := nixfilesVendorHashRe.FindAllSubmatch(src, -1)
	if len(m) != 1 {
		t.Fatalf("nix/package.nix: want exactly one `vendorHash = ...;` line, found %d", len(m))
	}
	got := string(m[0][1])

	// What buildGoModule's fixed-output derivation does: `go mod vendor`,
	// then the NAR hash of the vendor directory (null when there is
	// nothing to vendor).
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	vendor := filepath.Join(t.TempDir(), "vendor")
	if _, err := nixfilesRun(ctx, root, []string{"GOWORK=off", "GOFLAGS="}, goBin, "mod", "vendor", "-o", vendor); err != nil {
		t.Fatalf("go mod vendor -o %s: %v", vendor, err)
	}
	want := "null"
	if entries, err := os.ReadDir(vendor); err == nil && len(entries) > 0 {
		out, err := nixfilesRun(ctx, root, nil, nix, "--extra-experimental-features", "nix-command", "hash", "path", vendor)
		if err != nil {
			t.Fatalf("nix hash path: %v", err)
		}
		want = `"` + strings.TrimSpace(out) + `"`
	}
	if got != want {
		t.Errorf("nix/package.nix has vendorHash = %s; go.mod and go.sum give %s: run nix/update-vendor-hash.sh", got, want)
	}
}

func TestNixfilesUpdateScriptCheck(t *testing.T) {
	nixfilesRequire(t, "nix", "go", "bash")
	root := nixfilesRepoRoot(t)
	script := filepath.Join(root, "nix", "update-vendor-hash.sh")
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	if _, err := nixfilesRun(ctx, root, nil, "bash", "-n", script); err != nil {
		t.Fatalf("bash -n %s: %v", script, err)
	}
	before, err := os.ReadFile(filepath.Join(root, "nix", "package.nix"))
	if err != nil {
		t.Fatal(err)
	}
	// --check agrees with TestNixfilesVendorHash and never writes.
	out, err := nixfilesRun(ctx, root, nil, "bash", script, "--check")
	if err != nil {
		t.Errorf("update-vendor-hash.sh --check: %v\n%s", err, out)
	}
	after, err := os.ReadFile(filepath.Join(root, "nix", "package.nix"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("update-vendor-hash.sh --check changed nix/package.nix")
	}
}
