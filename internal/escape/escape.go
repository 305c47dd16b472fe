// Package escape writes what a terminal would act on as text. Messages
// quote paths, a pusher's output, an upstream's answer and state files
// that another user or a hostile program may have shaped; on a terminal,
// an escape sequence there could retitle it, clear it or forge a line.
// The commands' output and the hook's line in the build log escape alike;
// JSON escapes the same characters in JSON text (the history file, the
// --json outputs), and Cut finds where a cut splits no escape.
package escape

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Controls writes the control characters of s as \xNN (C0 but tab and
// newline, which messages use, and DEL) or \uNNNN (C1; the line and
// paragraph separators and the bidirectional controls, which would make
// a line read other than it says, such as a path's name backwards), as
// the pusher's output is escaped, and a byte that is not UTF-8 as \xNN:
// on a terminal not set to UTF-8, 0x9b alone is a C1 control (CSI).
//
// It is for display: a backslash is left as it is, so that a message's
// %q quoting is not doubled, and the text does not always read back as
// s ("\x1b" was an ESC, or those four characters). Where the text must
// tell strings apart, Exact writes it.
func Controls(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, IsControl) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case !IsControl(r):
			b.WriteString(s[:size])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		s = s[size:]
	}
	return b.String()
}

// Exact is Controls with each backslash written as \\: text that reads
// back as s exactly, so that two strings never give the same text, for a
// name made from what may hold controls or bytes that are not UTF-8.
func Exact(s string) string { return Controls(strings.ReplaceAll(s, `\`, `\\`)) }

// OneLine reports whether s shows as one line of text: no control
// character (a tab, a line break, an escape), line or paragraph
// separator, nor bidirectional control (a name that reads backwards is
// never meant). It is the rule for a target's name, in hook.conf and in
// a package list's target lines alike.
func OneLine(s string) bool { return NotOneLine(s) == "" }

// NotOneLine returns the first character of s that OneLine refuses,
// written as an escape (\x09, \u2028) for a message to name, or "".
func NotOneLine(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || IsControl(r) })
	if i < 0 {
		return ""
	}
	if r, _ := utf8.DecodeRuneInString(s[i:]); r >= 0x80 {
		return fmt.Sprintf(`\u%04x`, r)
	}
	return fmt.Sprintf(`\x%02x`, s[i])
}

// IsControl reports whether Controls escapes r: for the pusher's output,
// escaped as it streams.
func IsControl(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f ||
		r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}

// Cut returns n, or less: the start of the UTF-8 character that s[n]
// is inside of (at most 3 bytes back: s may not be UTF-8), or of the
// escape Controls or %q wrote (\x1b, \u202e, %q's \U000e0001 for a
// character above U+FFFF, \\ and \") that it is inside of, so that s cut
// at the result ends with no half of one, which would read as other
// text. An escape's backslash may follow others (%q's \\, or a
// backslash Controls left as it was), and which of them pair up cannot
// be told: the cut goes before them all, which splits none. n < len(s).
func Cut(s string, n int) int {
	if n < 0 || n >= len(s) {
		return n
	}
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	b := -1 // the backslash of the escape s[n] is inside of
	if n > 0 && s[n-1] == '\\' {
		b = n - 1 // s[n] is an escape's second character, or after a \\
	}
	// Back over hex digits (at most \U's 8) to an escape's letter; s[n]
	// is one of them, or in no such escape.
	for j := n - 1; b < 0 && isHex(s[n]) && j > 0 && n-j <= 8; j-- {
		if isHex(s[j]) {
			continue
		}
		if c := s[j]; s[j-1] == '\\' && (c == 'x' && n-j < 3 || c == 'u' && n-j < 5 || c == 'U' && n-j < 9) {
			b = j - 1
		}
		break
	}
	if b < 0 {
		return n
	}
	for b > 0 && s[b-1] == '\\' {
		b--
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// JSON appends to b the JSON text j (as encoding/json writes it: valid
// UTF-8), with each character IsControl says that j holds as it is
// written as \uNNNN: encoding/json escapes C0 and the line separators,
// but not DEL, C1 (0x9b is CSI to a terminal) nor the bidirectional
// controls. Such characters are only ever inside a string, and all are
// below U+FFFF, so the text reads back the same.
func JSON(b, j []byte) []byte {
	const hex = "0123456789abcdef"
	for len(j) > 0 {
		r, size := utf8.DecodeRune(j)
		if r >= 0x7f && IsControl(r) {
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		} else {
			b = append(b, j[:size]...)
		}
		j = j[size:]
	}
	return b
}
