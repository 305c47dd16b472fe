package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
)

// The summary counts what the history recorded after the wait began:
// pushed, already upstream, and each drop with its reason.
func TestProgressSummary(t *testing.T) {
	dir := t.TempDir()
	rec := func(path, outcome, reason string) history.Record {
		return history.Record{Time: time.Now(), Target: "main", Path: "/nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-" + path, Outcome: outcome, Reason: reason}
	}
	if err := history.Append(dir, history.MaxSize, []history.Record{rec("before-1", history.Pushed, "")}); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	e := &env{ctx: context.Background(), stderr: &stderr}
	p := newProgress(e, dir, []string{"main"}, false)
	if err := history.Append(dir, history.MaxSize, []history.Record{
		rec("a-1", history.Pushed, ""), rec("b-1", history.Pushed, ""),
		rec("c-1", history.Upstream, "in https://cache.nixos.org"),
		rec("d-1", history.Failed, "boom"), rec("d-1", history.Pushed, ""),
		rec("e-1", history.Dropped, "no longer in the store (garbage-collected)"),
	}); err != nil {
		t.Fatal(err)
	}
	if p.finish() {
		t.Error("finish reported success with a dropped path")
	}
	out := stderr.String()
	for _, want := range []string{
		"pushed 3 paths to main in ",
		"; 1 already upstream, not pushed\n",
		"dropped 1 (not pushed):\n  /nix/store/l9r346p3d25vs4g5v37f3r3f28js97kb-e-1 -> main: no longer in the store (garbage-collected)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "failed") || strings.Contains(out, "before-1") {
		t.Errorf("summary reports a failure that was retried, or a record from before the wait:\n%s", out)
	}
}
