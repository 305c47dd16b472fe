// Package storepath parses and validates Nix store paths.
//
// Everything that reaches the hook is untrusted (OUT_PATHS, command-line
// arguments, queue files), and a store path ends up in the argv of programs
// that run as root, so parsing follows Nix's own rules strictly rather than
// accepting anything that looks like a path.
package storepath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultStoreDir is Nix's store directory unless NIX_STORE_DIR says
// otherwise.
const DefaultStoreDir = "/nix/store"

// HashLen is the length of the nix-base32 hash part of a store path name.
const HashLen = 32

// MaxNameLen is the longest name Nix accepts after the hash and dash.
const MaxNameLen = 211

// Base32 is Nix's base-32 alphabet: no e, o, u, t.
const Base32 = "0123456789abcdfghijklmnpqrsvwxyz"

// Path is a validated store path: <Dir>/<Hash>-<Name>. Make one with
// Parse, Resolve or New, and do not change its fields: Paths so made are
// equal (==, map keys) when they name the same path, but a literal, or a
// copy whose fields were changed, carries another (or a stale) full and
// equals none of them; String stays right either way.
type Path struct {
	Dir  string // store directory, e.g. /nix/store
	Hash string // 32 characters of nix-base32
	Name string // e.g. hello-2.12.1
	// full is the path as one string, which String returns as it is: a
	// 10,000-path closure goes through String some 100,000 times
	// (decisions, facts, the queue), and a concatenation each time was
	// a tenth of push --closure's own work.
	full string
}

// New makes the Path <dir>/<hash>-<name>, unchecked (see Parse).
func New(dir, hash, name string) Path {
	return Path{Dir: dir, Hash: hash, Name: name, full: dir + "/" + hash + "-" + name}
}

// String returns the full store path.
func (p Path) String() string {
	if p.fullHolds() {
		return p.full
	}
	return p.Dir + "/" + p.Hash + "-" + p.Name
}

// fullHolds reports whether full is still Dir/Hash-Name (the fields are
// exported: a Path changed after it was made has a stale one). Cheap:
// made by Parse, the fields are slices of full, and each comparison
// finds the same pointer.
func (p Path) fullHolds() bool {
	d, h := len(p.Dir), len(p.Hash)
	return len(p.full) == d+h+len(p.Name)+2 && p.full[:d] == p.Dir && p.full[d] == '/' &&
		p.full[d+1:d+1+h] == p.Hash && p.full[d+1+h] == '-' && p.full[d+2+h:] == p.Name
}

// Base returns the last element, <hash>-<name>.
func (p Path) Base() string { return p.Hash + "-" + p.Name }

// StoreDir returns the store directory from NIX_STORE_DIR, or /nix/store.
// The result is cleaned so that comparisons are exact.
func StoreDir() string {
	if d := os.Getenv("NIX_STORE_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Clean(d)
	}
	return DefaultStoreDir
}

// Parse validates s as a store path directly inside storeDir. A path that
// points inside a store path (…/bin/hello) is rejected here; use Resolve to
// map such paths to their store path.
func Parse(storeDir, s string) (Path, error) {
	prefix := storeDir + "/"
	if !strings.HasPrefix(s, prefix) {
		return Path{}, fmt.Errorf("%q is not in the Nix store %s", s, storeDir)
	}
	base := s[len(prefix):]
	if strings.Contains(base, "/") {
		return Path{}, fmt.Errorf("%q is inside a store path, not a store path", s)
	}
	if err := checkBase(base); err != nil {
		return Path{}, fmt.Errorf("%q is not a valid store path: %w", s, err)
	}
	return Path{Dir: storeDir, Hash: base[:HashLen], Name: base[HashLen+1:], full: s}, nil
}

func checkBase(base string) error {
	if i := strings.IndexByte(base, '-'); i != HashLen {
		return fmt.Errorf("the hash part must be %d characters followed by '-'", HashLen)
	}
	if len(base) < HashLen+2 {
		return errors.New("empty name")
	}
	for i := 0; i < HashLen; i++ {
		if !isBase32[base[i]] {
			return fmt.Errorf("hash has a character outside nix-base32 at offset %d", i)
		}
	}
	name := base[HashLen+1:]
	if len(name) > MaxNameLen {
		return fmt.Errorf("name longer than %d characters", MaxNameLen)
	}
	// A name may start with '.', even be "." or ".." or start with ".-"
	// (Nix 2.8 takes all of them; later versions refuse the last
	// three): with the hash before it, it is never a path element, and
	// one refused here is read as no store path, denied by nothing.
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("name has a forbidden character %q", name[i])
		}
	}
	return nil
}

func nameChar(c byte) bool { return isNameChar[c] }

// isBase32 and isNameChar are the byte classes of checkBase as tables: a
// closure's 10,000 paths are checked on every push --closure.
var isBase32, isNameChar = func() (b32, name [256]bool) {
	for i := 0; i < len(Base32); i++ {
		b32[Base32[i]] = true
	}
	for c := 0; c < 256; c++ {
		name[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+-._?=", byte(c)) >= 0
	}
	return b32, name
}()

// Resolve maps what a user hands us to a store path: a store path itself
// (whether or not it exists: explain evaluates rules on any well-formed
// path), a file or directory inside a store path, or a symlink that leads
// into the store (./result, /run/current-system, ~/.nix-profile), which
// names the first store path its links reach, as in Nix.
func Resolve(storeDir, arg string) (Path, error) {
	if p, err := Parse(storeDir, arg); err == nil {
		return p, nil
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return Path{}, fmt.Errorf("resolving %s: %w", arg, err)
	}
	// The store dir itself may be a symlink (e.g. a bind mount); compare
	// against its resolved form too.
	dirs := []string{storeDir}
	if real, err := filepath.EvalSymlinks(storeDir); err == nil && real != storeDir {
		dirs = append(dirs, real)
	}
	inStore := func(abs string) (Path, bool, error) {
		for _, d := range dirs {
			if !strings.HasPrefix(abs, d+"/") {
				continue
			}
			rest := abs[len(d)+1:]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i]
			}
			p, err := Parse(storeDir, storeDir+"/"+rest)
			return p, true, err
		}
		return Path{}, false, nil
	}
	// Links are followed as Nix follows them, to the first path in the
	// store and no further: ./result of a store path that is itself a
	// symlink (to another store path) names it, not what it points to.
	if p, ok, err := inStore(followLinks(abs, func(p string) bool { _, ok, _ := inStore(p); return ok })); ok {
		return p, err
	}
	// A path that cannot be resolved (it does not exist) is still mapped
	// when it lies inside the store: explain works on paths not built yet.
	real, evalErr := filepath.EvalSymlinks(abs)
	if evalErr == nil {
		abs = real
	} else {
		// A dangling ./result still names the store path it was made
		// for (garbage-collected, or not built yet): follow the links
		// by hand.
		abs = followLinks(abs, nil)
	}
	if p, ok, err := inStore(abs); ok {
		return p, err
	}
	// Not there, and not a store path of another store directory: a
	// typo, a path not built.
	_, lerr := os.Lstat(arg)
	if _, perr := Parse(filepath.Dir(abs), abs); errors.Is(lerr, os.ErrNotExist) && perr != nil {
		return Path{}, fmt.Errorf("%s: no such file or directory (give a store path, a file in one, or a symlink into %s such as ./result)", QuoteOdd(arg), storeDir)
	}
	// Where links lead is chosen by whoever made them: quoted when it
	// could break or redraw the line it is shown on.
	if evalErr != nil {
		return Path{}, fmt.Errorf("%s is outside the Nix store %s (%s)", QuoteOdd(arg), storeDir, QuoteOdd(evalErr.Error()))
	}
	return Path{}, fmt.Errorf("%s is outside the Nix store %s (it resolves to %s)", QuoteOdd(arg), storeDir, QuoteOdd(abs))
}

// QuoteOdd quotes s, as Go does, when it holds a character that is not
// printable (a line break, an escape) or is not UTF-8, and leaves it as
// it is otherwise.
func QuoteOdd(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// followLinks follows a chain of symlinks as far as it exists, or, when
// stop is given, until stop says a path is where to stop (the store: Nix
// follows ./result to the first store path and no further). A relative
// target is taken from the link's resolved directory, as the kernel does.
func followLinks(p string, stop func(string) bool) string {
	for i := 0; i < 40; i++ {
		if stop != nil && stop(p) {
			return p
		}
		target, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if !filepath.IsAbs(target) {
			dir := filepath.Dir(p)
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real
			}
			target = filepath.Join(dir, target)
		}
		p = filepath.Clean(target)
	}
	return p
}
