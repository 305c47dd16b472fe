// Package pkglisttest writes package lists as cachixPackages builds them,
// for the tests of the packages that read them (hook, worker).
package pkglisttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Write makes the list dir (a directory whose manifest.nix links to file)
// and file (the magic line, a "target" line per target, a path a line),
// both store paths of the caller's test store.
func Write(t testing.TB, dir, file storepath.Path, targets []string, paths ...storepath.Path) {
	t.Helper()
	text := pkglist.Magic + "\n"
	for _, tg := range targets {
		text += "target " + tg + "\n"
	}
	for _, p := range paths {
		text += p.String() + "\n"
	}
	if err := os.WriteFile(file.String(), []byte(text), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir.String(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file.String(), filepath.Join(dir.String(), "manifest.nix")); err != nil {
		t.Fatal(err)
	}
}
