package storepath_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Hashes made of nix-base32 characters only (no e, o, u, t).
const (
	hashA = "0123456789abcdfghijklmnpqrsvwxyz"
	hashB = "yhq4bppzbyv1vzkmlrk33c4yvl1dqx2r"
)

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		dir, in    string
		hash, name string
	}{
		{"/nix/store", "/nix/store/" + hashA + "-hello-2.12.1", hashA, "hello-2.12.1"},
		{"/nix/store", "/nix/store/" + hashB + "-hello-2.12.1-doc", hashB, "hello-2.12.1-doc"},
		{"/nix/store", "/nix/store/" + hashB + "-a", hashB, "a"},
		// Every character Nix allows in a name.
		{"/nix/store", "/nix/store/" + hashB + "-AZaz09+-._?=", hashB, "AZaz09+-._?="},
		// A dot is fine anywhere but first; ".." inside a name is not a
		// path element.
		{"/nix/store", "/nix/store/" + hashB + "-foo..bar", hashB, "foo..bar"},
		{"/nix/store", "/nix/store/" + hashB + "-source.drv", hashB, "source.drv"},
		// A dot first too (writeText ".gitignore"), even "." and ".."
		// as the name or its first dash-separated part, which Nix 2.8
		// takes (builtins.toFile ".-x" gives /nix/store/…-.-x).
		{"/nix/store", "/nix/store/" + hashB + "-.gitignore", hashB, ".gitignore"},
		{"/nix/store", "/nix/store/" + hashB + "-.secret-key-1", hashB, ".secret-key-1"},
		{"/nix/store", "/nix/store/" + hashB + "-..x", hashB, "..x"},
		{"/nix/store", "/nix/store/" + hashB + "-...-x", hashB, "...-x"},
		{"/nix/store", "/nix/store/" + hashB + "-.", hashB, "."},
		{"/nix/store", "/nix/store/" + hashB + "-..", hashB, ".."},
		{"/nix/store", "/nix/store/" + hashB + "-.-secret", hashB, ".-secret"},
		{"/nix/store", "/nix/store/" + hashB + "-..-secret", hashB, "..-secret"},
		// The longest name: 211 characters.
		{"/nix/store", "/nix/store/" + hashB + "-" + strings.Repeat("x", 211), hashB, strings.Repeat("x", 211)},
		// Another store directory.
		{"/tmp/s", "/tmp/s/" + hashA + "-zlib-1.3", hashA, "zlib-1.3"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := storepath.Parse(tc.dir, tc.in)
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tc.dir, tc.in, err)
			}
			want := storepath.New(tc.dir, tc.hash, tc.name)
			if p != want {
				t.Errorf("Parse = %+v, want %+v", p, want)
			}
			if p.String() != tc.in {
				t.Errorf("String() = %q, want %q", p.String(), tc.in)
			}
			if p.Base() != tc.hash+"-"+tc.name {
				t.Errorf("Base() = %q", p.Base())
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := strings.Repeat("x", 212)
	for _, tc := range []struct {
		why, dir, in, errPart string
	}{
		{"wrong store dir", "/nix/store", "/gnu/store/" + hashA + "-hello", "not in the Nix store"},
		{"store dir as a prefix of a longer dir", "/nix/store", "/nix/storex/" + hashA + "-hello", "not in the Nix store"},
		{"relative", "/nix/store", "nix/store/" + hashA + "-hello", "not in the Nix store"},
		{"empty", "/nix/store", "", "not in the Nix store"},
		{"the store dir itself", "/nix/store", "/nix/store", "not in the Nix store"},
		{"store dir with a slash", "/nix/store", "/nix/store/", "hash part"},
		{"double slash", "/nix/store", "/nix/store//" + hashA + "-hello", "inside a store path"},
		{"inside a store path", "/nix/store", "/nix/store/" + hashA + "-hello/bin/hello", "inside a store path"},
		{"trailing slash", "/nix/store", "/nix/store/" + hashA + "-hello/", "inside a store path"},
		{"dot-dot element", "/nix/store", "/nix/store/../etc/passwd", "inside a store path"},
		{"dot-dot after a store path", "/nix/store", "/nix/store/" + hashA + "-hello/../" + hashB + "-x", "inside a store path"},
		{"hash too short", "/nix/store", "/nix/store/" + hashA[:31] + "-hello", "hash part"},
		{"hash too long", "/nix/store", "/nix/store/" + hashA + "z-hello", "hash part"},
		{"no dash", "/nix/store", "/nix/store/" + hashA + "hello", "hash part"},
		{"no name", "/nix/store", "/nix/store/" + hashA, "hash part"},
		{"empty name", "/nix/store", "/nix/store/" + hashA + "-", "empty name"},
		{"hash with e", "/nix/store", "/nix/store/e" + hashA[1:] + "-hello", "nix-base32 at offset 0"},
		{"hash with o", "/nix/store", "/nix/store/" + hashA[:5] + "o" + hashA[6:] + "-hello", "nix-base32 at offset 5"},
		{"hash with u", "/nix/store", "/nix/store/" + hashA[:31] + "u-hello", "nix-base32 at offset 31"},
		{"hash with t", "/nix/store", "/nix/store/t" + hashA[1:] + "-hello", "nix-base32"},
		{"hash upper case", "/nix/store", "/nix/store/" + strings.ToUpper(hashB) + "-hello", "nix-base32"},
		{"hash with dot", "/nix/store", "/nix/store/" + hashA[:31] + ".-hello", "nix-base32"},
		{"name too long", "/nix/store", "/nix/store/" + hashA + "-" + long, "longer than 211"},
		{"space in name", "/nix/store", "/nix/store/" + hashA + "-hello world", "forbidden character"},
		{"newline in name", "/nix/store", "/nix/store/" + hashA + "-hello\n", "forbidden character"},
		{"NUL in name", "/nix/store", "/nix/store/" + hashA + "-hello\x00", "forbidden character"},
		{"shell metacharacter", "/nix/store", "/nix/store/" + hashA + "-hello;rm", "forbidden character"},
		{"option-like name is fine but tilde is not", "/nix/store", "/nix/store/" + hashA + "-~x", "forbidden character"},
		{"non-ASCII", "/nix/store", "/nix/store/" + hashA + "-héllo", "forbidden character"},
		{"NIX_STORE_DIR differs", "/tmp/s", "/nix/store/" + hashA + "-hello", "not in the Nix store /tmp/s"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			p, err := storepath.Parse(tc.dir, tc.in)
			if err == nil {
				t.Fatalf("Parse(%q, %q) = %+v, want an error", tc.dir, tc.in, p)
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("Parse(%q, %q): error %q does not contain %q", tc.dir, tc.in, err, tc.errPart)
			}
		})
	}
}

func TestNameLength(t *testing.T) {
	for n, ok := range map[int]bool{1: true, 210: true, 211: true, 212: false, 300: false} {
		s := "/nix/store/" + hashA + "-" + strings.Repeat("a", n)
		_, err := storepath.Parse("/nix/store", s)
		if (err == nil) != ok {
			t.Errorf("name of %d characters: err = %v, want ok = %v", n, err, ok)
		}
	}
}

func TestStoreDir(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", "/nix/store"},
		{"/gnu/store", "/gnu/store"},
		{"/tmp/store/", "/tmp/store"},
		{"/tmp//store/./", "/tmp/store"},
		// A relative NIX_STORE_DIR is not trusted.
		{"store", "/nix/store"},
	} {
		t.Setenv("NIX_STORE_DIR", tc.env)
		if got := storepath.StoreDir(); got != tc.want {
			t.Errorf("NIX_STORE_DIR=%q: StoreDir() = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestNixStoreDirHonoured(t *testing.T) {
	t.Setenv("NIX_STORE_DIR", "/tmp/other-store/")
	dir := storepath.StoreDir()
	if _, err := storepath.Parse(dir, "/tmp/other-store/"+hashA+"-hello"); err != nil {
		t.Errorf("path in NIX_STORE_DIR: %v", err)
	}
	_, err := storepath.Parse(dir, "/nix/store/"+hashA+"-hello")
	if err == nil || !strings.Contains(err.Error(), "/tmp/other-store") {
		t.Errorf("path in /nix/store with NIX_STORE_DIR set: err = %v, want one naming /tmp/other-store", err)
	}
}

// fakeStore makes a store directory in a temporary directory with two store
// paths, one of them with a file inside, and returns the store dir.
func fakeStore(t *testing.T) (root, store string) {
	t.Helper()
	root = t.TempDir()
	store = filepath.Join(root, "store")
	must(t, os.MkdirAll(filepath.Join(store, hashA+"-hello-2.12.1", "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(store, hashA+"-hello-2.12.1", "bin", "hello"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.MkdirAll(filepath.Join(store, hashB+"-profile", "bin"), 0o755))
	// A profile links into another store path, as ~/.nix-profile/bin/hello does.
	must(t, os.Symlink(filepath.Join(store, hashA+"-hello-2.12.1", "bin", "hello"), filepath.Join(store, hashB+"-profile", "bin", "hello")))
	must(t, os.Mkdir(filepath.Join(store, "not-a-store-path"), 0o755))
	return root, store
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	root, store := fakeStore(t)
	hello := filepath.Join(store, hashA+"-hello-2.12.1")
	profile := filepath.Join(store, hashB+"-profile")
	outside := filepath.Join(root, "outside")
	must(t, os.WriteFile(outside, nil, 0o644))

	must(t, os.Symlink(hello, filepath.Join(root, "result")))
	must(t, os.Symlink(filepath.Join(root, "result"), filepath.Join(root, "result-of-result")))
	must(t, os.Symlink("store/"+hashA+"-hello-2.12.1", filepath.Join(root, "relative-result")))
	must(t, os.Symlink(profile, filepath.Join(root, "nix-profile")))
	must(t, os.Symlink(outside, filepath.Join(root, "link-outside")))
	must(t, os.Symlink(filepath.Join(store, "not-a-store-path"), filepath.Join(root, "link-bad")))
	must(t, os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "link-missing")))
	// A store path that is itself a symlink to another one (runCommand
	// "ln -s ${hello} $out"), and a result that names it.
	linked := filepath.Join(store, hashB+"-linked-hello")
	must(t, os.Symlink(hello, linked))
	must(t, os.Symlink(linked, filepath.Join(root, "result-linked")))

	for _, tc := range []struct {
		why, in, want string
	}{
		{"a store path that exists", hello, hello},
		{"a store path that does not exist", filepath.Join(store, hashB+"-zlib-1.3"), filepath.Join(store, hashB+"-zlib-1.3")},
		{"a file inside a store path", filepath.Join(hello, "bin", "hello"), hello},
		{"a directory inside a store path", filepath.Join(hello, "bin"), hello},
		{"a file inside a store path that does not exist", filepath.Join(store, hashB+"-zlib-1.3", "lib", "libz.so"), filepath.Join(store, hashB+"-zlib-1.3")},
		{"a symlink to a store path", filepath.Join(root, "result"), hello},
		{"a chain of symlinks", filepath.Join(root, "result-of-result"), hello},
		{"a relative symlink", filepath.Join(root, "relative-result"), hello},
		{"a symlink to a profile", filepath.Join(root, "nix-profile"), profile},
		{"a file in a profile that links on", filepath.Join(root, "nix-profile", "bin", "hello"), hello},
		{"a file through a symlink", filepath.Join(root, "result", "bin", "hello"), hello},
		{"an unclean path inside the store", store + "/./" + hashA + "-hello-2.12.1//bin/", hello},
		// As Nix reads them (followLinksToStorePath): the first store
		// path on the way, not the one it links to.
		{"a store path that is a symlink", linked, linked},
		{"a store path that is a symlink, with a slash", linked + "/", linked},
		{"a symlink to a store path that is a symlink", filepath.Join(root, "result-linked"), linked},
	} {
		t.Run(tc.why, func(t *testing.T) {
			p, err := storepath.Resolve(store, tc.in)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.in, err)
			}
			if p.String() != tc.want {
				t.Errorf("Resolve(%q) = %s, want %s", tc.in, p, tc.want)
			}
			if p.Dir != store {
				t.Errorf("Resolve(%q).Dir = %q, want %q", tc.in, p.Dir, store)
			}
		})
	}

	t.Run("relative to the working directory", func(t *testing.T) {
		t.Chdir(root)
		for _, in := range []string{"result", "./result", "store/" + hashA + "-hello-2.12.1/bin/hello"} {
			p, err := storepath.Resolve(store, in)
			if err != nil || p.String() != hello {
				t.Errorf("Resolve(%q) = %v, %v; want %s", in, p, err, hello)
			}
		}
	})

	for _, tc := range []struct {
		why, in, errPart string
	}{
		{"a file outside the store", outside, "outside the Nix store"},
		{"a symlink out of the store", filepath.Join(root, "link-outside"), "outside the Nix store"},
		{"the store dir itself", store, "outside the Nix store"},
		{"a directory above the store", root, "outside the Nix store"},
		{"dot-dot out of the store", filepath.Join(store, hashA+"-hello-2.12.1") + "/../../outside", "outside the Nix store"},
		{"a path outside the store that does not exist", filepath.Join(root, "missing"), "missing: no such file or directory"},
		{"a dangling symlink that leads outside the store", filepath.Join(root, "link-missing"), "outside the Nix store"},
		{"a malformed name in the store", filepath.Join(store, "not-a-store-path"), "not a valid store path"},
		{"a symlink to a malformed name", filepath.Join(root, "link-bad"), "not a valid store path"},
		{"a malformed name that does not exist", filepath.Join(store, "e"+hashA[1:]+"-x"), "nix-base32"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			p, err := storepath.Resolve(store, tc.in)
			if err == nil {
				t.Fatalf("Resolve(%q) = %s, want an error", tc.in, p)
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("Resolve(%q): error %q does not contain %q", tc.in, err, tc.errPart)
			}
		})
	}
}

// The store directory may itself be a symlink (a bind mount, or a
// NIX_STORE_DIR pointing through a link): paths that resolve into its
// target are mapped back onto the store dir as configured.
func TestResolveStoreDirSymlink(t *testing.T) {
	root, real := fakeStore(t)
	store := filepath.Join(root, "linked-store")
	must(t, os.Symlink(real, store))
	must(t, os.Symlink(filepath.Join(real, hashA+"-hello-2.12.1"), filepath.Join(root, "result")))
	want := filepath.Join(store, hashA+"-hello-2.12.1")
	for _, in := range []string{
		filepath.Join(root, "result"),
		filepath.Join(real, hashA+"-hello-2.12.1", "bin", "hello"),
		filepath.Join(store, hashA+"-hello-2.12.1", "bin", "hello"),
	} {
		p, err := storepath.Resolve(store, in)
		if err != nil || p.String() != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

// String holds for a Path made any way, and changed after it was made.
func TestStringAfterChange(t *testing.T) {
	p, err := storepath.Parse("/nix/store", "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    storepath.Path
		want string
	}{
		{p, "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1"},
		{storepath.New("/nix/store", p.Hash, "doc"), "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-doc"},
		{storepath.Path{Dir: "/s", Hash: "h", Name: "n"}, "/s/h-n"},
		{func() storepath.Path { q := p; q.Name = "hello-doc"; return q }(), "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-doc"},
		{func() storepath.Path { q := p; q.Name = "hello-2.12.2"; return q }(), "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.2"},
		{func() storepath.Path { q := p; q.Dir = "/gnu/store"; return q }(), "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// Whoever made a symlink chooses where it leads: a target holding a line
// break or a terminal escape was printed as it is in Resolve's error
// (cli's errorf keeps line breaks, which its messages use), so that a
// link's owner could forge a line of output. The argument and where it
// leads are quoted when they hold such characters.
func TestResolveErrorQuotesLinkTarget(t *testing.T) {
	root, store := fakeStore(t)
	forged := "x\ncachix-filter-hook: queued 1 of 1 paths\x1b[2K"
	must(t, os.Mkdir(filepath.Join(root, forged), 0o755))
	must(t, os.Symlink(filepath.Join(root, forged), filepath.Join(root, "to-dir")))
	must(t, os.Symlink(filepath.Join(root, forged, "missing"), filepath.Join(root, "dangling")))
	for _, in := range []string{filepath.Join(root, "to-dir"), filepath.Join(root, "dangling"), filepath.Join(root, "to-dir") + "/missing\nforged"} {
		_, err := storepath.Resolve(store, in)
		if err == nil {
			t.Fatalf("Resolve(%q) succeeded", in)
		}
		if strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("Resolve(%q): the error holds a line break or an escape: %q", in, err)
		}
	}
}
