package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// clip cut at a byte count, which could fall inside a UTF-8 character (a
// config error quoting a pattern, a path's name): the build log then got
// half a character, a byte that is no text. It cuts before the character,
// and counts what it cut.
func TestClipKeepsUTF8Whole(t *testing.T) {
	for _, s := range []string{strings.Repeat("é", 2000), "a" + strings.Repeat("日", 1000), "ab" + strings.Repeat("🙂", 1000)} {
		for _, n := range []int{maxExampleLen, maxSayBytes} {
			got := clip(s, n)
			if !utf8.ValidString(got) {
				t.Errorf("clip(%d bytes, %d) = %q, not UTF-8", len(s), n, got[max(0, len(got)-40):])
			}
			kept, _, _ := strings.Cut(got, "…(")
			if len(kept) > n || len(kept) < n-utf8.UTFMax+1 || !strings.HasPrefix(s, kept) {
				t.Errorf("clip(%d bytes, %d) kept %d bytes", len(s), n, len(kept))
			}
		}
	}
	if got := bounded("a" + strings.Repeat("é", maxSayBytes)); !utf8.ValidString(got) {
		t.Errorf("bounded cut a character: %q", got[len(got)-40:])
	}
}

// The hook's line carries what it read from state.json (why the last
// worker could not start, naming files and quoting errors) into every
// build's log: its terminal escapes, and a raw 0x9b (CSI to a terminal
// not set to UTF-8) went there as they were. They are escaped, as status
// escapes them; the line's own line breaks stay.
func TestRunEscapesWhatItRead(t *testing.T) {
	rec := isolate(t)
	dir := filepath.Join(t.TempDir(), "queue")
	holdWorkerLock(t, dir)
	cfgFile := writeConf(t, conf{queueDir: dir})
	st := worker.State{StartError: &worker.StartError{Time: time.Now(), Error: "log.file: /tmp/l\x1b]0;owned\x07\u009b2J", Fix: "mkdir \x1b[2J\x7f"}}
	b, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if st := Run(context.Background(), cfgFile, Env{OutPaths: mkPath("hello-2.12.1").String()}, &out); st != 0 {
		t.Errorf("Run = %d, want 0", st)
	}
	for _, r := range out.String() {
		if r < 0x20 && r != '\n' || r >= 0x7f && r <= 0x9f {
			t.Fatalf("the hook printed control character %U: %q", r, out.String())
		}
	}
	if !strings.Contains(out.String(), `/tmp/l\x1b]0;owned\x07\u009b2J; fix: mkdir \x1b[2J\x7f`) {
		t.Errorf("the hook's line lacks the escaped start error: %q", out.String())
	}
	noSpawn(t, rec)
}

// bounded escaped the message and then cut it at maxSayBytes, which could
// fall inside an escape: the build log got "\x1" or "\u20", half of one,
// that reads as other text. The cut goes before the escape it would split.
func TestBoundedKeepsEscapesWhole(t *testing.T) {
	for pad := 1; pad <= 6; pad++ {
		for _, c := range []string{"\x1b", "\u202e"} {
			msg := strings.Repeat("a", maxSayBytes-pad) + c + "bcdefgh"
			got := bounded(msg)
			kept, _, ok := strings.Cut(got, "…(")
			if !ok {
				t.Fatalf("bounded(%d bytes) = %q, not cut", len(msg), got[len(got)-40:])
			}
			if i := strings.LastIndexByte(kept, '\\'); i >= 0 {
				if e := kept[i:]; len(e) < 2 || e[1] == 'x' && len(e) < 4 || e[1] == 'u' && len(e) < 6 {
					t.Errorf("bounded(%d a's and %q) ends in %q, part of an escape", maxSayBytes-pad, c, e)
				}
			}
			if len(kept) < maxSayBytes-pad {
				t.Errorf("bounded(%d a's and %q) kept %d bytes, cut more than the escape", maxSayBytes-pad, c, len(kept))
			}
		}
	}
}

// A malformed path's example is %q of what OUT_PATHS held, cut at
// maxExampleLen: %q writes a character that is not printable above
// U+FFFF as \U000e0001, and the cut could fall inside it, leaving
// "\U000e0", half of one. The cut goes before it, as for \x and \u.
func TestMalformedExampleKeepsQuotedEscapesWhole(t *testing.T) {
	for pad := 1; pad <= 10; pad++ {
		var m malformed
		// "…" + %q's opening quote and "/nix/store/" before the a's.
		s := "/nix/store/" + strings.Repeat("a", maxExampleLen-pad-len(`"/nix/store/`)) + "\U000e0001bcdefghijk"
		m.add(fmt.Errorf("%q is not a valid store path", s))
		kept, _, ok := strings.Cut(m.examples[0], "…(")
		if !ok {
			t.Fatalf("example %q, not cut", m.examples[0])
		}
		if i := strings.LastIndexByte(kept, '\\'); i >= 0 && len(kept[i:]) < len(`\U000e0001`) {
			t.Errorf("the example ends in %q, part of an escape", kept[i:])
		}
		if len(kept) < maxExampleLen-pad {
			t.Errorf("the example kept %d bytes, cut more than the escape", len(kept))
		}
	}
}
