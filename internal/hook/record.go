package hook

import (
	"slices"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pushed"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Record answers whether a path was pushed to a target, from the records
// the worker keeps in the queue directory (package pushed). A nil Record
// knows of nothing.
type Record struct {
	cfg  *config.Config
	dir  string
	now  time.Time
	recs map[string]*pushed.Record
}

// OpenRecord opens the records of cfg's queue directory, once that passed
// the queue's checks (a record decides what is not uploaded, so it must
// be root's own). It returns nil when queue.remember_pushed is 0.
func OpenRecord(cfg *config.Config) (*Record, error) {
	if cfg.Queue.RememberPushed <= 0 {
		return nil, nil
	}
	q, err := queue.Open(cfg.Queue.Dir)
	if err != nil {
		return nil, err
	}
	return newRecord(cfg, q.Dir), nil
}

// newRecord is a Record of dir, a queue directory that passed its checks.
func newRecord(cfg *config.Config, dir string) *Record {
	return &Record{cfg: cfg, dir: dir, now: time.Now(), recs: map[string]*pushed.Record{}}
}

// Has reports whether p was recorded as pushed to the target.
func (r *Record) Has(target string, p storepath.Path) bool {
	if r == nil {
		return false
	}
	rec, ok := r.recs[target]
	if !ok {
		if t := r.cfg.Target(target); t != nil {
			// A record that cannot be read counts as empty: the path
			// is pushed again, which the pushers make cheap.
			rec, _ = pushed.OpenRead(r.dir, t.RecordKey(), r.cfg.Queue.RememberPushed)
		}
		r.recs[target] = rec
	}
	if rec == nil {
		return false
	}
	h, err := pushed.ParseHash(p.Hash)
	return err == nil && rec.Has(h, r.now)
}

// Close closes the records.
func (r *Record) Close() {
	if r == nil {
		return
	}
	for _, rec := range r.recs {
		rec.Close()
	}
}

// LeaveOut drops the pairs that pushedTo says went to their target
// already, counting them in Pushed, and recounts what is left.
func (s *Selection) LeaveOut(pushedTo func(target string, p storepath.Path) bool) {
	kept := make([]queue.Pair, 0, len(s.Pairs))
	for _, p := range s.Pairs {
		if pushedTo(p.Target, p.Path) {
			if s.Pushed == nil {
				s.Pushed = map[string]int{}
			}
			s.Pushed[p.Target]++
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(s.Pairs) {
		return
	}
	// Counted only when some pair went: a closure's 10,000 paths queued
	// for the first time leave nothing out.
	s.retain(kept, pushedTo)
}

// retain makes kept the pairs to queue, all the others being left out
// (gone says which), and recounts what the line says of them.
func (s *Selection) retain(kept []queue.Pair, gone func(target string, p storepath.Path) bool) {
	paths := make(map[storepath.Path]bool, len(kept))
	targets := map[string]bool{}
	for _, p := range kept {
		paths[p.Path] = true
		targets[p.Target] = true
	}
	s.Pairs = kept
	s.Selected = len(paths)
	// Not queued, so not dropped either.
	var notes []string
	var dropping []queue.Pair
	for i, p := range s.dropping {
		if !gone(p.Target, p.Path) {
			notes, dropping = append(notes, s.Dropping[i]), append(dropping, p)
		}
	}
	s.Dropping, s.dropping = notes, dropping
	if len(s.inside) > 0 {
		s.keepInside(kept)
	}
	var ts []string
	for _, t := range s.Targets {
		if targets[t] {
			ts = append(ts, t)
		}
	}
	s.Targets = ts
}

// insideNote is a path that a target uploads inside the closure of
// another, by, though its rules deny it (closure_deny = "push"): true
// only while by's pair is queued. note is what the line says, made when
// first needed (of v and td, the verdict of by; own: of dep's verdict).
type insideNote struct {
	target, dep, by string
	note            string
	own             bool
	v               policy.Verdict
	td              policy.TargetDecision
}

// insideSkip is the skip note of a path among those decided that is
// said as uploaded inside another's closure rather than skipped.
type insideSkip struct{ dep, note string }

// keepInside says again what goes up inside the closures of the pairs
// kept: of each dependency and target, the first path that uploads it
// still queued (its own verdict's first), and a path among those decided
// that nothing uploads any more is skipped.
func (s *Selection) keepInside(kept []queue.Pair) {
	queued := make(map[[2]string]bool, len(kept))
	for _, p := range kept {
		queued[[2]string{p.Target, p.Path.String()}] = true
	}
	chosen := map[[2]string]int{}
	for _, own := range []bool{true, false} {
		for i, n := range s.inside {
			k := [2]string{n.target, n.dep}
			if _, ok := chosen[k]; !ok && n.own == own && queued[[2]string{n.target, n.by}] {
				chosen[k] = i
			}
		}
	}
	s.Inside = nil
	uploaded := map[string]bool{}
	for i, n := range s.inside {
		if j, ok := chosen[[2]string{n.target, n.dep}]; !ok || j != i {
			continue
		}
		if n.note == "" {
			n.note = n.v.DependencyNote(n.td)
		}
		s.Inside = append(s.Inside, n.note)
		uploaded[n.dep] = true
	}
	for _, sk := range s.insideSkips {
		if !uploaded[sk.dep] {
			s.Skipped = append(s.Skipped, sk.note)
		}
	}
	s.insideSkips = slices.DeleteFunc(s.insideSkips, func(sk insideSkip) bool { return !uploaded[sk.dep] })
}
