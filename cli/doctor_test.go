package cli

import (
	"strings"
	"testing"
)

func TestNixHookBugs(t *testing.T) {
	for _, c := range []struct {
		major, minor, patch int
		level, mention      string
	}{
		{2, 8, 0, checkWarning, "#6446"},
		{2, 8, 1, checkOK, "no known"},
		{2, 29, 9, checkOK, "no known"},
		{2, 30, 0, checkWarning, "#14287"},
		{2, 31, 5, checkWarning, "#14287"},
		{2, 32, 2, checkWarning, "#14287"},
		{2, 32, 3, checkOK, "no known"},
		{2, 33, 0, checkOK, "no known"},
	} {
		level, msg, _ := nixHookBugs(c.major, c.minor, c.patch)
		if level != c.level || !strings.Contains(msg, c.mention) {
			t.Errorf("%d.%d.%d: %s %q, want %s mentioning %q", c.major, c.minor, c.patch, level, msg, c.level, c.mention)
		}
	}
}
