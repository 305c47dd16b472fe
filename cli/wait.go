package cli

import (
	"fmt"
	"slices"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/config"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/history"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/queue"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/worker"
)

// The one wait loop, for `wait`, `push --wait` and `watch-exec --wait`:
// poll the queue until what is waited for has left it, following the
// history for progress and outcomes, keeping a worker running, and
// stopping at the timeout or, when asked, once everything left only
// waits for a back-off.

// waitPoll is how often the queue is looked at when nothing wakes the
// wait sooner: an entry or pin leaving the queue does (Queue.Notify),
// so that `push --wait` returns as its paths are done, not up to a poll
// later.
const waitPoll = 200 * time.Millisecond

// waitSettle bounds how often a wait woken by changes looks: a change
// that comes after a quiet spell (a pushed batch's bulk file going, the
// end of most waits) is looked at as it comes; those that follow within
// waitSettle of a look (the files of entries removed one by one) let
// more come first, so that there is at most one look per settle.
const waitSettle = 20 * time.Millisecond

// waitSpec says what a wait waits for.
type waitSpec struct {
	// poll is how often the queue is looked at; 0 is waitPoll.
	poll time.Duration
	// looked, when set, is called after each look (a test's sign that
	// the wait has seen the queue as it was).
	looked func()
	// pairs are the pairs a push queued; nil waits for every entry of a
	// configured target (entries of targets no longer configured would
	// never go).
	pairs []queue.Pair
	// pins are the keys of the pins push --pin queued (pairs mode);
	// every pin of a configured target is waited for otherwise.
	pins []string
	// since is when the pairs were queued: drops recorded before are
	// not theirs.
	since   time.Time
	timeout time.Duration // 0 or less: no limit
	quiet   bool
	// follow, when set, reads the history from before the pairs were
	// queued: a worker already running can push them before the wait
	// begins, and the summary must count them.
	follow *history.Follower
	// giveUpFailing ends the wait once every entry left has failed and
	// only waits for its back-off: nothing changes until it ends, and a
	// target that keeps failing would hold the caller forever.
	giveUpFailing bool
	// waitOn says how to wait on instead, when it gives up; "": wait's
	// --keep-trying.
	waitOn string
}

// waitFlags are the options of push and watch-exec that wait for what
// they queued.
type waitFlags struct {
	wait, quiet bool
	timeout     time.Duration
}

// defs declares --wait, --timeout and -q for the command table, with the
// command's own words for --wait and -q.
func (w *waitFlags) defs(waitDoc, quietDoc string) []flagDef {
	return []flagDef{
		{name: "wait", bind: switchVar(&w.wait), help: waitDoc},
		{name: "timeout", arg: "DUR", bind: durationVar(&w.timeout, 10*time.Minute), help: "with --wait, give up after DUR; 0: no limit, but give up once every path left has failed and waits for a retry, as wait without --timeout"},
		{name: "quiet", short: 'q', bind: switchVar(&w.quiet), help: quietDoc},
	}
}

// waitEnd is how a wait ended.
type waitEnd int

const (
	waitDone        waitEnd = iota // nothing left to wait for
	waitTimedOut                   // the timeout passed first
	waitFailing                    // everything left waits for a back-off (giveUpFailing)
	waitInterrupted                // the command was interrupted
	waitError                      // the queue could not be read or no worker started
)

// waitResult is what a wait saw.
type waitResult struct {
	end waitEnd
	// dropped are the waited-for paths the worker dropped, with the
	// reason (closure_deny, garbage-collected, no longer selected).
	dropped []history.Record
	// left are the waited-for pairs still queued at the end (pairs
	// mode).
	left []queue.Pair
	// ruled counts the drops that are the rules' verdicts (not
	// failures); lost, the paths that were to go up and could not
	// (gone from the store).
	ruled, lost int
	// unpinned counts the pins push --pin waited for that the worker
	// gave up on (pairs mode).
	unpinned int
}

// Exit statuses of wait and push --wait (README, "Exit codes"), after
// cachix's own convention for "some paths failed to push".
const (
	exitOK      = 0 // everything that was to go up went up
	exitError   = 1 // the command itself failed
	exitUsage   = 2
	exitNotSent = 3 // some path failed, was lost, or was still queued at the timeout
)

// exitCode maps how a wait ended to the exit status. A path the rules left
// out is a verdict, not a failure, unless failOnDrop.
func (r waitResult) exitCode(failOnDrop bool) int {
	switch {
	case r.end == waitError || r.end == waitInterrupted:
		return exitError
	case r.end != waitDone || r.lost > 0 || r.unpinned > 0 || failOnDrop && r.ruled > 0:
		return exitNotSent
	}
	return exitOK
}

// waitQueue runs the wait loop on c's queue q, showing progress on
// stderr (unless quiet) and reporting at the end what was not pushed.
func (e *env) waitQueue(c *config.Config, q *queue.Queue, spec waitSpec) waitResult {
	var targets []string
	var want, wantKeys map[string]bool
	if spec.pairs == nil {
		targets = targetNames(c)
	} else {
		want, wantKeys = map[string]bool{}, map[string]bool{}
		for _, p := range spec.pairs {
			if !slices.Contains(targets, p.Target) {
				targets = append(targets, p.Target)
			}
			want[pairKey(p.Target, p.Path.String())] = true
			wantKeys[queue.Key(p.Target, p.Path)] = true
		}
	}
	prog := newProgress(e, q.Dir, targets, spec.quiet, spec.follow)
	if !spec.since.IsZero() {
		prog.start = spec.since
	}
	prog.want = want
	prog.allPins = spec.pairs == nil
	if len(spec.pins) > 0 {
		prog.wantPins = map[string]bool{}
		for _, k := range spec.pins {
			prog.wantPins[k] = true
		}
	}
	prog.count = func() map[string]*counts { return queueCounts(q, targets, wantKeys) }
	var deadline <-chan time.Time
	if spec.timeout > 0 {
		t := time.NewTimer(spec.timeout)
		defer t.Stop()
		deadline = t.C
	}
	// A worker that fails to start after this is one this wait (or the
	// push it waits for) started.
	waitStart := time.Now()
	if !spec.since.IsZero() {
		waitStart = spec.since
	}
	if spec.poll == 0 {
		spec.poll = waitPoll
	}
	tick := time.NewTicker(spec.poll)
	defer tick.Stop()
	changed, stop := q.Notify()
	defer stop()
	left := &leftInQueue{c: c, q: q, pairs: spec.pairs}
	var failing failingCheck
	var looked time.Time
	for first := true; ; first = false {
		looked = time.Now()
		n, err := left.count()
		if err != nil {
			e.errorf("%v", err)
			return waitResult{end: waitError}
		}
		var pinKeys []string
		if spec.pairs != nil {
			pinKeys = append([]string{}, spec.pins...)
		}
		pc, err := pinsLeft(c, q, pinKeys, left.stated, time.Now())
		pins, pinsFailing, pinsFailed := pc.n, pc.allFailing, pc.failed
		if err != nil {
			e.errorf("%v", err)
			return waitResult{end: waitError}
		}
		// The package lists the hook could not read (whole queue
		// alone): what they name is queued once the worker reads them.
		var lc listsCount
		if spec.pairs == nil {
			lc = listsLeft(q, time.Now())
		}
		if left.orphans > 0 && !left.warned {
			e.errorf("warning: %d queued entries belong to targets no longer in the config; not waiting for them", left.orphans)
			left.warned = true
		}
		prog.poll()
		if spec.looked != nil {
			spec.looked()
		}
		if n+pins+lc.n == 0 && first && spec.pairs == nil {
			// Said, so that a log shows the wait happened.
			if !spec.quiet {
				e.errorf("nothing to push")
			}
			return waitResult{end: waitDone}
		}
		if n+pins+lc.n == 0 {
			break
		}
		// A worker that crashed, or exited just as entries came, is
		// started again; one that cannot start said why in state.json.
		if err := worker.EnsureRunning(c, q); err != nil {
			e.errorf("starting a worker: %v", err)
			return waitResult{end: waitError}
		}
		if se := worker.LoadState(q.Dir).StartError; se != nil && se.Time.After(waitStart) {
			e.errorf("the worker could not start: %s", se.Error)
			if se.Fix != "" {
				e.errorf("fix: %s", se.Fix)
			}
			return waitResult{end: waitError, dropped: prog.dropped, left: left.pairs}
		}
		if spec.giveUpFailing && (n == 0 || !left.inBulk && failing.allWaiting(q, left.stated, func(en *queue.Entry) bool { return left.waitedFor(en) }, time.Now())) && (pins == 0 || pinsFailing) && lc.failing == lc.n {
			prog.lastFrame()
			// Said of what is left: only pins, it may be, and a pin
			// that has not failed waits for its root's push.
			what := "every path left has failed and waits for a retry"
			switch {
			case n == 0 && pinsFailed == pins:
				what = "every pin left has failed and waits for a retry"
			case n == 0 && pinsFailed == 0:
				what = "every pin left waits for its root's push, which has failed and waits for a retry"
			case n == 0:
				what = "every pin left has failed, or waits for its root's push, which has, and waits for a retry"
			case pins == 0:
			case pinsFailed == pins:
				what = "every path and pin left has failed and waits for a retry"
			case pinsFailed == 0:
				what += ", and every pin left waits for its root's push"
			default:
				what += ", and every pin left for a retry or its root's push"
			}
			switch {
			case lc.n > 0 && n+pins == 0:
				what = "every package list left could not be read again and waits for a retry"
			case lc.n > 0:
				what += ", and every package list left could not be read again and waits for a retry"
			}
			waitOn := spec.waitOn
			if waitOn == "" {
				waitOn = "--keep-trying waits on"
			}
			e.errorf("%s; not waiting for it (%s):", what, waitOn)
			left.report(e)
			left.reportPins(e, pinKeys)
			lc.report(e)
			ruled, lost := prog.finish()
			return waitResult{end: waitFailing, dropped: prog.dropped, left: left.pairs, ruled: ruled, lost: lost, unpinned: reportPins(e, spec, prog.pins, pinsQueued(c, q, pinKeys))}
		}
		if now := time.Now(); prog.due(now) {
			prog.draw(now, prog.count())
		}
		select {
		case <-e.ctx.Done():
			return waitResult{end: waitInterrupted, dropped: prog.dropped, left: left.pairs}
		case <-deadline:
			prog.lastFrame()
			switch {
			case spec.pairs == nil && n+pins == 0:
				// Only lists left: no path or pin is queued yet.
				e.errorf("timed out after %s with %d %s not read again yet:", spec.timeout, lc.n, plural(lc.n, "package list"))
			case spec.pairs == nil && n == 0 && pins > 0:
				// Only pins left: no path is queued.
				e.errorf("timed out after %s with %d %s not made yet:", spec.timeout, pins, plural(pins, "pin"))
			case spec.pairs == nil:
				e.errorf("timed out after %s with paths still queued:", spec.timeout)
			case len(left.pairs) > 0 || pins == 0:
				// Paths, not pairs: one path for two targets is one.
				n := distinctPaths(left.pairs)
				verb := "were"
				if n == 1 {
					verb = "was"
				}
				e.errorf("%d %s %s not pushed in time:", n, plural(n, "path"), verb)
			default:
				e.errorf("%d %s not made in time:", pins, plural(pins, "pin"))
			}
			left.report(e)
			left.reportPins(e, pinKeys)
			lc.report(e)
			ruled, lost := prog.finish()
			return waitResult{end: waitTimedOut, dropped: prog.dropped, left: left.pairs, ruled: ruled, lost: lost, unpinned: reportPins(e, spec, prog.pins, pinsQueued(c, q, pinKeys))}
		case <-tick.C:
		case <-changed:
			if time.Since(looked) < waitSettle {
				settle(changed, waitSettle)
			}
		}
	}
	// dropped/ is the authority; the history may have missed a drop.
	// spec.since is this process's time.Now(): how long ago it was, by
	// the monotonic clock, holds across a step of the wall clock.
	for _, p := range spec.pairs {
		if en, ok := q.Dropped(queue.Key(p.Target, p.Path), spec.since, time.Since(spec.since)); ok {
			prog.addDropped(history.Record{Target: p.Target, Path: p.Path.String(), Outcome: history.Dropped, Reason: en.Reason})
		}
	}
	ruled, lost := prog.finish()
	prog.poll() // the pins' outcomes, written before their files went
	return waitResult{end: waitDone, dropped: prog.dropped, ruled: ruled, lost: lost, unpinned: reportPins(e, spec, prog.pins, nil)}
}

// listsCount is what listsLeft found in the queue's lists/.
type listsCount struct {
	n, failing int
	// failed are the lists backed off, "list: last error", for the
	// report (at most maxListsReported).
	failed []string
}

// maxListsReported bounds the lists a wait names when it ends.
const maxListsReported = 10

// listsLeft counts the package lists the hook recorded for the worker to
// read again (queue.UnreadList), and those of them that failed a read and
// wait for a back-off, as a backed-off entry does. A file that cannot be
// read counts, not failing: the worker moves it aside, or reads it.
func listsLeft(q *queue.Queue, now time.Time) listsCount {
	var lc listsCount
	names, _ := q.UnreadListNames()
	for _, name := range names {
		lc.n++
		u, err := q.ReadUnreadList(name)
		if err != nil || u.Attempts == 0 || !u.NextAttempt.After(now) {
			continue
		}
		lc.failing++
		if len(lc.failed) < maxListsReported {
			lc.failed = append(lc.failed, fmt.Sprintf("%s: %d failed reads, last: %s", u.List, u.Attempts, u.LastError))
		}
	}
	return lc
}

// report names the lists that failed a read, each with its last error
// (the status left.report prints counts them all).
func (lc listsCount) report(e *env) {
	for _, f := range lc.failed {
		statusLine(e.stderr, "  package list %s", oneLine(f))
	}
	if lc.failing > len(lc.failed) {
		statusLine(e.stderr, "  and %d more package lists that failed a read", lc.failing-len(lc.failed))
	}
}

// leftInQueue counts what a wait still waits for, by the entries' keys
// alone (queue.Keys): nothing is read but the names of entries/ and, once
// each, the keys of the bulk files.
type leftInQueue struct {
	c     *config.Config
	q     *queue.Queue
	pairs []queue.Pair // pairs mode: those still queued
	// The keys waited for that may hold a retry state (queue.Keys'
	// stated: files in entries/, and the bulk files the worker wrote a
	// failed batch to; see failingCheck), whether any other bulk file
	// holds an entry waited for, and (whole-queue mode) how many entries
	// belong to targets no longer configured.
	stated  []string
	inBulk  bool
	orphans int
	warned  bool
	digests map[string]string // the configured targets' (queue.TargetsByDigest)
}

// count returns how many waited-for entries are still queued.
func (l *leftInQueue) count() (int, error) {
	stated, bulk, err := l.q.Keys()
	if err != nil {
		return 0, err
	}
	if l.pairs != nil {
		queued := make(map[string]bool, len(stated)+len(bulk))
		for _, ks := range [][]string{stated, bulk} {
			for _, k := range ks {
				queued[k] = true
			}
		}
		inStated := make(map[string]bool, len(stated))
		for _, k := range stated {
			inStated[k] = true
		}
		// Never nil: a nil pairs is the whole queue, and push --pin
		// --wait, its pairs gone, still waits for its pins.
		still := []queue.Pair{}
		// Of the stated keys, the pairs' alone (failingCheck reads
		// each); and whether one is in a bulk file without a retry
		// state, which has not failed.
		l.stated, l.inBulk = nil, false
		for _, p := range l.pairs {
			if k := queue.Key(p.Target, p.Path); queued[k] {
				still = append(still, p)
				if inStated[k] {
					l.stated = append(l.stated, k)
				} else {
					l.inBulk = true
				}
			}
		}
		l.pairs = still
		return len(still), nil
	}
	if l.digests == nil {
		l.digests = queue.TargetsByDigest(targetNames(l.c))
	}
	pushable, orphans := 0, 0
	l.stated, l.inBulk = stated, false
	for i, ks := range [][]string{stated, bulk} {
		for _, k := range ks {
			// A name that is not a key is a corrupt entry, which the
			// worker moves aside: counted until it has.
			d := queue.KeyDigest(k)
			if _, ok := l.digests[d]; ok || d == "" {
				pushable++
				l.inBulk = l.inBulk || i == 1
			} else {
				orphans++
			}
		}
	}
	l.orphans = orphans
	return pushable, nil
}

// distinctPaths counts the paths of pairs, each once.
func distinctPaths(pairs []queue.Pair) int {
	seen := map[storepath.Path]bool{}
	for _, p := range pairs {
		seen[p.Path] = true
	}
	return len(seen)
}

// waitedFor reports whether an entry is one the wait waits for.
func (l *leftInQueue) waitedFor(en *queue.Entry) bool {
	if l.pairs == nil {
		return l.c.Target(en.Target) != nil
	}
	// stated holds the pairs' keys alone (count): no search of every
	// pair for each entry, which a closure's thousands made quadratic.
	return true
}

// report lists what is left: each pair with its last error, or the
// queue's status. Escaped as status is: paths come from the environment
// (NIX_STORE_DIR) and the queue's files.
func (l *leftInQueue) report(e *env) {
	if l.pairs == nil {
		if st, err := collectStatus(l.c, l.q); err == nil {
			st.print(e.stderr)
		}
		return
	}
	for _, p := range l.pairs {
		msg := "still queued"
		if en, ok := l.q.Get(queue.Key(p.Target, p.Path)); ok && en.LastError != "" {
			msg = fmt.Sprintf("%d failed attempts, last: %s", en.Attempts, oneLine(en.LastError))
		}
		statusLine(e.stderr, "  %s -> %s: %s", p.Path, p.Target, msg)
	}
}

// reportPins lists the pins of keys (push --pin's) still queued, each
// with its last error: a timeout names what it did not wait out.
func (l *leftInQueue) reportPins(e *env, keys []string) {
	for _, k := range keys {
		p, err := l.q.ReadPin(k)
		if err != nil {
			continue
		}
		msg := "still queued"
		if p.LastError != "" {
			msg = fmt.Sprintf("%d failed attempts, last: %s", p.Attempts, oneLine(p.LastError))
		}
		statusLine(e.stderr, "  pin %q of %s -> %s: %s", p.Name, p.Path, p.Target, msg)
	}
}

// pinsQueued are the keys of the pins of keys (nil: every pin of a
// configured target) still queued as a wait that did not see them go
// reports what is left, read then, as that report is.
func pinsQueued(c *config.Config, q *queue.Queue, keys []string) map[string]bool {
	pc, err := pinsLeft(c, q, keys, nil, time.Now())
	if err != nil {
		return nil // the history's outcomes said, as they were
	}
	return pc.queued
}

// waitOptions are wait's flags.
type waitOptions struct {
	keepTrying, quiet, failOnDrop bool
	timeout                       time.Duration
}

func runWait(e *env, o *waitOptions) int {
	c, q, ok := e.openQueue()
	if !ok {
		return exitError
	}
	r := e.waitQueue(c, q, waitSpec{timeout: o.timeout, quiet: o.quiet, giveUpFailing: o.timeout <= 0 && !o.keepTrying})
	return r.exitCode(o.failOnDrop)
}

func targetNames(c *config.Config) []string {
	names := make([]string, len(c.Targets))
	for i, t := range c.Targets {
		names[i] = t.Name
	}
	return names
}

// settle lets the changes that come within d of each other pass (the
// files of a batch removed one by one), at most 10 d in all.
func settle(changed <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	end := time.Now().Add(10 * d)
	for {
		select {
		case <-changed:
			if time.Now().After(end) {
				return
			}
			t.Reset(d)
		case <-t.C:
			return
		}
	}
}
