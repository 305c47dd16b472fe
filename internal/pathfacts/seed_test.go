package pathfacts

import (
	"context"
	"testing"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// What an entry brings is not asked of Nix again; a size it does not
// bring (0: the hook's entries) is, when a rule reads sizes. Nix here is
// a directory without it: a call fails.
func TestGatherSeeded(t *testing.T) {
	rules, err := filter.Compile([]string{"*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := storePath(1, "hello-2.12.1")
	sp, err := storepath.Parse(storepath.StoreDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	drv := storePath(2, "hello-2.12.1.drv")
	for _, c := range []struct {
		name    string
		maxSize int64
		size    int64
		askNix  bool
	}{
		{"the hook's deriver, no size rule", 0, 0, false},
		{"the hook's deriver, a size rule", 1 << 20, 0, true},
		{"push's size and deriver, a size rule", 1 << 20, 500, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &config.Config{Targets: []*config.Target{{Name: "main", Store: "file:///c", Allow: []string{"*"}, Rules: rules,
				Unsubstitutable: config.UnsubstSkip, MaxNarSize: c.maxSize}}}
			g := &Gatherer{nix: nixstore.Nix{BinDir: t.TempDir()}, infos: map[string]nixstore.PathInfo{}, closed: map[string]bool{}, drvs: map[string]string{}}
			g.Seed(p, c.size, drv, policy.SubstDenied)
			facts, err := g.Gather(context.Background(), cfg, []storepath.Path{sp}, false)
			if c.askNix {
				if err == nil {
					t.Errorf("Gather = %+v, nil: a size not known was not asked of Nix", facts[p])
				}
				return
			}
			if err != nil {
				t.Fatalf("Gather asked Nix: %v", err)
			}
			f := facts[p]
			if f == nil || f.Deriver != drv || f.Substitutes != policy.SubstDenied || f.NarSize != c.size {
				t.Errorf("facts = %+v, want the seeded deriver, %q and size %d", f, policy.SubstDenied, c.size)
			}
		})
	}
}
