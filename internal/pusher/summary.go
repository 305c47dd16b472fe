package pusher

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
)

// Summary takes a pusher's output (whole lines, as Push writes them) and
// keeps what the worker's log needs at info level: the lines that are not
// about one path each (`copying 10000 paths...`, warnings, errors), up to
// a few, and counts the rest. `nix copy` and `cachix push` print a line
// per path; logging each of them made the log grow by megabytes per batch
// and slowed the pusher, whose pipe waited on the logging.
//
// Memory is bounded: at most SummaryLines lines of about MaxLine bytes.
// Each line costs a few comparisons, so reading never holds up the pusher.
type Summary struct {
	// Line, when set, gets every line (the worker logs them at debug).
	Line func(string)

	store string // the store directory and a slash
	kept  []string
	lines int // all lines
	paths int // lines about one store path
	more  int // other lines past the kept ones
	buf   []byte
}

// SummaryLines is how many lines that are not about one path a Summary
// keeps; the first ones are kept, since they usually say what happens
// (`copying N paths...`) and what went wrong first.
const SummaryLines = 5

// NewSummary returns a Summary of output about store paths in storeDir.
func NewSummary(storeDir string) *Summary {
	return &Summary{store: storeDir + "/"}
}

func (s *Summary) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		s.add(s.buf[:i])
		s.buf = s.buf[i+1:]
	}
	// Pushers hand over whole lines of at most MaxLine bytes; should a
	// writer not, memory stays bounded all the same.
	if len(s.buf) > 2*MaxLine {
		s.Flush()
	}
	if len(s.buf) == 0 {
		s.buf = nil
	}
	return len(p), nil
}

// Flush takes a last line that had no newline.
func (s *Summary) Flush() {
	s.add(s.buf)
	s.buf = nil
}

func (s *Summary) add(b []byte) {
	line := strings.TrimSpace(string(b))
	if line == "" {
		return
	}
	s.lines++
	if s.Line != nil {
		s.Line(line)
	}
	if s.perPath(line) {
		s.paths++
		return
	}
	if len(s.kept) < SummaryLines {
		// Lines come cut at MaxLine (and marked) from Push; this
		// bounds what another writer hands over.
		if n := 2 * MaxLine; len(line) > n {
			// Before a UTF-8 character or an escape rather than
			// inside it.
			n = escape.Cut(line, n)
			line = line[:n] + "…"
		}
		s.kept = append(s.kept, line)
		return
	}
	s.more++
}

// perPath tells a progress line about one store path (`copying path
// '/nix/store/…' to 'file://…'...`, cachix's `Pushing /nix/store/…`) from
// the others. A line that reports a problem is never one, whatever path
// it names.
func (s *Summary) perPath(line string) bool {
	lower := strings.ToLower(line)
	for _, w := range []string{"error", "warning", "fail", "invalid", "denied", "refus", "cannot", "can't", "unable", "timeout", "timed out"} {
		if strings.Contains(lower, w) {
			return false
		}
	}
	return strings.Contains(line, s.store) || strings.Contains(lower, "copying path")
}

// Lines is how many non-empty lines the pusher printed.
func (s *Summary) Lines() int { return s.lines }

// PathLines is how many of them were about one path each.
func (s *Summary) PathLines() int { return s.paths }

// Text is the kept lines joined with " | ", with how many other such
// lines there were; "" when the pusher printed only per-path lines.
func (s *Summary) Text() string {
	t := strings.Join(s.kept, " | ")
	if s.more > 0 {
		t += " | … and " + strconv.Itoa(s.more) + " more lines"
	}
	return t
}
