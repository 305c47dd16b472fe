package worker

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// factState holds the facts of the paths about to be pushed: gathered
// once per round for all its batches (one Nix query, not one per batch or
// per path), right before pushing, where the other rules are re-applied.
type factState struct {
	gather *pathfacts.Gatherer // remembers sizes, .drv and upstream answers for the worker's lifetime
	of     map[string]*policy.Facts
	err    error
}

// prefetch gathers the facts of every path in batches.
func (w *Worker) prefetch(ctx context.Context, batches []batch) {
	w.facts.of, w.facts.err = nil, nil
	if !policy.NeedsOf(w.cfg).Any() {
		return
	}
	storeDir := storepath.StoreDir()
	var paths []storepath.Path
	closure := false
	for _, b := range batches {
		// closure_deny = "skip" leaves out a path whose closure holds
		// one larger than max_nar_size, and "push" says it uploads it:
		// that needs the closure's sizes.
		closure = closure || b.target.MaxNarSize > 0
		for _, e := range b.entries {
			if p, err := storepath.Parse(storeDir, e.Path); err == nil {
				paths = append(paths, p)
			}
		}
	}
	w.facts.of, w.facts.err = w.facts.gather.Gather(ctx, w.cfg, paths, closure)
	round := w.facts.gather.LastUpstreamRound()
	for _, msg := range round.Warnings {
		w.log.Warn(msg)
	}
	if len(round.Asked) > 0 {
		w.state.upstreams(w.q.Dir, round.Asked, round.Slow, time.Now())
	}
	if w.facts.err != nil {
		w.log.WithError(w.facts.err).Warn("cannot ask Nix for path sizes and derivers; the targets whose rules need them wait for a retry")
		return
	}
	unreachable := map[string]string{}
	for _, f := range w.facts.of {
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
		w.log.WithFields(logrus.Fields{"upstream": u, "error": unreachable[u]}).Warn("upstream did not answer; its paths are pushed")
	}
}

// inUpstream finishes an entry whose path an upstream cache already has:
// nothing is uploaded, and since the path can be had, it is no failure
// (`wait` does not report it as dropped); the log and the history say so.
func (w *Worker) inUpstream(log *logrus.Entry, t *config.Target, e *queue.Entry, reason string) {
	log.WithFields(logrus.Fields{"path": e.Path, "reason": reason}).Info("not pushed")
	if err := w.q.Remove(e); err != nil {
		w.queueFailed(log, e, "not pushed (already upstream), but removing the queue entry failed", err, time.Now())
		return
	}
	w.record(t.Name, []*queue.Entry{e}, history.Upstream, reason, 0)
	delete(w.entries, e.Key())
}

// factsFailed is the error that keeps a batch of t from being pushed when
// the facts its rules need could not be gathered: pushing blind could
// upload a path max_nar_size or unsubstitutable leave out.
func (w *Worker) factsFailed(t *config.Target) error {
	if w.facts.err == nil || t.MaxNarSize <= 0 && t.Unsubstitutable != config.UnsubstSkip {
		return nil
	}
	return fmt.Errorf("not pushed, the rules need facts Nix did not give: %w", w.facts.err)
}
