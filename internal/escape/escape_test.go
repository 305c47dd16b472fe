package escape

import (
	"strconv"
	"strings"
	"testing"
)

// Controls passed bytes that are not UTF-8 as they were: 0x9b alone is
// CSI to a terminal not set to UTF-8, so a pusher's output, an
// upstream's answer or a link's target could drive the terminal. Such
// bytes are escaped; valid UTF-8, C1 controls aside, is kept.
func TestControlsInvalidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a\x9b2Jb":                 `a\x9b2Jb`,
		"\x1b[2J":                  `\x1b[2J`,
		"\u009b2J":                 `\u009b2J`,
		"caf\xc3":                  `caf\xc3`,
		"\xc2":                     `\xc2`,
		"/nix/store/x-café-ünï-日本": "/nix/store/x-café-ünï-日本",
		"tab\tand\nnewline":        "tab\tand\nnewline",
		"del\x7f":                  `del\x7f`,
	} {
		if got := Controls(in); got != want {
			t.Errorf("Controls(%q) = %q, want %q", in, got, want)
		}
	}
}

// Controls passed the line and paragraph separators as they were: a
// terminal or viewer may break the line there, so one message could
// show as two, the second forged.
func TestControlsLineSeparators(t *testing.T) {
	for in, want := range map[string]string{
		"a\u2028b": `a\u2028b`,
		"a\u2029b": `a\u2029b`,
	} {
		if got := Controls(in); got != want {
			t.Errorf("Controls(%q) = %q, want %q", in, got, want)
		}
	}
}

// Controls passed the bidirectional controls as they were: a right-to-
// left override makes what follows read backwards, so a line naming
// "x-terces-olleh" shows "hello-secret" (Trojan Source). Each is
// escaped; right-to-left text itself is kept.
func TestControlsBidi(t *testing.T) {
	for in, want := range map[string]string{
		"x\u202eterces-olleh":      `x\u202eterces-olleh`,
		"\u202a\u202b\u202c\u202d": `\u202a\u202b\u202c\u202d`,
		"\u2066\u2067\u2068\u2069": `\u2066\u2067\u2068\u2069`,
		"\u200e\u200f\u061c":       `\u200e\u200f\u061c`,
		"שלום عربي":                "שלום عربي",
		"zero\u200bwidth":          "zero\u200bwidth",
	} {
		if got := Controls(in); got != want {
			t.Errorf("Controls(%q) = %q, want %q", in, got, want)
		}
	}
}

// OneLine passed the bidirectional controls that Controls escapes: a
// target named with U+202E passed hook.conf and a package list, then
// showed escaped everywhere. A name that reads backwards is never meant:
// OneLine refuses what Controls escapes, and tab and newline; ordinary
// right-to-left text passes.
func TestOneLineRefusesBidi(t *testing.T) {
	for _, s := range []string{"x\u202eterces", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "a\u2028b", "a\tb", "a\x1bb", "a\u0085b"} {
		if OneLine(s) {
			t.Errorf("OneLine(%q) = true", s)
		}
	}
	for _, s := range []string{"שלום", "عربي", "café", "zero\u200bwidth", "a b"} {
		if !OneLine(s) {
			t.Errorf("OneLine(%q) = false", s)
		}
	}
	if got := NotOneLine("ok\u202eko"); got != `\u202e` {
		t.Errorf(`NotOneLine("ok\u202eko") = %q, want \u202e`, got)
	}
}

// Cut took any backslash for an escape's and did not look before it:
// cut just after %q's \\ it kept half of it (`a\` reads as an escaped
// "…"), and in %q's \\x1b (a backslash, then "x1b") it cut between the
// two backslashes. It did not step back out of a UTF-8 character either,
// which each caller had to do first. The cut now goes before every
// backslash an escape's follows, and before a character's first byte.
func TestCutBackslashes(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want int
	}{
		{`ab\x1bcd`, 3, 2},
		{`ab\x1bcd`, 5, 2},
		{`ab\x1bcd`, 6, 6},
		{`ab\u202ecd`, 7, 2},
		{`ab\U000e0001cd`, 11, 2},
		{`ab\U000e0001cd`, 12, 12},
		{`a\\b`, 2, 1},    // between %q's \\
		{`a\"b`, 2, 1},    // inside %q's \"
		{`a\\x1b`, 4, 1},  // %q of a backslash then x1b: a pair, or \ and \x1b
		{`a\\\x1b`, 4, 1}, // \\ then \x1b
		{`a\xyz`, 3, 3},   // no hex digit: no escape
		{`a\x1zz`, 4, 4},  // past what hex digits there are
		{"caf\xc3\xa9!", 4, 3},
		{"x\xe6\x97\xa5", 3, 1},
		{"\xa9\xa9\xa9\xa9\xa9", 4, 1}, // not UTF-8: 3 bytes back at most
	} {
		got := Cut(c.s, c.n)
		if got != c.want {
			t.Errorf("Cut(%q, %d) = %d, want %d", c.s, c.n, got, c.want)
		}
	}
}

// Controls is for display and leaves a backslash as it is: "\x1b" may
// be an ESC or four characters. Exact doubles it, and so reads back as
// what it was made from, bad bytes, controls and backslashes alike.
func TestExactReadsBack(t *testing.T) {
	if Controls("\x1b") != Controls(`\x1b`) {
		t.Fatalf("Controls tells an ESC from its escape: the test no longer shows why Exact is")
	}
	pieces := []string{"a", `\`, `\\`, "x1b", "\x1b", "\xff", "\u202e", "é", "\u009b", "\t", "\n", "u202e", `\x`}
	seen := map[string]string{}
	var walk func(s string, depth int)
	walk = func(s string, depth int) {
		e := Exact(s)
		if back := unescapeExact(t, e); back != s {
			t.Errorf("Exact(%q) = %q reads back as %q", s, e, back)
		}
		if other, ok := seen[e]; ok && other != s {
			t.Errorf("Exact(%q) = Exact(%q) = %q", s, other, e)
		}
		seen[e] = s
		if depth < 3 {
			for _, p := range pieces {
				walk(s+p, depth+1)
			}
		}
	}
	walk("", 0)
}

// unescapeExact reads Exact's text back.
func unescapeExact(t *testing.T, e string) string {
	var b strings.Builder
	for i := 0; i < len(e); i++ {
		if e[i] != '\\' {
			b.WriteByte(e[i])
			continue
		}
		switch e[i+1] {
		case '\\':
			b.WriteByte('\\')
			i++
		case 'x':
			n, _ := strconv.ParseUint(e[i+2:i+4], 16, 8)
			b.WriteByte(byte(n))
			i += 3
		case 'u':
			n, _ := strconv.ParseUint(e[i+2:i+6], 16, 32)
			b.WriteRune(rune(n))
			i += 5
		default:
			t.Fatalf("%q: a lone backslash at %d", e, i)
		}
	}
	return b.String()
}
