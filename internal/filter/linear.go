package filter

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gobwas/glob/syntax"
)

// gobwas/glob matches by backtracking, and some patterns make it slow on
// names that any local user can choose (a build's name is theirs): a '/'
// separator keeps every star's restart point ("/**-*-*-*-x*" took 90 ms
// on a name of 105 "a-", a star more seconds), and so do groups, whose
// alternatives and inner stars the stars cannot drop
// ("{*-{*-,},}{*-,}{*-,}x*" took 1.8 s without any separator). Such a
// pattern is matched instead by Go's regexp, whose time is linear in the
// name: the same language, translated token by token from the glob
// lexer's reading of the pattern.

// backtracks reports whether the glob matcher may take more than linear
// time on pattern, matched with '/' as separator when sep is set. It is
// conservative: only the shapes known to stay linear answer false.
//   - Without separators every star drops the restart points before it,
//     so stars, '?' and classes alone stay linear.
//   - One group, not nested, with no star in it or before it, is entered
//     once at a known place and tries each alternative once.
//   - With separators a star keeps the restart points before it: at most
//     one star, and no group.
func backtracks(pattern string, sep bool) bool {
	// Most patterns answer at a glance: the hook compiles every rule at
	// every run, and lexing each of 1,000 is not free.
	if !strings.Contains(pattern, "{") && (!sep || strings.Count(pattern, "*") <= 1) {
		return false
	}
	lex := syntax.NewLexer(pattern)
	stars, groups, depth := 0, 0, 0
	for {
		switch lex.Next().Type {
		case syntax.EOF, syntax.Error:
			if sep {
				return stars > 1 || groups > 0
			}
			return false
		case syntax.Any, syntax.Super:
			if depth > 0 {
				return true
			}
			stars++
		case syntax.TermsOpen:
			groups++
			if depth > 0 || groups > 1 || stars > 0 {
				return true
			}
			depth++
		case syntax.TermsClose:
			depth--
		}
	}
}

// linear translates the glob pattern, which glob.Compile has accepted, to
// a regular expression matching the same strings: '*' and '?' do not
// match a '/' when sep is set, "**" matches anything. Literals and class
// members are written as escapes, so that nothing in them is read as
// regexp syntax. It matches a subject that is valid UTF-8 as the glob
// does. On one that is not, both read each bad byte as U+FFFD where they
// read a character ('?', '*' and classes agree), but the glob compares
// literals byte by byte and the regexp rune by rune: they agree unless
// the pattern's text holds a U+FFFD.
func linear(pattern string, sep bool) (*regexp.Regexp, error) {
	star, single := `(?s:.*)`, `(?s:.)`
	if sep {
		star, single = `[^/]*`, `[^/]`
	}
	var b strings.Builder
	b.WriteString(`\A(?:`)
	lex := syntax.NewLexer(pattern)
	for {
		tok := lex.Next()
		switch tok.Type {
		case syntax.EOF:
			b.WriteString(`)\z`)
			return regexp.Compile(b.String())
		case syntax.Error:
			return nil, fmt.Errorf("%s", tok.Data)
		case syntax.Text:
			b.WriteString(regexp.QuoteMeta(tok.Data))
		case syntax.Any:
			b.WriteString(star)
		case syntax.Super:
			b.WriteString(`(?s:.*)`)
		case syntax.Single:
			b.WriteString(single)
		case syntax.RangeOpen:
			if err := linearClass(&b, lex); err != nil {
				return nil, err
			}
		case syntax.TermsOpen:
			b.WriteString(`(?:`)
		case syntax.TermSeparator:
			b.WriteString(`|`)
		case syntax.TermsClose:
			b.WriteString(`)`)
		default:
			return nil, fmt.Errorf("unexpected %v", tok)
		}
	}
}

// linearClass writes the class whose '[' the lexer has just read, up to
// its ']', every character as a \x{...} escape.
func linearClass(b *strings.Builder, lex *syntax.Lexer) error {
	b.WriteByte('[')
	for {
		tok := lex.Next()
		switch tok.Type {
		case syntax.Not:
			b.WriteByte('^')
		case syntax.Text, syntax.RangeLo, syntax.RangeHi:
			for _, r := range tok.Data {
				fmt.Fprintf(b, `\x{%x}`, r)
			}
		case syntax.RangeBetween:
			b.WriteByte('-')
		case syntax.RangeClose:
			b.WriteByte(']')
			return nil
		case syntax.Error:
			return fmt.Errorf("%s", tok.Data)
		default:
			return fmt.Errorf("unexpected %v in a class", tok)
		}
	}
}
