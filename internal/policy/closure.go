package policy

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// The closure rule. A pusher uploads each path's whole runtime closure, so
// a path denied by name (or larger than max_nar_size) still leaves the
// machine inside the closure of a path that is pushed. closure_deny
// decides (cachix/cachix#387's question): "skip" (the default) leaves out
// a selected path whose closure holds such a path, so deny wins; "push"
// pushes it, the denied dependency included, and every message says so.

// Closure is what the closure rule reads about one path's runtime closure.
type Closure struct {
	// Paths is the closure, root first, breadth-first along the
	// references (as nixstore.Closures and nixstore.ClosureOf give it),
	// so that the dependency a message names is the one the worker
	// names. The hook knows only part of it (which of its outputs refer
	// to which): what Paths holds is in the closure, what it lacks may be
	// too.
	Paths []string
	// NarSize gives a path's NAR size, false when unknown; nil when no
	// size is known (the hook): then max_nar_size is not applied to the
	// closure.
	NarSize func(path string) (int64, bool)
}

// CheckClosure is the Check of a target that closure_deny = "skip" made
// leave a path out.
const CheckClosure = "closure_deny"

// DeniesByName reports whether t denies anything by name: only then can a
// closure hold a path it denies, and only then does the worker ask Nix
// for closures by name.
func DeniesByName(t *config.Target) bool { return len(t.Deny) > 0 }

// closureRuleOn reports whether t's closure rule can change a verdict or
// its message: it denies something by name, or has a max_nar_size.
func closureRuleOn(t *config.Target) bool { return DeniesByName(t) || t.MaxNarSize > 0 }

// NeedsClosure reports whether any target's closure rule can change a
// verdict or its message: only then are closures asked of Nix.
func NeedsClosure(c *config.Config) bool {
	for _, t := range c.Targets {
		if closureRuleOn(t) {
			return true
		}
	}
	return false
}

// ClosureSubject reports whether some target's closure rule is about path
// when it is in another's closure: denied by name, or larger than the
// target's max_nar_size (narSize nil or false: size unknown). A closure
// holding no such path is one the rule has nothing to say about.
func ClosureSubject(c *config.Config, path storepath.Path, narSize func(string) (int64, bool)) bool {
	for _, t := range c.Targets {
		if DeniesByName(t) && t.Rules.Denies(path) != nil {
			return true
		}
		if t.MaxNarSize > 0 && narSize != nil {
			if n, ok := narSize(path.String()); ok && SizeRule(t, n) != "" {
				return true
			}
		}
	}
	return false
}

// ClosureMember is a path of a closure, as Nix gave it, as the rules read
// it. Nix's parser takes 32 base-32 characters and a name after the 33rd
// without checking that the 33rd is the '-' Parse requires: such a path,
// which Nix can hold and a pusher uploads inside a closure, is matched by
// the name Nix gives it, not read as no store path, denied by nothing.
func ClosureMember(storeDir, s string) storepath.Path {
	if p, err := storepath.Parse(storeDir, s); err == nil {
		return p
	}
	base, hash := filepath.Base(s), ""
	if len(base) > storepath.HashLen+1 {
		hash, base = base[:storepath.HashLen], base[storepath.HashLen+1:]
	}
	return storepath.New(filepath.Dir(s), hash, base)
}

// closureDenied returns the first path of root's closure (root excluded)
// that t's rules deny by name, and the pattern; "" when there is none.
func closureDenied(t *config.Target, root string, closure []string) (dep, pattern string) {
	if !DeniesByName(t) {
		return "", ""
	}
	storeDir := storepath.StoreDir()
	for _, c := range closure {
		if c == root {
			continue
		}
		if d := t.Rules.Denies(ClosureMember(storeDir, c)); d != nil {
			return c, d.Text
		}
	}
	return "", ""
}

// closureOversize returns the first path of root's closure (root
// excluded) larger than t's max_nar_size, with the size rule's reason;
// "" when there is none or no size is known.
func closureOversize(t *config.Target, root string, closure []string, narSize func(string) (int64, bool)) (dep, rule string) {
	if t.MaxNarSize <= 0 || narSize == nil {
		return "", ""
	}
	for _, c := range closure {
		if c == root {
			continue
		}
		if n, ok := narSize(c); ok {
			if r := SizeRule(t, n); r != "" {
				return c, r
			}
		}
	}
	return "", ""
}

func deniedBy(pattern string) string { return fmt.Sprintf("denied by %q", pattern) }

func closureSkip(dep, why string) string {
	return fmt.Sprintf("closure_deny = \"skip\": its closure contains %s, %s", dep, why)
}

func closurePush(dep, why string) string {
	return fmt.Sprintf("also uploads %s, %s, inside its closure (closure_deny = \"push\")", dep, why)
}

// applyClosure applies t's closure rule to td, t's decision on root, a
// path its other rules select: the first path of root's closure that t
// denies by name, or else the first larger than max_nar_size. With "skip"
// it unselects the path, naming the dependency and the rule; with "push"
// it keeps it and notes what goes up with it.
func applyClosure(t *config.Target, root string, cl *Closure, td *TargetDecision) {
	dep, pattern, why := "", "", ""
	if d, pat := closureDenied(t, root, cl.Paths); d != "" {
		dep, pattern, why = d, pat, deniedBy(pat)
		td.DependencyKey, td.DependencyRule = "deny", fmt.Sprintf("deny %q", pat)
	} else if d, rule := closureOversize(t, root, cl.Paths, cl.NarSize); d != "" {
		dep, why = d, rule
		td.DependencyKey, td.DependencyRule = "max_nar_size", rule
	}
	if dep == "" {
		return
	}
	td.Dependency = dep
	if t.ClosureDeny == config.ClosurePush {
		td.Notes = append(td.Notes, closurePush(dep, why))
		return
	}
	td.Selected, td.Check, td.Rule, td.Pattern = false, CheckClosure, closureSkip(dep, why), pattern
}

// DecideAll decides on paths as one set, the way explain, push --dry-run
// and the hook report them: each path by every target (DecideTarget, with
// its facts and closure where known), and then, since the pusher uploads
// whole closures, a path that a target denies is marked as going up all
// the same when that target pushes a path of the set whose closure holds
// it (closure_deny = "push"). facts and closure may be nil, or return nil
// for a path: nothing known.
//
// Many paths (push --closure of a system) are decided on all CPUs at
// once: facts and closure are then called from several goroutines, and
// must only read.
func DecideAll(c *config.Config, paths []storepath.Path, facts func(string) *Facts, closure func(string) *Closure) []Verdict {
	return decideAll(c, paths, facts, closure, min(runtime.GOMAXPROCS(0), len(paths)/parallelFrom))
}

// decideAll is DecideAll on n goroutines (at most 1 when n < 2).
func decideAll(c *config.Config, paths []storepath.Path, facts func(string) *Facts, closure func(string) *Closure, n int) []Verdict {
	vs := make([]Verdict, len(paths))
	cls := make([]*Closure, len(paths))
	decideRange := func(from, to int) {
		for i := from; i < to; i++ {
			p := paths[i]
			var f *Facts
			if facts != nil {
				f = facts(p.String())
			}
			if closure != nil {
				cls[i] = closure(p.String())
			}
			vs[i] = decide(c, p, f, cls[i])
		}
	}
	if n = min(n, len(paths)); n > 1 {
		// A panic in a goroutine would end the process (the hook's exit
		// 2 stops Nix's builds): it is raised again here, in the
		// caller's, which the hook recovers.
		var wg sync.WaitGroup
		var once sync.Once
		var panicked any
		for k := range n {
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						once.Do(func() { panicked = r })
					}
				}()
				decideRange(k*len(paths)/n, (k+1)*len(paths)/n)
			})
		}
		wg.Wait()
		if panicked != nil {
			panic(panicked)
		}
	} else {
		decideRange(0, len(paths))
	}
	at := make(map[string]int, len(paths))
	for i, p := range paths {
		if _, dup := at[p.String()]; !dup {
			at[p.String()] = i
		}
	}
	// After every verdict is final: a path the closure rule left out
	// uploads nothing.
	for i := range vs {
		if cls[i] == nil {
			continue
		}
		root := vs[i].Path.String()
		for _, name := range vs[i].Push {
			for _, dep := range cls[i].Paths {
				j, ok := at[dep]
				if !ok || dep == root {
					continue
				}
				if td := vs[j].target(name); td != nil && leftOutByRule(c.Target(name), vs[j].Path, td) {
					vs[j].uploadedInside(name, root)
				}
			}
		}
	}
	// Duplicates share the first one's marks.
	for i, p := range paths {
		if j := at[p.String()]; j != i {
			vs[i] = vs[j]
		}
	}
	return vs
}

// parallelFrom is how many paths each goroutine of DecideAll gets at
// least: below it, starting them costs more than it saves.
const parallelFrom = 1024

// leftOutByRule reports whether t leaves p out (td is its decision) as
// the closure rule's subject: denied by name, or larger than
// max_nar_size. A path no allow rule matches, or one unsubstitutable or
// upstream leave out, is only not pushed by itself; the closure rule is
// not about it (see the README).
func leftOutByRule(t *config.Target, p storepath.Path, td *TargetDecision) bool {
	return t != nil && !td.Selected && (t.Rules.Denies(p) != nil || td.Check == "max_nar_size")
}

// DeniesSibling reports whether a target selects one of paths (the
// outputs of one build) by name and denies another: only then can the
// hook's scan for references between them change what it says.
func DeniesSibling(c *config.Config, paths []storepath.Path) bool {
	for _, t := range c.Targets {
		if !DeniesByName(t) {
			continue
		}
		if HostRule(t) != "" {
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
