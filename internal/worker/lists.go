package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Package lists at push time. An entry a package list queued (its Listed
// names the list) says only that someone built a list naming the path:
// any local user may. Right before pushing, the worker reads the list
// again (does it still name the path, for this target?) and asks Nix for
// the list's closure: only a path the list really depends on counts, so a
// path named in it as text alone (another user's secret, say) is dropped
// with that reason. policy decides with what this finds (Listing.Closure),
// as for the hook, explain and push.

// listings holds what a batch's lists say of its entries.
type listings struct {
	of   map[string][]policy.Listing // by entry key
	drop map[string]string           // entry key: why its list no longer counts
	wait map[string]error            // entry key: its list cannot be read now
	err  error                       // Nix could not say: the entries wait
}

// lists reads the lists the job's entries came from, and asks Nix once
// for their closures, for the entries the target's patterns do not
// decide. An entry queued by several lists (Entry.AlsoListed) goes up if
// any of them depends on it, as explain says; it waits while one that
// could cannot be read, and is dropped with the first list's reason when
// none counts.
func (j *job) lists(ctx context.Context) listings {
	t, entries := j.target, j.entries
	out := listings{of: map[string][]policy.Listing{}, drop: map[string]string{}, wait: map[string]error{}}
	storeDir := storepath.StoreDir()
	type read struct {
		l   *pkglist.List
		err error
	}
	lists := map[string]read{}
	var ask []string
	// By entry key: why each of its lists does not count (by its
	// place), and the error of one that cannot be read now.
	why := map[string][]string{}
	wait := map[string]error{}
	for _, e := range entries {
		named := e.Listings()
		if len(named) == 0 {
			continue
		}
		p, err := storepath.Parse(storeDir, e.Path)
		if err != nil || policy.ByName(t, p).Pattern != "" {
			continue // a pattern decides
		}
		if !t.PackageLists {
			// Turned off since: policy says so in the drop reason.
			out.of[e.Key()] = []policy.Listing{{List: e.Listed}}
			continue
		}
		var ls []policy.Listing
		why[e.Key()] = make([]string, len(named))
		for i, l := range named {
			r, seen := lists[l]
			if !seen {
				r.l, r.err = readList(storeDir, l)
				lists[l] = r
				if r.err == nil {
					ask = append(ask, l)
				}
			}
			switch {
			case errors.Is(r.err, errListRead):
				if wait[e.Key()] == nil {
					wait[e.Key()] = r.err
				}
			case r.err != nil:
				why[e.Key()][i] = r.err.Error()
			case !r.l.Has(e.Path):
				why[e.Key()][i] = fmt.Sprintf("its package list %s no longer names it", l)
			case !r.l.Names(t.Name):
				why[e.Key()][i] = fmt.Sprintf("its package list %s names other targets", l)
			default:
				ls = append(ls, policy.Listing{List: l, Targets: r.l.Targets})
			}
		}
		switch {
		case len(ls) > 0:
			out.of[e.Key()] = ls
		case wait[e.Key()] != nil:
			out.wait[e.Key()] = wait[e.Key()]
		default:
			out.drop[e.Key()] = firstReason(why[e.Key()])
		}
	}
	if len(ask) == 0 {
		return out
	}
	closures, err := j.facts.nix.Closures(ctx, ask...)
	if err != nil {
		out.err = fmt.Errorf("cannot tell which paths its package list depends on: %w", err)
		return out
	}
	for _, e := range entries {
		ls, ok := out.of[e.Key()]
		if !ok || !t.PackageLists {
			continue
		}
		var in, text []policy.Listing
		for _, l := range ls {
			cl, ok := closures[l.List]
			switch {
			case !ok:
				if i := slices.Index(e.Listings(), l.List); i >= 0 {
					why[e.Key()][i] = policy.InvalidListRule(l.List)
				}
			case slices.Contains(cl, e.Path):
				l.Closure = policy.ListInClosure
				in = append(in, l)
			default:
				l.Closure = policy.ListTextOnly
				text = append(text, l)
			}
		}
		switch {
		case len(in) > 0:
			out.of[e.Key()] = append(in, text...)
			// The history and the log name Listed: the list that
			// chose the path.
			if i := slices.Index(e.AlsoListed, in[0].List); i >= 0 {
				e.Listed, e.AlsoListed[i] = e.AlsoListed[i], e.Listed
			}
		case wait[e.Key()] != nil:
			delete(out.of, e.Key())
			out.wait[e.Key()] = wait[e.Key()]
		case len(text) > 0:
			out.of[e.Key()] = text
		default:
			delete(out.of, e.Key())
			out.drop[e.Key()] = firstReason(why[e.Key()])
		}
	}
	return out
}

// firstReason is the reason of the first list that does not count.
func firstReason(why []string) string {
	for _, w := range why {
		if w != "" {
			return w
		}
	}
	return ""
}

// readList reads a list an entry names; the entry only says it is one.
func readList(storeDir, s string) (*pkglist.List, error) {
	p, err := storepath.Parse(storeDir, s)
	if err != nil {
		return nil, fmt.Errorf("its package list %q is not a store path", s)
	}
	if _, err := os.Lstat(s); errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New(listGoneReason(s))
	}
	l, err := pkglist.Read(p)
	var errno syscall.Errno
	if errors.As(err, &errno) && !errors.Is(err, fs.ErrNotExist) {
		// EIO, EMFILE: the list (a store path) is as it was, and is read
		// again at the entry's retry.
		return nil, fmt.Errorf("%w: %v", errListRead, err)
	}
	if err != nil {
		return nil, fmt.Errorf("its package list cannot be used: %v", err)
	}
	return l, nil
}

// errListRead marks readList's error of the moment: the entries wait.
var errListRead = errors.New("cannot read its package list")

// listedEntryFacts are the facts of a path with its list's listing: f
// is not changed.
func listedEntryFacts(f *policy.Facts, ls []policy.Listing) *policy.Facts {
	if len(ls) == 0 {
		return f
	}
	var g policy.Facts
	if f != nil {
		g = *f
	}
	g.Listed = ls
	return &g
}

// listedBy is the list that chose e for the target: its entry names one,
// and no pattern of the target's selects it. "" otherwise.
func listedBy(cfg *config.Config, target string, e *queue.Entry) string {
	if e.Listed == "" {
		return ""
	}
	t := cfg.Target(target)
	if t == nil {
		return e.Listed
	}
	if p, err := storepath.Parse(storepath.StoreDir(), e.Path); err == nil && policy.ByName(t, p).Selected {
		return ""
	}
	return e.Listed
}

// listsOf are the lists that chose entries for the target, each once: the
// worker's log names them beside the batch.
func listsOf(cfg *config.Config, target string, entries []*queue.Entry) []string {
	var out []string
	for _, e := range entries {
		if l := listedBy(cfg, target, e); l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}
