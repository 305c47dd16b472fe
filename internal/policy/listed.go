package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Package lists. A package list (nix/lib.nix's cachixPackages, read by
// package pkglist) names store paths to push, chosen as Nix values rather
// than by name. A target with package_lists = true takes a listed path
// that its patterns neither select nor deny, by the list's authority
// instead of an allow rule: deny still wins, and the rules that read
// facts and the closure rule decide as for any path.
//
// Any local user can build a list, so a list counts only for what it
// really depends on: Nix made it refer to each path it lists. The worker
// asks Nix for the list's closure before pushing (Listing.Closure); a path
// named in it only as text is left out with that reason.

// Listing is the fact that a package list names a path.
type Listing struct {
	// List is the list's store path (the directory cachix-packages-NAME).
	List string `json:"list"`
	// Targets are the targets the list names; none: every target.
	Targets []string `json:"targets,omitempty"`
	// Closure is what Nix says of the list's closure: ListInClosure,
	// ListTextOnly, ListInvalid, or "" when it was not asked (the hook
	// asks Nix nothing; the worker always asks).
	Closure string `json:"closure,omitempty"`
}

// What the list's closure says of a listed path.
const (
	ListInClosure = "in-closure" // Nix made the list depend on it
	ListTextOnly  = "text-only"  // named as text: the list does not depend on it
	ListInvalid   = "invalid"    // Nix does not know the list as valid
)

// CheckListed is the Check of a listed path left out because its list's
// closure does not hold it.
const CheckListed = "package_lists"

// Names reports whether the listing is for the target named t.
func (l Listing) Names(t string) bool {
	return len(l.Targets) == 0 || slices.Contains(l.Targets, t)
}

// listingFor returns the first listing in f for t (nil: none). One whose
// closure holds the path comes before one that names it as text only, or
// whose list Nix does not know.
func listingFor(f *Facts, t string) *Listing {
	if f == nil {
		return nil
	}
	var first *Listing
	for i := range f.Listed {
		l := &f.Listed[i]
		if !l.Names(t) {
			continue
		}
		if l.Closure != ListTextOnly && l.Closure != ListInvalid {
			return l
		}
		if first == nil {
			first = l
		}
	}
	return first
}

// ByNameUnlisted is t's decision on p by its hosts and patterns when the
// package lists that may name p are not known (the worker's, of the root
// of a pin queued alone, pushed before), and whether a list may yet
// select it: a path they neither select nor deny, for a target that
// takes lists. A path it leaves out, not open, DecideTarget leaves out
// whatever facts and lists it is given: push --pin, which decides with
// them, queues no pin that the worker then drops by the same rules.
func ByNameUnlisted(t *config.Target, p storepath.Path) (td TargetDecision, open bool) {
	td = ByName(t, p)
	return td, !td.Selected && td.Pattern == "" && td.Check != CheckHosts && t.PackageLists
}

// byNameOrList is t's decision on p by its patterns, then, for a path
// they neither select nor deny, by the package lists that name it for t.
func byNameOrList(t *config.Target, p storepath.Path, f *Facts) TargetDecision {
	td := ByName(t, p)
	if td.Selected || td.Pattern != "" || td.Check == CheckHosts {
		// Selected by a pattern, or denied by one (deny wins), or the
		// target is off on this host (lists too).
		return td
	}
	l := listingFor(f, t.Name)
	switch {
	case l == nil && f != nil && len(f.Listed) > 0:
		// Listed for other targets only: said, or a typo in a list's
		// targets reads as a missing allow rule, which lists need not.
		ts := f.Listed[0].Targets
		names := strings.Join(ts[:min(len(ts), 3)], ", ")
		if len(ts) > 3 {
			names += fmt.Sprintf(" and %d more", len(ts)-3)
		}
		td.Rule = fmt.Sprintf("%s; listed in %s for %s only", td.Rule, f.Listed[0].List, names)
	case l == nil:
	case !t.PackageLists:
		td.Rule = fmt.Sprintf("%s; listed in %s, but package_lists is off for %s", td.Rule, l.List, t.Name)
	case l.Closure == ListTextOnly:
		td.Check, td.Rule = CheckListed, TextOnlyRule(l.List)
	case l.Closure == ListInvalid:
		td.Check, td.Rule = CheckListed, InvalidListRule(l.List)
	default:
		td.Selected, td.Rule, td.Listed = true, ListedRule(l.List), l.List
	}
	return td
}

// ListedRule is the rule of a path a list selects: `listed in
// /nix/store/…-cachix-packages`.
func ListedRule(list string) string { return "listed in " + list }

// TextOnlyRule is why a listed path the list does not depend on is left
// out.
func TextOnlyRule(list string) string {
	return fmt.Sprintf("named in %s only as text: not in its closure, so the list does not depend on it", list)
}

// InvalidListRule is why a path is left out whose list Nix does not know
// as a valid path: what such a list names counts for nothing.
func InvalidListRule(list string) string {
	return fmt.Sprintf("its package list %s is not a valid path in the Nix store", list)
}

// Selects reports whether t's patterns or, with package_lists, a list
// that names p for t select p, before any rule that reads facts: what is
// worth asking Nix or an upstream about.
func Selects(t *config.Target, p storepath.Path, listed []Listing) bool {
	return byNameOrList(t, p, &Facts{Listed: listed}).Selected
}

// SelectedByNameOrList is SelectedByName with the lists that name p.
func SelectedByNameOrList(c *config.Config, p storepath.Path, listed []Listing) bool {
	if len(listed) == 0 {
		return SelectedByName(c, p)
	}
	for _, t := range c.Targets {
		if Selects(t, p, listed) {
			return true
		}
	}
	return false
}

// AcceptsLists reports whether any target takes package lists.
func AcceptsLists(c *config.Config) bool {
	for _, t := range c.Targets {
		if t.PackageLists {
			return true
		}
	}
	return false
}

// WithListings returns facts with each path's listings added: a path
// facts knows nothing of gets facts that hold its listings alone. The
// facts facts returns are not changed.
func WithListings(facts func(string) *Facts, listed map[string][]Listing) func(string) *Facts {
	if len(listed) == 0 {
		return facts
	}
	return func(s string) *Facts {
		var f *Facts
		if facts != nil {
			f = facts(s)
		}
		ls, ok := listed[s]
		if !ok {
			return f
		}
		var g Facts
		if f != nil {
			g = *f
		}
		g.Listed = ls
		return &g
	}
}
