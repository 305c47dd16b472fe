// Package jsonline reads the JSON lines this tool writes itself, field by
// field in the order it writes them, without encoding/json's reflection:
// a push --closure of 10,000 paths is 10,000 lines of a queue bulk file
// and 10,000 records of the history, read on the drain's path (issue 22).
// A line in any other form is refused, and its reader falls back to
// encoding/json; each reader's fuzz test checks that the two agree on
// every line the cursor takes.
package jsonline

import (
	"bytes"
	"strconv"
)

// Cursor is a position in a line.
type Cursor struct{ rest []byte }

// New returns a cursor at the start of line; false when line is not one a
// cursor reads: a byte that is not printable ASCII, or a backslash (an
// escape), so that every string in it runs to its next quote.
func New(line []byte) (Cursor, bool) {
	for _, c := range line {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return Cursor{}, false
		}
	}
	return Cursor{rest: line}, true
}

// Lit consumes s when the line goes on with it.
func (c *Cursor) Lit(s string) bool {
	if !bytes.HasPrefix(c.rest, []byte(s)) {
		return false
	}
	c.rest = c.rest[len(s):]
	return true
}

// Raw returns the bytes up to the next quote, consuming them and it: the
// rest of a string whose opening quote Lit took.
func (c *Cursor) Raw() ([]byte, bool) {
	i := bytes.IndexByte(c.rest, '"')
	if i < 0 {
		return nil, false
	}
	b := c.rest[:i]
	c.rest = c.rest[i+1:]
	return b, true
}

// Str is Raw as a string.
func (c *Cursor) Str() (string, bool) {
	b, ok := c.Raw()
	return string(b), ok
}

// Int consumes an integer as JSON writes one: an optional minus, digits,
// no leading zero.
func (c *Cursor) Int() (int64, bool) {
	r := c.rest
	i := 0
	if i < len(r) && r[i] == '-' {
		i++
	}
	d := i
	for i < len(r) && '0' <= r[i] && r[i] <= '9' {
		i++
	}
	if i == d || r[d] == '0' && i > d+1 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(r[:i]), 10, 64)
	c.rest = r[i:]
	return v, err == nil
}

// End reports whether what is left of the line is s.
func (c *Cursor) End(s string) bool { return string(c.rest) == s }
