package cli

import (
	"os"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pathfacts"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// explanation is explain's JSON record of one argument.
type explanation struct {
	Input string `json:"input"`
	Path  string `json:"path"`
	policy.Verdict
}

// explainOptions are explain's flags.
type explainOptions struct{ json bool }

func runExplain(e *env, o *explainOptions) int {
	c, err := e.load()
	if err != nil {
		e.errorf("%v", err)
		return 1
	}
	status := 0
	all := []explanation{}
	storeDir := storepath.StoreDir()
	var args []string
	var paths []storepath.Path
	for _, arg := range e.args {
		p, err := storepath.Resolve(storeDir, arg)
		if err != nil {
			e.errorf("explain: %v", err)
			status = 1
			continue
		}
		args, paths = append(args, arg), append(paths, p)
	}
	gather := pathfacts.New(c)
	// A package list stands for what it names, as in the hook.
	found, ok := e.findLists(gather, paths, true, true)
	if !ok {
		status = 1
	}
	args, paths = listArgs(args, paths, found), found.Paths
	// The closures first: the sizes and derivers come with them, so
	// that the facts cost no second Nix call.
	closures := e.closureFacts(c, gather, paths)
	facts := e.gatherFactsWith(gather, c, paths)
	verdicts := policy.DecideAll(c, paths, policy.WithListings(func(s string) *policy.Facts { return facts[s] }, found.Listed), closures)
	for i, p := range paths {
		arg, v := args[i], verdicts[i]
		if o.json {
			all = append(all, explanation{Input: arg, Path: p.String(), Verdict: v})
		} else {
			// A line may quote what an upstream said (its
			// certificate's names): escaped, as status's lines are.
			statusLine(e.stdout, "%s", v.Line())
		}
	}
	if o.json {
		enc := jsonEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(all)
	}
	return status
}

// closureFacts asks Nix, in one call (see pathfacts.Closures), for the
// closures of the paths whose verdict or message the closure rule can
// change: when a target denies something by name or has a max_nar_size,
// those some target selects by name that are in the store. The decision
// itself is policy's (DecideAll), the one the worker applies. On failure
// it warns and returns none: the lines say what the paths' own rules
// decide, and the worker, which checks the closure before pushing, holds
// back what it must.
func (e *env) closureFacts(c *config.Config, g *pathfacts.Gatherer, paths []storepath.Path) func(string) *policy.Closure {
	if !policy.NeedsClosure(c) {
		return nil
	}
	var roots []string
	for _, p := range paths {
		if !policy.SelectedByNameOrList(c, p, g.Listed[p.String()]) {
			continue
		}
		if _, err := os.Lstat(p.String()); err != nil {
			continue // not built: nothing to ask Nix about
		}
		roots = append(roots, p.String())
	}
	if len(roots) == 0 {
		return nil
	}
	cfs, err := g.RuleClosures(e.ctx, c, roots)
	if err != nil {
		e.errorf("warning: closure_deny not applied (the closures could not be read): %v", err)
		return nil
	}
	return func(s string) *policy.Closure { return cfs[s] }
}
