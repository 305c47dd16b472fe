// Package hook is what Nix runs after every build: it selects the built
// paths by the rules, queues them durably, makes sure a worker runs, and
// returns. It never pushes: that would hold up the build loop for the
// whole upload.
//
// Nix stops starting further builds when the hook exits non-zero, so every
// failure here is reported on the build log and swallowed, unless the user
// asked for strict = true.
package hook

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/fds"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/nixstore"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/pkglist"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/policy"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// Env is the part of the environment the hook reads.
type Env struct {
	OutPaths string // OUT_PATHS: built outputs, space-separated
	DrvPath  string // DRV_PATH: the derivation
}

// nixStoreTimeout bounds the OUT_PATHS fallback query, which runs on the
// build's path.
const nixStoreTimeout = 30 * time.Second

// Run runs the hook and returns its exit status.
func Run(ctx context.Context, configFlag string, env Env, log io.Writer) int {
	return run(ctx, configFlag, env, log, pkglist.Read)
}

// run is Run reading package lists with readList (a test's may fail).
func run(ctx context.Context, configFlag string, env Env, log io.Writer, readList func(storepath.Path) (*pkglist.List, error)) (status int) {
	say := func(format string, args ...any) {
		fmt.Fprintf(log, "cachix-filter-hook: %s\n", bounded(fmt.Sprintf(format, args...)))
	}
	var cfg *config.Config
	// A panic would exit 2, and Nix would start no more builds: it is a
	// failure like the others (strict as the config loaded says).
	defer func() {
		if r := recover(); r != nil {
			say("internal error, queued nothing more (please report it): %v", r)
			status = 0
			if cfg != nil && cfg.Strict {
				status = 1
			}
		}
	}()
	// What the hook inherited (the build caller's pipes) must reach
	// nothing it starts: the nix-store below, not only the worker.
	_ = fds.CloseOnExec()
	cfg, err := config.Load(configFlag)
	if err != nil {
		say("not queueing anything, the configuration is invalid: %v", err)
		// strict asks that a failure stop the build loop, and an
		// invalid config is one: every build would go unpushed.
		if config.StrictRequested(configFlag) {
			return 1
		}
		return 0
	}
	fail := func(format string, args ...any) int {
		say(format, args...)
		if cfg.Strict {
			return 1
		}
		return 0
	}

	raw := strings.Fields(env.OutPaths)
	storeDir := storepath.StoreDir()
	// allowSubstitutes is in the .drv, read whole once for it and, on
	// Nix 2.8, for the outputs.
	drv := readDrv(cfg, env, len(raw) == 0)
	if len(raw) == 0 && drv != nil && !drv.hasCA {
		raw = drv.Outputs
	} else if len(raw) == 0 && env.DrvPath != "" {
		// Nix 2.8 passes OUT_PATHS empty (NixOS/nix#6446).
		if _, err := storepath.Parse(storeDir, env.DrvPath); err != nil || !strings.HasSuffix(env.DrvPath, ".drv") {
			return fail("DRV_PATH %q is not a derivation in the store", env.DrvPath)
		}
		// The .drv lists the outputs; reading it saves an exec of
		// nix-store on every build. A content-addressed derivation
		// has no paths there yet, so then ask Nix.
		if raw, err = nixstore.DrvOutputs(env.DrvPath); err != nil {
			qctx, cancel := context.WithTimeout(ctx, nixStoreTimeout)
			raw, err = nixstore.Nix{BinDir: cfg.Nix.BinDir}.Outputs(qctx, env.DrvPath)
			cancel()
		}
		if err != nil {
			return fail("OUT_PATHS is empty and asking Nix for the outputs of %s failed: %v", env.DrvPath, err)
		}
	}
	if len(raw) == 0 {
		return 0
	}

	var paths []storepath.Path
	var bad malformed
	// Each once: a path named twice would be counted twice in the line
	// (the queue keeps one).
	seen, dups := make(map[storepath.Path]bool, len(raw)), 0
	for _, s := range raw {
		p, err := storepath.Parse(storeDir, s)
		if err != nil {
			bad.add(err)
			continue
		}
		if seen[p] {
			dups++
			continue
		}
		seen[p] = true
		paths = append(paths, p)
	}
	if l := bad.line(); l != "" {
		say("%s", l)
	}
	// A package list stands for the paths it names (package pkglist):
	// read from the file, bounded, with no Nix call.
	found := pkglist.FindWith(paths, true, readList)
	recorded := sayBadLists(cfg, found, say)
	closures, errs := siblingClosures(cfg, outputsOf(paths, found))
	sel := SelectClosures(cfg, found.Paths, policy.WithListings(drv.facts, found.Listed), func(s string) *policy.Closure { return closures[s] })
	for _, err := range errs {
		sel.Notes = append(sel.Notes, err.Error())
	}
	sel.Total = len(raw) - dups - len(paths) + len(found.Paths)
	sel.UseLists(found)
	if len(sel.Pairs) == 0 {
		if sel.Total > 0 {
			say("%s", sel.Summary())
		}
		if recorded != nil {
			// The lists recorded need a worker to read them again.
			if err := worker.EnsureRunning(cfg, recorded); err != nil {
				return fail("could not start a worker to read the package lists again (run `cachix-filter-hook wait`): %v", err)
			}
		}
		return 0
	}
	// The Nix process running the hook: while it runs, more builds may
	// come, and when it ends the worker pushes what it queued at once
	// (see the worker's plan).
	for i := range sel.Pairs {
		sel.Pairs[i].Session = os.Getppid()
		// What the .drv said comes with the entry: the worker need
		// not ask Nix for a deriver to read allowSubstitutes again.
		// The size stays unknown (0): a rule that reads it, or a
		// closure, still has the worker ask Nix.
		if f := drv.facts(sel.Pairs[i].Path.String()); f != nil {
			sel.Pairs[i].Facts = &queue.Facts{Deriver: f.Deriver, Substitutes: f.Substitutes}
		}
	}
	// The queue sayBadLists opened serves: opened once a build.
	ensured, err := enqueue(cfg, &sel, false, recorded)
	if recorded != nil && !ensured {
		// enqueue starts a worker only when it queued something (not
		// when all was pushed before, nor when queueing failed): the
		// lists recorded need one whatever it did, and one probe of
		// the worker's lock is enough for both.
		if serr := worker.EnsureRunning(cfg, recorded); serr != nil && err == nil {
			err = fmt.Errorf("could not start a worker to read the package lists again (run `cachix-filter-hook wait`): %w", serr)
		}
	}
	if err != nil {
		if len(sel.Pairs) > 0 {
			say("%s", sel.Summary()) // what was queued all the same
		}
		return fail("%v", err)
	}
	say("%s", sel.Summary())
	return 0
}

// Selection is what the rules chose from a set of paths.
type Selection struct {
	Pairs    []queue.Pair // (target, path) to queue
	Total    int          // paths considered
	Selected int          // paths at least one target selects
	Targets  []string     // targets that selected something, in config order
	Skipped  []string     // "name: reason" of paths no target selects
	// Dropping are the queued "name -> target: reason" that the worker
	// will drop by closure_deny = "skip", as far as the hook can tell;
	// dropping, the pair of each (LeaveOut takes the note with it).
	Dropping []string
	dropping []queue.Pair
	// Inside are the "name: reason, but uploaded -> target inside the
	// closure of X" of paths a target does not select but uploads all
	// the same (closure_deny = "push"): never "skipped". inside are
	// every path that uploads each (the first one said), and
	// insideSkips the skip notes of those among the paths: when the
	// pair of X is left out (LeaveOut), another X is said, or, with
	// none left, the path is skipped after all.
	Inside      []string
	inside      []insideNote
	insideSkips []insideSkip
	// Notes are what kept the hook from telling more.
	Notes []string
	// hosts say why a target whose hosts leave this machine out has
	// nothing: said only while another has something (Selected).
	hosts []string
	// Failed are the pairs Enqueue could not queue, when it failed.
	Failed []queue.Pair
	// Pushed counts, per target, the pairs left out because the record
	// of pushed paths has them (see Enqueue).
	Pushed map[string]int
	// Lists are the names of the package lists the paths came from
	// (UseLists), Listed counts the paths decided that a list names,
	// and Ignored names those left out only because no target takes
	// lists (package_lists): see lists.go.
	Lists   []string
	Listed  int
	Ignored []string
	// conf is the config file, for the line that says how to take lists.
	conf string
}

// Select applies every target's rules to paths.
func Select(cfg *config.Config, paths []storepath.Path) Selection {
	return SelectWith(cfg, paths, nil)
}

// SelectWith is Select with the facts of each path (nil facts, or a nil
// result: none known), for the rules that read more than its name.
func SelectWith(cfg *config.Config, paths []storepath.Path, facts func(string) *policy.Facts) Selection {
	return SelectClosures(cfg, paths, facts, nil)
}

// SelectClosures is SelectWith with what is known of the paths' closures
// (nil: nothing), decided by policy.DecideAll as explain decides. A pair
// the closure rule leaves out is queued all the same, with its reason in
// Dropping: the worker, which sees the whole closure, applies the rule
// and records the drop, which `wait` and `log` report.
func SelectClosures(cfg *config.Config, paths []storepath.Path, facts func(string) *policy.Facts, closure func(string) *policy.Closure) Selection {
	return selectClosures(cfg, paths, facts, closure, false)
}

// SelectFinal is SelectClosures for a caller that knows the whole closure
// of each path it gives one for (push, watch-exec: asked of Nix): the
// closure rule's verdict is then the worker's, so a pair it leaves out is
// not queued (the worker would only drop it, and `wait` report a drop)
// and the summary says it was skipped, and by which rule. A path without
// a known closure is queued by its own rules; the worker decides.
func SelectFinal(cfg *config.Config, paths []storepath.Path, facts func(string) *policy.Facts, closure func(string) *policy.Closure) Selection {
	return selectClosures(cfg, paths, facts, closure, true)
}

func selectClosures(cfg *config.Config, paths []storepath.Path, facts func(string) *policy.Facts, closure func(string) *policy.Closure, final bool) Selection {
	// Pairs at the size they usually reach (a pair a path): grown pair by
	// pair, a closure's 10,000 cost push --closure more than deciding them.
	sel := Selection{Total: len(paths), conf: cfg.File, Pairs: make([]queue.Pair, 0, len(paths))}
	seen := map[string]bool{}
	lists := policy.AcceptsLists(cfg)
	verdicts := policy.DecideAll(cfg, paths, facts, closure)
	// What a pushed path uploads inside its closure under closure_deny =
	// "push" is said once per target and dependency: by the dependency's
	// own verdict when it is among the paths (InsideNote), else by the
	// path that uploads it (DependencyNote).
	told := map[[2]string]bool{}
	for _, v := range verdicts {
		for _, td := range v.Targets {
			if td.InsideClosureOf != "" {
				told[[2]string{td.Target, v.Path.String()}] = true
			}
		}
	}
	for _, v := range verdicts {
		p := v.Path
		var f *policy.Facts
		if facts != nil {
			f = facts(p.String())
		}
		listed := f != nil && len(f.Listed) > 0
		if listed {
			sel.Listed++
		}
		queued := false
		var skipped []string // the closure rule's verdicts, when final
		for _, td := range v.Targets {
			if td.InsideClosureOf != "" {
				note := v.InsideNote(td)
				sel.Inside = append(sel.Inside, note)
				sel.inside = append(sel.inside, insideNote{target: td.Target, dep: p.String(), by: td.InsideClosureOf, note: note, own: true})
			}
			if !td.Selected && td.Check != policy.CheckClosure {
				continue
			}
			if td.Check == policy.CheckClosure && final {
				skipped = append(skipped, v.DropNote(td))
				continue
			}
			if td.Check == policy.CheckClosure {
				sel.Dropping = append(sel.Dropping, v.DropNote(td))
				sel.dropping = append(sel.dropping, queue.Pair{Target: td.Target, Path: p})
			}
			if dep := [2]string{td.Target, td.Dependency}; td.Selected && td.Dependency != "" {
				n := insideNote{target: td.Target, dep: td.Dependency, by: p.String(), v: v, td: td}
				if !told[dep] {
					told[dep] = true
					n.note = v.DependencyNote(td)
					sel.Inside = append(sel.Inside, n.note)
				}
				sel.inside = append(sel.inside, n)
			}
			queued = true
			sel.Pairs = append(sel.Pairs, queue.Pair{Target: td.Target, Path: p, Listed: td.Listed})
			seen[td.Target] = true
		}
		switch {
		case queued:
			// Some target takes it; those whose closure rule leaves
			// it out say so, each.
			sel.Selected++
			sel.Skipped = append(sel.Skipped, skipped...)
		case listed && !lists && !v.Denied():
			// Said once for all: no target takes lists.
			sel.Ignored = append(sel.Ignored, p.Name)
		case !v.Inside():
			sel.Skipped = append(sel.Skipped, v.SkipNote())
		default:
			sel.insideSkips = append(sel.insideSkips, insideSkip{dep: p.String(), note: v.SkipNote()})
		}
	}
	for _, t := range cfg.Targets {
		if seen[t.Name] {
			sel.Targets = append(sel.Targets, t.Name)
		}
		// A path queued for the other targets: the line says why
		// this one has none (a skipped path says it itself).
		if why := policy.HostRule(t); why != "" {
			sel.hosts = append(sel.hosts, why)
		}
	}
	return sel
}

// Summary is the one line the hook prints to the build log:
// `queued 1 of 2 paths for main (skipped hello-2.12.1-doc: deny "*-doc")`,
// or `queued 0 of 1 paths (already pushed: 1 to main)`. When hello refers
// to its doc output, "skipped" would be untrue under closure_deny = "push"
// and incomplete under "skip", so it says `not queued hello-2.12.1-doc:
// deny "*-doc", but uploaded -> main inside the closure of hello-2.12.1
// (closure_deny = "push")` or `the worker will drop hello-2.12.1 -> main:
// closure_deny = "skip": its closure contains …` (see siblingClosures).
func (s Selection) Summary() string {
	line, notes := s.head()
	if len(s.Pushed) > 0 {
		names := make([]string, 0, len(s.Pushed))
		for t := range s.Pushed {
			names = append(names, t)
		}
		sort.Strings(names)
		var parts []string
		for _, t := range names {
			parts = append(parts, fmt.Sprintf("%d to %s", s.Pushed[t], t))
		}
		notes = append(notes, "already pushed: "+strings.Join(parts, ", "))
	}
	if len(s.Dropping) > 0 {
		notes = append(notes, "the worker will drop "+summarize(s.Dropping, 3))
	}
	if len(s.Inside) > 0 {
		notes = append(notes, "not queued "+summarize(s.Inside, 3))
	}
	if len(s.Skipped) > 0 {
		notes = append(notes, "skipped "+summarize(s.Skipped, 3))
	}
	if len(s.Ignored) > 0 {
		notes = append(notes, s.ignoredNote())
	}
	if s.Selected > 0 {
		notes = append(notes, s.hosts...)
	}
	notes = append(notes, s.Notes...)
	if len(notes) > 0 {
		line += " (" + strings.Join(notes, "; ") + ")"
	}
	return line
}

// Enqueue queues the selection durably and makes sure a worker runs.
// Unless force, it first leaves out the pairs that the record of pushed
// paths (package pushed, written by the worker) says went to their target
// already: after a switch, nearly all of a system's closure did, and
// queueing it again would cost a pusher call for nothing. sel is updated
// to what was queued, so that its Summary says what will be uploaded;
// when queueing fails, Pairs are what was queued all the same and Failed
// the pairs that were not (all of them, or those after the chunks a bulk
// write managed), which the error counts.
func Enqueue(cfg *config.Config, sel *Selection, force bool) error {
	_, err := enqueue(cfg, sel, force, nil)
	return err
}

// enqueue is Enqueue into q, opened already (nil: it opens the queue of
// cfg). ensured: it made sure a worker runs, or failed to (its error
// says so).
func enqueue(cfg *config.Config, sel *Selection, force bool, q *queue.Queue) (ensured bool, err error) {
	queued := false // some pairs, when queueing failed
	if q == nil {
		q, err = queue.Open(cfg.Queue.Dir)
	}
	if err == nil {
		// Only once the queue directory passed its checks: the
		// record lives there, and it decides what is not uploaded.
		if !force && cfg.Queue.RememberPushed > 0 {
			rec := newRecord(cfg, q.Dir)
			sel.LeaveOut(rec.Has)
			rec.Close()
		}
		if len(sel.Pairs) == 0 {
			return false, nil
		}
		var added int
		added, err = q.Add(sel.Pairs, time.Now())
		if err != nil && added > 0 {
			// Many pairs go in chunks, and those of the chunks
			// written are queued: the worker pushes them, and the
			// line and the error say which went and which not.
			err, queued = sel.queuedFirst(added, err), true
		}
	}
	if err != nil && !queued {
		sel.Failed, sel.Pairs = sel.Pairs, nil
		return false, fmt.Errorf("could not queue %d paths, they will not be pushed: %w", sel.Selected, err)
	}
	// A worker that is running will see the new entries; one that is
	// just exiting looks again after releasing the lock.
	if serr := worker.EnsureRunning(cfg, q); serr != nil {
		serr = fmt.Errorf("queued, but could not start a worker (run `cachix-filter-hook wait`): %w", serr)
		if err != nil {
			// Both: the paths not queued are not to be lost from it.
			return true, fmt.Errorf("%w; those %w", err, serr)
		}
		return true, serr
	}
	if err != nil {
		return true, err
	}
	// The worker it starts is detached: should it fail to start, it can
	// only leave its reason in state.json, and this is the next line the
	// user reads.
	if se := worker.LoadState(q.Dir).StartError; se != nil {
		note := fmt.Sprintf("but the last worker could not start (%s): %s", se.Time.Local().Format(time.RFC3339), se.Error)
		if se.Fix != "" {
			note += "; fix: " + se.Fix
		}
		sel.Notes = append(sel.Notes, note)
	}
	return true, nil
}

// queuedFirst makes the selection the pairs that queue.Add queued before
// it failed with err, the first added of them (it writes them in order,
// each once), and returns the error that says what was not queued.
func (s *Selection) queuedFirst(added int, err error) error {
	type pairKey struct{ target, hash string }
	queued := map[pairKey]bool{}
	var kept, failed []queue.Pair
	for _, p := range s.Pairs {
		k := pairKey{p.Target, p.Path.Hash}
		if !queued[k] && len(queued) < added {
			queued[k] = true
		}
		if queued[k] {
			kept = append(kept, p)
		} else {
			failed = append(failed, p)
		}
	}
	if len(failed) == 0 {
		// All written, the last sync failed: queued, not durably.
		return fmt.Errorf("queued, but a power cut may yet lose them: %w", err)
	}
	paths := map[storepath.Path]bool{}
	var targets []string
	for _, p := range failed {
		paths[p.Path] = true
		if !slices.Contains(targets, p.Target) {
			targets = append(targets, p.Target)
		}
	}
	s.retain(kept, func(target string, p storepath.Path) bool { return !queued[pairKey{target, p.Hash}] })
	s.Failed = failed
	return fmt.Errorf("could not queue %d paths for %s, they will not be pushed there: %w", len(paths), strings.Join(targets, ", "), err)
}

func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:n], "; "), len(items)-n)
}
