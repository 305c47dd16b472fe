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
	globs    []*glob.Pattern
}

// CompileHosts compiles a hosts list, reporting every bad pattern as a
// PatternError of the list "hosts". Patterns match case-insensitively:
// host names are not case-sensitive.
func CompileHosts(patterns []string) (*Hosts, error) {
	h := &Hosts{patterns: patterns}
	var errs []error
	for i, text := range patterns {
		// Bounded as an allow or deny pattern is (MaxPattern): a hosts
		// list is compiled at every hook run too.
		if len(text) > MaxPattern {
			errs = append(errs, tooLong("hosts", i, text))
			continue
		}
		g, err := glob.Compile(strings.ToLower(text))
		if err != nil {
			pe := &PatternError{List: "hosts", Index: i, Pattern: text, Reason: err.Error()}
			var se *glob.SyntaxError
			if errors.As(err, &se) {
				pe.Offset, pe.Reason = se.Offset, se.Reason
			}
			errs = append(errs, pe)
			continue
		}
		h.globs = append(h.globs, g)
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
	for _, g := range h.globs {
		if g.Match(host) {
			return true
		}
	}
	return false
}

// String is the list as the messages show it: `builder-*, ci-*`.
func (h *Hosts) String() string { return strings.Join(h.patterns, ", ") }
