// Package policy answers the question the whole program exists for: does
// this store path go to this target, and why? The hook, push, watch-exec,
// explain, push --dry-run and the worker all ask it here, and all say its
// answer in the words it renders (Verdict.Line, TargetDecision.DropReason).
//
// A target decides on a path in steps; each may only leave out what the
// step before selected, and the first that does gives the reason:
//
//  0. the target's hosts, on this machine's host name (HostRule): a
//     target that is not for this host is off;
//  1. the target's allow and deny patterns on the path's name (package
//     filter; ByName), or, for a path they neither select nor deny and a
//     target with package_lists = true, a package list that names it
//     (listed.go);
//  2. the rules that read facts about the path, in the order of factRules
//     (max_nar_size, unsubstitutable, upstream), when its Facts are known;
//  3. the closure rule (closure_deny), when its Closure is known.
//
// Over a set of paths (DecideAll), a path that a target leaves out is then
// marked as going up all the same when that target pushes a path of the
// set whose closure holds it: a pusher uploads whole closures.
//
// policy runs no command and reads no file: callers bring what is known
// (package pathfacts asks Nix and the upstream caches; the hook reads its
// .drv and scans its outputs; the worker asks Nix for a batch's closures),
// and nothing unknown keeps a path from being pushed. To add a rule that
// reads a new fact: a field in Facts, a field in Needs, an entry in
// factRules; its key is loaded and validated by package config.
package policy

import (
	"fmt"
	"slices"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// ByName is t's decision on p by its hosts and its allow and deny
// patterns alone.
func ByName(t *config.Target, p storepath.Path) TargetDecision {
	if why := HostRule(t); why != "" {
		return TargetDecision{Target: t.Name, Check: CheckHosts, Rule: why}
	}
	d := t.Rules.Decide(p)
	td := TargetDecision{Target: t.Name, Selected: d.Selected, Rule: d.Reason()}
	if d.Rule != nil {
		td.Pattern = d.Rule.Text
	}
	return td
}

// DecideTarget is t's decision on p: its patterns (or, for a path they
// neither select nor deny, the package lists in f that name it), then,
// for a path they select, the rules that read facts (f nil: none known),
// then the closure rule (cl nil: the closure is not known).
func DecideTarget(t *config.Target, p storepath.Path, f *Facts, cl *Closure) TargetDecision {
	td := byNameOrList(t, p, f)
	if !td.Selected {
		return td
	}
	if f != nil && slices.Contains(f.PinnedIn, t.Name) {
		f = ForPin(f)
	}
	if f != nil {
		for _, r := range factRules {
			why, notes := r.apply(t, f)
			td.Notes = append(td.Notes, notes...)
			if why != "" {
				td.Selected, td.Check, td.Rule = false, r.key, why
				return td
			}
		}
	}
	if cl != nil {
		applyClosure(t, p.String(), cl, &td)
	}
	return td
}

// SelectedByName reports whether some target's patterns select p, before
// any rule that reads facts: what is worth asking Nix or an upstream about.
func SelectedByName(c *config.Config, p storepath.Path) bool {
	for _, t := range c.Targets {
		if HostRule(t) == "" && t.Rules.Decide(p).Selected {
			return true
		}
	}
	return false
}

// CheckHosts is the Check of a target that is off on this host.
const CheckHosts = "hosts"

// HostRule is why t is off on this machine, `target mycache is for hosts
// builder-*; this is laptop`, or "" when it is on (it has no hosts list,
// or one of its globs matches the host name).
func HostRule(t *config.Target) string {
	if t.HostRules == nil || t.HostRules.Match(t.Host) && t.Host != "" {
		return ""
	}
	this := t.Host
	if this == "" {
		this = "a host whose name is unknown"
	}
	if len(t.Hosts) == 0 {
		return fmt.Sprintf("target %s is for no host (hosts = []); this is %s", t.Name, this)
	}
	return fmt.Sprintf("target %s is for hosts %s; this is %s", t.Name, t.HostRules, this)
}

// Needs says which facts the configuration's rules read, so that nobody
// asks Nix or the network for what no rule reads.
type Needs struct {
	Size, Subst, Upstream bool
}

// NeedsOf reports the facts the targets' rules read.
func NeedsOf(c *config.Config) Needs {
	var n Needs
	for _, t := range c.Targets {
		for _, r := range factRules {
			if r.on(t) {
				r.need(&n)
			}
		}
	}
	return n
}

// Any reports whether any fact is needed.
func (n Needs) Any() bool { return n.Size || n.Subst || n.Upstream }
