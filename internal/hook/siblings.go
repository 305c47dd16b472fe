package hook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// The closure rule in the hook. The hook runs no Nix command (a build
// waits for it), so it cannot ask for its outputs' closures; the worker
// applies the closure rule right before pushing, and `wait` and `log`
// report its drops. One case the hook can tell from the data at hand: an
// output that refers to a sibling output of the same build which a target
// denies (a -doc or -dev output, say), since a store path refers to
// another exactly when that one's hash part is in its files (which is how
// Nix finds references). It then says on the build log what will happen:
// with closure_deny = "skip" that the worker will drop the referring
// output, and with "push" that the denied sibling goes up inside its
// closure, rather than "skipped".

// siblingClosures returns, for outputs of one build, the part of each
// selected one's closure made of its siblings (itself first, then the
// siblings it refers to, breadth-first), when some target selects an
// output and denies another by name: only then can it change a message.
// Only the outputs reached from a selected one are read (not a large
// -debug output nothing refers to). An output that cannot be read has no
// entry, and its error is returned with the others (one already gone has
// none: the worker drops it).
func siblingClosures(cfg *config.Config, paths []storepath.Path) (map[string]*config.ClosureFacts, []error) {
	if len(paths) < 2 || !deniesSibling(cfg, paths) {
		return nil, nil
	}
	type scanned struct {
		refs     []string
		err      error
		reported bool
	}
	memo := map[string]*scanned{}
	budget := &scanBudget{bytes: scanMaxBytes, files: scanMaxFiles, until: time.Now().Add(scanMaxTime)}
	refsOf := func(p string) ([]string, error) {
		if m, ok := memo[p]; ok {
			return m.refs, m.err
		}
		var others []storepath.Path
		for _, q := range paths {
			if q.String() != p {
				others = append(others, q)
			}
		}
		refs, err := referencedIn(p, others, budget)
		memo[p] = &scanned{refs: refs, err: err}
		return refs, err
	}
	out := map[string]*config.ClosureFacts{}
	var errs []error
	for _, root := range paths {
		if !cfg.SelectedByName(root) {
			continue
		}
		closure, ok := []string{root.String()}, true
		seen := map[string]bool{root.String(): true}
		for i := 0; i < len(closure) && ok; i++ {
			refs, err := refsOf(closure[i])
			switch {
			case errors.Is(err, fs.ErrNotExist) && i == 0:
				ok = false // gone already: the worker will drop it
			case errors.Is(err, errScanBudget):
				// Too much to read on the build's path: the worker
				// decides, and the line claims nothing either way.
				ok = false
			case err != nil:
				// What is not known is not claimed either way.
				if memo[closure[i]].err != nil && !memo[closure[i]].reported {
					memo[closure[i]].reported = true
					errs = append(errs, err)
				}
				ok = false
			}
			for _, r := range refs {
				if !seen[r] {
					seen[r] = true
					closure = append(closure, r)
				}
			}
		}
		if ok {
			out[root.String()] = &config.ClosureFacts{Paths: closure}
		}
	}
	return out, errs
}

// deniesSibling reports whether a target selects one of paths by name and
// denies another.
func deniesSibling(cfg *config.Config, paths []storepath.Path) bool {
	for _, t := range cfg.Targets {
		if !t.HasDeny() {
			continue
		}
		sel, den := false, false
		for _, p := range paths {
			sel = sel || t.Rules.Decide(p).Selected
			den = den || t.Rules.Denies(p) != nil
		}
		if sel && den {
			return true
		}
	}
	return false
}

// scanChunk is how much of a file referencedIn reads at once.
const scanChunk = 256 << 10

// The scan runs on the build's path, so it is bounded: outputs larger
// than this (a disk image next to its -doc) are left to the worker.
const (
	scanMaxBytes = 64 << 20
	scanMaxFiles = 20000
	scanMaxTime  = 300 * time.Millisecond
)

// errScanBudget: the outputs were too large to scan within the budget.
var errScanBudget = errors.New("outputs too large to scan for references on the build's path")

// scanBudget is what is left of the scan's bounds, shared by the outputs
// of one build.
type scanBudget struct {
	bytes, files int64
	until        time.Time
}

func (b *scanBudget) take(bytes int64) error {
	b.bytes -= bytes
	if b.bytes < 0 || time.Now().After(b.until) {
		return errScanBudget
	}
	return nil
}

// referencedIn returns those of others whose hash part occurs in the
// store path root: in a file's name or contents, or a symlink's target,
// as in the NAR Nix scans for references. The build has just written
// these files (Nix scanned them too), so they are usually in the page
// cache.
func referencedIn(root string, others []storepath.Path, budget *scanBudget) ([]string, error) {
	if len(others) == 0 {
		return nil, nil
	}
	needles := make([][]byte, len(others))
	for i, o := range others {
		needles[i] = []byte(o.Hash)
	}
	found := make([]bool, len(others))
	left := len(others)
	mark := func(b []byte) {
		for i, n := range needles {
			if !found[i] && bytes.Contains(b, n) {
				found[i] = true
				left--
			}
		}
	}
	buf := make([]byte, storepath.HashLen-1+scanChunk)
	errDone := errors.New("all found")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if budget.files--; budget.files < 0 {
			return errScanBudget
		}
		if err := budget.take(0); err != nil {
			return err
		}
		if path != root {
			mark([]byte(d.Name()))
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			mark([]byte(target))
		case d.Type().IsRegular():
			if err := scanFile(path, buf, mark, budget); err != nil {
				return err
			}
		}
		if left == 0 {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errScanBudget) {
		return nil, err
	}
	if err != nil && !errors.Is(err, errDone) {
		return nil, fmt.Errorf("could not tell which outputs %s refers to: %w", filepath.Base(root), err)
	}
	var out []string
	for i, o := range others {
		if found[i] {
			out = append(out, o.String())
		}
	}
	return out, nil
}

// scanFile passes the file's contents to mark in chunks that overlap by
// one byte less than a hash part, so that none is missed at a boundary.
func scanFile(path string, buf []byte, mark func([]byte), budget *scanBudget) error {
	// Never block in open: a store path holds no FIFO, but nothing here
	// is trusted.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	} else if err := budget.take(fi.Size()); err != nil {
		return err
	}
	const keep = storepath.HashLen - 1
	have := 0
	for {
		n, err := f.Read(buf[have:])
		if n > 0 {
			mark(buf[:have+n])
			have += n
			if have > keep {
				copy(buf, buf[have-keep:have])
				have = keep
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
