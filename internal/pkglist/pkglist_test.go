package pkglist

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// store is a directory standing for the Nix store: lists are read from
// the files, never through Nix.
type store struct {
	t   *testing.T
	dir string
	n   int
}

func newStore(t *testing.T) *store { return &store{t: t, dir: t.TempDir()} }

// path names a store path in it with a hash of its own.
func (s *store) path(name string) storepath.Path {
	s.n++
	h := fmt.Sprintf("%032d", s.n)
	h = strings.NewReplacer("0", "a", "1", "b", "2", "c", "3", "d", "4", "f", "5", "g", "6", "h", "7", "i", "8", "j", "9", "k").Replace(h)
	return storepath.New(s.dir, h, name)
}

// list writes a list as cachixPackages builds it: the directory with its
// manifest.nix symlink to NAME.list holding text.
func (s *store) list(name, text string) storepath.Path {
	s.t.Helper()
	d := s.path(name)
	f := s.path(name + ".list")
	if err := os.WriteFile(f.String(), []byte(text), 0o444); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Mkdir(d.String(), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Symlink(f.String(), filepath.Join(d.String(), "manifest.nix")); err != nil {
		s.t.Fatal(err)
	}
	return d
}

func TestRead(t *testing.T) {
	s := newStore(t)
	a, b := s.path("openc910-2.3"), s.path("myapp-1.0")
	d := s.list("cachix-packages-dev", Magic+"\ntarget mycache\ntarget work eu\n"+a.String()+"\n"+b.String()+"\n"+a.String()+"\n")
	l, err := Read(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Paths) != 2 || l.Paths[0] != a || l.Paths[1] != b || !l.Has(b.String()) || l.Has(d.String()) {
		t.Errorf("paths %v", l.Paths)
	}
	if strings.Join(l.Targets, "|") != "mycache|work eu" || !l.Names("work eu") || l.Names("other") {
		t.Errorf("targets %q", l.Targets)
	}
	all, err := Read(s.list("cachix-packages", Magic+"\n"+a.String()+"\n"))
	if err != nil || !all.Names("anything") {
		t.Errorf("a list naming no target is for every target: %v %v", all, err)
	}
}

// What is not a list is an ordinary path (ErrNotList); a list that is
// malformed or too large says so, naming itself, and counts for nothing.
func TestReadRefuses(t *testing.T) {
	s := newStore(t)
	a := s.path("openc910-2.3")
	for _, tc := range []struct {
		why, text, want string
	}{
		{"another format", "cachix-filter-hook package list 2\n" + a.String() + "\n", "line 1 is"},
		{"cut short", Magic + "\n" + a.String(), "does not end with a newline"},
		{"empty", "", "does not end with a newline"},
		{"not a store path", Magic + "\n/etc/shadow\n", `line 2: "/etc/shadow" is not a store path`},
		{"a file in a store path", Magic + "\n" + a.String() + "/bin/sh\n", "is not a store path"},
		{"a blank line", Magic + "\n\n" + a.String() + "\n", "line 2"},
		{"a target after the paths", Magic + "\n" + a.String() + "\ntarget x\n", "line 3: a target line after the paths"},
		{"an empty target", Magic + "\ntarget \n", "line 2: an empty or unprintable target name"},
		// As config refuses a target's name: shown on one line, as
		// text, in messages and the metrics' labels.
		{"a target with an escape", Magic + "\ntarget ok\ntarget a\x1b[2Jb\n", `line 3: target name "a\x1b[2Jb" holds \x1b`},
		{"a target with a tab", Magic + "\ntarget a\tb\n", `line 2: target name "a\tb" holds \x09`},
		{"a target with a line separator", Magic + "\ntarget a\u2028b\n", `line 2: target name "a\u2028b" holds \u2028, a control character, line separator`},
		{"a target with a right-to-left override", Magic + "\ntarget w\u202eterces\n", `line 2: target name "w\u202eterces" holds \u202e, a control character, line separator or bidirectional control`},
		{"a target with an isolate", Magic + "\ntarget w\u2067x\n", `line 2: target name "w\u2067x" holds \u2067`},
		// Cut short in the message before a character, not inside
		// it: %q showed its first byte alone, as if not UTF-8.
		{"a long first line", "ソフト" + strings.Repeat("日本", 20) + "\n", `line 1 is "ソフト` + strings.Repeat("日本", 11) + `日…"`},
		{"a long target name", Magic + "\ntarget x" + strings.Repeat("日本", 20) + "\u202e\n", `line 2: target name "x` + strings.Repeat("日本", 13) + `…" holds \u202e`},
		{"a target not UTF-8", Magic + "\ntarget a\xffb\n", `line 2: target name "a\xffb" holds a byte that is not UTF-8`},
	} {
		t.Run(tc.why, func(t *testing.T) {
			d := s.list("cachix-packages-x", tc.text)
			_, err := Read(d)
			if err == nil || errors.Is(err, ErrNotList) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), "nothing of it is queued") {
				t.Errorf("Read = %v, want an error naming %s with %q", err, d, tc.want)
			}
		})
	}
	// More paths than MaxPaths, though within MaxSize (parsed from
	// memory: a long temporary directory would pass MaxSize first).
	t.Run("too many paths", func(t *testing.T) {
		many := &strings.Builder{}
		many.WriteString(Magic + "\n")
		for i := 0; i <= MaxPaths; i++ {
			fmt.Fprintf(many, "/nix/store/%032d-p\n", i)
		}
		l := &List{Path: storepath.New("/nix/store", strings.Repeat("a", 32), "cachix-packages")}
		if err := l.parse([]byte(many.String())); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d paths", MaxPaths)) {
			t.Errorf("parse = %v", err)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		d := s.list("cachix-packages-big", Magic+"\n"+strings.Repeat(a.String()+"\n", MaxSize/len(a.String())+1))
		_, err := Read(d)
		if err == nil || errors.Is(err, ErrNotList) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
			t.Errorf("Read = %v", err)
		}
	})
	t.Run("names itself", func(t *testing.T) {
		d := s.path("cachix-packages-self")
		os.Mkdir(d.String(), 0o755)
		f := storepath.New(d.Dir, s.path("x").Hash, d.Name+".list")
		os.WriteFile(f.String(), []byte(Magic+"\n"+d.String()+"\n"), 0o444)
		os.Symlink(f.String(), filepath.Join(d.String(), "manifest.nix"))
		if _, err := Read(d); err == nil || !strings.Contains(err.Error(), "names itself") {
			t.Errorf("Read = %v", err)
		}
	})
	// A long bad line is said cut short: the message goes to the build
	// log, and a list may be a megabyte of one line.
	t.Run("a long bad line", func(t *testing.T) {
		for _, line := range []string{strings.Repeat("x", 100000), s.dir + "/" + strings.Repeat("\x1b", 50000)} {
			d := s.list("cachix-packages-long", Magic+"\n"+line+"\n")
			_, err := Read(d)
			if err == nil || !strings.Contains(err.Error(), "line 2: ") || len(err.Error()) > 1000 {
				t.Errorf("Read = an error of %d bytes, want one under 1000 naming line 2: %.300s", len(fmt.Sprint(err)), err)
			}
		}
	})
	// A FIFO where the file should be: refused at once, never waited on.
	t.Run("a FIFO", func(t *testing.T) {
		d := s.path("cachix-packages-fifo")
		f := s.path(d.Name + ".list")
		os.Mkdir(d.String(), 0o755)
		if err := mkfifo(f.String()); err != nil {
			t.Skip(err)
		}
		os.Symlink(f.String(), filepath.Join(d.String(), "manifest.nix"))
		if _, err := Read(d); err == nil || errors.Is(err, ErrNotList) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Read = %v", err)
		}
	})
	// A list whose file is a directory or a symbolic link is no list
	// cachixPackages built, and a store path stays as it is: said so,
	// not that it cannot be read now, nor that push queues it once it
	// can (it never can).
	t.Run("not a regular file", func(t *testing.T) {
		for _, mk := range []func(string) error{
			func(f string) error { return os.Mkdir(f, 0o755) },
			func(f string) error { return os.Symlink(a.String(), f) },
		} {
			d := s.path("cachix-packages-unreadable")
			f := s.path(d.Name + ".list")
			os.Mkdir(d.String(), 0o755)
			mk(f.String())
			os.Symlink(f.String(), filepath.Join(d.String(), "manifest.nix"))
			_, err := Read(d)
			if err == nil || errors.Is(err, ErrNotList) || !strings.Contains(err.Error(), d.String()) ||
				!strings.Contains(err.Error(), "nothing of it is queued") || !strings.Contains(err.Error(), "not as cachixPackages builds it") ||
				strings.Contains(err.Error(), "can be read") {
				t.Errorf("Read = %v, want an error naming %s, saying what it is and that nothing of it is queued", err, d)
			}
		}
	})

	notLists := map[string]func() storepath.Path{
		"another name": func() storepath.Path { return s.path("hello-2.12.1") },
		"the list file": func() storepath.Path {
			return s.path("cachix-packages-x.list")
		},
		"a regular file": func() storepath.Path {
			p := s.path("cachix-packages-file")
			os.WriteFile(p.String(), []byte(Magic+"\n"), 0o444)
			return p
		},
		"no manifest.nix": func() storepath.Path {
			p := s.path("cachix-packages-empty")
			os.Mkdir(p.String(), 0o755)
			return p
		},
		"manifest.nix elsewhere": func() storepath.Path {
			p := s.path("cachix-packages-profile")
			os.Mkdir(p.String(), 0o755)
			os.Symlink("/etc/passwd", filepath.Join(p.String(), "manifest.nix"))
			return p
		},
		"manifest.nix to another list": func() storepath.Path {
			other := s.list("cachix-packages-other", Magic+"\n"+a.String()+"\n")
			p := s.path("cachix-packages-thief")
			os.Mkdir(p.String(), 0o755)
			target, _ := os.Readlink(filepath.Join(other.String(), "manifest.nix"))
			os.Symlink(target, filepath.Join(p.String(), "manifest.nix"))
			return p
		},
		"a symlink to a list": func() storepath.Path {
			other := s.list("cachix-packages-real", Magic+"\n"+a.String()+"\n")
			p := s.path("cachix-packages-link")
			os.Symlink(other.String(), p.String())
			return p
		},
		"missing": func() storepath.Path { return s.path("cachix-packages-gone") },
	}
	for why, mk := range notLists {
		t.Run(why, func(t *testing.T) {
			if _, err := Read(mk()); !errors.Is(err, ErrNotList) {
				t.Errorf("Read = %v, want ErrNotList", err)
			}
		})
	}
}

// Find: a list stands for what it names; other paths stay as they are;
// a bad list counts for nothing, not even itself.
func TestFind(t *testing.T) {
	s := newStore(t)
	a, b, c := s.path("openc910-2.3"), s.path("myapp-1.0"), s.path("hello-2.12.1")
	l1 := s.list("cachix-packages-one", Magic+"\ntarget main\n"+a.String()+"\n"+b.String()+"\n")
	l2 := s.list("cachix-packages-two", Magic+"\n"+b.String()+"\n")
	bad := s.list("cachix-packages-bad", "junk\n")
	f := Find([]storepath.Path{c, l1, l2, bad, l1}, true)
	if len(f.Lists) != 2 || len(f.Bad) != 1 || !strings.Contains(f.Bad[0].Error(), bad.String()) {
		t.Fatalf("lists %v, bad %v", f.Lists, f.Bad)
	}
	if got := fmt.Sprint(f.Paths); got != fmt.Sprint([]storepath.Path{c, a, b}) {
		t.Errorf("paths %s", got)
	}
	if ls := f.Listed[b.String()]; len(ls) != 2 || ls[0].List != l1.String() || ls[0].Targets[0] != "main" || ls[1].List != l2.String() || len(ls[1].Targets) != 0 {
		t.Errorf("listings of b: %+v", ls)
	}
	if _, ok := f.Listed[c.String()]; ok {
		t.Errorf("c is listed")
	}
	// Without expand (a closure holds them already) nothing joins.
	f = Find([]storepath.Path{c, l1}, false)
	if len(f.Paths) != 1 || f.Paths[0] != c || len(f.Listed[a.String()]) != 1 {
		t.Errorf("closure: %v %v", f.Paths, f.Listed)
	}
	// No list: the paths themselves, untouched.
	in := []storepath.Path{c, a}
	if f := Find(in, true); &f.Paths[0] != &in[0] || f.Listed != nil {
		t.Errorf("no list: %+v", f)
	}
}

// A derivation may have any number of outputs named like lists: Find
// reads at most MaxLists of them, and MaxTotalPaths paths in all, and
// says once what it left unread, which counts for nothing (not even
// itself).
func TestFindBounded(t *testing.T) {
	s := newStore(t)
	a := s.path("a-1")
	var in []storepath.Path
	for i := range MaxLists + 3 {
		in = append(in, s.list(fmt.Sprintf("cachix-packages-%d", i), Magic+"\n"+a.String()+"\n"))
	}
	f := Find(in, true)
	if len(f.Lists) != MaxLists || len(f.Bad) != 1 {
		t.Fatalf("%d lists read, bad %v; want %d and one error", len(f.Lists), f.Bad, MaxLists)
	}
	if msg := f.Bad[0].Error(); !strings.Contains(msg, "3 package lists not read, "+in[MaxLists].String()+" the first") {
		t.Errorf("the error does not say what was left: %s", msg)
	}
	if len(f.Paths) != 1 || f.Paths[0] != a {
		t.Errorf("paths %v, want only what the lists read name", f.Paths)
	}
	// Past the bound, a path only named like a list (a directory with no
	// manifest.nix) is still an ordinary path, decided as one.
	plain := s.path("cachix-packages-profile")
	if err := os.Mkdir(plain.String(), 0o755); err != nil {
		t.Fatal(err)
	}
	f = Find(append(in, plain), true)
	if !slices.Contains(f.Paths, plain) || len(f.Bad) != 1 || !strings.Contains(f.Bad[0].Error(), "3 package lists not read") {
		t.Errorf("paths %v, bad %v: want %s kept as a path, and the 3 lists left unread", f.Paths, f.Bad, plain.Name)
	}

	// The paths the lists name, in all: lists of 3,400 paths, each well
	// under MaxSize whatever the length of the test's directory (10,000
	// were not, in a deeper TMPDIR), and few enough to pass MaxTotalPaths
	// before MaxLists.
	const per = 3400
	full := func(name string) storepath.Path {
		var b strings.Builder
		b.WriteString(Magic + "\n")
		for range per {
			b.WriteString(s.path("p-1").String() + "\n")
		}
		return s.list(name, b.String())
	}
	in = nil
	for i := range MaxTotalPaths/per + 1 {
		in = append(in, full(fmt.Sprintf("cachix-packages-full%d", i)))
	}
	f = Find(in, true)
	if read := MaxTotalPaths / per; len(f.Lists) != read || len(f.Paths) != read*per || len(f.Bad) != 1 {
		t.Errorf("%d lists read, %d paths, bad %v; want %d, %d and one error", len(f.Lists), len(f.Paths), f.Bad, read, read*per)
	}
}

func TestNamed(t *testing.T) {
	for name, want := range map[string]bool{
		"cachix-packages": true, "cachix-packages-home": true, "cachix-packages-2": true,
		"cachix-packages.list": false, "cachix-packages-home.list": false,
		"cachix-packagesx": false, "hello-2.12.1": false, "my-cachix-packages": false,
	} {
		if got := Named(storepath.New("/nix/store", strings.Repeat("a", 32), name)); got != want {
			t.Errorf("Named(%q) = %v", name, got)
		}
	}
}

// What cachixPackages (nix/lib.nix) builds, the hook reads: a target name
// lib.nix takes must be one the parser takes, or a list Nix built without
// a word is refused whole by the hook ("nothing of it is queued"). One it
// refuses, it refuses at evaluation, with its message.
func TestLibNixTargets(t *testing.T) {
	nixtest.Require(t)
	lib, err := filepath.Abs("../../nix/lib.nix")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"mycache", "work eu", "a\rb", "\r", "ü"} {
		js, _ := json.Marshal([]string{target})
		expr := fmt.Sprintf("((import %s { }).cachixPackages { packages = [ ]; targets = builtins.fromJSON ''%s''; system = \"x86_64-linux\"; }).list.text", lib, js)
		out, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E", expr).CombinedOutput()
		if err != nil {
			if !strings.Contains(string(out), "cachixPackages: targets must be") {
				t.Errorf("target %q: %v\n%s", target, err, out)
			}
			continue
		}
		var text string
		if err := json.Unmarshal(out, &text); err != nil {
			t.Fatalf("target %q: %v\n%s", target, err, out)
		}
		l := &List{Path: storepath.New("/nix/store", strings.Repeat("a", 32), "cachix-packages")}
		if err := l.parse([]byte(text)); err != nil || len(l.Targets) != 1 || l.Targets[0] != target {
			t.Errorf("target %q: lib.nix builds the list, the hook reads %q, %v", target, l.Targets, err)
		}
	}
}

// A list that cannot be used counts against MaxLists as one read does:
// outputs named like lists whose files are each up to MaxSize but
// malformed were all read whole, whatever their number (1,900 of them:
// 2 GB read as root on the build's path), and each said on its own line.
func TestFindBoundsBadLists(t *testing.T) {
	s := newStore(t)
	a := s.path("a-1")
	var in []storepath.Path
	for i := range MaxLists + 3 {
		in = append(in, s.list(fmt.Sprintf("cachix-packages-%d", i), Magic+"\n"+a.String())) // no final newline
	}
	f := Find(in, true)
	if len(f.Bad) != MaxLists+1 {
		t.Fatalf("%d errors, want %d lists read and one line for the rest", len(f.Bad), MaxLists)
	}
	if msg := f.Bad[MaxLists].Error(); !strings.Contains(msg, "3 package lists not read, "+in[MaxLists].String()+" the first") {
		t.Errorf("the error does not say what was left: %s", msg)
	}
	if len(f.Paths) != 0 {
		t.Errorf("paths %v, want none", f.Paths)
	}
}

// A list named in another list is, to the outer list, a listed path like
// any other: in a closure that holds both (push --closure of a
// generation), it goes to the outer list's targets, as when the outer
// list is built, while what it names goes to its own.
func TestFindNestedListInClosure(t *testing.T) {
	s := newStore(t)
	x, y := s.path("x-1"), s.path("y-1")
	inner := s.list("cachix-packages-inner", Magic+"\ntarget own\n"+y.String()+"\n")
	outer := s.list("cachix-packages-outer", Magic+"\ntarget main\n"+x.String()+"\n"+inner.String()+"\n")
	for _, expand := range []bool{false, true} {
		f := Find([]storepath.Path{outer, x, inner, y}, expand)
		if len(f.Lists) != 2 {
			t.Fatalf("expand %v: lists %v, want both", expand, f.Lists)
		}
		if !slices.Contains(f.Paths, inner) {
			t.Errorf("expand %v: paths %v: the inner list is not among them", expand, f.Paths)
		}
		if ls := f.Listed[inner.String()]; len(ls) != 1 || ls[0].List != outer.String() {
			t.Errorf("expand %v: listings of the inner list: %+v", expand, ls)
		}
		if ls := f.Listed[y.String()]; len(ls) != 1 || ls[0].List != inner.String() {
			t.Errorf("expand %v: listings of y: %+v", expand, ls)
		}
		if slices.Contains(f.Paths, outer) {
			t.Errorf("expand %v: the outer list, named by none, is among the paths", expand)
		}
	}
}
