package filter

// set indexes patterns so that a lookup only tries the patterns that can
// match: those whose literal prefix is a prefix of the subject, those whose
// literal suffix is a suffix of it, and the few with neither.
type set struct {
	n       int
	hasFull bool
	name    index // patterns on the name
	path    index // patterns on the whole path
}

type index struct {
	prefix trie // by literal prefix
	suffix trie // by reversed literal suffix, for patterns with no prefix
	rest   []*Pattern
}

type trie struct {
	pats []*Pattern
	next map[byte]*trie
}

func (s *set) add(p *Pattern) {
	ix := &s.name
	if p.full {
		ix = &s.path
		s.hasFull = true
	}
	if pre := literalPrefix(p.Text); pre != "" {
		ix.prefix.insert(pre, false, p)
	} else if suf := literalSuffix(p.Text); suf != "" {
		ix.suffix.insert(suf, true, p)
	} else {
		ix.rest = append(ix.rest, p)
	}
}

// first returns the matching pattern that comes first in the list.
func (s *set) first(name, full string) *Pattern {
	best := s.name.first(name, nil)
	if s.hasFull {
		best = s.path.first(full, best)
	}
	return best
}

func (ix *index) first(subject string, best *Pattern) *Pattern {
	try := func(ps []*Pattern) {
		for _, p := range ps {
			if (best == nil || p.index < best.index) && p.g.Match(subject) {
				best = p
			}
		}
	}
	t := &ix.prefix
	for i := 0; ; i++ {
		try(t.pats)
		if i == len(subject) || t.next == nil {
			break
		}
		if t = t.next[subject[i]]; t == nil {
			break
		}
	}
	t = &ix.suffix
	for i := len(subject) - 1; ; i-- {
		try(t.pats)
		if i < 0 || t.next == nil {
			break
		}
		if t = t.next[subject[i]]; t == nil {
			break
		}
	}
	try(ix.rest)
	return best
}

func (t *trie) insert(key string, reverse bool, p *Pattern) {
	for i := range key {
		c := key[i]
		if reverse {
			c = key[len(key)-1-i]
		}
		if t.next == nil {
			t.next = map[byte]*trie{}
		}
		n := t.next[c]
		if n == nil {
			n = &trie{}
			t.next[c] = n
		}
		t = n
	}
	t.pats = append(t.pats, p)
}

// special are the bytes that end a literal run in gobwas/glob syntax. '}'
// and ',' are literal outside braces, but stopping at them is merely
// conservative: the index only narrows the candidates, Match decides.
const special = `*?[]{},\`

func isSpecial(c byte) bool {
	for i := 0; i < len(special); i++ {
		if special[i] == c {
			return true
		}
	}
	return false
}

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
