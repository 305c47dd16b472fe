package test

import (
	"slices"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

// A build's path is pushed at once when nothing is being pushed (no
// timer holds it), and while that push runs, the path of a nix-build that
// has returned goes at once too, beside it: that nix-build builds
// nothing more, so gathering for the running push to end would only delay
// it (issue 22: the last build of a burst waited for a quiet timer and
// for the push before it). Each push here sleeps 20 s first.
func TestBatchingBesideRunningPush(t *testing.T) {
	t.Parallel()
	e := NewEnv(t, `
cache = "beside"
allow = ["*"]

[cachix]
bin = "@CACHIX@"
`)
	plSetVar(e, "CACHIX_STANDIN_DELAY", "20s")
	s := nixtest.Salt()
	first, _ := e.Build(nixtest.Drv(s, "first-1.0", nil))
	eventually.True(t, time.Minute, "the first push to start", func() bool { return len(plStandinPIDs(e)) == 1 })
	second, _ := e.Build(nixtest.Drv(s, "second-1.0", nil))
	// Well within the first push's 20 s.
	eventually.True(t, 15*time.Second, "a second push beside the first", func() bool { return len(plStandinPIDs(e)) == 2 })
	if n := len(e.Invocations()); n != 0 {
		t.Fatalf("%d pushes ended already: the timing of this test does not hold", n)
	}
	e.Wait(2 * time.Minute)
	var calls [][]string
	for _, inv := range e.Invocations() {
		if inv.Exit != 0 {
			t.Errorf("a push failed: %+v", inv)
		}
		calls = append(calls, inv.Paths)
	}
	if len(calls) != 2 || !slices.ContainsFunc(calls, func(c []string) bool { return slices.Equal(c, first) }) ||
		!slices.ContainsFunc(calls, func(c []string) bool { return slices.Equal(c, second) }) {
		t.Errorf("pusher calls %q, want one of %q and one of %q", calls, first, second)
	}
}
