package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// push - that cannot read all of standard input (a word longer than the
// scanner takes, a read error) says so and exits 1: the paths after the
// failure were never read, and an exit 0 would pass them for queued.
func TestPushStdinUnread(t *testing.T) {
	store := t.TempDir()
	t.Setenv("NIX_STORE_DIR", store)
	a := filepath.Join(store, "a0000000000000000000000000000000-app-1.0")
	b := filepath.Join(store, "b0000000000000000000000000000000-tool-1.0")
	for _, p := range []string{a, b} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, file := mainQueue(t)
	var out, errs bytes.Buffer
	e := &env{ctx: context.Background(), configFlag: file, args: []string{"-"},
		stdin:  strings.NewReader(a + "\n" + strings.Repeat("x", 100_000) + "\n" + b + "\n"),
		stdout: &out, stderr: &errs}
	st := runPush(e, &pushOptions{dryRun: true})
	if st != 1 || !strings.Contains(errs.String(), "standard input") {
		t.Errorf("push - exited %d, said:\n%s%s", st, &out, &errs)
	}
}
