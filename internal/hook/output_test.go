package hook

import (
	"strings"
	"testing"
	"unicode/utf8"
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
