package filter

import (
	"errors"
	"strings"

	"github.com/gobwas/glob"
)

// Hosts is a target's hosts list: globs on the host name (as the kernel
// gives it, lower-cased), so that one config serves a fleet. A target
// with such a list is on only where one of them matches.
type Hosts struct {
	patterns []string
	compiled []*Pattern
}

// CompileHosts compiles a hosts list with a budget of its own (see
// CompileHostsWith).
func CompileHosts(patterns []string) (*Hosts, error) {
	return CompileHostsWith(patterns, NewBudget())
}

// CompileHostsWith compiles a hosts list, reporting every bad pattern as
// a PatternError of the list "hosts". Patterns match case-insensitively:
// host names are not case-sensitive. A pattern the glob could backtrack
// on is matched by a regexp, as an allow or deny pattern is, counted
// against b: a host name is at most 64 bytes and root's, but
// "{*-{*-,},}{*-,}{*-,}{*-,}{*-,}{*-,}x*" took 18 s on one of 64, at
// every hook run.
func CompileHostsWith(patterns []string, b *Budget) (*Hosts, error) {
	h := &Hosts{patterns: patterns}
	var errs []error
	for i, text := range patterns {
		// Bounded as an allow or deny pattern is (MaxPattern): a hosts
		// list is compiled at every hook run too.
		if len(text) > MaxPattern {
			errs = append(errs, tooLong("hosts", i, text))
			continue
		}
		lower := strings.ToLower(text)
		p := &Pattern{Text: text, index: i}
		var err error
		if p.g, err = glob.Compile(lower); err != nil {
			pe := &PatternError{List: "hosts", Index: i, Pattern: text, Reason: err.Error()}
			var se *glob.SyntaxError
			if errors.As(err, &se) {
				pe.Offset, pe.Reason = se.Offset, se.Reason
			}
			errs = append(errs, pe)
			continue
		}
		if pe := p.linearIfNeeded("hosts", i, lower, false, b); pe != nil {
			errs = append(errs, pe)
			continue
		}
		h.compiled = append(h.compiled, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return h, nil
}

// Match reports whether host is one of the list's; an empty list
// matches none.
func (h *Hosts) Match(host string) bool {
	host = strings.ToLower(host)
	for _, p := range h.compiled {
		if p.matchLast(host) {
			return true
		}
	}
	return false
}

// String is the list as the messages show it: `builder-*, ci-*`.
func (h *Hosts) String() string { return strings.Join(h.patterns, ", ") }
