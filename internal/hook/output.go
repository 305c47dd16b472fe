package hook

import (
	"fmt"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
)

// The hook writes into the user's build log, so whatever it is given
// (a megabyte of junk in OUT_PATHS, a config with a thousand errors) it
// prints a few lines: counts, and a few examples.
const (
	maxExamples   = 3
	maxExampleLen = 200
	maxSayLines   = 5
	maxSayBytes   = 2000
)

// malformed collects the paths the hook ignores, keeping a few examples.
type malformed struct {
	n        int
	examples []string
}

func (m *malformed) add(err error) {
	m.n++
	if len(m.examples) < maxExamples {
		m.examples = append(m.examples, clip(err.Error(), maxExampleLen))
	}
}

// line is the one line for the build log, or "" when nothing was ignored.
func (m *malformed) line() string {
	switch {
	case m.n == 0:
		return ""
	case m.n == 1:
		return "ignoring malformed path: " + m.examples[0]
	}
	s := fmt.Sprintf("ignoring %d malformed paths: %s", m.n, strings.Join(m.examples, "; "))
	if more := m.n - len(m.examples); more > 0 {
		s += fmt.Sprintf("; and %d more", more)
	}
	return s
}

// bounded cuts a message for the build log to a few lines and bytes,
// its control characters escaped: it may quote what the hook read
// (state.json, a config, a path), and goes to every builder's terminal.
func bounded(msg string) string {
	lines := strings.Split(escape.Controls(msg), "\n")
	more := 0
	if len(lines) > maxSayLines {
		more = len(lines) - maxSayLines
		lines = lines[:maxSayLines]
	}
	msg = clip(strings.Join(lines, "\n"), maxSayBytes)
	if more > 0 {
		msg += fmt.Sprintf("\n… and %d more lines", more)
	}
	return msg
}

// clip cuts s to n bytes, marking the cut. It cuts before a UTF-8
// character rather than inside it (by at most 3 bytes: s may not be
// UTF-8), and before an escape (bounded's, or %q's \x1b in a path).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = escape.Cut(s, n)
	return s[:n] + fmt.Sprintf("…(%d bytes cut)", len(s)-n)
}
