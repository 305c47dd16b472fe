// Package filter decides which store paths a target selects.
//
// A pattern without '/' matches the store path's name (the part after
// "<hash>-"); a pattern that starts with '/' matches the whole path. A path
// is selected when an allow pattern matches and no deny pattern does: deny
// wins, and an empty allow list selects nothing, because a path pushed to a
// public cache by mistake cannot be taken back.
//
// Rules are compiled once and indexed (see index.go), so that a decision
// costs a few candidate matches rather than one per rule: the hook runs
// once per build and a rule set may have thousands of patterns. A pattern
// that gobwas/glob could backtrack on for long, given a name any local
// user may choose, is matched by an equivalent regexp (see linear.go).
package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/glob"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// PatternError reports a pattern that does not compile, with the byte
// offset gobwas/glob found the problem at.
type PatternError struct {
	List    string // "allow" or "deny"
	Index   int    // position in that list
	Pattern string
	// Offset is -1 when the problem is the whole pattern's (its length,
	// the linear budget): no place in it to point at.
	Offset int
	Reason string
}

func (e *PatternError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%s[%d]: bad pattern %q: %s", e.List, e.Index, e.Pattern, e.Reason)
	}
	return fmt.Sprintf("%s[%d]: bad pattern %q at offset %d: %s", e.List, e.Index, e.Pattern, e.Offset, e.Reason)
}

// tooLong is the error for a pattern longer than MaxPattern.
func tooLong(list string, i int, text string) *PatternError {
	return &PatternError{List: list, Index: i, Pattern: patternHead(text), Offset: -1,
		Reason: fmt.Sprintf("the pattern is %d bytes long, more than %d", len(text), MaxPattern)}
}

// Pattern is one compiled allow or deny pattern.
type Pattern struct {
	Text  string
	index int // position in its list: the first matching rule is reported
	g     *glob.Pattern
	// dir, when set, matches what is before a whole path's last '/',
	// and g what is after it (see splitLast).
	dir *glob.Pattern
	// re, when set, gives the regexp that matches in g's place: g may
	// backtrack for long on a hostile name (see linear.go). Made at its
	// first match, not in Compile: a regexp costs several times a glob
	// to build, the hook compiles every rule at each run, and it tries
	// only the few the index finds for its paths.
	re func() *regexp.Regexp
	// reAny: re matches as g does on any subject, UTF-8 or not (see
	// linear), as its text holds no U+FFFD.
	reAny bool
	// again, when above 0, numbers it among the patterns its index
	// holds at more than one place a subject may pass (see index.first).
	again int
	// reason is Decision.Reason for it, made once: the worker and push
	// decide every path of a 10,000-path batch by name, and formatting
	// it each time was a third of that.
	reason string
}

// Rules are a target's compiled allow and deny lists.
type Rules struct {
	allow, deny set
}

// set is one list, indexed by what its patterns are matched against.
type set struct {
	n int
	// storeDir is the store directory the rules were compiled for: a
	// whole-path pattern "<storeDir>/*-x" is matched as "*-x" against
	// "<hash>-<name>", which the index handles much better.
	storeDir string
	name     index // patterns without '/', on the name
	base     index // "<storeDir>/..." patterns, on "<hash>-<name>"
	full     index // other patterns starting with '/', on the whole path
	hasBase  bool
	hasFull  bool
}

// patternHead is the start of a pattern too long to quote whole, cut
// before a UTF-8 character (%q would show half of one as bytes the
// pattern does not hold) or a backslash's escape, not inside it.
func patternHead(text string) string { return text[:escape.Cut(text, 64)] + "…" }

// MaxPattern is the longest pattern Compile takes, in bytes. The longest
// real one, a brace list of a hundred package names, is a few KiB; past
// that, the matcher's compilation grows faster than the text (a 1 MiB
// "{a,b}{a,b}…" took 0.7 s and 67 MiB at every hook run).
const MaxPattern = 4 << 10

// MaxLinear bounds the pattern text, over all the rules compiled with one
// Budget (a config's targets), that is matched by a regexp (see
// linear.go). A regexp takes some 50 bytes of memory per byte of its
// pattern, twice a glob's, and up to 35 ms to compile at 4 KiB: a config
// of 1 MiB of such patterns took 116 MiB and most of a second to load at
// every hook run. 32 KiB is hundreds of the patterns people write
// ("*-{doc,man}"), and costs at most 2 MiB and 0.3 s, now paid as each
// regexp is built, at its pattern's first match (see Pattern.re).
const MaxLinear = 32 << 10

// maxLazyDepth is the deepest nesting of groups whose regexp is built at
// its first match: each level adds about two to the regexp's nesting,
// which regexp/syntax refuses past 1000.
const maxLazyDepth = 32

// groupDepth is how deep pattern nests its groups, at most: a '{' inside
// a class counts too, which only makes Compile build its regexp at once.
func groupDepth(pattern string) int {
	depth, deepest := 0, 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			i++
		case '{':
			if depth++; depth > deepest {
				deepest = depth
			}
		case '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return deepest
}

// Budget is what is left of MaxLinear for the rules compiled with it.
type Budget struct{ left int }

// NewBudget is a whole MaxLinear, for one config's rules.
func NewBudget() *Budget { return &Budget{left: MaxLinear} }

// Compile compiles both lists. Every bad pattern is reported, not just the
// first, so one `validate` run shows them all.
func Compile(allow, deny []string) (*Rules, error) {
	return CompileWith(allow, deny, NewBudget())
}

// CompileWith is Compile, its patterns matched by a regexp counted
// against b (shared by the targets of a config).
func CompileWith(allow, deny []string, b *Budget) (*Rules, error) {
	var errs []error
	r := &Rules{}
	storeDir := storepath.StoreDir()
	r.allow, errs = compileSet("allow", allow, storeDir, b, errs)
	r.deny, errs = compileSet("deny", deny, storeDir, b, errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func compileSet(list string, patterns []string, storeDir string, b *Budget, errs []error) (set, []error) {
	s := set{n: len(patterns), storeDir: storeDir}
	// The store dir can stand for itself in a pattern only if it has no
	// glob syntax in it.
	storePrefix := storeDir + "/"
	if strings.ContainsAny(storeDir, special) {
		storePrefix = ""
	}
	for i, text := range patterns {
		// Joined rather than formatted: the hook compiles every
		// target's rules at each run, and a config may have 1,000.
		p := &Pattern{Text: text, index: i, reason: list + " " + strconv.Quote(text)}
		if len(text) > MaxPattern {
			errs = append(errs, tooLong(list, i, text))
			continue
		}
		var err error
		ix, sub := &s.name, text
		// g's text and whether '/' is its separator, for linear.
		gText, gSep := text, false
		if len(text) > 0 && text[0] == '/' {
			ix = &s.full
			if rest, ok := strings.CutPrefix(text, storePrefix); ok && storePrefix != "" && !strings.Contains(rest, "/") {
				// Matched against "<hash>-<name>", which holds no
				// '/': without it as a separator the pattern means
				// the same, and the matcher can drop a star's
				// restart points when it meets the next star. With
				// it, it keeps them all: "*-*-*-*-*-x*" took 3 s on
				// a name of 100 "a-", and names are anybody's.
				ix, sub = &s.base, rest
				s.hasBase = true
				gText = sub
				p.g, err = glob.Compile(sub)
			} else {
				s.hasFull = true
				gText, gSep = sub, true
				p.g, err = glob.Compile(sub, '/')
				if dir, last, ok := splitLast(sub); ok && err == nil {
					// The same for the last part of any other
					// whole-path pattern ("/nix/*/*-*-*-*-*-x*").
					// The store directory is root's, not a user's:
					// dir stays a glob.
					if p.dir, err = glob.Compile(dir, '/'); err == nil {
						gText, gSep = last, false
						p.g, err = glob.Compile(last)
					}
				}
			}
		} else {
			p.g, err = glob.Compile(text)
		}
		if err != nil {
			pe := &PatternError{List: list, Index: i, Pattern: text, Reason: err.Error()}
			var se *glob.SyntaxError
			if errors.As(err, &se) {
				pe.Offset, pe.Reason = se.Offset, se.Reason
				pe.Offset += len(text) - len(sub)
			}
			errs = append(errs, pe)
			continue
		}
		if pe := p.linearIfNeeded(list, i, gText, gSep, b); pe != nil {
			errs = append(errs, pe)
			continue
		}
		ix.add(p, sub)
	}
	return s, errs
}

// linearIfNeeded gives p, whose g matches gText, the regexp to match in
// g's place when g could backtrack (see linear.go), counted against b.
func (p *Pattern) linearIfNeeded(list string, i int, gText string, gSep bool, b *Budget) *PatternError {
	if !backtracks(gText, gSep) {
		return nil
	}
	p.reAny = !strings.ContainsRune(gText, utf8.RuneError)
	if len(gText) > b.left {
		// What the earlier patterns used is said: this one may be
		// short, and the one to change among them.
		shown := p.Text
		if len(shown) > 64 {
			shown = patternHead(p.Text)
		}
		return &PatternError{List: list, Index: i, Pattern: shown, Offset: -1,
			Reason: fmt.Sprintf("its groups or stars need the linear matcher (a group after a star or holding one, nested or several groups; in a whole path whose last part may match '/', any group or several stars), and the patterns that do may total %d bytes over all targets: those before it use %d, it needs %d; shorten it or them, or write a group as one pattern per alternative (\"*-{doc,man}\" as \"*-doc\" and \"*-man\")", MaxLinear, MaxLinear-b.left, len(gText))}
	}
	b.left -= len(gText)
	if groupDepth(gText) > maxLazyDepth {
		// Groups nested this deep can pass regexp's bound on nesting
		// ("{a{" 682 deep), and g, left in its place, backtracks for
		// minutes on a name of 100 "a-": built here, and refused if it
		// fails, as before the regexp was made lazy. Nobody writes
		// such a pattern by hand.
		re, err := linear(gText, gSep)
		if err != nil {
			return &PatternError{List: list, Index: i, Pattern: p.Text,
				Offset: -1, Reason: "cannot be matched in linear time: " + err.Error()}
		}
		p.re = func() *regexp.Regexp { return re }
		return nil
	}
	p.re = sync.OnceValue(func() *regexp.Regexp {
		// Within maxLazyDepth the regexp nests far below regexp's
		// bound, and no other error was seen on what glob.Compile
		// takes (FuzzLinearAgreesWithGlob); g, which means the same,
		// stays then.
		re, _ := linear(gText, gSep)
		return re
	})
	return nil
}

// splitLast splits a whole-path pattern at its last '/' when that '/'
// can only match the subject's last one: it is not escaped, nor inside a
// class or a brace, and what follows it has no "**" and no class that
// may match a '/' (negated, or a range over it). The part after it then
// matches the '/'-free rest of the subject whether '/' is a separator or
// not. A class or a group of its own does not stop it:
// "/nix/*/*-*-*-*-[x]*" took 3 s on a hostile name, with "{x,y}" 20 s.
func splitLast(text string) (dir, last string, ok bool) {
	i := strings.LastIndexByte(text, '/')
	if i < 1 || strings.Contains(text[i+1:], "**") {
		return "", "", false
	}
	depth, top := 0, false
	for j := 0; j < len(text); j++ {
		switch text[j] {
		case '\\':
			j++ // past i: the '/' is escaped
		case '[':
			end := classEnd(text, j)
			if end >= len(text) || end > i && (j < i || !classOmitsSlash(text[j:end])) {
				return "", "", false
			}
			j = end
		case '{':
			depth++
		case '}':
			depth = max(depth-1, 0)
		case '/':
			top = j == i && depth == 0
		}
	}
	if !top {
		return "", "", false
	}
	return text[:i], text[i+1:], true
}

// classOmitsSlash reports whether the class c ("[...", without its ']'),
// which holds no '/' itself, cannot match one: it is not negated, and
// not a range from below '/' to above it ("[+-0]").
func classOmitsSlash(c string) bool {
	c = c[1:]
	if strings.HasPrefix(c, "!") {
		return false
	}
	lo, n := utf8.DecodeRuneInString(c)
	if n < len(c) && c[n] == '-' {
		hi, _ := utf8.DecodeRuneInString(c[n+1:])
		return !(lo <= '/' && '/' <= hi)
	}
	return true
}

// match reports whether the pattern matches subject.
func (p *Pattern) match(subject string) bool {
	if p.dir == nil {
		return p.matchLast(subject)
	}
	i := strings.LastIndexByte(subject, '/')
	return i >= 0 && p.dir.Match(subject[:i]) && p.matchLast(subject[i+1:])
}

// matchLast matches g, or re in its place, against s. A name is ASCII,
// but a whole path holds the store directory, which may not be UTF-8:
// re differs from g there only on a U+FFFD in the pattern (see linear),
// and only then is g used, though it may backtrack on the name after
// that directory, which is anybody's.
func (p *Pattern) matchLast(s string) bool {
	if p.re != nil && (p.reAny || utf8.ValidString(s)) {
		if re := p.re(); re != nil {
			return re.MatchString(s)
		}
	}
	return p.g.Match(s)
}

// first returns the first pattern of the list that matches p, or nil.
func (s *set) first(p storepath.Path) *Pattern {
	best := s.name.first(p.Name, nil)
	if s.hasBase && p.Dir == s.storeDir {
		best = s.base.first(p.Base(), best)
	}
	if s.hasFull {
		best = s.full.first(p.String(), best)
	}
	return best
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
	if d.Rule == nil {
		return "no allow rule matches"
	}
	return d.Rule.reason
}

// Decide applies the rules to p.
func (r *Rules) Decide(p storepath.Path) Decision {
	if d := r.deny.first(p); d != nil {
		return Decision{Rule: d, Deny: true}
	}
	if a := r.allow.first(p); a != nil {
		return Decision{Selected: true, Rule: a}
	}
	return Decision{}
}

// Denies reports the first deny pattern that matches p, or nil. The worker
// uses it for closure_deny = "skip".
func (r *Rules) Denies(p storepath.Path) *Pattern { return r.deny.first(p) }

// Empty reports whether the allow list is empty, which selects nothing.
func (r *Rules) Empty() bool { return r.allow.n == 0 }
