package pusher

import (
	"bytes"
	"fmt"
	"io"
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
		if !c.cut {
			if room := c.max - len(c.line); len(seg) > room {
				c.line = append(c.line, seg[:room]...)
				if err := c.emit(fmt.Sprintf(" …[line cut: longer than %d bytes]", c.max)); err != nil {
					return 0, err
				}
				c.cut = true
			} else {
				c.line = append(c.line, seg...)
			}
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

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0], t.b[len(t.b)-4096:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
