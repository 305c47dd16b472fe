package pathfacts

import (
	"context"
	"os"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// nixNow answers PathInfos from what is registered now, and counts the
// calls.
type nixNow struct {
	registered map[string]nixstore.PathInfo
	calls      int
}

func (n *nixNow) PathInfos(_ context.Context, _ bool, paths ...string) (map[string]nixstore.PathInfo, error) {
	n.calls++
	out := map[string]nixstore.PathInfo{}
	for _, p := range paths {
		info, ok := n.registered[p]
		if !ok {
			info = nixstore.PathInfo{Path: p}
		}
		out[p] = info
	}
	return out, nil
}

// A path on disk that Nix did not hold valid when asked (garbage
// collection invalidates a path before it deletes it) is asked about
// again once it is back, as the worker's nix-store session itself sees
// it (narinfo-cache-negative-ttl 0): kept as not valid for the
// Gatherer's lifetime (a worker's), the rebuilt path got no facts, so
// max_nar_size did not apply to it, and with a deny rule the worker
// dropped it as not a valid path.
func TestGatherAsksAgainAboutAPathNotValid(t *testing.T) {
	store := t.TempDir()
	t.Setenv("NIX_STORE_DIR", store)
	p := storePath(1, "image-1.0")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	sp, err := storepath.Parse(store, p)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filter.Compile([]string{"*"}, []string{"*-doc"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Targets: []*config.Target{{Name: "main", Store: "file:///c", Allow: []string{"*"}, Deny: []string{"*-doc"},
		ClosureDeny: config.ClosureSkip, Rules: rules, MaxNarSize: 1 << 30}}}
	nix := &nixNow{registered: map[string]nixstore.PathInfo{}}
	g := NewWith(cfg, nix)
	ctx := context.Background()
	if facts, err := g.Gather(ctx, cfg, []storepath.Path{sp}, true); err != nil || facts[p] != nil {
		t.Fatalf("Gather of a path not valid = %v, %v; want no facts", facts, err)
	}
	nix.registered[p] = nixstore.PathInfo{Path: p, Valid: true, NarSize: 2 << 30}
	facts, err := g.Gather(ctx, cfg, []storepath.Path{sp}, true)
	if err != nil {
		t.Fatal(err)
	}
	if f := facts[p]; f == nil || f.NarSize != 2<<30 {
		t.Errorf("Gather once %s is valid = %+v (%d Nix calls), want its size", p, f, nix.calls)
	}
	cs, err := g.RuleClosures(ctx, cfg, []string{p})
	if err != nil || cs[p] == nil {
		t.Errorf("RuleClosures once %s is valid = %v, %v; want its closure", p, cs, err)
	}
}
