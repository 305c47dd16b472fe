package config

import (
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// The closure rule. A pusher uploads each path's whole runtime closure, so
// a path denied by name (or larger than max_nar_size) still leaves the
// machine inside the closure of a path that is pushed. closure_deny
// decides (cachix/cachix#387's question): "skip" (the default) leaves out
// a selected path whose closure holds such a path, so deny wins; "push"
// pushes it, the denied dependency included, and every message says so.
//
// The decision is made here, once, for everyone: the worker calls
// ClosureDenied and ClosureOversize (through pathfacts) right before it
// pushes; explain, push --dry-run and the hook call DecideAll, which
// applies the same two to the closures they know. config runs no Nix
// command: the callers bring the closures.

// ClosureFacts is what the closure rule reads about one path's runtime
// closure.
type ClosureFacts struct {
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

// ClosureDenied returns the first path of root's closure (root excluded)
// that t's rules deny by name, and the pattern; "" when there is none.
func (t *Target) ClosureDenied(root string, closure []string) (dep, pattern string) {
	if !t.HasDeny() {
		return "", ""
	}
	storeDir := storepath.StoreDir()
	for _, c := range closure {
		if c == root {
			continue
		}
		p, err := storepath.Parse(storeDir, c)
		if err != nil {
			continue
		}
		if d := t.Rules.Denies(p); d != nil {
			return c, d.Text
		}
	}
	return "", ""
}

// ClosureOversize returns the first path of root's closure (root
// excluded) larger than t's max_nar_size, with the size rule's reason
// (SizeRule); "" when there is none or no size is known.
func (t *Target) ClosureOversize(root string, closure []string, narSize func(string) (int64, bool)) (dep, rule string) {
	if t.MaxNarSize <= 0 || narSize == nil {
		return "", ""
	}
	for _, c := range closure {
		if c == root {
			continue
		}
		if n, ok := narSize(c); ok {
			if r := t.SizeRule(n); r != "" {
				return c, r
			}
		}
	}
	return "", ""
}

// HasDeny reports whether t denies anything by name: only then can a
// closure hold a denied path.
func (t *Target) HasDeny() bool { return len(t.Deny) > 0 }

// HasClosureRule reports whether t's closure rule can change a verdict or
// its message: it denies something by name, or has a max_nar_size.
func (t *Target) HasClosureRule() bool { return t.HasDeny() || t.MaxNarSize > 0 }

// NeedsClosure reports whether any target's closure rule can change a
// verdict or its message: only then are closures asked of Nix.
func (c *Config) NeedsClosure() bool {
	for _, t := range c.Targets {
		if t.HasClosureRule() {
			return true
		}
	}
	return false
}

// ClosureSkipReason is why closure_deny = "skip" leaves a path out: its
// closure holds dep, denied by pattern.
func ClosureSkipReason(dep, pattern string) string {
	return closureSkip(dep, deniedBy(pattern))
}

// ClosureSkipSizeReason is why closure_deny = "skip" leaves a path out:
// its closure holds dep, which rule (SizeRule) leaves out.
func ClosureSkipSizeReason(dep, rule string) string { return closureSkip(dep, rule) }

// ClosurePushNote says what closure_deny = "push" uploads besides the path.
func ClosurePushNote(dep, pattern string) string { return closurePush(dep, deniedBy(pattern)) }

// ClosurePushSizeNote is ClosurePushNote for a path larger than
// max_nar_size.
func ClosurePushSizeNote(dep, rule string) string { return closurePush(dep, rule) }

func deniedBy(pattern string) string { return fmt.Sprintf("denied by %q", pattern) }

func closureSkip(dep, why string) string {
	return fmt.Sprintf("closure_deny = \"skip\": its closure contains %s, %s", dep, why)
}

func closurePush(dep, why string) string {
	return fmt.Sprintf("also uploads %s, %s, inside its closure (closure_deny = \"push\")", dep, why)
}

// closureHit applies t's closure rule to root: the first path of its
// closure that t denies by name or else the first larger than
// max_nar_size (the order in which the worker checks them), with the
// pattern ("" for a size) and the reason or note for t's closure_deny.
func (t *Target) closureHit(root string, cf *ClosureFacts) (dep, pattern, text string) {
	if dep, pat := t.ClosureDenied(root, cf.Paths); dep != "" {
		if t.ClosureDeny == ClosurePush {
			return dep, pat, ClosurePushNote(dep, pat)
		}
		return dep, pat, ClosureSkipReason(dep, pat)
	}
	if dep, rule := t.ClosureOversize(root, cf.Paths, cf.NarSize); dep != "" {
		if t.ClosureDeny == ClosurePush {
			return dep, "", ClosurePushSizeNote(dep, rule)
		}
		return dep, "", ClosureSkipSizeReason(dep, rule)
	}
	return "", "", ""
}

// ApplyClosure applies every target's closure rule to v, for a path whose
// runtime closure is known (nil: not in the store, nothing changes):
// "skip" unselects the path for that target, naming the dependency and the
// rule; "push" keeps it and notes what goes up with it.
func (c *Config) ApplyClosure(v *Verdict, cf *ClosureFacts) {
	if cf == nil {
		return
	}
	root := v.Path.String()
	for i := range v.Targets {
		td := &v.Targets[i]
		t := c.Target(td.Target)
		if !td.Selected || t == nil {
			continue
		}
		dep, pat, text := t.closureHit(root, cf)
		if dep == "" {
			continue
		}
		td.Dependency = dep
		if t.ClosureDeny == ClosurePush {
			td.Notes = append(td.Notes, text)
			continue
		}
		td.Selected, td.Check, td.Rule, td.Pattern = false, CheckClosure, text, pat
		v.Push = removeString(v.Push, td.Target)
	}
}

// CheckClosure is the Check of a target that closure_deny = "skip" made
// leave a path out.
const CheckClosure = "closure_deny"

// DecideAll decides on paths as one set, the way explain, push --dry-run
// and the hook report them: each path by its own rules (DecideFacts),
// then by the closure rule where its closure is known (ApplyClosure), and
// then, since the pusher uploads whole closures, a path that a target
// denies is marked as going up all the same when that target pushes a path
// of the set whose closure holds it (closure_deny = "push"). facts and
// closure may be nil, or return nil for a path: nothing known.
func (c *Config) DecideAll(paths []storepath.Path, facts func(string) *Facts, closure func(string) *ClosureFacts) []Verdict {
	vs := make([]Verdict, len(paths))
	at := make(map[string]int, len(paths))
	for i, p := range paths {
		var f *Facts
		if facts != nil {
			f = facts(p.String())
		}
		vs[i] = c.DecideFacts(p, f)
		if _, dup := at[p.String()]; !dup {
			at[p.String()] = i
		}
	}
	if closure == nil {
		return vs
	}
	cfs := make([]*ClosureFacts, len(paths))
	for i := range vs {
		cfs[i] = closure(vs[i].Path.String())
		c.ApplyClosure(&vs[i], cfs[i])
	}
	// After every verdict is final: a path the closure rule left out
	// uploads nothing.
	for i := range vs {
		if cfs[i] == nil {
			continue
		}
		root := vs[i].Path.String()
		for _, name := range vs[i].Push {
			for _, dep := range cfs[i].Paths {
				j, ok := at[dep]
				if !ok || dep == root {
					continue
				}
				if td := vs[j].target(name); td != nil && c.Target(name).denies(vs[j].Path, td) {
					vs[j].UploadedInside(name, root)
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

// target returns the decision of the named target, nil when none.
func (v *Verdict) target(name string) *TargetDecision {
	for i := range v.Targets {
		if v.Targets[i].Target == name {
			return &v.Targets[i]
		}
	}
	return nil
}

// denies reports whether t leaves p out (td is its decision) as the
// closure rule's subject: denied by name, or larger than max_nar_size. A
// path no allow rule matches, or one unsubstitutable or upstream leave
// out, is only not pushed by itself; the closure rule is not about it (see
// the README).
func (t *Target) denies(p storepath.Path, td *TargetDecision) bool {
	return t != nil && !td.Selected && (t.Rules.Denies(p) != nil || td.Check == "max_nar_size")
}

// UploadedInside records that target uploads v's path, which it does not
// select, inside the closure of root (closure_deny = "push").
func (v *Verdict) UploadedInside(target, root string) {
	for i := range v.Targets {
		if td := &v.Targets[i]; td.Target == target && !td.Selected && td.InsideClosureOf == "" {
			td.InsideClosureOf = root
		}
	}
}

// insideParts renders the targets that upload v's path inside another
// path's closure: `-> main inside the closure of /nix/store/…-hello`.
func (v Verdict) insideParts() []string {
	var parts []string
	for _, td := range v.Targets {
		if td.InsideClosureOf != "" {
			parts = append(parts, fmt.Sprintf("-> %s inside the closure of %s", td.Target, td.InsideClosureOf))
		}
	}
	return parts
}

// Inside reports whether some target uploads v's path inside the closure
// of another path though it does not select it.
func (v Verdict) Inside() bool {
	for _, td := range v.Targets {
		if td.InsideClosureOf != "" {
			return true
		}
	}
	return false
}

// uploadedLine renders a path no target selects that some target uploads
// anyway inside another path's closure: never "skip".
func (v Verdict) uploadedLine() (string, bool) {
	parts := v.insideParts()
	if len(parts) == 0 {
		return "", false
	}
	return fmt.Sprintf("denied %s (%s), but uploaded %s (closure_deny = \"push\")", v.Path, v.Reason(), strings.Join(parts, "; ")), true
}

// closureNotes are what a pushed path's line adds about the targets that
// do not push it because of the closure rule, and those that upload it
// only inside another path's closure.
func (v Verdict) closureNotes() []string {
	var out []string
	for _, td := range v.Targets {
		if td.Check == CheckClosure {
			out = append(out, fmt.Sprintf("not -> %s: %s", td.Target, td.Rule))
		}
	}
	for _, p := range v.insideParts() {
		out = append(out, "denied but uploaded "+p+" (closure_deny = \"push\")")
	}
	return out
}

func removeString(l []string, s string) []string {
	out := l[:0]
	for _, x := range l {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
