// Package filter decides which store paths a target selects.
//
// A pattern without '/' matches the store path's name (the part after
// "<hash>-"); a pattern that starts with '/' matches the whole path. A path
// is selected when an allow pattern matches and no deny pattern does: deny
// wins, and an empty allow list selects nothing, because a path pushed to a
// public cache by mistake cannot be taken back.
//
// Rules are compiled once and indexed by their literal prefix and suffix, so
// that a decision costs a few candidate matches rather than one per rule:
// the hook runs once per build and a rule set may have thousands of
// patterns.
package filter

import (
	"errors"
	"fmt"

	"github.com/gobwas/glob"

	"github.com/cachix-filter-hook/cachix-filter-hook/storepath"
)

// PatternError reports a pattern that does not compile, with the byte
// offset gobwas/glob found the problem at.
type PatternError struct {
	List    string // "allow" or "deny"
	Index   int    // position in that list
	Pattern string
	Offset  int
	Reason  string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("%s[%d]: bad pattern %q at offset %d: %s", e.List, e.Index, e.Pattern, e.Offset, e.Reason)
}

// Pattern is one compiled allow or deny pattern.
type Pattern struct {
	Text  string
	index int  // position in its list: the first matching rule is reported
	full  bool // matches the whole path rather than the name
	g     *glob.Pattern
}

// Rules are a target's compiled allow and deny lists.
type Rules struct {
	allow, deny set
}

// Compile compiles both lists. Every bad pattern is reported, not just the
// first, so one `validate` run shows them all.
func Compile(allow, deny []string) (*Rules, error) {
	var errs []error
	r := &Rules{}
	r.allow, errs = compileSet("allow", allow, errs)
	r.deny, errs = compileSet("deny", deny, errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func compileSet(list string, patterns []string, errs []error) (set, []error) {
	s := set{n: len(patterns)}
	for i, text := range patterns {
		p := &Pattern{Text: text, index: i}
		var err error
		if len(text) > 0 && text[0] == '/' {
			p.full = true
			p.g, err = glob.Compile(text, '/')
		} else {
			p.g, err = glob.Compile(text)
		}
		if err != nil {
			pe := &PatternError{List: list, Index: i, Pattern: text, Reason: err.Error()}
			var se *glob.SyntaxError
			if errors.As(err, &se) {
				pe.Offset, pe.Reason = se.Offset, se.Reason
			}
			errs = append(errs, pe)
			continue
		}
		s.add(p)
	}
	return s, errs
}

// Decision is the outcome of the rules for one path.
type Decision struct {
	Selected bool
	// Rule is the pattern that decided: the deny pattern that matched,
	// or the allow pattern that selected. Nil when no allow pattern
	// matched.
	Rule *Pattern
	// Deny tells whether Rule is a deny pattern.
	Deny bool
}

// Reason says which rule decided, as explain and the hook print it:
// `allow "hello-*"`, `deny "*-doc"`, `no allow rule matches`.
func (d Decision) Reason() string {
	switch {
	case d.Rule == nil:
		return "no allow rule matches"
	case d.Deny:
		return fmt.Sprintf("deny %q", d.Rule.Text)
	default:
		return fmt.Sprintf("allow %q", d.Rule.Text)
	}
}

// Decide applies the rules to p.
func (r *Rules) Decide(p storepath.Path) Decision {
	var full string
	if r.deny.hasFull || r.allow.hasFull {
		full = p.String()
	}
	if d := r.deny.first(p.Name, full); d != nil {
		return Decision{Rule: d, Deny: true}
	}
	if a := r.allow.first(p.Name, full); a != nil {
		return Decision{Selected: true, Rule: a}
	}
	return Decision{}
}

// Denies reports the first deny pattern that matches p, or nil. The worker
// uses it for closure_deny = "skip".
func (r *Rules) Denies(p storepath.Path) *Pattern {
	var full string
	if r.deny.hasFull {
		full = p.String()
	}
	return r.deny.first(p.Name, full)
}

// Empty reports whether the allow list is empty, which selects nothing.
func (r *Rules) Empty() bool { return r.allow.n == 0 }
