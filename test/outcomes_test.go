package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// ocRecord is a line of `log --json`.
type ocRecord struct {
	Target  string `json:"target"`
	Path    string `json:"path"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	Batch   int    `json:"batch"`
}

func ocLog(t *testing.T, e *Env, args ...string) []ocRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	out, errOut, code := e.Run(ctx, append([]string{"log", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("log --json exited %d: %s", code, errOut)
	}
	var recs []ocRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r ocRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log --json line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// The record of outcomes, end to end: a path pushed, one dropped by
// closure_deny = "skip" and one cachix keeps rejecting. wait exits 1
// naming the dropped path; log lists all three with their reasons; status
// counts them.
func TestOutcomesPushedDroppedFailed(t *testing.T) {
	e := NewEnv(t, `
cache = "mycache"
allow = ["app-*", "bad-*"]
deny = ["secret-*"]
closure_deny = "skip"

[cachix]
bin = "@CACHIX@"
`)
	plSetVar(e, "CACHIX_STANDIN_FAIL_PATHS", "*-bad-*")
	s := nixtest.Salt()

	// Phase 1: pushed and dropped. The lock keeps the hooks' workers
	// out, so that wait sees the outcomes happen.
	unlock := plLockQueue(t, e.Queue)
	paths, _ := e.Build(fmt.Sprintf("let dep = %s; in [ dep (%s) (%s) ]",
		nixtest.Drv(s, "secret-dep-1.0", nil), nixtest.Drv(s, "app-1.0", nil, "dep"), nixtest.Drv(s, "app-clean-1.0", nil)))
	byName := nixtest.ByName(paths)
	dep, app, clean := byName["secret-dep-1.0"], byName["app-1.0"], byName["app-clean-1.0"]
	if n := e.QueueEntries(); n != 2 {
		t.Fatalf("%d entries queued, want app-1.0 and app-clean-1.0", n)
	}
	unlock()
	ctx, cancel := context.WithTimeout(context.Background(), eventually.Left(t))
	defer cancel()
	// The drop is the closure rule's verdict, not a failure: exit 0
	// (issue 18), with the drop listed and its rule.
	out, errOut, code := e.Run(ctx, "wait", "--timeout", eventually.Left(t).String())
	if code != 0 {
		t.Fatalf("wait exited %d, want 0 (a path was left out by the rules):\n%s%s\nworker log:\n%s", code, out, errOut, e.Log())
	}
	if !strings.Contains(errOut, "pushed 1 path to mycache in ") {
		t.Errorf("wait's summary does not say what was pushed:\n%s", errOut)
	}
	var dropLine string
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, app) {
			dropLine = l
		}
	}
	if !strings.Contains(errOut, "left out by the rules: 1 (not pushed, as the rules decided after it was queued)") || !strings.Contains(dropLine, dep) || !strings.Contains(dropLine, `"secret-*"`) {
		t.Errorf("wait does not name the dropped path with its reason:\n%s", errOut)
	}
	if strings.Contains(errOut, "\x1b[") || strings.Contains(errOut, "\r") {
		t.Errorf("wait wrote terminal control sequences to a pipe:\n%q", errOut)
	}

	// -q: nothing but what was not pushed (nothing now: wait waited for
	// nothing).
	out, errOut, code = e.Run(ctx, "wait", "-q", "--timeout", eventually.Left(t).String())
	if code != 0 || out != "" || errOut != "" {
		t.Errorf("wait -q on an empty queue: exit %d, output %q %q", code, out, errOut)
	}

	// Phase 2: a path cachix keeps rejecting.
	t.Cleanup(func() {
		plStopWorkers(t, e)
		os.RemoveAll(filepath.Join(e.Queue, "entries"))
		os.RemoveAll(filepath.Join(e.Queue, "bulk"))
	})
	paths2, _ := e.Build(nixtest.Drv(s, "app-bad-1.0", nil))
	bad := nixtest.ByName(paths2)["app-bad-1.0"]
	// The hook queued it; once it has failed (a state, not a time),
	// push --wait of it reports the failure when it gives up.
	eventually.True(t, eventually.Left(t), "the bad path to fail", func() bool {
		_, st := plStatusJSON(t, e)
		return len(st.Targets) == 1 && st.Targets[0].Failing == 1
	})
	out, errOut, code = e.Run(ctx, "push", "--wait", "-q", "--timeout", "2s", bad)
	if code != 3 || !strings.Contains(errOut, bad) || !strings.Contains(errOut, "simulated failure") {
		t.Errorf("push --wait of a failing path: exit %d, want 3 naming it and the error:\n%s%s", code, out, errOut)
	}

	recs := ocLog(t, e)
	got := map[string]ocRecord{}
	for _, r := range recs {
		if r.Target != "mycache" {
			t.Errorf("record for target %q", r.Target)
		}
		if _, seen := got[r.Path]; !seen || r.Outcome != "failed" {
			got[r.Path] = r
		}
	}
	if r := got[clean]; r.Outcome != "pushed" || r.Batch < 1 {
		t.Errorf("record for %s: %+v, want pushed", clean, r)
	}
	if r := got[app]; r.Outcome != "dropped" || !strings.Contains(r.Reason, dep) || !strings.Contains(r.Reason, "closure_deny") {
		t.Errorf("record for %s: %+v, want dropped naming %s", app, r, dep)
	}
	if r := got[bad]; r.Outcome != "failed" || !strings.Contains(r.Reason, "simulated failure for "+bad) {
		t.Errorf("record for %s: %+v, want failed with cachix's error", bad, r)
	}
	if _, ok := got[dep]; ok {
		t.Errorf("the denied %s has a record: it was never selected", dep)
	}
	if len(got) != 3 {
		t.Errorf("records for %d paths, want 3: %+v", len(got), recs)
	}

	// Filters.
	if r := ocLog(t, e, "--path", "app-clean-*"); len(r) != 1 || r[0].Path != clean {
		t.Errorf("log --path app-clean-*: %+v", r)
	}
	if r := ocLog(t, e, "--target", "other"); len(r) != 0 {
		t.Errorf("log --target other: %+v", r)
	}
	if r := ocLog(t, e, "--since", "1h", "--path", app); len(r) != 1 || r[0].Outcome != "dropped" {
		t.Errorf("log --since 1h --path %s: %+v", app, r)
	}
	text, _, _ := e.Run(ctx, "log")
	for _, want := range []string{"pushed  mycache " + clean, "dropped mycache " + app + ": closure_deny", "failed  mycache " + bad} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}

	// status counts them and shows the last errors and the files in use.
	st := plStatusText(t, e)
	for _, want := range []string{"config " + e.Conf, "log " + filepath.Join(e.Queue, "worker.log"), "1 pending, 1 failing, 1 dropped", "last dropped", "failing " + bad} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
}
