package pusher

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
)

// pipeline is the output path of run: redactor, then line cutter.
func pipeline(out *bytes.Buffer, secret string, max int) (*redactor, *lineCutter) {
	lines := newLineCutter(out, max)
	return newRedactor(lines, secret), lines
}

// TestRedactorEverySplit feeds output holding the token in every way
// that two chunk boundaries can cut it (and the text around it), with
// and without newlines and \r near it, and checks that no part of the
// token gets through.
func TestRedactorEverySplit(t *testing.T) {
	const secret = "s3cr3t-T0KEN"
	for _, text := range []string{
		"abc " + secret + " def\n",
		secret + secret + "\n",
		"x\r" + secret + "\rprogress 10%\r" + secret,
		"ss3cr3t-T0KEs3cr3t-T0KEN\n", // a near miss right before the token
		strings.Repeat("y", 100) + secret,
	} {
		want := strings.ReplaceAll(text, secret, "[redacted]")
		for i := 0; i <= len(text); i++ {
			for j := i; j <= len(text); j++ {
				var out bytes.Buffer
				r, lines := pipeline(&out, secret, 1<<20)
				for _, chunk := range []string{text[:i], text[i:j], text[j:]} {
					if n, err := r.Write([]byte(chunk)); err != nil || n != len(chunk) {
						t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
					}
				}
				r.flush()
				lines.flush()
				got := out.String()
				for k := 4; k <= len(secret); k++ {
					for off := 0; off+k <= len(secret); off++ {
						if part := secret[off : off+k]; strings.Contains(got, part) && !strings.Contains(want, part) {
							t.Fatalf("%q split at %d,%d: %q of the token got through: %q", text, i, j, part, got)
						}
					}
				}
				// The lines are the redacted text's, \r ending a line.
				var wantLines []string
				for _, l := range strings.FieldsFunc(want, func(r rune) bool { return r == '\n' || r == '\r' }) {
					wantLines = append(wantLines, l+"\n")
				}
				if got != strings.Join(wantLines, "") {
					t.Fatalf("%q split at %d,%d: output %q, want %q", text, i, j, got, strings.Join(wantLines, ""))
				}
			}
		}
	}
}

// TestRedactorByteByByte writes one byte at a time, the worst split.
func TestRedactorByteByByte(t *testing.T) {
	const secret = "tok"
	var out bytes.Buffer
	r, lines := pipeline(&out, secret, 1<<20)
	for _, c := range []byte("atokbtoktokto\n") {
		r.Write([]byte{c})
	}
	r.flush()
	lines.flush()
	if want := "a[redacted]b[redacted][redacted]to\n"; out.String() != want {
		t.Errorf("= %q, want %q", out.String(), want)
	}
}

func TestLineCutter(t *testing.T) {
	var out bytes.Buffer
	c := newLineCutter(&out, 8)
	c.Write([]byte("short\n12345678"))
	c.Write([]byte("9abc\nnext\r\n\nlast"))
	c.flush()
	want := "short\n12345678 …[line cut: longer than 8 bytes]\nnext\nlast\n"
	if out.String() != want {
		t.Errorf("= %q, want %q", out.String(), want)
	}
}

// TestOutputMemoryBounded pushes 64 MiB on one line, with the token in
// it, through the output path and checks that the heap does not grow
// with it and that what comes out is one cut line.
func TestOutputMemoryBounded(t *testing.T) {
	var out bytes.Buffer
	r, lines := pipeline(&out, token, MaxLine)
	chunk := []byte(strings.Repeat("x", 32<<10-len(token)) + token)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 2048; i++ { // 64 MiB
		r.Write(chunk)
	}
	r.flush()
	lines.flush()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("64 MiB on one line: %d bytes out, heap grew %d bytes, %d bytes allocated in all", out.Len(), grew, after.TotalAlloc-before.TotalAlloc)
	if out.Len() > MaxLine+100 || !strings.HasSuffix(out.String(), "]\n") {
		t.Errorf("output is %d bytes, want one cut line", out.Len())
	}
	if grew > 1<<20 {
		t.Errorf("the heap grew by %d bytes for one long line", grew)
	}
	if strings.Contains(out.String(), token[:4]) {
		t.Errorf("the token's start got through")
	}
}

// TestPushLongLineAndToken runs a pusher that prints a long line with the
// token in it and no newline: the output reaching the caller is lines of
// at most MaxLine bytes, without the token.
func TestPushLongLineAndToken(t *testing.T) {
	fake(t, 1)
	long := strings.Repeat("z", 3*MaxLine) + token
	t.Setenv(envOutput, fmt.Sprintf("start %s\r%s\rend %s", token, long, token))
	var out bytes.Buffer
	err := cachixPusherFor(t, tokenFile(t, 0o600)).Push(context.Background(), paths, &out)
	if err == nil {
		t.Fatal("Push succeeded")
	}
	for _, l := range strings.SplitAfter(out.String(), "\n") {
		if len(l) > MaxLine+100 {
			t.Errorf("a line of %d bytes reached the log", len(l))
		}
	}
	if strings.Contains(out.String(), token) || strings.Contains(err.Error(), token) {
		t.Errorf("the token got through: %q / %v", out.String(), err)
	}
	if !strings.Contains(out.String(), "start [redacted]\n") || !strings.Contains(out.String(), "end [redacted]\n") {
		t.Errorf("output = %q", out.String())
	}
}

// TestLineCutterEscapesControls guards the escaping of control
// characters in pusher output (see lineCutter): C0 but tab, DEL and C1
// become \xNN or \u00NN, whole or split across writes, with UTF-8 text
// (whose bytes 0x80-0x9f follow other lead bytes than 0xc2) and tabs
// left as they are, and an escape never cut in two at the line's end.
func TestLineCutterEscapesControls(t *testing.T) {
	in := "a\x1b[31mred\x1b[0m\tx\x7f \u009b2J é—ü \x00\n"
	want := "a\\x1b[31mred\\x1b[0m\tx\\x7f \\u009b2J é—ü \\x00\n"
	for _, whole := range []bool{true, false} {
		var out bytes.Buffer
		c := newLineCutter(&out, 100)
		if whole {
			c.Write([]byte(in))
		} else {
			for i := range len(in) {
				c.Write([]byte{in[i]})
			}
		}
		c.flush()
		if out.String() != want {
			t.Errorf("whole %v: = %q, want %q", whole, out.String(), want)
		}
	}
	var out bytes.Buffer
	c := newLineCutter(&out, 8)
	c.Write([]byte("12345\x1b\n12\u0085abc\n"))
	c.flush()
	if want := "12345 …[line cut: longer than 8 bytes]\n12\\u0085 …[line cut: longer than 8 bytes]\n"; out.String() != want {
		t.Errorf("cut: = %q, want %q", out.String(), want)
	}
}

// pushWithScript pushes paths to a Cachix target whose cachix.bin is the
// shell script script, and returns what it printed, as the worker reads
// it, and Push's error.
func pushWithScript(t *testing.T, script string) (*bytes.Buffer, error) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cachix")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Cachix: config.Cachix{Bin: bin}}
	var out bytes.Buffer
	err := New(cfg, &config.Target{Name: "main", Cache: "c"}).Push(context.Background(), paths, &out)
	return &out, err
}

// TestPushErrorCarriesNoTerminalEscapes guards the same at Push's level:
// a pusher's error text, the tail of its output, becomes LastError and
// the history's reason, which status and log print to a terminal. It
// must hold no control characters, whatever escapes the pusher printed.
func TestPushErrorCarriesNoTerminalEscapes(t *testing.T) {
	out, err := pushWithScript(t, "#!/bin/sh\nprintf 'error: \\033[1A\\033[2K\\033[32mpushed 2 paths OK\\033[0m\\n' >&2\nexit 1\n")
	if err == nil {
		t.Fatal("Push succeeded")
	}
	for _, r := range err.Error() + out.String() {
		if (r < 0x20 && r != '\n') || r == 0x7f {
			t.Fatalf("the error or output holds control character %q:\nerr: %q\nout: %q", r, err.Error(), out.String())
		}
	}
	if want := `error: \x1b[1A\x1b[2K\x1b[32mpushed 2 paths OK\x1b[0m`; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error = %q, want it to end in %q", err.Error(), want)
	}
}

// A line cut at max bytes could end inside a UTF-8 character: the log
// and the error (which status prints and the history records) got half
// a character, no text. The cut comes before the character.
func TestLineCutterCutsWholeCharacters(t *testing.T) {
	for _, in := range []string{"1234567日本\n", "1234567é\n", "12345🙂\n"} {
		var out bytes.Buffer
		c := newLineCutter(&out, 8)
		c.Write([]byte(in))
		c.flush()
		if !utf8.Valid(out.Bytes()) || !strings.HasSuffix(out.String(), " …[line cut: longer than 8 bytes]\n") {
			t.Errorf("%q cut to %q", in, out.String())
		}
	}
}

// A character whose bytes came in two writes (the pipe is read in
// chunks, and the redactors pass what they hold back in pieces) was cut
// after its first bytes, which the line already held: the cut backed up
// only over the new write's bytes.
func TestLineCutterCutsWholeCharactersAcrossWrites(t *testing.T) {
	for _, in := range [][]string{{"1234567\xe6", "\x97\xa5\n"}, {"123456\xe6", "\x97\xa5\n"}, {"12345\xf0\x9f", "\x99\x82\n"}} {
		var out bytes.Buffer
		c := newLineCutter(&out, 8)
		for _, w := range in {
			c.Write([]byte(w))
		}
		c.flush()
		if !utf8.Valid(out.Bytes()) || !strings.HasSuffix(out.String(), " …[line cut: longer than 8 bytes]\n") {
			t.Errorf("%q cut to %q", in, out.String())
		}
	}
}

// lineCutter escaped C0, DEL and C1 only: a right-to-left override, the
// other bidirectional controls and the line and paragraph separators in
// a pusher's output reached the log, history.jsonl, log --json and
// status --json as they were (JSON escapes none of the first), to make a
// line read backwards or break in two. They are escaped as
// escape.Controls writes them, whole or split across writes anywhere.
func TestLineCutterEscapesBidi(t *testing.T) {
	in := "a\u202eterces\u202c b\u2028c\u2029 \u200e\u200f\u061c\u2066\u2069 日本 é\n"
	want := `a\u202eterces\u202c b\u2028c\u2029 \u200e\u200f\u061c\u2066\u2069 日本 é` + "\n"
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			var out bytes.Buffer
			c := newLineCutter(&out, 200)
			for _, w := range []string{in[:i], in[i:j], in[j:]} {
				c.Write([]byte(w))
			}
			c.flush()
			if out.String() != want {
				t.Fatalf("split at %d,%d: = %q, want %q", i, j, out.String(), want)
			}
		}
	}
	var out bytes.Buffer
	c := newLineCutter(&out, 8)
	c.Write([]byte("12345\u202e\n12\u2028abc\n"))
	c.flush()
	if want := "12345 …[line cut: longer than 8 bytes]\n12\\u2028 …[line cut: longer than 8 bytes]\n"; out.String() != want {
		t.Errorf("cut: = %q, want %q", out.String(), want)
	}
}

// tailBuffer kept the last 4096 bytes wherever they began: inside a
// UTF-8 character or an escape the line cutter wrote, so a push error
// (the tail of a long last line) began with half a character (a lone
// 0x9b, CSI to a terminal not set to UTF-8) or "1b[2J", an escape shown
// as text. The tail starts after them.
func TestTailBufferStartsWhole(t *testing.T) {
	for _, tc := range []struct{ line, unit string }{
		{strings.Repeat("‛", 2000), "‛"}, // U+201B: e2 80 9b
		{strings.Repeat(`\x1b`, 2000), `\x1b`},
		{strings.Repeat(`\u202e`, 1000), `\u202e`},
	} {
		for skew := range 6 {
			var tb tailBuffer
			tb.Write([]byte(tc.line + strings.Repeat(" ", skew) + "\n"))
			s := strings.TrimRight(tb.String(), " \n")
			if len(s) > 4096 || !utf8.ValidString(s) || strings.ReplaceAll(s, tc.unit, "") != "" {
				t.Errorf("skew %d: the tail of %d %q starts with %.10q", skew, len(tc.line)/len(tc.unit), tc.unit, s)
			}
		}
	}
}
