package storepath_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

var fuzzSeeds = []string{
	"/nix/store/" + hashA + "-hello-2.12.1",
	"/nix/store/" + hashB + "-hello-2.12.1-doc",
	"/nix/store/" + hashB + "-foo..bar",
	"/nix/store/" + hashB + "-" + strings.Repeat("x", 211),
	"/nix/store/" + hashB + "-" + strings.Repeat("x", 212),
	"/nix/store/" + hashA + "-hello/bin/hello",
	"/nix/store/" + hashA + "-..",
	"/nix/store/" + hashA + "-.",
	"/nix/store/" + hashA + "-.gitignore",
	"/nix/store/" + hashA + "-..-x",
	"/nix/store/" + hashA + "-",
	"/nix/store/" + hashA,
	"/nix/store/../etc/passwd",
	"/nix/store/" + hashA + "-x/../../etc",
	"/nix/store//" + hashA + "-x",
	"/nix/store/",
	"/nix/store",
	"/nix/storeX/" + hashA + "-x",
	"/nix/store/e" + hashA[1:] + "-x",
	"/nix/store/" + hashA + "-x\x00",
	"/nix/store/" + hashA + "-h\u00e9llo",
	"",
	"/",
	"-",
	"..",
}

// FuzzParse checks that Parse never panics and never accepts anything but
// a canonical path directly inside the store directory:
//
//	go test -run=NONE -fuzz=FuzzParse -fuzztime=600000x ./internal/storepath
//
// (make test runs that; by executions, not time: see the Makefile)
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	const storeDir = "/nix/store"
	f.Fuzz(func(t *testing.T, s string) {
		p, err := storepath.Parse(storeDir, s)
		if err != nil {
			if p != (storepath.Path{}) {
				t.Fatalf("Parse(%q) returned %+v with error %v", s, p, err)
			}
			return
		}
		checkAccepted(t, storeDir, s, p)
	})
}

// checkAccepted states what every accepted store path satisfies.
func checkAccepted(t *testing.T, storeDir, s string, p storepath.Path) {
	t.Helper()
	if p.String() != s {
		t.Fatalf("Parse(%q).String() = %q", s, p.String())
	}
	if p.Dir != storeDir || !strings.HasPrefix(s, storeDir+"/") {
		t.Fatalf("Parse(%q) accepted a path outside %s (Dir %q)", s, storeDir, p.Dir)
	}
	base := s[len(storeDir)+1:]
	if strings.Contains(base, "/") {
		t.Fatalf("Parse(%q) accepted a path with a '/' after the store dir", s)
	}
	// No "." or ".." element can sneak in: the path is already clean.
	// (".." inside a name, as in "foo..bar", is a valid Nix name and no
	// path element.)
	if filepath.Clean(s) != s || base == ".." || base == "." {
		t.Fatalf("Parse(%q) accepted a path that is not clean", s)
	}
	if len(p.Hash) != storepath.HashLen || strings.Trim(p.Hash, "0123456789abcdfghijklmnpqrsvwxyz") != "" {
		t.Fatalf("Parse(%q): bad hash %q", s, p.Hash)
	}
	if p.Name == "" || len(p.Name) > storepath.MaxNameLen {
		t.Fatalf("Parse(%q): bad name length %d", s, len(p.Name))
	}
	for _, c := range []byte(p.Name) {
		if !strings.Contains("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=", string(c)) {
			t.Fatalf("Parse(%q): name has %q", s, c)
		}
	}
	q, err := storepath.Parse(storeDir, p.String())
	if err != nil || q != p {
		t.Fatalf("Parse(Parse(%q).String()) = %+v, %v; want %+v", s, q, err, p)
	}
}

// FuzzResolve checks that Resolve never panics and that whatever it
// returns is a valid store path in the store directory it was given. It
// only reads the file system (a fake store in a temporary directory).
func FuzzResolve(f *testing.F) {
	root := f.TempDir()
	store := filepath.Join(root, "store")
	if err := os.MkdirAll(filepath.Join(store, hashA+"-hello-2.12.1", "bin"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(store, hashA+"-hello-2.12.1"), filepath.Join(root, "result")); err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds {
		f.Add(strings.Replace(s, "/nix/store", store, 1))
	}
	f.Add(filepath.Join(root, "result"))
	f.Add(filepath.Join(root, "result", "bin"))
	f.Add(filepath.Join(root, "missing"))
	f.Add(store + "/" + hashA + "-hello-2.12.1/bin/../../..")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := storepath.Resolve(store, s)
		if err != nil {
			return
		}
		checkAccepted(t, store, p.String(), p)
	})
}
