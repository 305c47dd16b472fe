package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// A failed batch of 10,000 paths with a 1,000-byte error wrote 12 MB of
// records in one append: past the history's 4 MiB bound three times, so
// that every earlier record was rotated away. Its records now stay within
// a quarter of the bound beyond the last, whose error is whole.
func TestRecordFailedBigBatchKeepsTheHistory(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	before := mkPath("before-1.0").String()
	w.record("main", &result{pushed: []*queue.Entry{{Target: "main", Path: before}}})
	msg := "cachix: " + strings.Repeat("upstream connection refused; ", 34)
	failed := make([]*queue.Entry, 10000)
	for i := range failed {
		failed[i] = &queue.Entry{Target: "main", Path: mkPath("failed-1.0").String(), LastError: msg}
	}
	w.record("main", &result{failed: failed})
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var kept bool
	nFailed, whole, lastWhole := 0, 0, false
	for _, r := range recs {
		switch {
		case r.Path == before && r.Outcome == history.Pushed:
			kept = true
		case r.Outcome == history.Failed:
			nFailed++
			lastWhole = r.Reason == msg
			if lastWhole {
				whole++
			}
		}
	}
	if !kept || nFailed != len(failed) {
		t.Fatalf("history after a failed batch of %d: the record before kept %v, %d failed records", len(failed), kept, nFailed)
	}
	if whole != 1 || !lastWhole {
		t.Errorf("%d failed records hold the whole error (the newest: %v), want the newest alone", whole, lastWhole)
	}
}

// A batch of 10,000 paths dropped (or left out as upstream), each with a
// reason of some 500 bytes (closure_deny names the dependency and the
// rule), wrote 7 MB of records in one append: past the history's bound,
// so that the append rotated it, and earlier records went with the
// rotation. A reason that says the path was lost stays whole. Their reasons share the
// bound as a failed batch's do; the newest of each kind is whole.
func TestRecordDroppedBigBatchKeepsTheHistory(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	before := mkPath("before-1.0").String()
	w.record("main", &result{pushed: []*queue.Entry{{Target: "main", Path: before}}})
	why := `closure_deny = "skip": its closure contains ` + mkPath("secret-1").String() + ", " + strings.Repeat("denied by a long rule; ", 20)
	res := &result{reasons: map[string]string{}}
	for i := range 10000 {
		en := &queue.Entry{Target: "main", Path: mkPath(fmt.Sprintf("p-%d", i)).String()}
		if i%2 == 0 {
			en.Reason = why
			if i%10 == 0 {
				en.Reason = listGoneReason(mkPath("cachix-packages-" + strings.Repeat("x", 40)).String())
			}
			res.dropped = append(res.dropped, en)
		} else {
			res.upstream = append(res.upstream, en)
			res.reasons[en.Key()] = "already in https://cache.example.org/" + strings.Repeat("x", 400)
		}
	}
	w.record("main", res)
	// Within the bound, the append did not rotate: the record before
	// it is kept however large it is.
	if fi, err := os.Stat(filepath.Join(e.q.Dir, history.File+".1")); err == nil {
		t.Errorf("one append of 10000 dropped and upstream records rotated the history (%d bytes rotated)", fi.Size())
	}
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	kept, n, whole, lost := false, 0, 0, 0
	for _, r := range recs {
		switch {
		case r.Path == before && r.Outcome == history.Pushed:
			kept = true
		case r.Outcome == history.Dropped || r.Outcome == history.Upstream:
			n++
			if Lost(r.Reason) {
				lost++
			}
			if r.Reason == why || len(r.Reason) > 400 {
				whole++
			}
		}
	}
	if !kept || n != 10000 {
		t.Fatalf("history after a batch of 10000 dropped and upstream: the record before kept %v, %d of their records", kept, n)
	}
	if lost != 1000 {
		t.Errorf("%d records say their path was lost, want 1000: wait tells those from drops by the rules by their reasons", lost)
	}
	if whole != 2 {
		t.Errorf("%d records hold their whole reason, want 2 (the newest of each kind)", whole)
	}
}

// A pushed path's record under closure_deny = "push" is the only one
// that says its denied dependency left the machine, and `log --path`
// finds it by the path its reason names (AlsoUploaded). In a batch of
// thousands, each reason cut to its share of the budget lost the end of
// a long dependency's name, and `log --path NAME` missed it.
func TestRecordAlsoUploadedKeepsTheDependency(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	w := e.worker(nil)
	dep := mkPath("secret-key-" + strings.Repeat("x", 120)).String()
	why := fmt.Sprintf(alsoUploaded+"%s (deny %q) inside its closure (closure_deny = \"push\")", dep, "secret-*")
	res := &result{reasons: map[string]string{}}
	for i := range 10000 {
		en := &queue.Entry{Target: "main", Path: mkPath(fmt.Sprintf("p-%d", i)).String()}
		res.pushed = append(res.pushed, en)
		res.reasons[en.Key()] = why
	}
	w.record("main", res)
	recs, err := history.Read(e.q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	n, named := 0, 0
	for _, r := range recs {
		if r.Outcome == history.Pushed {
			n++
			if AlsoUploaded(r.Reason) == dep {
				named++
			}
		}
	}
	if n != 10000 || named != n {
		t.Errorf("%d of %d pushed records name the dependency their closure uploaded whole, want all 10000", named, n)
	}
}
