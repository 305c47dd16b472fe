package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/hook"
	"github.com/cachix-filter-hook/cachix-filter-hook/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/storepath"
)

func runPush(e *env) int {
	flags := e.flags("push", "[--closure] [--wait [-q] [--timeout DUR]] [--dry-run] PATH...|-",
		"Queue the paths the rules select, with the same rules and targets as the\nhook, and return at once. PATH may be a store path, a file inside one, or a\nsymlink into the store (./result, /run/current-system, a home-manager\ngeneration); - reads paths from standard input.\n\nWith --wait, show progress on stderr and exit 1 when a path it queued was\ndropped (closure_deny, garbage-collected) or is still failing at the\ntimeout, listing each with the reason.")
	closure := flags.Bool("closure", false, "select from each root's runtime closure, not just the root")
	wait := flags.Bool("wait", false, "wait until the queued paths are pushed; exit 1 listing those that were not")
	timeout := flags.Duration("timeout", 10*time.Minute, "with --wait, give up after `DUR`")
	dryRun := flags.Bool("dry-run", false, "print the decisions as explain does; queue nothing")
	quiet := flags.Bool("q", false, "with --wait, no progress and no summary; only what was not pushed")
	if st, ok := e.parse(flags); !ok {
		return st
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return 2
	}
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return 1
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
	if *closure {
		roots := make([]string, len(paths))
		for i, p := range paths {
			roots[i] = p.String()
		}
		closure, err := nixstore.Nix{BinDir: c.Nix.BinDir}.Closure(e.ctx, roots...)
		if err != nil {
			e.errorf("push: %v", err)
			return 1
		}
		// nix-store lists each path once, the roots among them.
		paths = paths[:0]
		for _, s := range closure {
			if p, err := storepath.Parse(storeDir, s); err == nil {
				paths = append(paths, p)
			}
		}
	}
	facts := e.gatherFacts(c, paths)
	if *dryRun {
		for _, p := range paths {
			fmt.Fprintln(e.stdout, c.DecideFacts(p, facts[p.String()]).Line())
		}
		return status
	}
	sel := hook.SelectWith(c, paths, func(s string) *config.Facts { return facts[s] })
	fmt.Fprintf(e.stdout, "cachix-filter-hook: %s\n", sel.Summary())
	if len(sel.Pairs) == 0 {
		return status
	}
	start := time.Now()
	if err := hook.Enqueue(c, sel); err != nil {
		e.errorf("%v", err)
		return 1
	}
	if *wait {
		ctx, cancel := context.WithTimeout(e.ctx, *timeout)
		defer cancel()
		if !e.waitPushed(ctx, c, sel.Pairs, start, *quiet) {
			return 1
		}
	}
	return status
}

// waitPushed waits until every pair has left the queue, showing
// progress, and reports the ones that were dropped, or are still queued
// when ctx ends.
func (e *env) waitPushed(ctx context.Context, c *config.Config, pairs []queue.Pair, since time.Time, quiet bool) bool {
	q, err := queue.Open(c.Queue.Dir)
	if err != nil {
		e.errorf("%v", err)
		return false
	}
	prog := newProgress(e, q.Dir, nil, quiet)
	prog.start = since
	prog.want = map[string]bool{}
	for _, p := range pairs {
		if !slices.Contains(prog.targets, p.Target) {
			prog.targets = append(prog.targets, p.Target)
		}
		prog.want[pairKey(p.Target, p.Path.String())] = true
	}
	left := pairs
	for {
		var still []queue.Pair
		for _, p := range left {
			if _, queued := q.Get(queue.Key(p.Target, p.Path)); queued {
				still = append(still, p)
			}
		}
		left = still
		prog.poll()
		if len(left) == 0 {
			break
		}
		if now := time.Now(); prog.due(now) {
			prog.draw(now, queueCounts(q, prog.want))
		}
		select {
		case <-ctx.Done():
			e.errorf("%d paths were not pushed in time:", len(left))
			for _, p := range left {
				msg := "still queued"
				if en, ok := q.Get(queue.Key(p.Target, p.Path)); ok && en.LastError != "" {
					msg = fmt.Sprintf("%d failed attempts, last: %s", en.Attempts, en.LastError)
				}
				fmt.Fprintf(e.stderr, "  %s -> %s: %s\n", p.Path, p.Target, msg)
			}
			prog.finish(nil)
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	// dropped/ is the authority; the history may have missed a drop.
	for _, p := range pairs {
		if en, ok := q.Dropped(queue.Key(p.Target, p.Path), since); ok {
			prog.addDropped(history.Record{Target: p.Target, Path: p.Path.String(), Outcome: history.Dropped, Reason: en.Reason})
		}
	}
	return prog.finish(nil)
}
