package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// What wait lists as left (push --wait's paths and pins) came from the
// queue's files and the environment (NIX_STORE_DIR) and was printed as
// it was, where status escapes what it read: a terminal escape in it
// reached the terminal.
func TestWaitReportEscapesWhatItRead(t *testing.T) {
	q, file := mainQueue(t)
	t.Setenv("NIX_STORE_DIR", filepath.Join(t.TempDir(), "st\x1b[2Jore"))
	root := storepath.New(storepath.StoreDir(), "0123456789abcdfghijklmnpqrsvwxyz", "nixos-system-1")
	pins := []queue.Pin{{Target: "main", Path: root.String(), Name: "sys"}}
	if _, err := q.AddPins(pins, time.Now()); err != nil {
		t.Fatal(err)
	}
	e, c, out := loadedEnv(t, file)
	l := &leftInQueue{c: c, q: q, pairs: []queue.Pair{{Target: "main", Path: root}}}
	l.report(e)
	l.reportPins(e, pinKeys(pins))
	if got := out.String(); strings.Count(got, "\n") != 2 || strings.ContainsRune(got, 0x1b) || !strings.Contains(got, `st\x1b[2Jore`) {
		t.Errorf("wait lists, want 2 lines, the escape written as \\x1b:\n%q", got)
	}
}

// The outcomes wait says (drops, pins) come from the history, a file in
// the queue: its paths were printed as they were.
func TestWaitOutcomesEscapeWhatTheHistorySaid(t *testing.T) {
	q, file := mainQueue(t)
	e, _, out := loadedEnv(t, file)
	path := "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\x1b[2J\nmain: 0 pushed"
	recs := []history.Record{
		{Target: "main", Path: path, Outcome: history.Pinned, Pin: `"sys"`},
		{Target: "main", Path: path, Outcome: history.PinDropped, Pin: `"sys"`, Reason: "gone"},
	}
	reportPins(e, waitSpec{}, recs, nil)
	p := newProgress(e, q.Dir, []string{"main"}, true, nil)
	p.dropped = []history.Record{
		{Target: "main", Path: path, Outcome: history.Dropped, Reason: "deny"},
		{Target: "main", Path: path, Outcome: history.Dropped, Reason: worker.ReasonGone},
	}
	p.finish()
	got := out.String()
	if strings.ContainsRune(got, 0x1b) || strings.Contains(got, "\nmain: 0 pushed") {
		t.Errorf("wait says, want the escape and the newline escaped:\n%q", got)
	}
}
