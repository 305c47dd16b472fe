package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// pushOptions are push's flags (see the command table).
type pushOptions struct {
	closure, dryRun, force bool
	pin                    pinFlags
	waitFlags
	failOnDrop bool
}

func runPush(e *env, o *pushOptions) int {
	keep, msg := o.pin.keep()
	if msg != "" {
		e.errorf("push: %s", msg)
		return 2
	}
	pin := o.pin.name != ""
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	status := 0
	args := e.args
	if len(args) == 1 && args[0] == "-" {
		args = nil
		sc := bufio.NewScanner(e.stdin)
		sc.Split(bufio.ScanWords)
		for sc.Scan() {
			args = append(args, sc.Text())
		}
		// A word too long for the scanner (no path is 64 KiB) or a read
		// error ends the scan early: the paths after it were never read,
		// and queueing those before would pass the list for done.
		if err := sc.Err(); err != nil {
			e.errorf("push: reading the paths from standard input: %v; nothing queued", err)
			return 1
		}
	}
	storeDir := storepath.StoreDir()
	var paths []storepath.Path
	seen := map[storepath.Path]bool{}
	for _, a := range args {
		p, err := storepath.Resolve(storeDir, a)
		if err == nil {
			if _, serr := os.Lstat(p.String()); errors.Is(serr, fs.ErrNotExist) {
				err = fmt.Errorf("%s: %s is not in the store (not built, or garbage-collected)", storepath.QuoteOdd(a), p)
			}
		}
		if err != nil {
			e.errorf("push: %v", err)
			status = 1
			continue
		}
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return status
	}
	// What was pushed before is left out (unless --force) before any
	// fact is asked of Nix or an upstream: after a switch, nearly all of
	// a system's closure was.
	var rec *hook.Record
	if !o.force {
		if rec, err = hook.OpenRecord(c); err != nil {
			e.errorf("%v", err)
			return 1
		}
		defer rec.Close()
	}
	roots := paths
	gather := pathfacts.New(c)
	if o.closure {
		if paths, err = e.closure(c, gather, rec, roots, policy.NeedsClosure(c)); err != nil {
			e.errorf("push: %v", err)
			return 1
		}
	}
	// A package list stands for what it names, as in the hook; a
	// closure holds what its lists depend on already. Whether a list
	// depends on what it names is asked of Nix, for push as for
	// --dry-run: a path it names only as text is not queued, as the
	// worker would only drop it.
	found, ok := e.findLists(gather, paths, !o.closure, true)
	if !ok {
		status = 1
	}
	paths = found.Paths
	if !o.closure {
		if bad := e.invalidRoots(c, gather, rec, roots, paths, pin); len(bad) > 0 {
			status = 1
			drop := func(p storepath.Path) bool { return bad[p.String()] }
			roots = slices.DeleteFunc(slices.Clone(roots), drop)
			paths = slices.DeleteFunc(paths, drop)
			found.Paths = paths
			if len(paths) == 0 {
				return status
			}
		}
	}
	pushedTo := pushedTo(c, rec, roots, o.closure)
	// ask: the paths whose facts are needed (not pushed to every target
	// whose patterns select them); decide: the paths the rules decide,
	// all but those pushed to every such target, which are only counted
	// (after a switch, nearly all of a system's closure).
	ask := make([]storepath.Path, 0, len(paths))
	decide := make([]storepath.Path, 0, len(paths))
	pushed := map[string]int{}
	isRoot := map[storepath.Path]bool{}
	if pin {
		for _, r := range roots {
			isRoot[r] = true
		}
	}
	for _, p := range paths {
		ts, all := pushedTargets(c, p, found.Listed[p.String()], pushedTo)
		// --dry-run's line is the verdict, and a root pushed before is
		// pinned where the rules select it: both made with the facts,
		// or they follow a pattern that max_nar_size or closure_deny
		// overrule.
		if !all || o.dryRun || isRoot[p] {
			ask = append(ask, p)
		}
		if all && len(ts) > 0 && !o.dryRun {
			for _, t := range ts {
				pushed[t]++
			}
			continue
		}
		decide = append(decide, p)
	}
	if !o.dryRun && !pin && len(ask) > 0 {
		// A target's patterns select a path it lacks: a worker started
		// now comes up while the rules run (its start is about 25 ms of
		// a 10,000-path push) and takes the entries as they land. Not
		// for --pin, whose plan may yet refuse to queue anything.
		startWorker(c)
	}
	// The closure rule's verdict, as the worker will apply it, before
	// queueing: nothing is queued that the rules will drop, and
	// --dry-run says exactly what push does. The closures first: the
	// facts come with them, in one Nix call (none more with --closure,
	// which brought them).
	closures := e.closureFacts(c, gather, ask)
	facts := e.gatherFactsWith(gather, c, ask)
	if pin {
		// A root to pin goes to its cache whatever unsubstitutable and
		// upstream say (a NixOS system sets allowSubstitutes = false);
		// only to a Cachix cache, as the worker decides: a Nix store has
		// no pins.
		if facts == nil {
			facts = map[string]*policy.Facts{}
		}
		var cachix []string
		for _, t := range c.Targets {
			if t.Store == "" {
				cachix = append(cachix, t.Name)
			}
		}
		for _, r := range roots {
			facts[r.String()] = policy.PinIn(facts[r.String()], cachix)
		}
	}
	factsOf := policy.WithListings(func(s string) *policy.Facts { return facts[s] }, found.Listed)
	if o.dryRun {
		verdicts := policy.DecideAll(c, paths, factsOf, closures)
		for i, p := range paths {
			line := verdicts[i].Line()
			// Only where the rules still select it: --force queues it
			// for no other target.
			ts, _ := pushedTargets(c, p, found.Listed[p.String()], pushedTo)
			ts = slices.DeleteFunc(ts, func(t string) bool { return !slices.Contains(verdicts[i].Push, t) })
			if len(ts) > 0 {
				line += fmt.Sprintf(" (already pushed to %s: left out; --force queues it)", strings.Join(ts, ", "))
			}
			statusLine(e.stdout, "%s", line)
		}
		if pin {
			// The selection push plans its pins on, closure rule
			// included: a root it leaves out is not pinned.
			sel := hook.SelectFinal(c, paths, factsOf, closures)
			plan, err := planPins(c, roots, &sel, factsOf, closures, pushedTo, o.pin.name, keep)
			if err != nil {
				e.errorf("push: %v", err)
				return 1
			}
			for _, l := range plan.lines {
				statusLine(e.stdout, "%s", l)
			}
		}
		return status
	}
	sel := hook.SelectFinal(c, decide, factsOf, closures)
	sel.UseLists(found)
	var plan pinPlan
	if pin {
		// Before the record leaves out what was pushed: a root pushed
		// before is pinned at once.
		if plan, err = planPins(c, roots, &sel, factsOf, closures, pushedTo, o.pin.name, keep); err != nil {
			e.errorf("push: %v", err)
			return 1
		}
	}
	sel.LeaveOut(pushedTo)
	sel.Total = len(paths)
	for t, n := range pushed {
		if sel.Pushed == nil {
			sel.Pushed = map[string]int{}
		}
		sel.Pushed[t] += n
	}
	// What push learnt of each path comes with its entry, so that the
	// worker need not ask Nix again; and the root whose closure holds
	// it, so that the pusher is given the root alone.
	var within map[string]string
	if len(sel.Pairs) > 0 {
		within = withinRoots(gather, roots, paths, o.closure)
	}
	// And that a root is pinned there: the pin's file comes after the
	// entry, and a running worker may decide the entry in between.
	pinned := map[[2]string]bool{}
	for _, p := range plan.pins {
		pinned[[2]string{p.Target, p.Path}] = true
	}
	for i, pr := range sel.Pairs {
		s := pr.Path.String()
		if f := facts[s]; f != nil {
			sel.Pairs[i].Facts = &queue.Facts{NarSize: f.NarSize, Deriver: f.Deriver, Substitutes: f.Substitutes}
		}
		sel.Pairs[i].Within = within[s]
		sel.Pairs[i].Pinned = pinned[[2]string{pr.Target, s}]
	}
	start := time.Now()
	var follow *history.Follower
	if o.wait {
		// From before queueing: the worker, started above, may push
		// the pairs before the wait begins.
		follow = history.Follow(c.Queue.Dir)
	}
	if len(sel.Pairs) > 0 {
		// The record was read above (pushedTo): Enqueue need not
		// read it again.
		if err := hook.Enqueue(c, &sel, true); err != nil {
			if len(sel.Pairs) > 0 { // what was queued all the same
				statusLine(e.stdout, "cachix-filter-hook: %s", sel.Summary())
			}
			e.errorf("%v", err)
			return 1
		}
	}
	// After queueing: the line says what was queued, not what was meant to be.
	// It may quote state.json (why the last worker could not start):
	// escaped, as the hook's line is.
	statusLine(e.stdout, "cachix-filter-hook: %s", sel.Summary())
	if err := queuePins(c, plan, start); err != nil {
		e.errorf("%v", err)
		return 1
	}
	for _, l := range plan.lines {
		statusLine(e.stdout, "cachix-filter-hook: %s", l)
	}
	if len(sel.Pairs) == 0 && len(plan.pins) == 0 {
		return status
	}
	if o.wait {
		// An error of the command (a PATH that is not in the store)
		// says more than the fate of the others.
		if code := e.waitPushed(c, sel.Pairs, pinKeys(plan.pins), start, follow, o.timeout, o.quiet).exitCode(o.failOnDrop); status == 0 {
			return code
		}
	}
	return status
}

// invalidRoots says which roots among paths (not the lists given, which
// stand for what they name) Nix does not know as valid, and returns them:
// on disk, but a build still writing one or a path half deleted, which
// the worker would drop as lost. --closure's query fails on them the same
// way. A path recorded as pushed to every target is not asked about
// (nothing of it is queued), unless pin: its pin is. When Nix cannot be
// asked it warns and returns none: the worker checks again before
// pushing.
func (e *env) invalidRoots(c *config.Config, g *pathfacts.Gatherer, rec *hook.Record, roots, paths []storepath.Path, pin bool) map[string]bool {
	given := make(map[storepath.Path]bool, len(roots))
	for _, r := range roots {
		given[r] = true
	}
	var ask []string
	for _, p := range paths {
		if !given[p] {
			continue
		}
		if pin {
			ask = append(ask, p.String())
			continue
		}
		for _, t := range c.Targets {
			if !rec.Has(t.Name, p) {
				ask = append(ask, p.String())
				break
			}
		}
	}
	if len(ask) == 0 {
		return nil
	}
	invalid, err := g.Invalid(e.ctx, ask)
	if err != nil {
		e.errorf("warning: cannot tell which paths Nix knows as valid (the worker checks before pushing): %v", err)
		return nil
	}
	bad := make(map[string]bool, len(invalid))
	for _, s := range invalid {
		bad[s] = true
		e.errorf("push: %s is not in the store (Nix does not know it as valid: a build still writing it, or a path being deleted)", s)
	}
	return bad
}

// closure returns the runtime closure of roots. When the rules read facts
// and some root was not pushed before, one Nix query (nixstore.PathInfos,
// recursive) brings the closure and the facts together; otherwise the closure
// query alone is cheaper (the facts of paths already pushed are not
// needed). infos asks for the infos anyway: --dry-run's closure rule reads
// every path's closure, which they bring at no further call.
func (e *env) closure(c *config.Config, g *pathfacts.Gatherer, rec *hook.Record, roots []storepath.Path, infos bool) ([]storepath.Path, error) {
	args := make([]string, len(roots))
	fresh := false
	for i, p := range roots {
		args[i] = p.String()
		// A package list's closure holds what it names (package
		// pkglist): what is fresh is not known before it is read.
		fresh = fresh || pkglist.Named(p) && policy.AcceptsLists(c)
		for _, t := range c.Targets {
			if policy.ByName(t, p).Selected && !rec.Has(t.Name, p) {
				fresh = true
			}
		}
	}
	var closure []string
	var err error
	if n := policy.NeedsOf(c); fresh && (n.Size || n.Subst || infos) {
		closure, err = g.Closure(e.ctx, args)
		// It leaves out a root Nix does not know as valid (a build
		// still writing it, one that failed): fail on it, as the
		// query below does, or its push would pass for done.
		for _, r := range args {
			if _, ok := g.NarSize(r); err == nil && !ok {
				err = fmt.Errorf("%s is not in the store", r)
			}
		}
	} else {
		closure, err = nixstore.Nix{BinDir: c.Nix.BinDir}.Closure(e.ctx, args...)
	}
	if err != nil {
		return nil, err
	}
	storeDir := storepath.StoreDir()
	paths := make([]storepath.Path, 0, len(closure))
	for _, s := range closure {
		if p, err := storepath.Parse(storeDir, s); err == nil {
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// withinRoots maps each path of a root's closure to that root (the first
// given whose closure holds it), from the closures the Gatherer loaded;
// with one root, every path is in its closure. Roots map to nothing.
func withinRoots(g *pathfacts.Gatherer, roots, paths []storepath.Path, closure bool) map[string]string {
	out := map[string]string{}
	if !closure {
		return out
	}
	isRoot := map[string]bool{}
	for _, r := range roots {
		isRoot[r.String()] = true
	}
	if len(roots) == 1 {
		r := roots[0].String()
		for _, p := range paths {
			if s := p.String(); !isRoot[s] {
				out[s] = r
			}
		}
		return out
	}
	for _, r := range roots {
		for _, s := range g.ClosureOf(r.String()) {
			if _, ok := out[s]; !ok && !isRoot[s] {
				out[s] = r.String()
			}
		}
	}
	return out
}

// waitPushed waits until the pairs push or watch-exec queued have left the
// queue (see waitQueue), at most timeout; without one (0 or less), until
// every entry left has failed and waits for its back-off, as wait does.
func (e *env) waitPushed(c *config.Config, pairs []queue.Pair, pins []string, since time.Time, follow *history.Follower, timeout time.Duration, quiet bool) waitResult {
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return waitResult{end: waitError}
	}
	if pairs == nil {
		pairs = []queue.Pair{} // pins only: not the whole queue
	}
	return e.waitQueue(c, q, waitSpec{pairs: pairs, pins: pins, since: since, follow: follow, timeout: timeout, quiet: quiet,
		giveUpFailing: timeout <= 0, waitOn: "--timeout DUR waits on"})
}

// pushedTo tells whether a path went to a target before: recorded itself,
// or, with --closure, in the closure of roots that all were (cachix push
// and nix copy upload a path's whole closure).
func pushedTo(c *config.Config, rec *hook.Record, roots []storepath.Path, closure bool) func(string, storepath.Path) bool {
	whole := map[string]bool{}
	if closure && rec != nil {
		for _, t := range c.Targets {
			whole[t.Name] = true
			for _, r := range roots {
				if !rec.Has(t.Name, r) {
					whole[t.Name] = false
					break
				}
			}
		}
	}
	return func(target string, p storepath.Path) bool {
		return whole[target] || rec.Has(target, p)
	}
}

// startWorker starts the queue's worker unless one runs. Enqueue starts
// one too, and says why where it cannot.
func startWorker(c *config.Config) {
	if q, err := queue.Open(c.Queue.Dir); err == nil {
		_ = worker.EnsureRunning(c, q)
	}
}

// pushedTargets lists the targets whose patterns select p that have it
// already, and whether that is all of them (then its facts are not
// needed).
func pushedTargets(c *config.Config, p storepath.Path, listed []policy.Listing, pushedTo func(string, storepath.Path) bool) (ts []string, all bool) {
	all = true
	for _, t := range c.Targets {
		if !policy.Selects(t, p, listed) {
			continue
		}
		if pushedTo(t.Name, p) {
			ts = append(ts, t.Name)
		} else {
			all = false
		}
	}
	return ts, all
}
