package worker

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// factState holds what the size, unsubstitutable, upstream and closure
// rules read about paths, gathered per batch right before pushing, where
// the other rules are re-applied: one Nix query for the batch, not one
// per path. Jobs running at once share it, one at a time.
type factState struct {
	mu     sync.Mutex
	gather *pathfacts.Gatherer // remembers sizes, .drv and upstream answers for the worker's lifetime
	// nix asks Nix for the batches of a burst through one nix-store
	// process (see nixstore.Session): starting one per batch was most of
	// a small batch's query.
	nix *nixstore.Session
}

type factMap map[string]*policy.Facts

// query asks Nix, in one call, for what the job's rules read: the facts
// of its paths and, when the target has a closure rule, their closures
// (one recursive nixstore.PathInfos brings both), and the upstream
// caches about the paths they would leave out. What push or the hook
// learnt as it queued a path comes with its entry and is not asked again. j.facts.mu
// is held.
func (j *job) query(ctx context.Context, log *logrus.Entry, r *result) (closures, factMap, error) {
	t := j.target
	storeDir := storepath.StoreDir()
	paths := make([]storepath.Path, 0, len(j.entries))
	roots := make([]string, 0, len(j.entries))
	listed := map[string][]policy.Listing{}
	for _, e := range j.entries {
		p, err := storepath.Parse(storeDir, e.Path)
		if err != nil {
			continue
		}
		paths = append(paths, p)
		if e.Listed != "" {
			// Asked about as a path a pattern selects: the list's own
			// checks come right before deciding (lists.go).
			listed[e.Path] = []policy.Listing{{List: e.Listed, Targets: []string{t.Name}}}
		}
		if policy.Selects(t, p, listed[e.Path]) {
			roots = append(roots, e.Path)
		}
	}
	if !policy.NeedsOf(j.cfg).Any() {
		if !policy.DeniesByName(t) {
			return closures{}, nil, nil
		}
		of, err := j.facts.nix.Closures(ctx, roots...)
		return closures{of: of, err: err}, nil, nil
	}
	g := j.facts.gather
	g.Listed = listed
	g.Expect(len(j.entries))
	for _, e := range j.entries {
		if f := e.Facts; f != nil {
			g.Seed(e.Path, f.NarSize, f.Deriver, f.Substitutes)
		}
	}
	facts, err := g.Gather(ctx, j.cfg, paths, policy.DeniesByName(t) || t.MaxNarSize > 0)
	round := g.LastUpstreamRound()
	for _, msg := range round.Warnings {
		log.Warn(msg)
	}
	r.upstreams = round
	if err != nil {
		log.WithError(err).Warn("cannot ask Nix for path sizes and derivers; the targets whose rules need them wait for a retry")
		return closures{err: err}, nil, err
	}
	warnUnreachable(log, facts)
	cl := closures{}
	if policy.DeniesByName(t) || t.MaxNarSize > 0 {
		// Loaded by Gather: no further Nix call. Whole only where the
		// closure rule has something to say (see pathfacts.RuleClosures).
		cs, err := g.RuleClosures(ctx, j.cfg, roots)
		cl.err = err
		cl.of = map[string][]string{}
		for r, c := range cs {
			cl.of[r] = c.Paths
		}
	}
	return cl, facts, nil
}

// warnUnreachable says once per upstream that did not answer.
func warnUnreachable(log *logrus.Entry, facts factMap) {
	unreachable := map[string]string{}
	for _, f := range facts {
		for u, why := range f.Unreachable {
			unreachable[u] = why
		}
	}
	urls := make([]string, 0, len(unreachable))
	for u := range unreachable {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		log.WithFields(logrus.Fields{"upstream": u, "error": unreachable[u]}).Warn("upstream did not answer; its paths are pushed")
	}
}

// factsFailed is the error that keeps the job's batch from being pushed
// when the facts its rules need could not be gathered: pushing blind
// could upload a path max_nar_size or unsubstitutable leave out.
func (j *job) factsFailed(err error) error {
	t := j.target
	if err == nil || t.MaxNarSize <= 0 && t.Unsubstitutable != config.UnsubstSkip {
		return nil
	}
	return fmt.Errorf("not pushed, the rules need facts Nix did not give: %w", err)
}
