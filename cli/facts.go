package cli

import (
	"maps"
	"slices"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// gatherFacts gathers what the size, unsubstitutable and upstream rules
// read about paths (one batched Nix query; see pathfacts). On failure it
// warns and returns none: push queues by the patterns alone and the
// worker, which checks again before pushing, holds the paths back.
func (e *env) gatherFacts(c *config.Config, paths []storepath.Path) map[string]*policy.Facts {
	return e.gatherFactsWith(pathfacts.New(c), c, paths)
}

// gatherFactsWith is gatherFacts with a Gatherer that may know some
// paths already (see pathfacts.Gatherer.Closure).
func (e *env) gatherFactsWith(g *pathfacts.Gatherer, c *config.Config, paths []storepath.Path) map[string]*policy.Facts {
	facts, err := g.Gather(e.ctx, c, paths, false)
	if err != nil {
		e.errorf("warning: max_nar_size and unsubstitutable not applied: %v", err)
		return nil
	}
	for _, w := range g.LastUpstreamRound().Warnings {
		e.errorf("warning: %s", w)
	}
	warned := map[string]bool{}
	for _, p := range paths {
		f := facts[p.String()]
		if f == nil || len(f.Unreachable) == 0 {
			continue
		}
		for _, u := range slices.Sorted(maps.Keys(f.Unreachable)) {
			if !warned[u] {
				warned[u] = true
				e.errorf("warning: upstream %s did not answer (%s): its paths are pushed", u, f.Unreachable[u])
			}
		}
	}
	return facts
}
