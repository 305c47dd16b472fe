// Package pathfacts gathers what the size, unsubstitutable and upstream
// rules read about store paths: NAR sizes and derivers from one batched
// Nix query, allowSubstitutes from each deriver's .drv file, and the
// upstream caches' answers. push, explain and the worker use it; the hook
// does not (it runs no Nix command: it reads allowSubstitutes from the .drv
// it is given).
package pathfacts

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/upstream"
)

// maxCached bounds the path infos and .drv answers a Gatherer keeps.
const maxCached = 200_000

// Gatherer gathers facts and remembers them for its lifetime (a worker's,
// or one command's): a store path's size and deriver never change.
type Gatherer struct {
	nix      nixstore.Infos
	upstream *upstream.Checker
	infos    map[string]nixstore.PathInfo
	closed   map[string]bool   // paths whose closure's infos are loaded
	drvs     map[string]string // .drv path: a policy.Subst* value
	round    UpstreamRound     // of the last Gather
	// Listed are the package lists that name each path (set by the
	// caller): a path a list selects is asked about as one a pattern
	// selects. The facts returned do not hold them.
	Listed map[string][]policy.Listing
}

// UpstreamRound is what one Gather learnt about the upstream caches it
// asked, for the caller to say: the worker logs it and keeps Slow in
// state.json (status, doctor); push and explain print it.
type UpstreamRound struct {
	// Asked lists the upstreams asked in the round, sorted.
	Asked []string
	// Slow holds, per upstream, why the round's deadline passed before
	// it answered for every path.
	Slow map[string]string
	// Warnings are odd answers (a 200 that was not the narinfo asked, a
	// redirect elsewhere), each said once in the Gatherer's lifetime.
	Warnings []string
}

// LastUpstreamRound returns what the last Gather learnt about upstreams.
func (g *Gatherer) LastUpstreamRound() UpstreamRound { return g.round }

// New returns a Gatherer for cfg's Nix and upstream timeout.
func New(cfg *config.Config) *Gatherer {
	return NewWith(cfg, nixstore.Nix{BinDir: cfg.Nix.BinDir})
}

// NewWith is New asking Nix through src (the worker's Session).
func NewWith(cfg *config.Config, src nixstore.Infos) *Gatherer {
	return &Gatherer{
		nix:      src,
		upstream: upstream.New(cfg.UpstreamTimeout, cfg.UpstreamDeadline),
		infos:    map[string]nixstore.PathInfo{},
		closed:   map[string]bool{},
		drvs:     map[string]string{},
	}
}

// Gather returns the facts of those paths that are in the store and that
// some target's patterns select; the others get none. It makes at most one
// Nix query (nixstore.PathInfos of every path not known yet), reads each deriver's .drv once, and asks
// an upstream only about the paths its targets would still push. With
// closure, the infos of the paths' closures are loaded too, for the
// closure rule's sizes (ClosureOf, NarSize).
func (g *Gatherer) Gather(ctx context.Context, cfg *config.Config, paths []storepath.Path, closure bool) (map[string]*policy.Facts, error) {
	g.round = UpstreamRound{}
	needs := policy.NeedsOf(cfg)
	if !needs.Any() {
		return nil, nil
	}
	cands := make([]storepath.Path, 0, len(paths))
	for _, p := range paths {
		if !policy.SelectedByNameOrList(cfg, p, g.Listed[p.String()]) {
			continue
		}
		// A path Nix said was valid (push --closure's query of the
		// closure) needs no look at the store: 10,000 of them cost
		// 20 ms.
		if info, ok := g.infos[p.String()]; !ok || !info.Valid {
			if _, err := os.Lstat(p.String()); err != nil {
				continue
			}
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	if len(g.infos) > maxCached {
		g.infos, g.closed, g.drvs = map[string]nixstore.PathInfo{}, map[string]bool{}, map[string]string{}
	}
	// Nix is asked only for what a rule reads: with upstream the only
	// rule that needs facts, no path info is needed, and the upstreams
	// are asked all the same.
	infosNeeded := needs.Size || needs.Subst || closure
	var ask []string
	for _, p := range cands {
		s := p.String()
		// A size of 0 is one not known (a NAR is never empty): the
		// hook's entries carry the deriver alone. A path on disk that
		// was not valid when asked may be now (registered, or rebuilt
		// after a collection that had invalidated it).
		if info, ok := g.infos[s]; !ok || !info.Valid || closure && !g.closed[s] || needs.Size && info.NarSize == 0 {
			ask = append(ask, s)
		}
	}
	if len(ask) > 0 && infosNeeded {
		infos, err := g.nix.PathInfos(ctx, closure, ask...)
		if err != nil {
			return nil, err
		}
		g.load(infos, closure)
	}
	out := make(map[string]*policy.Facts, len(cands))
	asks := map[string][]string{}
	// Once per upstream and path, though several targets name the
	// upstream: each question more is load on it and time out of the
	// round's deadline.
	asked := map[[2]string]bool{}
	for _, p := range cands {
		s := p.String()
		info, ok := g.infos[s]
		if infosNeeded && (!ok || !info.Valid) {
			continue
		}
		f := &policy.Facts{NarSize: info.NarSize, Deriver: info.Deriver}
		if needs.Subst {
			f.Substitutes = g.subst(info.Deriver)
		}
		out[s] = f
		if needs.Upstream {
			// Ask an upstream only for a path one of its targets would
			// push on the other facts.
			for _, t := range cfg.Targets {
				if len(t.Upstream) > 0 && policy.DecideTarget(t, p, listedFacts(f, g.Listed[s]), nil).Selected {
					for _, u := range t.Upstream {
						if !asked[[2]string{u, s}] {
							asked[[2]string{u, s}] = true
							asks[u] = append(asks[u], s)
						}
					}
				}
			}
		}
	}
	if len(asks) > 0 {
		res := g.upstream.Check(ctx, asks)
		g.round = UpstreamRound{Asked: slices.Sorted(maps.Keys(asks)), Slow: res.Slow, Warnings: g.upstream.Warnings()}
		for u, has := range res.Has {
			for s, h := range has {
				f := out[s]
				if f.Upstream == nil {
					f.Upstream = map[string]bool{}
				}
				f.Upstream[u] = h
			}
		}
		for u, why := range res.Unreachable {
			for _, s := range asks[u] {
				f := out[s]
				if _, answered := f.Upstream[u]; answered {
					continue
				}
				if f.Unreachable == nil {
					f.Unreachable = map[string]string{}
				}
				f.Unreachable[u] = why
			}
		}
	}
	return out, nil
}

// listedFacts is f with the listings ls, for a decision: f itself stays
// as Nix gave it.
func listedFacts(f *policy.Facts, ls []policy.Listing) *policy.Facts {
	if len(ls) == 0 {
		return f
	}
	g := *f
	g.Listed = ls
	return &g
}

// subst reads what a deriver's .drv says about substitution, once per .drv.
func (g *Gatherer) subst(drv string) string {
	if drv == "" || drv == "unknown-deriver" {
		return policy.SubstNoDrv
	}
	if s, ok := g.drvs[drv]; ok {
		return s
	}
	var s string
	d, err := nixstore.ReadDrv(drv)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s = policy.SubstNoDrv
	case err != nil:
		s = policy.SubstBadDrv
	default:
		s = policy.Subst(d.AllowSubstitutes)
	}
	g.drvs[drv] = s
	return s
}

// ClosureOf returns root's closure from the infos loaded so far, nil when
// they do not hold it.
func (g *Gatherer) ClosureOf(root string) []string { return nixstore.ClosureOf(g.infos, root) }

// NarSize returns a path's NAR size from the infos loaded so far.
func (g *Gatherer) NarSize(path string) (int64, bool) {
	info, ok := g.infos[path]
	return info.NarSize, ok && info.Valid
}

// Invalid returns those of paths Nix does not know as valid (on disk
// but a build still writing it, or half deleted), from one query of
// those not loaded as valid yet. The infos stay, so that a Gather on the
// same paths asks Nix nothing more.
func (g *Gatherer) Invalid(ctx context.Context, paths []string) ([]string, error) {
	var ask []string
	for _, s := range paths {
		if info, ok := g.infos[s]; !ok || !info.Valid {
			ask = append(ask, s)
		}
	}
	if len(ask) > 0 {
		infos, err := g.nix.PathInfos(ctx, false, ask...)
		if err != nil {
			return nil, err
		}
		g.load(infos, false)
	}
	var out []string
	for _, s := range paths {
		if !g.infos[s].Valid {
			out = append(out, s)
		}
	}
	return out, nil
}

// Seed makes the Gatherer know a path's size (0 when not known) and
// deriver, and what the deriver's .drv says of substitution (subst, ""
// when not read), as push (from Nix) or the hook (from the .drv) learnt
// them when it queued the path: they never change for a store path, so
// the worker need not ask Nix again for what the rules read.
func (g *Gatherer) Seed(path string, narSize int64, deriver, subst string) {
	if _, ok := g.infos[path]; ok {
		return
	}
	g.infos[path] = nixstore.PathInfo{Path: path, Valid: true, NarSize: narSize, Deriver: deriver}
	if subst != "" && deriver != "" {
		if _, ok := g.drvs[deriver]; !ok {
			g.drvs[deriver] = subst
		}
	}
}

// Expect makes room for n paths' infos in a Gatherer that knows none
// yet: grown path by path, a map of 10,000 infos was a third of the
// worker's in-process query of a push --closure batch.
func (g *Gatherer) Expect(n int) {
	if len(g.infos) == 0 && n > 0 {
		g.infos = make(map[string]nixstore.PathInfo, n)
	}
}

// References returns a path's references from the infos loaded so far
// (the worker gives the pusher only the paths no other path of a batch
// refers to).
func (g *Gatherer) References(path string) ([]string, bool) {
	info, ok := g.infos[path]
	return info.References, ok && info.Valid
}

// Closures returns the whole runtime closure of each root in the store
// (root first, breadth-first), from one recursive nixstore.PathInfos
// query for the roots whose closure is not loaded yet (none after Closure).
// The infos stay, so that a Gather on the same paths asks Nix nothing
// more.
func (g *Gatherer) Closures(ctx context.Context, roots []string) (map[string]*policy.Closure, error) {
	if err := g.loadClosures(ctx, roots); err != nil {
		return nil, err
	}
	out := make(map[string]*policy.Closure, len(roots))
	for _, r := range roots {
		if c := nixstore.ClosureOf(g.infos, r); c != nil {
			out[r] = &policy.Closure{Paths: c, NarSize: g.NarSize}
		}
	}
	return out, nil
}

func (g *Gatherer) loadClosures(ctx context.Context, roots []string) error {
	var ask []string
	for _, r := range roots {
		if !g.closed[r] {
			ask = append(ask, r)
		}
	}
	if len(ask) > 0 {
		infos, err := g.nix.PathInfos(ctx, true, ask...)
		if err != nil {
			return err
		}
		for k, v := range infos {
			g.infos[k] = v
			g.closed[k] = true
		}
	}
	return nil
}

// RuleClosures is Closures for the closure rule (see policy.Closure): a
// root whose closure holds no path the rule is about (policy.
// ClosureSubject: denied by name, or larger than a max_nar_size) gets a
// Closure of itself alone, which is all the rule needs, since listing
// every closure whole costs the sum of their sizes, quadratic in a deep
// graph (a NixOS system's 10,000 paths). Which roots those are is found
// in one walk of the graph. The others get their closure whole, root
// first, breadth-first, as the worker lists it, so that a message names
// the dependency the worker names.
func (g *Gatherer) RuleClosures(ctx context.Context, cfg *config.Config, roots []string) (map[string]*policy.Closure, error) {
	if err := g.loadClosures(ctx, roots); err != nil {
		return nil, err
	}
	reaches := g.subjects(cfg)
	out := make(map[string]*policy.Closure, len(roots))
	for _, r := range roots {
		info, ok := g.infos[r]
		if !ok || !info.Valid {
			continue
		}
		below := false
		for _, ref := range info.References {
			if ref != r && reaches(ref) {
				below = true
				break
			}
		}
		if !below {
			out[r] = &policy.Closure{Paths: []string{r}, NarSize: g.NarSize}
			continue
		}
		if c := nixstore.ClosureOf(g.infos, r); c != nil {
			out[r] = &policy.Closure{Paths: c, NarSize: g.NarSize}
		}
	}
	return out, nil
}

// subjects returns whether a path's closure (itself included) holds a
// path the closure rule is about, memoized over the loaded infos: each
// path and reference is visited once. The walk is iterative: a crafted
// chain of references costs no stack.
func (g *Gatherer) subjects(cfg *config.Config) func(string) bool {
	const (
		unseen = iota
		open
		no
		yes
	)
	state := map[string]int{}
	storeDir := storepath.StoreDir()
	subject := func(s string) bool {
		return policy.ClosureSubject(cfg, policy.ClosureMember(storeDir, s), g.NarSize)
	}
	type frame struct {
		path string
		next int // index of the next reference to look at
	}
	return func(root string) bool {
		if st := state[root]; st == yes || st == no {
			return st == yes
		}
		stack := []frame{{path: root}}
		state[root] = open
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			refs := g.infos[f.path].References
			if f.next == 0 && subject(f.path) {
				state[f.path] = yes
			}
			pushed := false
			for state[f.path] == open && f.next < len(refs) {
				ref := refs[f.next]
				f.next++
				switch state[ref] {
				case yes:
					state[f.path] = yes
				case unseen:
					if _, known := g.infos[ref]; known && ref != f.path {
						state[ref] = open
						stack = append(stack, frame{path: ref})
						pushed = true
					}
				}
				if pushed {
					break
				}
			}
			if pushed {
				continue
			}
			if state[f.path] == open {
				state[f.path] = no
			}
			done := f.path
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && state[done] == yes {
				state[stack[len(stack)-1].path] = yes
			}
		}
		return state[root] == yes
	}
}

// Closure returns the runtime closure of roots from one recursive
// nixstore.PathInfos query and keeps the infos it brings, so that Gather
// on those paths asks Nix nothing more: `push --closure` with rules that
// read facts makes one Nix call instead of a closure query and then a
// query of the whole closure's infos.
func (g *Gatherer) Closure(ctx context.Context, roots []string) ([]string, error) {
	infos, err := g.nix.PathInfos(ctx, true, roots...)
	if err != nil {
		return nil, err
	}
	g.load(infos, true)
	paths := make([]string, 0, len(infos))
	for k, v := range infos {
		if v.Valid {
			paths = append(paths, k)
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// load keeps what Nix said of paths (and that their closures are loaded
// too, with closed); the first answer is taken as it is, not copied path
// by path into a map that grows (10,000 paths of a closure).
func (g *Gatherer) load(infos map[string]nixstore.PathInfo, closed bool) {
	if len(g.infos) == 0 {
		g.infos = infos
	} else {
		for k, v := range infos {
			g.infos[k] = v
		}
	}
	if !closed {
		return
	}
	if len(g.closed) == 0 {
		g.closed = make(map[string]bool, len(infos))
	}
	for k := range infos {
		g.closed[k] = true
	}
}
