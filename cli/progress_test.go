package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/termwidth"
)

// The summary counts what the history recorded after the wait began:
// pushed, already upstream, and each drop with its reason, a verdict of
// the rules apart from a loss.
func TestProgressSummary(t *testing.T) {
	dir := t.TempDir()
	rec := func(path, outcome, reason string) history.Record {
		return history.Record{Time: time.Now(), Target: "main", Path: "/nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-" + path, Outcome: outcome, Reason: reason}
	}
	if err := history.Append(dir, history.MaxSize, []history.Record{rec("before-1", history.Pushed, "")}); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	e := &env{ctx: context.Background(), stderr: &stderr}
	p := newProgress(e, dir, []string{"main"}, false, nil)
	if err := history.Append(dir, history.MaxSize, []history.Record{
		rec("a-1", history.Pushed, ""), rec("b-1", history.Pushed, ""),
		rec("c-1", history.Upstream, "in https://cache.nixos.org"),
		rec("d-1", history.Failed, "boom"), rec("d-1", history.Pushed, ""),
		rec("e-1", history.Dropped, "no longer in the store (garbage-collected)"),
		rec("f-1", history.Dropped, `closure_deny = "skip": its closure contains /nix/store/x-secret, denied by "secret-*"`),
	}); err != nil {
		t.Fatal(err)
	}
	if ruled, lost := p.finish(); ruled != 1 || lost != 1 {
		t.Errorf("finish = %d left out by the rules, %d lost; want 1 and 1", ruled, lost)
	}
	out := stderr.String()
	for _, want := range []string{
		"pushed 3 paths to main in ",
		"; 1 already upstream, not pushed\n",
		"lost: 1 (not pushed):\n  /nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-e-1 -> main: no longer in the store (garbage-collected)\n",
		"left out by the rules: 1 (not pushed, as the rules decided after it was queued):\n  /nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-f-1 -> main: closure_deny = \"skip\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "failed") || strings.Contains(out, "before-1") {
		t.Errorf("summary reports a failure that was retried, or a record from before the wait:\n%s", out)
	}
}

// A reason holds what a pusher printed, colours and all (cachix's):
// wait's summary, like status and log, escapes its control characters.
func TestProgressSummaryEscapesControls(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	e := &env{ctx: context.Background(), stderr: &stderr}
	p := newProgress(e, dir, []string{"main"}, false, nil)
	path := "/nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-a-1"
	if err := history.Append(dir, history.MaxSize, []history.Record{
		{Time: time.Now(), Target: "main", Path: path, Outcome: history.Dropped, Reason: "no longer in the store \x1b]0;owned\x07\x1b[31m(garbage-collected)\r\u009b2J"},
	}); err != nil {
		t.Fatal(err)
	}
	p.finish()
	out := stderr.String()
	if strings.ContainsAny(out, "\x1b\x07\r\u009b") || !strings.Contains(out, `\x1b]0;owned\x07\x1b[31m(garbage-collected) \u009b2J`) {
		t.Errorf("the summary does not escape the reason's control characters:\n%q", out)
	}
}

// A target with nothing pending has finished: its rate stays that of its
// pushes, up to the last, while the others go on (it kept falling: 0.7,
// 0.5, 0.3 paths/s).
func TestProgressRateFreezes(t *testing.T) {
	now := time.Now()
	p := &progress{start: now.Add(-10 * time.Second), pushed: map[string]int{"done": 5, "busy": 5},
		lastPush: map[string]time.Time{"done": now.Add(-8 * time.Second), "busy": now.Add(-8 * time.Second)}}
	if got := p.line("done", &counts{}, now); !strings.HasSuffix(got, ", 2.5 paths/s") {
		t.Errorf("finished target: %q, want its rate up to its last push, 2.5 paths/s", got)
	}
	if got := p.line("busy", &counts{pending: 1}, now); !strings.HasSuffix(got, ", 0.5 paths/s") {
		t.Errorf("busy target: %q, want its rate until now, 0.5 paths/s", got)
	}
}

// A failing count comes with the newest error, shortened to keep the line
// on one row (status shows it whole).
func TestProgressFailingShowsError(t *testing.T) {
	p := &progress{start: time.Now(), pushed: map[string]int{}, lastPush: map[string]time.Time{}}
	long := "/nix/store/xxx-cachix-1.7/bin/cachix exited with exit status 1:\nHTTP 401 Unauthorized: " + strings.Repeat("x", 200)
	got := p.line("work", &counts{pending: 34, failing: 34, lastError: long}, time.Now())
	if !strings.HasPrefix(got, "work: 0 pushed, 34 pending, 34 failing (last error: cachix exited with exit status 1: HTTP 401 Unauthorized: x") || !strings.HasSuffix(got, "…)") {
		t.Errorf("line %q: want the newest error, on one line, shortened", got)
	}
	if n := len([]rune(got)); n > 160 {
		t.Errorf("line of %d characters", n)
	}
}

// The last frame shows every target as the wait ended, before the
// summary: the frame of the last tick said "0 pushed, 4 pending" above
// "pushed 4 paths".
func TestProgressLastFrame(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	e := &env{ctx: context.Background(), stderr: &stderr}
	p := newProgress(e, dir, []string{"work"}, false, nil)
	pending := 4
	p.count = func() map[string]*counts { return map[string]*counts{"work": {pending: pending}} }
	p.draw(time.Now(), p.count())
	var recs []history.Record
	for i := range 4 {
		recs = append(recs, history.Record{Time: time.Now(), Target: "work", Path: fmt.Sprintf("/nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-p-%d", i), Outcome: history.Pushed})
	}
	if err := history.Append(dir, history.MaxSize, recs); err != nil {
		t.Fatal(err)
	}
	pending = 0
	if ruled, lost := p.finish(); ruled != 0 || lost != 0 {
		t.Fatalf("finish reported %d left out, %d lost", ruled, lost)
	}
	want := "work: 0 pushed, 4 pending, 0 failing\nwork: 4 pushed, 0 pending, 0 failing\npushed 4 paths to work in "
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("output:\n%s\nwant it to begin with:\n%s", stderr.String(), want)
	}
}

// shorten cut at a rune count, so inside an escape oneLine wrote for a
// control character: the line showed "\x1" or "\u20", no escape, and
// read as if the error said that. The cut comes before the escape.
func TestShortenKeepsEscapesWhole(t *testing.T) {
	for _, s := range []string{`abcdefgh\x1b[2J`, `abcdefgh\u202exyz`} {
		for n := 2; n <= len(s); n++ {
			got := shorten(s, n, termwidth.Columns{})
			if len([]rune(got)) > n {
				t.Errorf("shorten(%q, %d) = %q: longer than %d", s, n, got, n)
			}
			// Each s holds one escape, at 8: the cut is before it or after.
			if cut := len(strings.TrimSuffix(got, "…")); cut > 8 && cut < 8+map[byte]int{'x': 4, 'u': 6}[s[9]] {
				t.Errorf("shorten(%q, %d) = %q: an escape cut in two", s, n, got)
			}
		}
	}
}

// shorten counted runes, not columns: an error in Chinese or Japanese
// (two columns a character) made a line twice as wide as the terminal,
// which wrapped and broke the redraw, and one with combining accents
// was cut well short of the edge. A line now fills the columns it is
// given, and no more.
func TestShortenCountsColumns(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		// The mark "…" takes two columns (see TestAmbiguousWidth).
		{"cachix: 接続できません", 12, "cachix: 接…"},
		{"cachix: 接続できません", 14, "cachix: 接続…"},
		{"cachix: 接続できません", 22, "cachix: 接続できません"},
		{"cachix: 接続できません", 21, "cachix: 接続できま…"},
		{"cafe\u0301 au lait", 100, "cafe\u0301 au lait"},
		{"cafe\u0301 cre\u0300me bru\u0302le\u0301e", 20, "cafe\u0301 cre\u0300me bru\u0302le\u0301e"},
		{"cafe\u0301 cre\u0300me bru\u0302le\u0301e", 13, "cafe\u0301 cre\u0300me …"},
		{"x 🙂🙂🙂", 6, "x 🙂…"},
	} {
		for _, cw := range []termwidth.Columns{{}, {CJK: true}} {
			if got := shorten(c.s, c.n, cw); got != c.want {
				t.Errorf("shorten(%q, %d, %+v) = %q, want %q", c.s, c.n, cw, got, c.want)
			}
			if got := shorten(c.s, c.n, cw); (termwidth.Columns{CJK: true}).String(got) > c.n {
				t.Errorf("shorten(%q, %d, %+v) = %q: %d columns", c.s, c.n, cw, got, cw.String(got))
			}
		}
	}
}

// The ambiguous characters (Greek, Cyrillic, "°", "…") were counted two
// columns on every terminal, for those of a CJK locale: a Greek or
// Russian error was cut at half the line an ordinary terminal has. The
// locale decides, and the mark, ours, keeps two columns in any.
func TestShortenAmbiguousByLocale(t *testing.T) {
	greek := "main: 0 pushed, 1 pending, 1 failing (last error: σφάλμα σύνδεσης)"
	for _, c := range []struct {
		lang string
		want string
	}{
		{"el_GR.UTF-8", greek},
		{"ru_RU.UTF-8", greek},
		{"ja_JP.UTF-8", "main: 0 pushed, 1 pending, 1 failing (last error: σφάλμα σ…"},
	} {
		t.Setenv("LC_ALL", "")
		t.Setenv("LC_CTYPE", "")
		t.Setenv("LANG", c.lang)
		var out bytes.Buffer
		p := newProgress(&env{stderr: &out}, t.TempDir(), []string{"main"}, true, nil)
		if got := shorten(greek, len([]rune(greek)), p.cw); got != c.want {
			t.Errorf("LANG=%s: shorten to %d columns = %q, want %q", c.lang, len([]rune(greek)), got, c.want)
		}
	}
	if got := shorten("abc", 1, termwidth.Columns{}); got != "" {
		t.Errorf("shorten to a column the mark does not fit in: %q", got)
	}
	if got := shorten("abcdef", 5, termwidth.Columns{}); got != "abc…" {
		t.Errorf("shorten(\"abcdef\", 5) = %q, want two columns kept for the mark", got)
	}
}

// On a terminal one column wide (a squeezed tmux pane), the frame's
// lines were shortened to 0 runes, and shorten sliced to -1: wait and
// push --wait panicked. Nothing is drawn of the line then.
func TestProgressOneColumnTerminal(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, tty: true, columns: 1, start: time.Now(), targets: []string{"main"},
		pushed: map[string]int{}, lastPush: map[string]time.Time{}}
	p.draw(time.Now(), map[string]*counts{"main": {pending: 3}})
	if strings.Contains(out.String(), "main") {
		t.Errorf("drew %q on a terminal 1 column wide", out.String())
	}
}
