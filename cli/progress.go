package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// Progress output of wait and push --wait. On a terminal it redraws one
// line per target in place; otherwise it prints plain lines, at most
// every plainEvery, for CI logs. Both end with a summary per target.
const (
	ttyEvery   = 250 * time.Millisecond
	plainEvery = 5 * time.Second
)

// counts is one target's line.
type counts struct {
	pushed, pending, failing int
}

// progress follows the history to learn what was pushed, dropped and
// failed since the wait began. want, when not nil, limits it to the
// pairs push --wait queued.
type progress struct {
	w       io.Writer
	tty     bool
	quiet   bool
	start   time.Time
	follow  *history.Follower
	want    map[string]bool // target+"\x00"+path
	targets []string        // in config order

	pushed   map[string]int
	upstream map[string]int // not pushed: an upstream cache has them
	dropped  []history.Record
	failed   map[string]history.Record // last failure per target+path

	drawn    int // lines drawn on the terminal, to redraw over
	lastDraw time.Time
	lastText string
}

func newProgress(e *env, dir string, targets []string, quiet bool) *progress {
	return &progress{
		w: e.stderr, tty: isTerminal(e.stderr), quiet: quiet, start: time.Now(),
		follow: history.Follow(dir), targets: targets,
		pushed: map[string]int{}, upstream: map[string]int{}, failed: map[string]history.Record{},
	}
}

// isTerminal reports whether w is a terminal that understands cursor
// movement.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func pairKey(target, path string) string { return target + "\x00" + path }

// poll reads the outcomes recorded since the last call.
func (p *progress) poll() {
	for _, r := range p.follow.Next() {
		k := pairKey(r.Target, r.Path)
		if p.want != nil && !p.want[k] {
			continue
		}
		switch r.Outcome {
		case history.Pushed:
			p.pushed[r.Target]++
			delete(p.failed, k)
		case history.Upstream:
			p.upstream[r.Target]++
			delete(p.failed, k)
		case history.Dropped:
			p.dropped = append(p.dropped, r)
			delete(p.failed, k)
		case history.Failed:
			p.failed[k] = r
		}
	}
}

// due reports whether a line should be drawn now (so that the caller
// counts the queue only then).
func (p *progress) due(now time.Time) bool {
	if p.quiet {
		return false
	}
	every := plainEvery
	if p.tty {
		every = ttyEvery
	}
	return p.lastDraw.IsZero() || now.Sub(p.lastDraw) >= every
}

// draw shows the lines for the queue's counts per target.
func (p *progress) draw(now time.Time, queued map[string]*counts) {
	p.lastDraw = now
	secs := now.Sub(p.start).Seconds()
	var lines []string
	for _, t := range p.targets {
		c := queued[t]
		if c == nil {
			c = &counts{}
		}
		rate := ""
		if secs >= 1 && p.pushed[t] > 0 {
			rate = fmt.Sprintf(", %.1f paths/s", float64(p.pushed[t])/secs)
		}
		lines = append(lines, fmt.Sprintf("%s: %d pushed, %d pending, %d failing%s", t, p.pushed[t], c.pending, c.failing, rate))
	}
	if !p.tty {
		text := strings.Join(lines, "\n")
		if text != p.lastText {
			fmt.Fprintf(p.w, "%s\n", text)
			p.lastText = text
		}
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF", p.drawn) // to the start of the first line
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + l + "\n")
	}
	io.WriteString(p.w, b.String())
	p.drawn = len(lines)
}

// finish prints the summary (the dropped and failed paths even with -q)
// and reports whether every path waited for was pushed.
func (p *progress) finish() bool {
	p.poll()
	took := time.Since(p.start).Seconds()
	if !p.quiet {
		for _, t := range p.targets {
			n, up := p.pushed[t], p.upstream[t]
			if n == 0 && up == 0 {
				continue
			}
			line := fmt.Sprintf("pushed %d %s to %s in %.1f s", n, plural(n, "path"), t, took)
			if up > 0 {
				line += fmt.Sprintf("; %d already upstream, not pushed", up)
			}
			fmt.Fprintln(p.w, line)
		}
	}
	ok := true
	if len(p.dropped) > 0 {
		ok = false
		fmt.Fprintf(p.w, "dropped %d (not pushed):\n", len(p.dropped))
		for _, r := range p.dropped {
			fmt.Fprintf(p.w, "  %s -> %s: %s\n", r.Path, r.Target, oneLine(r.Reason))
		}
	}
	return ok
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// queueCounts counts pending and failing entries per target; want, when
// not nil, limits it to those pairs.
func queueCounts(q *queue.Queue, want map[string]bool) map[string]*counts {
	out := map[string]*counts{}
	entries, _, err := q.List()
	if err != nil {
		return out
	}
	for _, e := range entries {
		if want != nil && !want[pairKey(e.Target, e.Path)] {
			continue
		}
		c := out[e.Target]
		if c == nil {
			c = &counts{}
			out[e.Target] = c
		}
		c.pending++
		if e.Attempts > 0 {
			c.failing++
		}
	}
	return out
}

// addDropped adds a drop found in dropped/ that the history missed (it
// could not be written, say).
func (p *progress) addDropped(r history.Record) {
	for _, d := range p.dropped {
		if d.Target == r.Target && d.Path == r.Path {
			return
		}
	}
	p.dropped = append(p.dropped, r)
}
