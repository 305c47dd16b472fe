// Package pkglist reads package lists: what nix/lib.nix's cachixPackages
// builds, so that a Nix user can choose packages to push as Nix values
// (`[ pkgs.openc910 myApp ]`) rather than by name.
//
// A list is two store paths. NAME.list is a text file, written by the
// builder with shell builtins alone:
//
//	cachix-filter-hook package list 1
//	target mycache                      (none: every target)
//	/nix/store/…-openc910-2.3
//	/nix/store/…-myapp-1.0
//
// cachix-packages[-NAME] is a directory (so that buildEnv profiles take it
// like any package) holding one symlink, manifest.nix, to the file. The
// directory is the list: the hook sees it built, push and explain are
// given it, a generation's closure holds it.
//
// Reading a list is on the build's path (the hook), so it asks Nix
// nothing and is bounded: a name check first, then an lstat, a readlink
// and one read of at most MaxSize bytes and MaxPaths paths. Whether the
// list really depends on each path it names is Nix's to say, and the
// worker asks it (see package policy, Listing.Closure) before pushing.
package pkglist

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/safeopen"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Magic is a list file's first line; nix/lib.nix writes the same.
const Magic = "cachix-filter-hook package list 1"

// Bounds of one list: a list names packages, not closures, so a few
// hundred is already large. nix/lib.nix refuses a list past them at
// evaluation: kept in step.
const (
	MaxSize  = 1 << 20
	MaxPaths = 10000
	// maxTargets bounds the target lines.
	maxTargets = 256
)

// Bounds of one Find, over all its lists: one derivation may have any
// number of outputs named like lists, which the hook, as root and on the
// build's path, would read whole (1,900 of them: 2 GB read, 19 million
// paths held). A few lists is what a user has.
const (
	MaxLists      = 32
	MaxTotalPaths = 10 * MaxPaths
)

// namePrefix starts the name of every list directory.
const namePrefix = "cachix-packages"

// ErrNotList is wrapped by Read's error for a path that is not a package
// list, though its name says it might be: it is an ordinary path.
var ErrNotList = errors.New("not a package list")

// ErrUnreadable is wrapped by Read's error for a list that cannot be read
// now (EMFILE, ENOMEM, EIO): no verdict on it, as a malformed or hostile
// list is. A store path does not change, so a later read may succeed.
var ErrUnreadable = errors.New("cannot be read now")

// ErrTooMany is wrapped by Find's error for the lists it left unread past
// MaxLists or MaxTotalPaths (Found.Skipped): no verdict on them, as for
// ErrUnreadable; read alone, each may be used.
var ErrTooMany = errors.New("more package lists or listed paths than one run reads")

// List is a package list that was read.
type List struct {
	// Path is the list: the directory cachix-packages[-NAME].
	Path storepath.Path
	// File is the file its manifest.nix points to (NAME.list).
	File string
	// Targets are the targets it names; none: every target.
	Targets []string
	// Paths are the store paths it lists, each once, in its order.
	Paths []storepath.Path

	set map[string]bool // Paths, for Has
}

// Named reports whether p's name is that of a list directory: the only
// paths Read looks at.
func Named(p storepath.Path) bool {
	return (p.Name == namePrefix || strings.HasPrefix(p.Name, namePrefix+"-")) && !strings.HasSuffix(p.Name, ".list")
}

// Read reads the list p. An error wrapping ErrNotList means p is no list
// (an ordinary path); any other error is a list that cannot be used
// (malformed, oversized), said in words that name it.
func Read(p storepath.Path) (*List, error) {
	file, err := listFile(p)
	if err != nil {
		return nil, err
	}
	l := &List{Path: p, File: file}
	dir := p.String()
	data, err := safeopen.ReadFile(l.File, safeopen.Options{NoFollow: true, MaxSize: MaxSize})
	if errors.Is(err, safeopen.ErrTooLarge) {
		return nil, fmt.Errorf("package list %s is larger than %d bytes (%s): nothing of it is queued", dir, MaxSize, l.File)
	}
	if errors.Is(err, safeopen.ErrNotRegular) || errors.Is(err, safeopen.ErrSymlink) {
		// For good: a store path does not change, and no read of it
		// ever succeeds.
		return nil, fmt.Errorf("package list %s is not as cachixPackages builds it: %w: nothing of it is queued", dir, err)
	}
	if err != nil {
		return nil, unreadable(dir, err)
	}
	if err := l.parse(data); err != nil {
		return nil, fmt.Errorf("package list %s is malformed (%s): %w: nothing of it is queued", dir, l.File, err)
	}
	return l, nil
}

// listFile returns the file of the list p (its manifest.nix's target),
// with no read of it: an lstat, a readlink. An error wrapping ErrNotList
// means p is no list.
func listFile(p storepath.Path) (string, error) {
	if !Named(p) {
		return "", fmt.Errorf("%s: %w", p, ErrNotList)
	}
	dir := p.String()
	fi, err := os.Lstat(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// EIO, say: no answer, not an ordinary path.
		return "", unreadable(dir, err)
	}
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s: %w (not a directory)", dir, ErrNotList)
	}
	link := filepath.Join(dir, "manifest.nix")
	li, err := os.Lstat(link)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", unreadable(dir, err)
	}
	if err != nil || li.Mode()&os.ModeSymlink == 0 {
		return "", fmt.Errorf("%s: %w (no manifest.nix symlink)", dir, ErrNotList)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", unreadable(dir, err)
	}
	file, err := storepath.Parse(p.Dir, target)
	if err != nil || file.Name != p.Name+".list" {
		// A nix-env profile that happens to be named so, or another
		// kind of directory: not ours.
		return "", fmt.Errorf("%s: %w (manifest.nix points to %q, not %s)", dir, ErrNotList, target, p.Name+".list")
	}
	return file.String(), nil
}

// unreadable is the error of a list that cannot be read now: the build
// that made it is not built again, so the hook leaves it to the worker
// to read again (Found.Unread).
func unreadable(dir string, err error) error {
	return fmt.Errorf("package list %s %w: %w: nothing of it is queued yet", dir, ErrUnreadable, err)
}

// parse reads the file's lines: Magic, then target lines, then paths.
func (l *List) parse(data []byte) error {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return errors.New("it does not end with a newline (cut short?)")
	}
	lines := bytes.Split(data[:len(data)-1], []byte{'\n'})
	if string(lines[0]) != Magic {
		return fmt.Errorf("line 1 is %q, not %q", cut(lines[0]), Magic)
	}
	seen := make(map[string]bool, len(lines))
	l.set = seen
	l.Paths = make([]storepath.Path, 0, len(lines))
	for i, raw := range lines[1:] {
		n, line := i+2, string(raw)
		if t, ok := strings.CutPrefix(line, "target "); ok {
			switch {
			case len(l.Paths) > 0:
				return fmt.Errorf("line %d: a target line after the paths", n)
			case t == "" || strings.ContainsAny(t, "\x00\r"):
				return fmt.Errorf("line %d: an empty or unprintable target name", n)
			case !utf8.ValidString(t):
				// As hook.conf's rule for a target's name: no
				// target has it, and it would reach messages.
				return fmt.Errorf("line %d: target name %q holds a byte that is not UTF-8, which no target's name may", n, cut([]byte(t)))
			case !escape.OneLine(t):
				return fmt.Errorf("line %d: target name %q holds %s, a control character, line separator or bidirectional control, which no target's name may", n, cut([]byte(t)), escape.NotOneLine(t))
			case len(l.Targets) == maxTargets:
				return fmt.Errorf("line %d: more than %d targets", n, maxTargets)
			}
			l.Targets = append(l.Targets, t)
			continue
		}
		p, err := storepath.Parse(l.Path.Dir, line)
		if err != nil {
			why := err.Error()
			if len(line) > len(l.Path.Dir)+storepath.HashLen+storepath.MaxNameLen+2 {
				// Parse's error quotes the whole line, up to MaxSize.
				why = "longer than any store path"
			}
			return fmt.Errorf("line %d: %q is not a store path: %s", n, cut(raw), why)
		}
		if p == l.Path || line == l.File {
			return fmt.Errorf("line %d: the list names itself", n)
		}
		if seen[line] {
			continue
		}
		if len(l.Paths) == MaxPaths {
			return fmt.Errorf("more than %d paths", MaxPaths)
		}
		seen[line] = true
		l.Paths = append(l.Paths, p)
	}
	return nil
}

// cut keeps a bad line short in a message, cut before a UTF-8
// character rather than inside it (by at most 3 bytes: b may not be
// UTF-8), which %q would show as bytes the line does not hold alone.
func cut(b []byte) string {
	if n := 80; len(b) > n {
		for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(b[n]); i++ {
			n--
		}
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Names reports whether the list names the target t (or every target).
func (l *List) Names(t string) bool { return l.listing().Names(t) }

// Has reports whether the list names p.
func (l *List) Has(p string) bool { return l.set[p] }

func (l *List) listing() policy.Listing {
	return policy.Listing{List: l.Path.String(), Targets: l.Targets}
}

// Found is what Find found among a set of paths.
type Found struct {
	// Paths are the paths to decide on: the input with each list left
	// out (a list stands for what it names, never for itself, unless
	// another list names it) and, when Find was asked to expand, what
	// the lists name added after it, each path once.
	Paths []storepath.Path
	// Lists are the lists found, in order.
	Lists []*List
	// Bad are the lists that could not be read: nothing of them counts.
	Bad []error
	// Unread are the lists among Bad that could not be read now
	// (ErrUnreadable): a later read may use them.
	Unread []storepath.Path
	// Skipped are the lists left unread past MaxLists or MaxTotalPaths,
	// said by one error of Bad (wrapping ErrTooMany): read alone (the
	// worker, push of a few), each may be used.
	Skipped []storepath.Path
	// Listed gives, per path, the lists that name it.
	Listed map[string][]policy.Listing
}

// Find reads the lists among paths (those Named; the others cost a string
// comparison). With expand, what the lists name joins the paths (push and
// the hook, given a list); without, it is already among them (push
// --closure, whose closure holds what a list depends on).
func Find(paths []storepath.Path, expand bool) Found {
	return FindWith(paths, expand, Read)
}

// FindWith is Find reading each list with read (Read, or a test's).
func FindWith(paths []storepath.Path, expand bool, read func(storepath.Path) (*List, error)) Found {
	var f Found
	isList := map[storepath.Path]bool{}
	var skipped []storepath.Path
	// n counts the lists read, those that could not be used too: a
	// malformed one is read whole as well.
	n, total := 0, 0
	for _, p := range paths {
		if !Named(p) || isList[p] {
			continue
		}
		if n >= MaxLists || total >= MaxTotalPaths {
			// Left out unread, as a list is, and said once below; a
			// path only named like one stays an ordinary path.
			if _, err := listFile(p); errors.Is(err, ErrNotList) {
				continue
			}
			skipped = append(skipped, p)
			isList[p] = true
			continue
		}
		l, err := read(p)
		if !errors.Is(err, ErrNotList) {
			n++
		}
		switch {
		case err == nil && total+len(l.Paths) > MaxTotalPaths:
			skipped = append(skipped, p)
			total = MaxTotalPaths
		case err == nil:
			f.Lists = append(f.Lists, l)
			total += len(l.Paths)
		case !errors.Is(err, ErrNotList):
			f.Bad = append(f.Bad, err)
			if errors.Is(err, ErrUnreadable) {
				f.Unread = append(f.Unread, p)
			}
		default:
			continue
		}
		isList[p] = true
	}
	if len(skipped) > 0 {
		f.Skipped = skipped
		f.Bad = append(f.Bad, fmt.Errorf("%d package lists not read, %s the first: %w (%d lists or %d listed paths); nothing of them is queued (give them to push a few at a time)",
			len(skipped), skipped[0], ErrTooMany, MaxLists, MaxTotalPaths))
	}
	if len(isList) == 0 {
		f.Paths = paths
		return f
	}
	seen := map[storepath.Path]bool{}
	f.Listed = map[string][]policy.Listing{}
	for _, p := range paths {
		if !isList[p] && !seen[p] {
			seen[p] = true
			f.Paths = append(f.Paths, p)
		}
	}
	for _, l := range f.Lists {
		for _, p := range l.Paths {
			f.Listed[p.String()] = append(f.Listed[p.String()], l.listing())
			// A list another list names is, to that one, a listed path:
			// in a closure that holds both, it goes to the outer list's
			// targets too, as when the outer list is built.
			if (expand || isList[p]) && !seen[p] {
				seen[p] = true
				f.Paths = append(f.Paths, p)
			}
		}
	}
	return f
}
