package pusher

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// nix copy's output for a batch of 10,000 paths sums up to its first
// line and a count; an error naming a path is kept, not counted as
// progress; what is kept stays bounded however much is printed.
func TestSummary(t *testing.T) {
	s := NewSummary("/nix/store")
	var all []string
	s.Line = func(l string) { all = append(all, l) }
	fmt.Fprintf(s, "copying 10000 paths...\n")
	for i := range 10000 {
		fmt.Fprintf(s, "copying path '/nix/store/%032d-p%d' to 'file:///tmp/c'...\n", i, i)
	}
	s.Write([]byte("error: path '/nix/store/00000000000000000000000000000000-x' is not valid\n\n   \n"))
	s.Flush()
	if got, want := s.Text(), "copying 10000 paths... | error: path '/nix/store/00000000000000000000000000000000-x' is not valid"; got != want {
		t.Errorf("Text() = %q, want %q", got, want)
	}
	if s.Lines() != 10002 || s.PathLines() != 10000 || len(all) != 10002 {
		t.Errorf("lines %d, per path %d, handed to Line %d; want 10002, 10000, 10002", s.Lines(), s.PathLines(), len(all))
	}

	s = NewSummary("/nix/store")
	for i := range 1000 {
		fmt.Fprintf(s, "warning: something %d %s\n", i, strings.Repeat("w", MaxLine-40))
	}
	for range 300 { // a writer that never ends its line
		s.Write([]byte(strings.Repeat("x", 100)))
		if len(s.buf) > 2*MaxLine+100 {
			t.Fatalf("Summary holds %d bytes of an unfinished line", len(s.buf))
		}
	}
	s.Flush()
	if len(s.Text()) > (SummaryLines+1)*MaxLine || !strings.HasSuffix(s.Text(), "… and 999 more lines") {
		t.Errorf("Text() is %d bytes, ending %q; want at most %d lines, the rest counted", len(s.Text()), s.Text()[max(0, len(s.Text())-40):], SummaryLines)
	}
}

// A line longer than 2*MaxLine was cut at that byte count, which could
// fall inside a UTF-8 character: the push error (state.json, the
// history) held U+FFFD for half a character. The cut comes before it.
func TestSummaryCutKeepsUTF8Whole(t *testing.T) {
	for _, pre := range []string{"", "x", "xx", "xxx"} {
		s := NewSummary("/nix/store")
		s.Write([]byte(pre + strings.Repeat("🙂", MaxLine) + "\n"))
		s.Flush()
		if got := s.Text(); !utf8.ValidString(got) || !strings.HasSuffix(got, "🙂…") {
			t.Errorf("line cut to %q", got[max(0, len(got)-20):])
		}
	}
}

// The same cut could fall inside an escape lineCutter wrote (\x1b,
// \u202e): the kept line ended in "\x1" or "\u20", half of one. No
// pusher's route gives Summary so long a line (lineCutter cuts at
// MaxLine), but the bound is there for another writer. The cut comes
// before the escape.
func TestSummaryCutKeepsEscapesWhole(t *testing.T) {
	for pad := 1; pad <= 6; pad++ {
		for _, e := range []string{`\x1b`, `\u202e`} {
			s := NewSummary("/nix/store")
			s.Write([]byte(strings.Repeat("x", 2*MaxLine-pad) + e + "yyyyyyy\n"))
			s.Flush()
			got := strings.TrimSuffix(s.Text(), "…")
			if i := strings.LastIndexByte(got, '\\'); i >= 0 {
				if t2 := got[i:]; len(t2) < 2 || t2[1] == 'x' && len(t2) < 4 || t2[1] == 'u' && len(t2) < 6 {
					t.Errorf("a line of %d x's and %s was cut to end in %q", 2*MaxLine-pad, e, t2)
				}
			}
		}
	}
}
