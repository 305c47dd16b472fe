package cli

import (
	"bytes"
	"strings"
	"testing"
)

// escapeControls passed bytes that are not UTF-8 as they were: 0x9b
// alone is CSI to a terminal not set to UTF-8, so a pusher's output, an
// upstream's answer or a link's target could drive the terminal. Such
// bytes are escaped; valid UTF-8, C1 controls aside, is kept.
func TestEscapeControlsInvalidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a\x9b2Jb":                 `a\x9b2Jb`,
		"\x1b[2J":                  `\x1b[2J`,
		"\u009b2J":                 `\u009b2J`,
		"caf\xc3":                  `caf\xc3`,
		"\xc2":                     `\xc2`,
		"/nix/store/x-café-ünï-日本": "/nix/store/x-café-ünï-日本",
		"tab\tand\nnewline":        "tab\tand\nnewline",
	} {
		if got := escapeControls(in); got != want {
			t.Errorf("escapeControls(%q) = %q, want %q", in, got, want)
		}
	}
	var out bytes.Buffer
	e := &env{stderr: &out}
	e.errorf("push: %s", "x\x9b2J\x9d0;owned\x07")
	if strings.ContainsAny(out.String(), "\x9b\x9d\x07") {
		t.Errorf("errorf printed a C1 byte or BEL as it is: %q", out.String())
	}
}
