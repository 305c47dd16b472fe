package filter

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// The index narrows the patterns to try on a subject to those that can
// match, so that a decision costs a few glob matches however many rules
// there are. It only has to return a superset: Match decides.
//
// A pattern is filed under one of:
//   - its literal prefix ("hello-*"), found by walking the subject's
//     characters down a trie;
//   - its literal suffix ("*-doc"), found by walking the subject backwards;
//   - the literal after a leading "*-" ("*-proj-*"), found by walking from
//     every '-' of the subject: store path names are dash-separated;
//   - none of these ("*"), tried on every subject.
//
// A pattern with braces is filed once per alternative ("{a,b}-*" under "a-"
// and "b-"), since a match of the whole is a match of one alternative.
type index struct {
	prefix trie
	suffix trie
	dash   trie
	rest   []*Pattern
	// again counts the patterns filed at more than one place a subject
	// may pass: each has its bit (Pattern.again) in first's tried set.
	again int
}

// A trie node keeps its children as a byte slice beside a slice of
// nodes: a node has a child or two, and the worker decides every path of
// a batch, where hashing each byte into a map cost 14 ms of a 10,000-path
// batch's round.
type trie struct {
	pats []*Pattern
	keys []byte  // the byte leading to each of next
	next []*trie // in the order added
}

// child returns the node that c leads to, or nil.
func (t *trie) child(c byte) *trie {
	if i := bytes.IndexByte(t.keys, c); i >= 0 {
		return t.next[i]
	}
	return nil
}

// maxAlternatives bounds brace expansion; a pattern with more is tried on
// every subject instead.
const maxAlternatives = 64

func (ix *index) add(p *Pattern, text string) {
	alts, ok := expandBraces(text, maxAlternatives)
	if !ok {
		ix.rest = append(ix.rest, p)
		return
	}
	type place struct {
		t       *trie
		key     string
		reverse bool
	}
	places := make([]place, 0, len(alts))
	for _, alt := range alts {
		switch pre, suf, dash := literalPrefix(alt), literalSuffix(alt), dashLiteral(alt); {
		case pre != "":
			places = append(places, place{&ix.prefix, pre, false})
		case suf != "":
			places = append(places, place{&ix.suffix, suf, true})
		case dash != "":
			places = append(places, place{&ix.dash, dash, false})
		default:
			ix.rest = append(ix.rest, p)
			return
		}
	}
	for _, pl := range places {
		pl.t.insert(pl.key, pl.reverse, p)
	}
	if len(places) > 1 || places[0].t == &ix.dash {
		ix.again++
		p.again = ix.again
	}
}

// first returns, of best and the patterns matching subject, the one that
// comes first in its list.
func (ix *index) first(subject string, best *Pattern) *Pattern {
	// A pattern the subject may pass more than once (again > 0) is
	// matched once: its result is the same each time, and a name of
	// 105 "a-" passed one 105 times. Its bit says it was tried: a list
	// searched at each pass cost 100 ms with 2,000 patterns under one
	// dash key and a name passing it 40 times.
	var buf [8]uint64
	var tried []uint64
	try := func(ps []*Pattern) {
		for _, p := range ps {
			if best != nil && p.index >= best.index {
				continue
			}
			if p.again > 0 {
				if tried == nil {
					// Made once reached: most subjects reach none.
					if tried = buf[:]; ix.again > 64*len(buf) {
						tried = make([]uint64, (ix.again+63)/64)
					}
				}
				w, bit := (p.again-1)/64, uint64(1)<<((p.again-1)%64)
				if tried[w]&bit != 0 {
					continue
				}
				tried[w] |= bit
			}
			if p.match(subject) {
				best = p
			}
		}
	}
	ix.prefix.walk(subject, 0, try)
	if ix.suffix.next != nil {
		t := &ix.suffix
		for i := len(subject) - 1; i >= 0; i-- {
			if t = t.child(subject[i]); t == nil {
				break
			}
			try(t.pats)
			if t.next == nil {
				break
			}
		}
	}
	if ix.dash.next != nil {
		for i := 0; i < len(subject); i++ {
			if subject[i] == '-' {
				ix.dash.walk(subject, i+1, try)
			}
		}
	}
	try(ix.rest)
	return best
}

// walk follows subject[from:] down the trie, trying the patterns of every
// node passed.
func (t *trie) walk(subject string, from int, try func([]*Pattern)) {
	try(t.pats)
	for i := from; i < len(subject) && t.next != nil; i++ {
		if t = t.child(subject[i]); t == nil {
			return
		}
		try(t.pats)
	}
}

func (t *trie) insert(key string, reverse bool, p *Pattern) {
	for i := range key {
		c := key[i]
		if reverse {
			c = key[len(key)-1-i]
		}
		n := t.child(c)
		if n == nil {
			n = &trie{}
			t.keys, t.next = append(t.keys, c), append(t.next, n)
		}
		t = n
	}
	t.pats = append(t.pats, p)
}

// special are the bytes that end a literal run in gobwas/glob syntax. '}'
// and ',' are literal outside braces, but stopping at them is merely
// conservative.
const special = `*?[]{},\`

func isSpecial(c byte) bool { return strings.IndexByte(special, c) >= 0 }

func literalPrefix(p string) string {
	for i := 0; i < len(p); i++ {
		if isSpecial(p[i]) {
			return p[:i]
		}
	}
	return p
}

func literalSuffix(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if isSpecial(p[i]) {
			return p[i+1:]
		}
	}
	return p
}

// dashLiteral returns L for a pattern "*-L...", where L is a literal run.
func dashLiteral(p string) string {
	rest, ok := strings.CutPrefix(p, "*-")
	if !ok {
		return ""
	}
	return literalPrefix(rest)
}

// classEnd returns the index of the ']' that closes the character class
// opening at p[open], as gobwas/glob's lexer reads it: an optional '!',
// then either a range "lo-hi" of two characters taken as they are (a
// backslash or a ']' among them is no escape and no end: "[A-\\]",
// "[]-a]"), or a run of characters up to ']' in which a backslash
// escapes. len(p) when it is not closed.
func classEnd(p string, open int) int {
	i := open + 1
	if i < len(p) && p[i] == '!' {
		i++
	}
	if i < len(p) {
		_, lo := utf8.DecodeRuneInString(p[i:])
		if i+lo < len(p) && p[i+lo] == '-' {
			if j := i + lo + 1; j < len(p) {
				_, hi := utf8.DecodeRuneInString(p[j:])
				return j + hi
			}
			return len(p)
		}
	}
	for ; i < len(p) && p[i] != ']'; i++ {
		if p[i] == '\\' {
			i++
		}
	}
	return i
}

// expandBraces lists the alternatives of a pattern's braces:
// "{a,b}-{x,y}" gives "a-x", "a-y", "b-x", "b-y". It reports false for more
// than limit alternatives or brace groups. Character classes and escapes
// are skipped over, as the glob syntax has them.
//
// Each group rewrites the pattern once, so the group count is bounded
// first (Compile bounds the length, MaxPattern): 40,000 groups took 16 s.
func expandBraces(p string, limit int) ([]string, bool) {
	if strings.Count(p, "{") > limit {
		return nil, false // no pattern worth indexing has that many
	}
	open, alts, end := -1, []string(nil), -1
	depth, start := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '[':
			i = classEnd(p, i)
		case '{':
			if depth == 0 {
				open, start = i, i+1
			}
			depth++
		case ',':
			if depth == 1 {
				alts = append(alts, p[start:i])
				start = i + 1
			}
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth == 0 {
				alts = append(alts, p[start:i])
				end = i
			}
		}
		if end >= 0 {
			break
		}
	}
	if open < 0 {
		return []string{p}, true
	}
	if end < 0 {
		return nil, false // unbalanced: Compile has refused it already
	}
	var out []string
	for _, a := range alts {
		more, ok := expandBraces(p[:open]+a+p[end+1:], limit-len(out))
		if !ok || len(out)+len(more) > limit {
			return nil, false
		}
		out = append(out, more...)
	}
	return out, true
}
