package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// forget printed what it read from the queue directory as it was: the
// name of a file set aside in corrupt/ (any name put in entries/) and a
// dropped entry's reason (a pusher's words, an error quoting a file).
// An escape sequence there reached the terminal. Its lines are escaped
// as status's are.
func TestForgetEscapesWhatItRead(t *testing.T) {
	q, file := mainQueue(t)
	if err := os.MkdirAll(filepath.Join(q.Dir, "corrupt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q.Dir, "corrupt", "x\x1b]0;owned\x07\u202e"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, "/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-one-1.0")
	if n, err := q.Add([]queue.Pair{{Target: "main", Path: p}}, time.Now()); err != nil || n != 1 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	en, ok := q.Get(queue.Key("main", p))
	if !ok {
		t.Fatal("the entry is not queued")
	}
	if err := q.Drop(en, "cachix: \x1b[2J\x1b]0;owned\x07"); err != nil {
		t.Fatal(err)
	}
	e, _, out := loadedEnv(t, file)
	if st := runForget(e, &forgetOptions{corrupt: true, dropped: true, dryRun: true}); st != 0 {
		t.Fatalf("forget exited %d:\n%s", st, out)
	}
	if s := out.String(); strings.ContainsAny(s, "\x1b\x07\u202e") || !strings.Contains(s, `x\x1b]0;owned\x07\u202e`) || !strings.Contains(s, `cachix: \x1b[2J`) {
		t.Errorf("forget printed what it read as it is: %q", s)
	}
}
