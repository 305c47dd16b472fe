package config

import (
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// TargetDecision is one target's verdict on a path.
type TargetDecision struct {
	Target   string `json:"target"`
	Selected bool   `json:"selected"`
	Rule     string `json:"rule"`
	Pattern  string `json:"pattern,omitempty"`
	// Check names the key that left out a path the patterns selected:
	// max_nar_size, unsubstitutable or upstream.
	Check string   `json:"check,omitempty"`
	Notes []string `json:"notes,omitempty"`
	// InsideClosureOf names a path whose closure this target uploads
	// with this one in it, though its rules do not select this one
	// (closure_deny = "push").
	InsideClosureOf string `json:"inside_closure_of,omitempty"`
	// Dependency is the path of this one's closure that the closure rule
	// is about: denied by name or larger than max_nar_size, it makes
	// closure_deny = "skip" leave this path out, and goes up inside its
	// closure with "push".
	Dependency string `json:"dependency,omitempty"`
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

// SelectedByName reports whether some target's patterns select p, before
// any rule that reads facts: what is worth asking Nix or an upstream about.
func (c *Config) SelectedByName(p storepath.Path) bool {
	for _, t := range c.Targets {
		if t.Rules.Decide(p).Selected {
			return true
		}
	}
	return false
}

// Decide applies every target's rules to p.
func (c *Config) Decide(p storepath.Path) Verdict { return c.DecideFacts(p, nil) }

// DecideFacts applies every target's rules to p: the patterns, then, for a
// path they select, the rules that read facts (nil: none known).
func (c *Config) DecideFacts(p storepath.Path, f *Facts) Verdict {
	v := Verdict{Path: p, Push: []string{}, Targets: make([]TargetDecision, 0, len(c.Targets)), Facts: f}
	for _, t := range c.Targets {
		td := t.Decide(p, f)
		if td.Selected {
			v.Push = append(v.Push, t.Name)
		}
		v.Targets = append(v.Targets, td)
	}
	return v
}

// Decide is this target's verdict on p: its patterns, then, for a path
// they select, the rules that read facts (f nil: none known).
func (t *Target) Decide(p storepath.Path, f *Facts) TargetDecision {
	d := t.Rules.Decide(p)
	td := TargetDecision{Target: t.Name, Selected: d.Selected, Rule: d.Reason()}
	if d.Rule != nil {
		td.Pattern = d.Rule.Text
	}
	if d.Selected {
		check, rule, notes := t.factRule(f)
		td.Notes = notes
		if rule != "" {
			td.Selected, td.Check, td.Rule = false, check, rule
		}
	}
	return td
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
	if line, ok := v.uploadedLine(); ok {
		return line
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
