package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
)

// corrupt_entries counts what corrupt/ holds, as status --prometheus
// does: a running worker counted the entries it had found unreadable,
// for as long as it ran, after forget --corrupt had removed them.
func TestMetricsCorruptEntries(t *testing.T) {
	fakeStore(t)
	e := newEnv(t, mkTarget(t, "main", []string{"*"}, nil))
	e.cfg.Metrics.File = filepath.Join(t.TempDir(), "m.prom")
	bad := filepath.Join(e.q.Dir, "entries", queue.Key("main", mkPath("bad-1")))
	if err := os.WriteFile(bad, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := func(want string) {
		t.Helper()
		data, _ := os.ReadFile(e.cfg.Metrics.File)
		if !strings.Contains(string(data), "\ncachix_filter_hook_corrupt_entries "+want+"\n") {
			t.Errorf("want corrupt_entries %s:\n%s", want, data)
		}
	}
	w := e.worker(nil)
	w.state = LoadState(e.q.Dir)
	now := time.Now()
	w.scan(now) // sets it aside in corrupt/
	w.writeMetrics(now, true)
	corrupt("1")

	names, err := e.q.CorruptNames()
	if err != nil || len(names) != 1 {
		t.Fatalf("corrupt/ holds %q, %v", names, err)
	}
	if err := e.q.RemoveCorrupt(names[0]); err != nil { // forget --corrupt
		t.Fatal(err)
	}
	w.writeMetrics(now.Add(droppedRecount+time.Second), true)
	corrupt("0")
}
