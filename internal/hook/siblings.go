package hook

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/refscan"
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
func siblingClosures(cfg *config.Config, paths []storepath.Path) (map[string]*policy.Closure, []error) {
	return siblingClosuresWithin(cfg, paths, &scanBudget{Bytes: scanMaxBytes, Files: scanMaxFiles, Until: time.Now().Add(scanMaxTime)})
}

// siblingClosuresWithin is siblingClosures within budget (a test may
// lift its deadline, which a loaded machine can miss).
func siblingClosuresWithin(cfg *config.Config, paths []storepath.Path, budget *scanBudget) (map[string]*policy.Closure, []error) {
	if len(paths) < 2 || !policy.DeniesSibling(cfg, paths) {
		return nil, nil
	}
	type scanned struct {
		refs     []string
		err      error
		reported bool
	}
	memo := map[string]*scanned{}
	// One scanner for every output's hash: each output is read once,
	// looking its siblings up in a set, whatever their number.
	hashes := make([]string, len(paths))
	index := make(map[string]int, len(paths))
	for i, p := range paths {
		hashes[i] = p.Hash
		index[p.String()] = i
	}
	scanner := refscan.New(hashes)
	refsOf := func(p string) ([]string, error) {
		if m, ok := memo[p]; ok {
			return m.refs, m.err
		}
		found, err := scanner.Scan(p, index[p], budget)
		var refs []string
		switch {
		case errors.Is(err, errScanBudget):
		case err != nil:
			err = fmt.Errorf("could not tell which outputs %s refers to: %w", filepath.Base(p), err)
		default:
			for i, f := range found {
				if f {
					refs = append(refs, paths[i].String())
				}
			}
		}
		memo[p] = &scanned{refs: refs, err: err}
		return refs, err
	}
	out := map[string]*policy.Closure{}
	var errs []error
	// The walk is bounded too: outputs that all refer to one that refers
	// to them all have n² paths in their closures, read from the memo
	// without a scan, and walked again by the rules.
	refsLeft := scanMaxRefs
	for _, root := range paths {
		if refsLeft <= 0 {
			break
		}
		if !policy.SelectedByName(cfg, root) {
			continue
		}
		closure, ok := []string{root.String()}, true
		seen := map[string]bool{root.String(): true}
		for i := 0; i < len(closure) && ok; i++ {
			refs, err := refsOf(closure[i])
			if refsLeft -= 1 + len(refs); refsLeft < 0 {
				// As past the scan's budget: the worker decides.
				ok = false
				break
			}
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
			out[root.String()] = &policy.Closure{Paths: closure}
		}
	}
	return out, errs
}

// The scan runs on the build's path, so it is bounded: outputs larger
// than this (a disk image next to its -doc) are left to the worker. The
// deadline is checked per chunk read and per batch of directory entries
// (see package refscan), so it holds within a chunk's read.
const (
	scanMaxBytes = 64 << 20
	scanMaxFiles = 20000
	scanMaxTime  = 300 * time.Millisecond
	// scanMaxRefs bounds the references followed in all: each
	// output's closure costs one per path in it and per reference of
	// each, and the rules walk them again.
	scanMaxRefs = 1 << 16
)

// errScanBudget: the outputs were too large to scan within the budget.
var errScanBudget = refscan.ErrBudget

// scanBudget is what is left of the scan's bounds, shared by the outputs
// of one build.
type scanBudget = refscan.Budget

// scanChunk is how much of a file the scan reads at once.
const scanChunk = refscan.Chunk

// referencedIn returns those of others whose hash part occurs in the
// store path root: in a file's name or contents, or a symlink's target,
// as in the NAR Nix scans for references. The build has just written
// these files (Nix scanned them too), so they are usually in the page
// cache. One pass over root's bytes, whatever the number of others.
func referencedIn(root string, others []storepath.Path, budget *scanBudget) ([]string, error) {
	if len(others) == 0 {
		return nil, nil
	}
	hashes := make([]string, len(others))
	for i, o := range others {
		hashes[i] = o.Hash
	}
	found, err := refscan.New(hashes).Scan(root, -1, budget)
	if errors.Is(err, errScanBudget) {
		return nil, err
	}
	if err != nil {
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
