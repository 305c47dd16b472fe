package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

func runPush(e *env) int {
	flags := e.flags("push", "[--closure] [--force] [--wait [-q] [--timeout DUR]] [--dry-run] PATH...|-",
		"Queue the paths the rules select, with the same rules and targets as the\nhook, and return at once. PATH may be a store path, a file inside one, or a\nsymlink into the store (./result, /run/current-system, a home-manager\ngeneration); - reads paths from standard input.\n\nPaths the worker already pushed to a target are left out without a pusher\ncall, as recorded for queue.remember_pushed; --force queues them anyway\n(after a cache was emptied, see also forget --pushed).\n\nWith --wait, show progress on stderr and exit 1 when a path it queued was\ndropped (closure_deny, garbage-collected) or is still failing at the\ntimeout, listing each with the reason.")
	closure := flags.Bool("closure", false, "select from each root's runtime closure, not just the root")
	wf := addWaitFlags(flags, "wait until the queued paths are pushed; exit 1 listing those that were not", "with --wait, no progress and no summary; only what was not pushed")
	dryRun := flags.Bool("dry-run", false, "print the decisions as explain does; queue nothing")
	force := flags.Bool("force", false, "queue paths even if the record says they were pushed")
	c, st, ok := e.setUp(flags, true)
	if !ok {
		return st
	}
	status := 0
	args := flags.Args()
	if len(args) == 1 && args[0] == "-" {
		args = nil
		sc := bufio.NewScanner(e.stdin)
		sc.Split(bufio.ScanWords)
		for sc.Scan() {
			args = append(args, sc.Text())
		}
	}
	storeDir := storepath.StoreDir()
	var paths []storepath.Path
	seen := map[storepath.Path]bool{}
	for _, a := range args {
		p, err := storepath.Resolve(storeDir, a)
		if err == nil {
			if _, serr := os.Lstat(p.String()); errors.Is(serr, fs.ErrNotExist) {
				err = fmt.Errorf("%s: %s is not in the store (not built, or garbage-collected)", a, p)
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
	var err error
	if !*force {
		if rec, err = hook.OpenRecord(c); err != nil {
			e.errorf("%v", err)
			return 1
		}
		defer rec.Close()
	}
	roots := paths
	gather := pathfacts.New(c)
	if *closure {
		if paths, err = e.closure(c, gather, rec, roots, *dryRun && policy.NeedsClosure(c)); err != nil {
			e.errorf("push: %v", err)
			return 1
		}
	}
	pushedTo := pushedTo(c, rec, roots, *closure)
	var ask []storepath.Path
	for _, p := range paths {
		if _, all := pushedTargets(c, p, pushedTo); !all {
			ask = append(ask, p)
		}
	}
	// --dry-run says what will happen, closure rule included (as the
	// worker applies it); push itself queues by the paths' own rules and
	// leaves the closure to the worker, whose drops --wait reports. The
	// closures first: the facts come with them, in one Nix call.
	var closures func(string) *policy.Closure
	if *dryRun {
		closures = e.closureFacts(c, gather, ask)
	}
	facts := e.gatherFactsWith(gather, c, ask)
	if *dryRun {
		verdicts := policy.DecideAll(c, paths, func(s string) *policy.Facts { return facts[s] }, closures)
		for i, p := range paths {
			line := verdicts[i].Line()
			if ts, _ := pushedTargets(c, p, pushedTo); len(ts) > 0 {
				line += fmt.Sprintf(" (already pushed to %s: left out; --force queues it)", strings.Join(ts, ", "))
			}
			fmt.Fprintln(e.stdout, line)
		}
		return status
	}
	sel := hook.SelectWith(c, paths, func(s string) *policy.Facts { return facts[s] })
	sel.LeaveOut(pushedTo)
	start := time.Now()
	if len(sel.Pairs) > 0 {
		if err := hook.Enqueue(c, &sel, *force); err != nil {
			e.errorf("%v", err)
			return 1
		}
	}
	// After queueing: the line says what was queued, not what was meant to be.
	fmt.Fprintf(e.stdout, "cachix-filter-hook: %s\n", sel.Summary())
	if len(sel.Pairs) == 0 {
		return status
	}
	if *wf.wait && !e.waitPushed(c, sel.Pairs, start, *wf.timeout, *wf.quiet).ok() {
		return 1
	}
	return status
}

// closure returns the runtime closure of roots. When the rules read facts
// and some root was not pushed before, one `nix path-info --recursive`
// call brings the closure and the facts together; otherwise the closure
// query alone is cheaper (the facts of paths already pushed are not
// needed). infos asks for the infos anyway: --dry-run's closure rule reads
// every path's closure, which they bring at no further call.
func (e *env) closure(c *config.Config, g *pathfacts.Gatherer, rec *hook.Record, roots []storepath.Path, infos bool) ([]storepath.Path, error) {
	args := make([]string, len(roots))
	fresh := false
	for i, p := range roots {
		args[i] = p.String()
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

// waitPushed waits until the pairs push or watch-exec queued have left the
// queue (see waitQueue), at most timeout.
func (e *env) waitPushed(c *config.Config, pairs []queue.Pair, since time.Time, timeout time.Duration, quiet bool) waitResult {
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return waitResult{end: waitError}
	}
	return e.waitQueue(c, q, waitSpec{pairs: pairs, since: since, timeout: timeout, quiet: quiet})
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

// pushedTargets lists the targets whose patterns select p that have it
// already, and whether that is all of them (then its facts are not
// needed).
func pushedTargets(c *config.Config, p storepath.Path, pushedTo func(string, storepath.Path) bool) (ts []string, all bool) {
	all = true
	for _, t := range c.Targets {
		if !policy.ByName(t, p).Selected {
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
