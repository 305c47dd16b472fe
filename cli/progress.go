package cli

import (
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termwidth"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
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
	pending, failing int
	// lastError is the newest error of the entries still failing, and
	// when it happened.
	lastError   string
	lastErrorAt time.Time
}

// errorWidth is how much of the newest error a line shows (on a terminal
// no more than fits: a line that wraps would break the redraw); status
// and the summary show it whole.
const errorWidth = 100

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
	lastPush map[string]time.Time // when the last push of each target was seen
	upstream map[string]int       // not pushed: an upstream cache has them
	dropped  []history.Record
	failed   map[string]history.Record // last failure per target+path
	// sent are the pairs waited for (want) whose last outcome was pushed
	// or upstream: a drop of theirs in dropped/ is an earlier one.
	sent map[string]bool
	// wantPins are the keys of the pins push --pin waits for, allPins
	// that every pin of the targets is (wait waits for them all); pins,
	// their outcomes as the history gave them (see reportPins).
	wantPins map[string]bool
	allPins  bool
	pins     []history.Record

	// count counts the queue for a frame; the caller sets it, so that
	// finish can draw the last one.
	count   func() map[string]*counts
	columns int // the terminal's width: a longer line would wrap and break the redraw
	// cw counts a line's columns as the terminal draws them, its
	// locale saying how wide the ambiguous characters are.
	cw       termwidth.Columns
	drawn    int  // lines drawn on the terminal, to redraw over
	settled  bool // the last frame is drawn
	lastDraw time.Time
	lastText string
}

// newProgress follows the history from follow, or from its end now when
// follow is nil.
func newProgress(e *env, dir string, targets []string, quiet bool, follow *history.Follower) *progress {
	if follow == nil {
		follow = history.Follow(dir)
	}
	return &progress{
		w: e.stderr, tty: isTerminal(e.stderr), quiet: quiet, start: time.Now(),
		follow: follow, targets: targets, columns: columns(e.stderr), cw: termwidth.ForLocale(os.Getenv),
		pushed: map[string]int{}, lastPush: map[string]time.Time{}, upstream: map[string]int{}, failed: map[string]history.Record{},
	}
}

// columns is the width of the terminal w is, 80 when unknown.
func columns(w any) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return 80
}

// isTerminal reports whether w is a terminal that understands cursor
// movement.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

func pairKey(target, path string) string { return target + "\x00" + path }

// poll reads the outcomes recorded since the last call.
func (p *progress) poll() {
	for _, r := range p.follow.Next() {
		if r.Outcome == history.Pinned || r.Outcome == history.PinDropped {
			if p.wantPins[pinRecordKey(r)] || p.allPins && slices.Contains(p.targets, r.Target) {
				p.pins = append(p.pins, r)
			}
			continue
		}
		k := pairKey(r.Target, r.Path)
		if p.want != nil && !p.want[k] {
			continue
		}
		if p.want != nil {
			if r.Outcome == history.Pushed || r.Outcome == history.Upstream {
				if p.sent == nil {
					p.sent = map[string]bool{}
				}
				p.sent[k] = true
			} else {
				delete(p.sent, k)
			}
		}
		switch r.Outcome {
		case history.Pushed:
			p.pushed[r.Target]++
			p.lastPush[r.Target] = time.Now()
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

// line is a target's line of a frame. A target with nothing pending has
// finished: its rate is that of its pushes, up to the last, and no longer
// falls as the others go on. Failing entries come with the newest error,
// shortened (status shows them whole).
func (p *progress) line(t string, c *counts, now time.Time) string {
	line := fmt.Sprintf("%s: %d pushed, %d pending, %d failing", t, p.pushed[t], c.pending, c.failing)
	end := now
	if c.pending == 0 && !p.lastPush[t].IsZero() {
		end = p.lastPush[t]
	}
	if secs := end.Sub(p.start).Seconds(); secs >= 1 && p.pushed[t] > 0 {
		line += fmt.Sprintf(", %.1f paths/s", float64(p.pushed[t])/secs)
	}
	if c.failing > 0 && c.lastError != "" {
		line += " (last error: " + shorten(errorGist(c.lastError), errorWidth, p.cw) + ")"
	}
	return line
}

// errorGist is an error on one line, a program named by its absolute path
// at its start named by its base name: what the pusher said matters more
// than where it lives.
func errorGist(s string) string {
	s = oneLine(s)
	if first, rest, ok := strings.Cut(s, " "); ok && strings.HasPrefix(first, "/") {
		s = path.Base(first) + " " + rest
	}
	return s
}

// shorten cuts s to at most n terminal columns as cw counts them (a
// wide character takes two, a combining one none), marking the cut with
// "…"; before an escape oneLine wrote (\x1b, \u202e), not inside it,
// where the line would show a broken one.
func shorten(s string, n int, cw termwidth.Columns) string {
	if cw.String(s) <= n {
		return s
	}
	// The mark is ambiguous, and counted two columns whatever the
	// locale: a terminal that draws it wide outside a CJK locale (set
	// so by hand) then costs the cut line a column, not the redraw.
	const mark, markWidth = "…", 2
	if n < markWidth {
		return "" // a terminal a column or two wide
	}
	cut, w := len(s), 0
	for i, r := range s {
		if w += cw.Rune(r); w > n-markWidth { // columns for the mark
			cut = i
			break
		}
	}
	return s[:escape.Cut(s, cut)] + mark
}

// draw shows the lines for the queue's counts per target.
func (p *progress) draw(now time.Time, queued map[string]*counts) {
	p.lastDraw = now
	var lines []string
	for _, t := range p.targets {
		c := queued[t]
		if c == nil {
			c = &counts{}
		}
		l := p.line(t, c, now)
		if p.tty {
			l = shorten(l, p.columns-1, p.cw)
		}
		lines = append(lines, l)
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

// lastFrame draws the frame of every target as the wait ended, not as
// the last tick saw it, once, if frames were drawn. Whoever prints below
// the frame calls it first: a later redraw would move up over what was
// printed.
func (p *progress) lastFrame() {
	p.poll()
	if p.settled {
		return
	}
	p.settled = true
	if !p.quiet && p.count != nil && (p.drawn > 0 || p.lastText != "") {
		p.draw(time.Now(), p.count())
	}
}

// finish prints the summary (what was dropped even with -q) and returns
// how many of the waited-for paths the rules left out after they were
// queued (a verdict: the rules changed, or the closure rule applied by the
// worker) and how many were lost (gone from the store before the push).
func (p *progress) finish() (ruled, lost int) {
	p.lastFrame()
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
	var byRules, gone []history.Record
	for _, r := range p.dropped {
		if worker.Lost(r.Reason) {
			gone = append(gone, r)
		} else {
			byRules = append(byRules, r)
		}
	}
	if len(byRules) > 0 {
		fmt.Fprintf(p.w, "left out by the rules: %d (not pushed, as the rules decided after it was queued):\n", len(byRules))
		for _, r := range byRules {
			statusLine(p.w, "  %s -> %s: %s", r.Path, r.Target, oneLine(r.Reason))
		}
	}
	if len(gone) > 0 {
		fmt.Fprintf(p.w, "lost: %d (not pushed):\n", len(gone))
		for _, r := range gone {
			statusLine(p.w, "  %s -> %s: %s", r.Path, r.Target, oneLine(r.Reason))
		}
	}
	return len(byRules), len(gone)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// queueCounts counts pending and failing entries for each of targets;
// want, when not nil, limits it to those keys. It reads only the entries
// that may hold a retry state (queue.Keys' stated); any other is counted
// by its key.
func queueCounts(q *queue.Queue, targets []string, want map[string]bool) map[string]*counts {
	out := map[string]*counts{}
	stated, bulk, err := q.Keys()
	if err != nil {
		return out
	}
	byDigest := queue.TargetsByDigest(targets)
	counted := func(key string) *counts {
		t, ok := byDigest[queue.KeyDigest(key)]
		if !ok || want != nil && !want[key] {
			return nil
		}
		c := out[t]
		if c == nil {
			c = &counts{}
			out[t] = c
		}
		return c
	}
	for _, k := range bulk {
		if c := counted(k); c != nil {
			c.pending++
		}
	}
	for _, n := range stated {
		c := counted(n)
		if c == nil {
			continue
		}
		e, err := q.Peek(n)
		if err != nil {
			continue // pushed since the listing, or corrupt
		}
		c.pending++
		if e.Attempts > 0 {
			c.failing++
			if e.LastError != "" && !e.LastAttempt.Before(c.lastErrorAt) {
				c.lastError, c.lastErrorAt = e.LastError, e.LastAttempt
			}
		}
	}
	return out
}

// addDropped adds a drop found in dropped/ that the history missed (it
// could not be written, say), unless the history says the pair went up
// since: the drop is then an earlier one, which a clock step can make
// look recent (see queue.Dropped).
func (p *progress) addDropped(r history.Record) {
	if p.sent[pairKey(r.Target, r.Path)] {
		return
	}
	for _, d := range p.dropped {
		if d.Target == r.Target && d.Path == r.Path {
			return
		}
	}
	p.dropped = append(p.dropped, r)
}
