package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/upstream/upstreamtest"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// explain and push --dry-run printed their verdict lines as they were,
// and a line holds what an upstream said when it did not answer: a
// server (or whoever answers for its name) whose certificate names
// "\x1b]0;...\x07" made Go's error, and so the line, carry that to the
// terminal. The lines are escaped as status's are.
func TestExplainEscapesUpstreamError(t *testing.T) {
	up := upstreamtest.TLSNamed(t, "\x1b]0;owned\x07\x1b[2J")
	w := newWorld(t, []vpath{{name: "app-1.0", given: true}},
		"[nix]\nbin_dir = \"@BIN@\"\n[[target]]\nname = \"main\"\nstore = \"@PUSHER@\"\nallow = [\"*\"]\nupstream = [\""+up+"\"]\n")
	w.queueDir(t, "explain")
	for _, args := range [][]string{{"explain"}, {"push", "--dry-run"}} {
		st, out, errs := w.cmd(t, append(args, w.args...)...)
		if st != 0 || !strings.Contains(out, "did not answer") {
			t.Fatalf("%s: exit %d, no upstream error:\n%s%s", args[0], st, out, errs)
		}
		if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\x1b]0;owned\x07`) {
			t.Errorf("%s printed the upstream's words as they are: %q", strings.Join(args, " "), out)
		}
	}
}

// push printed its line, which says why the last worker could not start
// (from state.json: an error that may quote where another user's symlink
// leads), as it was, where the hook and watch-exec escape that line.
func TestPushEscapesStartError(t *testing.T) {
	w := newWorld(t, []vpath{{name: "app-1.0", given: true}},
		"[nix]\nbin_dir = \"@BIN@\"\n[[target]]\nname = \"main\"\nstore = \"@PUSHER@\"\nallow = [\"*\"]\n")
	dir, _ := w.queueDir(t, "push")
	defer holdWorker(t, dir)()
	st := worker.State{StartError: &worker.StartError{Time: time.Now(), Error: "log.file: /var/log/x leads to \x1b]0;owned\x07\x1b[2J"}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := w.cmd(t, append([]string{"push"}, w.args...)...)
	if code != 0 || !strings.Contains(out, "could not start") {
		t.Fatalf("push: exit %d, no start error:\n%s%s", code, out, errs)
	}
	if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\x1b]0;owned\x07`) {
		t.Errorf("push printed the start error as it is: %q", out)
	}
}
