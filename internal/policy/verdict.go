package policy

import (
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// TargetDecision is one target's verdict on a path.
type TargetDecision struct {
	Target   string `json:"target"`
	Selected bool   `json:"selected"`
	Rule     string `json:"rule"`
	Pattern  string `json:"pattern,omitempty"`
	// Check names the key that left out a path the patterns (or a
	// package list) selected: max_nar_size, unsubstitutable, upstream,
	// closure_deny or package_lists.
	Check string   `json:"check,omitempty"`
	Notes []string `json:"notes,omitempty"`
	// Listed is the package list by whose authority the target selects
	// the path (no pattern does); the queue entry carries it, for the
	// worker to check again.
	Listed string `json:"listed,omitempty"`
	// InsideClosureOf names a path whose closure this target uploads
	// with this one in it, though its rules do not select this one
	// (closure_deny = "push").
	InsideClosureOf string `json:"inside_closure_of,omitempty"`
	// Dependency is the path of this one's closure that the closure rule
	// is about: denied by name or larger than max_nar_size, it makes
	// closure_deny = "skip" leave this path out, and goes up inside its
	// closure with "push".
	Dependency string `json:"dependency,omitempty"`
	// DependencyKey is the key that leaves Dependency out ("deny" or
	// "max_nar_size"), and DependencyRule that rule (`deny "*-doc"`, or
	// the size and the limit), for the worker's log.
	DependencyKey  string `json:"-"`
	DependencyRule string `json:"-"`
}

// Verdict is every target's decision on one path; explain, push and the
// hook all report it the same way.
type Verdict struct {
	Path    storepath.Path   `json:"-"`
	Push    []string         `json:"push"`
	Targets []TargetDecision `json:"targets"`
	// Facts are what the size, unsubstitutable and upstream rules read,
	// when they were asked (see pathfacts).
	Facts *Facts `json:"facts,omitempty"`
}

// Decide is every target's verdict on p, by the facts f (nil: none
// known); its closure is not known.
func Decide(c *config.Config, p storepath.Path, f *Facts) Verdict { return decide(c, p, f, nil) }

func decide(c *config.Config, p storepath.Path, f *Facts, cl *Closure) Verdict {
	v := Verdict{Path: p, Push: []string{}, Targets: make([]TargetDecision, 0, len(c.Targets)), Facts: f}
	for _, t := range c.Targets {
		td := DecideTarget(t, p, f, cl)
		if td.Selected {
			v.Push = append(v.Push, t.Name)
		}
		v.Targets = append(v.Targets, td)
	}
	return v
}

// Selected reports whether any target selects the path.
func (v Verdict) Selected() bool { return len(v.Push) > 0 }

// Reason names the rule that decided: for a pushed path the rules of the
// targets that select it, for a skipped one those of all targets. When
// they agree it is one rule (`deny "*-doc"`), otherwise one per target
// (`main: deny "*-doc"; work: no allow rule matches`).
func (v Verdict) Reason() string {
	var rel []TargetDecision
	for _, t := range v.Targets {
		if t.Selected == v.Selected() {
			rel = append(rel, t)
		}
	}
	if len(rel) == 0 {
		return "no target"
	}
	same := true
	parts := make([]string, len(rel))
	for i, t := range rel {
		parts[i] = t.Target + ": " + t.Rule
		same = same && t.Rule == rel[0].Rule
	}
	if same {
		return rel[0].Rule
	}
	return strings.Join(parts, "; ")
}

// Line renders the verdict as explain prints it:
// `push PATH -> main, work (allow "hello-*")` or `skip PATH (deny "*-doc")`;
// a path that goes up all the same inside a pushed path's closure is
// `denied PATH (deny "*-doc"), but uploaded -> main inside the closure of
// X (closure_deny = "push")`, never "skip" (see DecideAll).
func (v Verdict) Line() string {
	if v.Selected() {
		return fmt.Sprintf("push %s -> %s (%s%s)", v.Path, strings.Join(v.Push, ", "), v.Reason(), notesText(append(v.Notes(), v.closureNotes()...)))
	}
	if parts := v.insideParts(); len(parts) > 0 {
		return fmt.Sprintf("denied %s (%s), but uploaded %s (closure_deny = \"push\")", v.Path, v.Reason(), strings.Join(parts, "; "))
	}
	return fmt.Sprintf("skip %s (%s)", v.Path, v.Reason())
}

// Notes are the notes of the targets that push the path, each once.
func (v Verdict) Notes() []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range v.Targets {
		for _, n := range t.Notes {
			if t.Selected && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Inside reports whether some target uploads v's path inside the closure
// of another path though it does not select it.
func (v Verdict) Inside() bool { return len(v.insideParts()) > 0 }

// The short forms, for the hook's one line on the build log: names, not
// paths.

// SkipNote is `hello-2.12.1-doc: deny "*-doc"`, for a path no target
// selects.
func (v Verdict) SkipNote() string { return v.Path.Name + ": " + v.Reason() }

// DropNote is `hello-2.12.1 -> main: closure_deny = "skip": …`, for a path
// td's target will drop by the closure rule.
func (v Verdict) DropNote(td TargetDecision) string {
	return fmt.Sprintf("%s -> %s: %s", v.Path.Name, td.Target, td.Rule)
}

// InsideNote is `hello-2.12.1-doc: deny "*-doc", but uploaded -> main
// inside the closure of hello-2.12.1 (closure_deny = "push")`, for a path
// td's target uploads inside another's closure.
func (v Verdict) InsideNote(td TargetDecision) string {
	return fmt.Sprintf("%s: %s, but uploaded -> %s inside the closure of %s (closure_deny = \"push\")", v.Path.Name, td.Rule, td.Target, nameOf(td.InsideClosureOf))
}

// DependencyNote is `secret-key-1: deny "secret-*", but uploaded -> main
// inside the closure of app-1.0 (closure_deny = "push")`, for td's
// target, which pushes v's path with td.Dependency inside its closure:
// said of a dependency that is not among the paths decided (one that is
// says it itself, InsideNote).
func (v Verdict) DependencyNote(td TargetDecision) string {
	return fmt.Sprintf("%s: %s, but uploaded -> %s inside the closure of %s (closure_deny = \"push\")", nameOf(td.Dependency), td.DependencyRule, td.Target, v.Path.Name)
}

// DropReason is the reason the worker records when it drops a queued
// path by this decision: a path the patterns no longer select was
// selected when it was queued.
func (td TargetDecision) DropReason() string {
	if td.Check == "" {
		return "no longer selected: " + td.Rule
	}
	return td.Rule
}

// DropKind is the kind of DropReason, a bounded label for the metrics:
// the key of the rule that left the path out (max_nar_size,
// unsubstitutable, upstream, closure_deny, hosts), or "patterns" for
// allow and deny.
func (td TargetDecision) DropKind() string {
	if td.Check == "" {
		return "patterns"
	}
	return td.Check
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

// uploadedInside records that target uploads v's path, which it does not
// select, inside the closure of root (closure_deny = "push").
func (v *Verdict) uploadedInside(target, root string) {
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

// closureNotes are what a pushed path's line adds about the targets that
// do not push it because of the closure rule or because they are not for
// this host, and those that upload it only inside another path's closure.
func (v Verdict) closureNotes() []string {
	var out []string
	for _, td := range v.Targets {
		if td.Check == CheckClosure || td.Check == CheckHosts {
			out = append(out, fmt.Sprintf("not -> %s: %s", td.Target, td.Rule))
		}
	}
	for _, p := range v.insideParts() {
		out = append(out, "denied but uploaded "+p+" (closure_deny = \"push\")")
	}
	return out
}

// notesText renders notes for a verdict line.
func notesText(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return "; " + strings.Join(notes, "; ")
}

// nameOf is a store path's name without its directory and hash.
func nameOf(s string) string {
	if p, err := storepath.Parse(storepath.StoreDir(), s); err == nil {
		return p.Name
	}
	return s
}

// Denied reports whether a target's deny pattern matches the path.
func (v Verdict) Denied() bool {
	for _, td := range v.Targets {
		if !td.Selected && td.Check == "" && td.Pattern != "" {
			return true
		}
	}
	return false
}
