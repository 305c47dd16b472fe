package test

import (
	"strings"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/eventually"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixtest"
)

func TestSmokeHookQueuesAndWorkerPushes(t *testing.T) {
	e := NewEnv(t, `
store = "file://@DIR@/cache"
allow = ["hello-*"]
deny = ["*-doc"]
`)
	s := nixtest.Salt()
	paths, log := e.Build("[ (" + nixtest.Drv(s, "hello-2.12.1", []string{"out", "doc"}) + ") (" + nixtest.Drv(s, "zlib-1.3", nil) + ") ]")
	if !strings.Contains(log, "cachix-filter-hook: queued 1 of 2 paths for file://") {
		t.Errorf("build log lacks the hook's line:\n%s", log)
	}
	e.Wait(eventually.Left(t))
	got := CachePaths(t, e.Dir+"/cache")
	for _, p := range paths {
		want := strings.HasSuffix(p, "-hello-2.12.1")
		if got[p] != want {
			t.Errorf("%s in cache = %v, want %v", p, got[p], want)
		}
	}
}
