package cli

import (
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// findLists reads the package lists among paths, as the hook does (see
// package pkglist): each stands for the paths it names, which join the
// paths with expand (push and explain of a list; push --closure's closure
// holds them already). A list that cannot be read is said, and nothing
// of it counts; ok is false then. The Gatherer learns what the lists name,
// so that it asks about a listed path as about one a pattern selects.
//
// With verify, Nix is asked for the lists' closures (one call; the
// Gatherer keeps the infos), so that explain, push and push --dry-run say
// what the worker will: a path a list names only as text is not pushed.
func (e *env) findLists(g *pathfacts.Gatherer, paths []storepath.Path, expand, verify bool) (pkglist.Found, bool) {
	found := pkglist.Find(paths, expand)
	for _, err := range found.Bad {
		e.errorf("%v", err)
	}
	g.Listed = found.Listed
	if verify && len(found.Lists) > 0 {
		roots := make([]string, len(found.Lists))
		for i, l := range found.Lists {
			roots[i] = l.Path.String()
		}
		closures, err := g.Closures(e.ctx, roots)
		if err != nil {
			e.errorf("warning: cannot tell which paths the package lists depend on (the worker checks before pushing): %v", err)
		} else {
			markClosures(found, closures)
		}
	}
	return found, len(found.Bad) == 0
}

// markClosures records in each listing whether its list's closure holds
// the path, or that Nix does not know the list.
func markClosures(found pkglist.Found, closures map[string]*policy.Closure) {
	in := map[string]map[string]bool{}
	for list, cl := range closures {
		set := make(map[string]bool, len(cl.Paths))
		for _, p := range cl.Paths {
			set[p] = true
		}
		in[list] = set
	}
	for path, ls := range found.Listed {
		for i := range ls {
			set, ok := in[ls[i].List]
			switch {
			case !ok:
				// Not valid: the worker drops what it names.
				ls[i].Closure = policy.ListInvalid
			case set[path]:
				ls[i].Closure = policy.ListInClosure
			default:
				ls[i].Closure = policy.ListTextOnly
			}
		}
	}
}

// listArgs gives each of found.Paths the argument it came from: its own,
// or that of the list that named it.
func listArgs(args []string, paths []storepath.Path, found pkglist.Found) []string {
	if len(found.Lists) == 0 && len(found.Bad) == 0 {
		return args
	}
	from := map[string]string{}
	for i, p := range paths {
		from[p.String()] = args[i]
	}
	out := make([]string, len(found.Paths))
	for i, p := range found.Paths {
		if a, ok := from[p.String()]; ok {
			out[i] = a
			continue
		}
		for _, l := range found.Listed[p.String()] {
			if a, ok := from[l.List]; ok {
				out[i] = a
				break
			}
		}
	}
	return out
}
