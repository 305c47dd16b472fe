package nixstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
)

const (
	rootA = "/nix/store/00000000000000000000000000000000-a-1.0"
	rootB = "/nix/store/11111111111111111111111111111111-b-1.0.drv"
	rootC = "/nix/store/22222222222222222222222222222222-c-1.0"
)

// Roots are read as Nix appends them: from where the last read ended, only
// whole (NUL-terminated) entries, store paths only.
func TestReadTempRoots(t *testing.T) {
	t.Setenv("NIX_STORE_DIR", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "4242")
	appendRoots := func(s string) {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ReadTempRoots(dir, 4242, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no file: err %v, want not exist", err)
	}
	appendRoots(rootA + "\x00" + rootB + "\x00/etc/passwd\x00" + rootC[:20])
	got, off, err := ReadTempRoots(dir, 4242, 0)
	if err != nil || !slices.Equal(got, []string{rootA, rootB}) {
		t.Fatalf("first read = %q, %v; want a and b (not /etc/passwd, not the half-written c)", got, err)
	}
	got, off2, err := ReadTempRoots(dir, 4242, off)
	if err != nil || len(got) != 0 || off2 != off {
		t.Fatalf("nothing new: %q at %d, %v", got, off2, err)
	}
	appendRoots(rootC[20:] + "\x00")
	if got, _, err = ReadTempRoots(dir, 4242, off); err != nil || !slices.Equal(got, []string{rootC}) {
		t.Fatalf("second read = %q, %v; want c, whole", got, err)
	}
	if _, _, err := ReadTempRoots(dir, 4242, 1<<20); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Errorf("a file shorter than read before (another process's): err %v", err)
	}
}

// The file is only read as a regular file of bounded size, not through a
// symbolic link: a root-run worker reads it.
func TestReadTempRootsRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "7")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadTempRoots(dir, 7, 0); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: err %v", err)
	}
	big := filepath.Join(dir, "8")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxTempRoots+1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadTempRoots(dir, 8, 0); !errors.Is(err, safeopen.ErrTooLarge) {
		t.Errorf("%d bytes: err %v, want too large", MaxTempRoots+1, err)
	}
	if _, _, err := ReadTempRoots(dir, 0, 0); err == nil {
		t.Error("pid 0 read")
	}
}
