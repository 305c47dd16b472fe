package upstream

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/escape"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/upstream/upstreamtest"
)

// plain reports whether s is as escape.Controls writes it, with no tab
// or newline either: one line that cannot act on a terminal.
func plain(s string) bool {
	return escape.Controls(s) == s && !strings.ContainsAny(s, "\t\n")
}

// An upstream's error was escaped only when longer than maxSaid bytes:
// a short TLS error, which quotes the names in the server's certificate,
// reached Unreachable (explain --json, state.json, status) with the
// escape sequence the certificate held. Every error is escaped.
func TestShortErrorIsEscaped(t *testing.T) {
	u := upstreamtest.TLSNamed(t, "\x1b]0;owned\x07")
	p := fmt.Sprintf("/nix/store/%032d-tls", 1)
	res := New(5*time.Second, time.Minute).Check(context.Background(), map[string][]string{u: {p}})
	if why := res.Unreachable[u]; why == "" || !plain(why) {
		t.Errorf("unreachable: %q, want the error with its control characters escaped", why)
	}
}

// cut escaped what unicode.IsControl calls control but not what
// escape.Controls escapes besides: a right-to-left override in a reason
// phrase or a StorePath made the message read backwards.
func TestOddAnswersBidiEscaped(t *testing.T) {
	p := fmt.Sprintf("/nix/store/%032d-esc", 1)
	u := rawServer(t, "HTTP/1.1 500 \u202eboom\u2028x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	res := New(5*time.Second, time.Minute).Check(context.Background(), map[string][]string{u: {p}})
	if why := res.Unreachable[u]; !strings.Contains(why, `500 \u202eboom\u2028x`) || !plain(why) {
		t.Errorf("unreachable: %q, want the reason phrase with its controls escaped", why)
	}
	body := "StorePath: /nix/store/\u202ex\n"
	u = rawServer(t, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
	c := New(5*time.Second, time.Minute)
	c.Check(context.Background(), map[string][]string{u: {p}})
	if w := c.Warnings(); len(w) != 1 || !plain(w[0]) {
		t.Errorf("warnings %q, want one with its controls escaped", w)
	}
}

// cut backed up over every byte that starts no UTF-8 character to cut
// before a character: an answer of odd bytes (0x9b...) lost all of what
// it said, down to "...". It backs up over one character at most.
func TestCutOddBytesKeepsThem(t *testing.T) {
	got := cut(strings.Repeat("\x9b", 2*maxSaid))
	if n := strings.Count(got, `\x9b`); n < maxSaid-3 || n > maxSaid || !strings.HasSuffix(got, "...") {
		t.Errorf("cut = %.40q... (%d bytes), want %d escaped bytes or 3 fewer, then ...", got, len(got), maxSaid)
	}
}

// The host a redirect led to, which the upstream chose, went into the
// warning as it was: a right-to-left override or a byte that is no
// UTF-8 (0x9b, CSI) in a Location's host reached the log and explain.
func TestRedirectTargetEscaped(t *testing.T) {
	p := fmt.Sprintf("/nix/store/%032d-esc", 1)
	u := rawServer(t, "HTTP/1.1 302 Found\r\nLocation: http://\u202eevil\x9b2J.example/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	c := New(5*time.Second, time.Minute)
	res := c.Check(context.Background(), map[string][]string{u: {p}})
	w := c.Warnings()
	if len(w) != 1 || !plain(w[0]) || !strings.Contains(w[0], `\u202eevil\x9b2J.example`) {
		t.Errorf("warnings %q (unreachable %q), want one naming the host escaped", w, res.Unreachable)
	}
}
