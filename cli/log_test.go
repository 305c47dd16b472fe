package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
)

// Under closure_deny = "push" a denied dependency goes up inside the
// closure of the path that needs it, and only that path's record names
// it: log --path matched the record's own path alone, so asking whether
// the secret left the machine found nothing.
func TestLogPathFindsWhatAClosureUploaded(t *testing.T) {
	q, file := mainQueue(t)
	app := "/nix/store/a9r346p3d25vs4g5v37f3r3f28js97kb-app-1.0"
	secret := "/nix/store/b9r346p3d25vs4g5v37f3r3f28js97kb-secret-1"
	other := "/nix/store/d9r346p3d25vs4g5v37f3r3f28js97kb-other-1"
	now := time.Now()
	recs := []history.Record{
		{Time: now, Target: "main", Path: app, Outcome: history.Pushed, Batch: 2, Duration: time.Second,
			Reason: `also uploaded ` + secret + ` (deny "secret-*") inside its closure (closure_deny = "push")`},
		{Time: now, Target: "main", Path: other, Outcome: history.Pushed, Batch: 2, Duration: time.Second},
		// A drop that names it: under "skip" it did not go up.
		{Time: now, Target: "main", Path: other, Outcome: history.Dropped,
			Reason: `closure_deny = "skip": its closure contains ` + secret + `, denied by "secret-*"`},
	}
	if err := history.Append(q.Dir, history.MaxSize, recs); err != nil {
		t.Fatal(err)
	}
	e, _, out := loadedEnv(t, file)
	if code := runLog(e, &logOptions{glob: "secret-*"}); code != 0 {
		t.Fatalf("log exited %d:\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "pushed  main "+app) || !strings.Contains(lines[0], "also uploaded "+secret) {
		t.Errorf("log --path 'secret-*' = %q, want the one record of app-1.0 that uploaded it", lines)
	}
}
