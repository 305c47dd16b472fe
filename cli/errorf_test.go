package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What push and explain say of an argument they cannot use holds the
// argument and where its symlinks lead, which anyone who made the link
// chose: control characters in them reach the terminal escaped, never
// as they are (a title, a cleared screen, a forged line).
func TestArgumentControlCharactersEscaped(t *testing.T) {
	store := t.TempDir()
	t.Setenv("NIX_STORE_DIR", store)
	_, file := mainQueue(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "result")
	if err := os.Symlink("/tmp/\x1b]2;owned\x07\x1b[2J\r\u009b1m", link); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{link}, {"./\x1b[31mred"}} {
		var out bytes.Buffer
		e := &env{ctx: context.Background(), configFlag: file, args: args, stdout: &out, stderr: &out}
		if st := runExplain(e, &explainOptions{}); st != 1 {
			t.Errorf("explain %q: exit %d", args, st)
		}
		if s := out.String(); strings.ContainsAny(s, "\x1b\x07\r\u009b") || !strings.Contains(s, `\x1b`) {
			t.Errorf("explain %q says %q", args, s)
		}
	}
}
