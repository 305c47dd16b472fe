package escape

import "testing"

// Controls passed bytes that are not UTF-8 as they were: 0x9b alone is
// CSI to a terminal not set to UTF-8, so a pusher's output, an
// upstream's answer or a link's target could drive the terminal. Such
// bytes are escaped; valid UTF-8, C1 controls aside, is kept.
func TestControlsInvalidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a\x9b2Jb":                 `a\x9b2Jb`,
		"\x1b[2J":                  `\x1b[2J`,
		"\u009b2J":                 `\u009b2J`,
		"caf\xc3":                  `caf\xc3`,
		"\xc2":                     `\xc2`,
		"/nix/store/x-café-ünï-日本": "/nix/store/x-café-ünï-日本",
		"tab\tand\nnewline":        "tab\tand\nnewline",
		"del\x7f":                  `del\x7f`,
	} {
		if got := Controls(in); got != want {
			t.Errorf("Controls(%q) = %q, want %q", in, got, want)
		}
	}
}
