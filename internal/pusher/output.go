package pusher

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
)

// MaxLine is the longest line of pusher output that reaches the log;
// longer lines are cut there, so that no output, however long its lines,
// grows the worker's memory or its log by more than this per line.
const MaxLine = 4096

// redactor replaces the token in output on its way to the log. It works
// on the stream, not on lines: after each write it keeps back only the
// last len(secret)-1 bytes, the most that can be the start of a token
// completed by the next write. So no chunk boundary, long line or \r lets
// any part of a token through, and memory stays at one write plus that
// tail.
type redactor struct {
	w       io.Writer
	secret  []byte
	pending []byte
	err     error
}

var redacted = []byte("[redacted]")

func newRedactor(w io.Writer, secret string) *redactor {
	return &redactor{w: w, secret: []byte(secret)}
}

func (r *redactor) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.secret) == 0 {
		return r.write(p, len(p))
	}
	r.pending = append(r.pending, p...)
	buf := r.pending
	for {
		i := bytes.Index(buf, r.secret)
		if i < 0 {
			break
		}
		if _, err := r.write(buf[:i], 0); err != nil {
			return 0, err
		}
		if _, err := r.write(redacted, 0); err != nil {
			return 0, err
		}
		buf = buf[i+len(r.secret):]
	}
	// buf holds no whole token; only its last len(secret)-1 bytes can
	// be the start of one.
	if keep := len(r.secret) - 1; len(buf) > keep {
		if _, err := r.write(buf[:len(buf)-keep], 0); err != nil {
			return 0, err
		}
		buf = buf[len(buf)-keep:]
	}
	r.pending = r.pending[:copy(r.pending, buf)]
	return len(p), nil
}

func (r *redactor) write(b []byte, n int) (int, error) {
	if len(b) == 0 {
		return n, nil
	}
	if _, err := r.w.Write(b); err != nil {
		r.err = err
		return 0, err
	}
	return n, nil
}

// flush writes what was kept back: less than a token, so no token.
func (r *redactor) flush() {
	if r.err == nil {
		_, _ = r.write(r.pending, 0)
	}
	r.pending = r.pending[:0]
}

// lineCutter passes output on as whole lines, each ending in "\n" and at
// most max bytes before it. A line longer than that is cut, marked, and
// the rest of it dropped; "\r" ends a line too (progress bars redraw with
// it). Empty lines are left out. Memory: one line of max bytes.
//
// Control characters other than tab (C0, DEL, C1, and the line and
// paragraph separators and bidirectional controls: escape.IsControl) are
// written as escapes, \x1b, \u009b or \u202e: the lines go to the log and
// their tail into the error, which status prints to a terminal, where a
// pusher's colours or cursor moves would garble or forge what it shows.
// Other bytes, UTF-8 text or not, pass as they are.
type lineCutter struct {
	w    io.Writer
	max  int
	line []byte
	cut  bool // the current line was cut: drop until its end
}

func newLineCutter(w io.Writer, max int) *lineCutter {
	return &lineCutter{w: w, max: max, line: make([]byte, 0, 256)}
}

func (c *lineCutter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\n\r")
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if !c.cut && c.add(seg) {
			if err := c.emit(fmt.Sprintf(" …[line cut: longer than %d bytes]", c.max)); err != nil {
				return 0, err
			}
			c.cut = true
		}
		if i < 0 {
			break
		}
		if !c.cut {
			if err := c.emit(""); err != nil {
				return 0, err
			}
		}
		c.cut = false
		p = p[i+1:]
	}
	return n, nil
}

// add appends seg to the line, control characters escaped, up to max
// bytes, and reports whether it had to cut the line there. An escape is
// not cut in two: the line then ends before it.
func (c *lineCutter) add(seg []byte) (cut bool) {
	// A character whose UTF-8 came in more than one write: its first
	// bytes, which end the line so far, are looked at with the rest.
	if k := partial(c.line); k > 0 && len(seg) > 0 {
		n := len(c.line)
		seg = append(c.line[n-k:n:n], seg...)
		c.line = c.line[:n-k]
	}
	for len(seg) > 0 {
		i, size, r := indexControl(seg)
		plain := seg
		if i >= 0 {
			plain = seg[:i]
		}
		if room := c.max - len(c.line); len(plain) > room {
			// Before a UTF-8 character rather than inside it, even
			// one begun in an earlier write, which the line holds (3
			// bytes back at most: the output may not be UTF-8).
			c.line = append(c.line, plain[:room]...)
			for i, next := 0, plain[room]; i < utf8.UTFMax-1 && len(c.line) > 0 && !utf8.RuneStart(next); i++ {
				next = c.line[len(c.line)-1]
				c.line = c.line[:len(c.line)-1]
			}
			return true
		}
		c.line = append(c.line, plain...)
		if i < 0 {
			return false
		}
		if c.addEscape(r) {
			return true
		}
		seg = seg[i+size:]
	}
	return false
}

// addEscape appends the escape of the control character r, unless the
// line has no room for it: then it reports the line cut.
func (c *lineCutter) addEscape(r rune) (cut bool) {
	const hex = "0123456789abcdef"
	if r < 0x80 {
		if c.max-len(c.line) < 4 {
			return true
		}
		c.line = append(c.line, '\\', 'x', hex[r>>4], hex[r&0xf])
		return false
	}
	if c.max-len(c.line) < 6 {
		return true
	}
	c.line = append(c.line, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	return false
}

// indexControl returns where the first control character in b starts
// (C0 but tab, and what else escape.IsControl says), its size in bytes
// and itself, or -1.
func indexControl(b []byte) (int, int, rune) {
	for i, x := range b {
		switch {
		case x < 0x20 && x != '\t', x == 0x7f:
			return i, 1, rune(x)
		case x >= 0xc0:
			if r, size := utf8.DecodeRune(b[i:]); size > 1 && escape.IsControl(r) {
				return i, size, r
			}
		}
	}
	return -1, 0, 0
}

// partial returns how many bytes at the end of b begin a UTF-8
// character they do not complete, or 0.
func partial(b []byte) int {
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		if x := b[len(b)-k]; utf8.RuneStart(x) {
			if x >= 0xc0 && !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

func (c *lineCutter) emit(suffix string) error {
	if len(c.line) == 0 && suffix == "" {
		return nil
	}
	c.line = append(append(c.line, suffix...), '\n')
	_, err := c.w.Write(c.line)
	c.line = c.line[:0]
	return err
}

// flush ends a last line that had no newline.
func (c *lineCutter) flush() {
	if !c.cut {
		_ = c.emit("")
	}
	c.line, c.cut = c.line[:0], false
}

// tailBuffer keeps the last 4 KiB written to it, from the start of a
// character and of an escape the line cutter wrote: the tail becomes an
// error message, which would otherwise begin with half of one.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0], t.b[wholeFrom(t.b, len(t.b)-4096):]...)
	}
	return len(p), nil
}

// wholeFrom returns i, or past the escape (\x1b, \u202e) and the UTF-8
// character that b[i] is inside of.
func wholeFrom(b []byte, i int) int {
	for k := 1; k < 6 && k <= i; k++ {
		if b[i-k] != '\\' {
			continue
		}
		switch b[i-k+1] {
		case 'x':
			i = max(i, i-k+4)
		case 'u':
			i = max(i, i-k+6)
		}
		break
	}
	for j := 0; j < utf8.UTFMax-1 && i < len(b) && !utf8.RuneStart(b[i]); j++ {
		i++
	}
	return min(i, len(b))
}

func (t *tailBuffer) String() string { return string(t.b) }
