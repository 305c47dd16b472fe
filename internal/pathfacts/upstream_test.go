package pathfacts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/upstream"
)

// Targets that share an upstream (cache.nixos.org for all, typically)
// ask it once a path, not once a target: each question more is load on
// it and time out of the round's deadline.
func TestUpstreamAskedOncePerPath(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	rules, err := filter.Compile([]string{"*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	for _, name := range []string{"a", "b", "c"} {
		cfg.Targets = append(cfg.Targets, &config.Target{Name: name, Store: "file:///" + name, Allow: []string{"*"}, Rules: rules, Upstream: []string{srv.URL}})
	}
	p := storePath(1, "hello-2.12.1")
	sp, err := storepath.Parse(storepath.StoreDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gatherer{nix: nixstore.Nix{BinDir: t.TempDir()}, upstream: upstream.New(5*time.Second, time.Minute), infos: map[string]nixstore.PathInfo{}, closed: map[string]bool{}, drvs: map[string]string{}}
	g.Seed(p, 0, "", "") // in the store, as far as Gather knows
	facts, err := g.Gather(context.Background(), cfg, []storepath.Path{sp}, false)
	if err != nil {
		t.Fatal(err)
	}
	if has, ok := facts[p].Upstream[srv.URL]; !ok || has {
		t.Errorf("facts = %+v, want not in the upstream", facts[p])
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests for one path to one upstream shared by 3 targets, want 1", n)
	}
}
